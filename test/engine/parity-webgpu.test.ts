// Parity on the webgpu backend (README tolerance 1e-2). In CI this runs on the CPU through Mesa's lavapipe
// Vulkan driver, where every dispatch is slow: it covers every fixture and slice as an elastic view; the cpu
// suite also checks the sliced checkpoints, which give bit-identical logits to the views there.
import { describeIfShared } from '../helpers/shared';
import { GEMMA } from './helpers';
import { paritySuite } from './parity-suite';
import { describeIfWebGpu } from './webgpu-probe';

describeIfShared(
  'engine parity on webgpu',
  () =>
    describeIfWebGpu('webgpu adapter', () =>
      paritySuite({ backend: 'webgpu', tolerance: 1e-2, slicedCheckpoints: false }),
    ),
  [GEMMA],
);
