// The recording savings on the webgpu backend (src/engine/webgpu-recording.ts): uniforms kept by content
// and handed back to TF.js's pool past the bound, one bind group layout per pipeline, results unchanged.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine';
import { cacheUniformsByContent } from '../../src/engine/webgpu-recording';
import { describeIfWebGpu } from './webgpu-probe';

interface Field {
  type: string;
  data: number[];
}

interface FakeBuffer {
  size: number;
  id: number;
}

interface FakeBackend {
  uniformPendingDisposal: FakeBuffer[];
  makeUniforms(fields: Field[]): { offset: number; size: number; buffer: FakeBuffer };
  readonly made: number;
}

/** A backend with TF.js's makeUniforms contract: a new buffer per call, queued for release at the submit. */
function fakeBackend(): FakeBackend {
  let made = 0;
  const be: FakeBackend = {
    uniformPendingDisposal: [],
    makeUniforms(this: FakeBackend, fields: Field[]) {
      const buffer = { size: 4 * fields.length, id: made++ };
      this.uniformPendingDisposal.push(buffer);
      return { offset: 0, size: buffer.size, buffer };
    },
    get made() {
      return made;
    },
  };
  return be;
}

describe('uniforms by content', () => {
  it('writes each distinct content once and keeps its buffer out of the pool', () => {
    const be = fakeBackend();
    expect(cacheUniformsByContent(be, 8)).toBe(true);
    expect(cacheUniformsByContent(be, 8)).toBe(false);
    const a = be.makeUniforms([
      { type: 'float32', data: [NaN] },
      { type: 'int32', data: [1, 64] },
    ]);
    const b = be.makeUniforms([
      { type: 'float32', data: [NaN] },
      { type: 'int32', data: [1, 64] },
    ]);
    expect(b).toBe(a);
    expect(be.made).toBe(1);
    expect(be.uniformPendingDisposal).toEqual([]);
    // Same numbers, other types or other float32 bits: other contents.
    const c = be.makeUniforms([
      { type: 'float32', data: [NaN] },
      { type: 'uint32', data: [1, 64] },
    ]);
    const zero = be.makeUniforms([{ type: 'float32', data: [0] }]);
    const minusZero = be.makeUniforms([{ type: 'float32', data: [-0] }]);
    expect(new Set([a.buffer, c.buffer, zero.buffer, minusZero.buffer]).size).toBe(4);
    expect(be.made).toBe(4);
  });

  it('hands every kept buffer back to the pool at the bound and starts over', () => {
    const be = fakeBackend();
    cacheUniformsByContent(be, 2);
    const one = be.makeUniforms([{ type: 'int32', data: [1] }]);
    const two = be.makeUniforms([{ type: 'int32', data: [2] }]);
    const three = be.makeUniforms([{ type: 'int32', data: [3] }]);
    expect(be.uniformPendingDisposal).toEqual([one.buffer, two.buffer]);
    expect(be.makeUniforms([{ type: 'int32', data: [3] }])).toBe(three);
    expect(be.makeUniforms([{ type: 'int32', data: [1] }])).not.toBe(one);
    expect(be.made).toBe(4);
  });
});

describeIfWebGpu('recording on webgpu', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  it('records a repeated op without a uniform write and with the same results', async () => {
    const be = tf.backend() as unknown as {
      queue: { writeBuffer: (...a: unknown[]) => void };
      pipelineCache: Record<string, { getBindGroupLayout(i: number): unknown }>;
    };
    // Past TF.js's cpu hand-off size, and already on the GPU, so the ops below are dispatches.
    const x = tf.tidy(() => tf.add(tf.range(0, 4096, 1, 'float32'), 0.5));
    const run = () => tf.tidy(() => tf.sqrt(tf.mul(x, x)));
    const first = run();
    const writes: number[] = [];
    const write = be.queue.writeBuffer;
    be.queue.writeBuffer = function (this: unknown, ...a: unknown[]) {
      writes.push((a[0] as { size: number }).size);
      return write.apply(this, a);
    };
    let second: tf.Tensor;
    try {
      second = run();
    } finally {
      be.queue.writeBuffer = write;
    }
    expect(writes).toEqual([]);
    expect(await second.data()).toEqual(await first.data());
    const pipeline = Object.values(be.pipelineCache)[0]!;
    expect(pipeline.getBindGroupLayout(0)).toBe(pipeline.getBindGroupLayout(0));
    tf.dispose([x, first, second]);
  });
});
