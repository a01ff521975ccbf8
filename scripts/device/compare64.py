# Relative RMS error and argmax agreement between our logits and transformers' for one sequence.
import json, sys
from safetensors.numpy import load_file
a = load_file(sys.argv[1])['logits.0'].astype('float64'); b = load_file(sys.argv[2])['logits.0'].astype('float64')
import numpy as np
rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
agree = float((a.argmax(-1) == b.argmax(-1)).mean())
print(json.dumps({'full_size_64_tokens': {'rel_rms': rel, 'argmax_agreement': agree, 'max_abs': float(np.abs(a - b).max())}}))
