// Parity with transformers on the cpu backend: every fixture and slice, elastic and as sliced checkpoints.
import { describeIfShared } from '../helpers/shared';
import { GEMMA } from './helpers';
import { paritySuite } from './parity-suite';

describeIfShared('engine parity on cpu', () => paritySuite({ backend: 'cpu', tolerance: 5e-3 }), [GEMMA]);
