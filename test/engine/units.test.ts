// Unit checks of the engine's building blocks that the fixtures cannot isolate: constants, masks, KV roles of
// submodels, the chunked LM head (the tiny fixtures fit in one chunk), backend selection and loading rules.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  Engine,
  LmHead,
  PAD_KEY_POSITION,
  buildMasks,
  gaussianZ,
  initBackend,
  isSoftwareAdapter,
  ropeInvFreq,
  submodelConfig,
} from '../../src/engine';
import { Checkpoint, UserInputError, writeSafetensors } from '../../src/formats';
import { loadConfig } from '../../src/gemma3n';
import * as fs from 'node:fs';
import { describeIfShared } from '../helpers/shared';
import { tmpDir } from '../helpers/tmp';
import { GEMMA, compareLogits, gemmaDir, manifest } from './helpers';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('numerics', () => {
  it('uses float32 constants the way torch computes them', () => {
    expect(gaussianZ(0.95)).toBe(1.6448533535003662);
    expect(gaussianZ(0.9)).toBeCloseTo(1.2815515655446004, 6);
    expect(gaussianZ(0.5)).toBeCloseTo(0, 6);
    const inv = ropeInvFreq(10000, 256);
    expect(inv).toHaveLength(128);
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBe(Math.fround(1 / Math.fround(Math.pow(10000, Math.fround(2 / 256)))));
    expect(inv[127]).toBeCloseTo(1 / Math.pow(10000, 254 / 256), 9);
  });
});

describe('attention masks', () => {
  it('are causal by position, hide padded keys and, on sliding layers, keys a window back', async () => {
    // One sequence, 4 queries at positions 3..6 over 7 keys at 0..6 except a padded column; window 3.
    const keyPos = Int32Array.from([0, 1, 2, PAD_KEY_POSITION, 3, 4, 5]);
    const queryPos = Int32Array.from([3, 4, 5, 6]);
    const m = buildMasks(queryPos, keyPos, 1, 4, 7, 0, 3);
    const visible = async (t: tf.Tensor) =>
      (Array.from(await t.data()) as number[]).map((x) => (x === 0 ? 1 : 0)).join('');
    expect(await visible(m.full)).toBe(['1110100', '1110110', '1110111', '1110111'].join(''));
    expect(await visible(m.sliding)).toBe(['0110100', '0010110', '0000111', '0000011'].join(''));
    tf.dispose([m.full, m.sliding]);
    // A trimmed sliding cache starts later: its mask covers only the kept columns.
    const trimmed = buildMasks(queryPos, keyPos, 1, 4, 7, 2, 3);
    expect(trimmed.sliding.shape).toEqual([1, 1, 4, 5]);
    tf.dispose([trimmed.full, trimmed.sliding]);
  });
});

describe('submodel KV roles', () => {
  const e4b = () => loadConfig(path.join(gemmaDir(), 'e4b-config'));
  const run = describeIfShared;
  run(
    'on the E4B config',
    () => {
      it('E2B (skip 20-24) keeps producers 18/19 and reads them from 15 consumers-turned-10', () => {
        const c = submodelConfig(e4b(), { skip: [20, 21, 22, 23, 24], ffn: new Array(30).fill(8192) });
        expect(c.layers).toHaveLength(30);
        const consumers = c.layers.filter((l) => l.kvRole === 'consumer');
        expect(consumers.map((l) => l.parentIndex)).toEqual([25, 26, 27, 28, 29, 30, 31, 32, 33, 34]);
        expect(consumers.map((l) => c.layers[l.kvSource!]!.parentIndex)).toEqual([
          18, 18, 18, 18, 19, 18, 18, 18, 18, 19,
        ]);
        expect(c.layers.filter((l) => l.kvRole === 'producer').map((l) => l.parentIndex)).toEqual([18, 19]);
        expect(c.layers.map((l) => l.sparsity > 0).lastIndexOf(true)).toBe(9);
      });
      it('skipping early layers moves the sharing boundary with them', () => {
        const c = submodelConfig(e4b(), { skip: [3, 9], ffn: new Array(33).fill(16384) });
        const first = c.layers.findIndex((l) => l.kvRole === 'consumer');
        expect(c.layers[first]!.parentIndex).toBe(20);
        expect(c.layers.filter((l) => l.kvRole === 'producer').map((l) => l.parentIndex)).toEqual([18, 19]);
        expect(c.layers.find((l) => l.parentIndex === 9)).toBeUndefined();
      });
      it('rejects widths above the parent and wrong counts', () => {
        expect(() => submodelConfig(e4b(), { skip: [], ffn: new Array(35).fill(16385) })).toThrow(
          UserInputError,
        );
        expect(() => submodelConfig(e4b(), { skip: [], ffn: [8192] })).toThrow(
          /1 FFN widths for 35 kept layers/,
        );
        expect(() => submodelConfig(e4b(), { skip: [4, 2], ffn: new Array(33).fill(8192) })).toThrow(
          /sorted/,
        );
      });
    },
    [GEMMA],
  );
});

describe('chunked LM head', () => {
  it('gives the same logits, argmax and log-sum-exp in 1 or many chunks and row blocks', async () => {
    const V = 1000;
    const H = 8;
    const E = Float32Array.from({ length: V * H }, (_, i) => Math.sin(i * 12.9898) * 3);
    const rows = (a: number, b: number) => E.slice(a * H, b * H);
    const one = LmHead.load(V, H, 30, 1 << 30, rows);
    // 2240-byte tensors: 15 chunks of 67 rows, and the 12 hidden rows go in blocks of 8.
    const many = LmHead.load(V, H, 30, 2240, rows);
    expect(many.chunks.length).toBeGreaterThan(5);
    const h = tf.tensor2d(
      Float32Array.from({ length: 12 * H }, (_, i) => Math.cos(i * 0.37)),
      [12, H],
    );
    const [a, b] = [await one.logits(h), await many.logits(h)];
    expect(compareLogits(b, a, V).relRms).toBeLessThan(1e-6);
    expect([...(await many.argmax(h))]).toEqual([...(await one.argmax(h))]);
    const ids = [999, 0, 512, 100, 101];
    const [ra, rb] = [await one.restricted(h, ids), await many.restricted(h, ids)];
    for (let r = 0; r < 12; r++) {
      expect(rb[r]!.logsumexp).toBeCloseTo(ra[r]!.logsumexp, 5);
      const row = a.subarray(r * V, (r + 1) * V);
      ids.forEach((id, k) => expect(rb[r]!.logits[k]).toBeCloseTo(row[id]!, 5));
      expect(Math.max(...row)).toBeLessThanOrEqual(30);
    }
    tf.dispose(h);
    one.dispose();
    many.dispose();
  });

  it('argmax picks the first of tied maxima, across chunks', async () => {
    const V = 300;
    const H = 2;
    const E = new Float32Array(V * H);
    E[5 * H] = 1; // row 5 and row 250 are equal maxima for h = [1, 0]
    E[250 * H] = 1;
    const head = LmHead.load(V, H, null, 100 * H * 4, (a, b) => E.slice(a * H, b * H));
    const h = tf.tensor2d([1, 0], [1, 2]);
    expect([...(await head.argmax(h))]).toEqual([5]);
    tf.dispose(h);
    head.dispose();
  });
});

describe('backends', () => {
  it('tells software WebGPU adapters from hardware ones', () => {
    expect(
      isSoftwareAdapter({
        vendor: 'mesa',
        architecture: 'software',
        device: 'llvmpipe',
        description: 'llvmpipe: Mesa',
      }),
    ).toBe(true);
    expect(
      isSoftwareAdapter({
        vendor: 'google',
        architecture: '',
        device: 'SwiftShader Device',
        description: '',
      }),
    ).toBe(true);
    expect(
      isSoftwareAdapter({
        vendor: 'nvidia',
        architecture: 'hopper',
        device: 'NVIDIA H200',
        description: 'NVIDIA H200',
      }),
    ).toBe(false);
    expect(
      isSoftwareAdapter({
        vendor: 'nvidia',
        architecture: 'hopper',
        device: '',
        description: '',
        fallback: true,
      }),
    ).toBe(true);
  });

  it('explains how to get the tensorflow backend when it is not installed', async () => {
    await expect(initBackend('tensorflow')).rejects.toThrow(/npm install @tensorflow\/tfjs-node/);
    expect((await initBackend('cpu')).name).toBe('cpu');
  });
});

describeIfShared(
  'checkpoints without the unused consumer K/V weights',
  () => {
    it('load and give the same logits (consumers never use their own K/V)', async () => {
      const src = path.join(gemmaDir(), 'tiny-e4b');
      const dir = tmpDir('matformer-resaved-');
      const ckpt = Checkpoint.open(src);
      const consumerKv =
        /^model\.language_model\.layers\.(2\d|3\d)\.self_attn\.(k_proj|v_proj|k_norm)\.weight$/;
      const tensors = [...ckpt.tensors.keys()]
        .filter((n) => !consumerKv.test(n))
        .map((n) => ({
          name: n,
          dtype: ckpt.info(n).dtype,
          shape: ckpt.info(n).shape,
          data: ckpt.readBytes(n),
        }));
      ckpt.close();
      expect(tensors.length).toBeLessThan(ckpt.tensors.size);
      await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
      fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
      const [a, b] = [await Engine.load(src), await Engine.load(dir)];
      try {
        const ids = [manifest()['tiny-e4b']!.inputs[1]!];
        const [la] = await a.view().logits(ids);
        const [lb] = await b.view().logits(ids);
        expect(compareLogits(lb!, la!, 1024).relRms).toBe(0);
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  },
  [GEMMA],
);
