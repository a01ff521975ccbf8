// Builds small single-file checkpoints from a config and an edited tensor list (zeros as data), for
// tests that need a checkpoint with something missing, misshapen or extra.
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig, planTensors } from '../../src/gemma3n';
import { TensorSpec, tensorBytes, writeSafetensors } from '../../src/formats';

export async function writeEditedCheckpoint(
  configPath: string,
  dir: string,
  edit: (tensors: TensorSpec[]) => TensorSpec[],
): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(configPath, path.join(dir, 'config.json'));
  const specs = edit(
    planTensors(loadConfig(configPath)).map(({ name, dtype, shape }) => ({ name, dtype, shape })),
  );
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    specs.map((s) => ({ ...s, data: new Uint8Array(tensorBytes(s)) })),
  );
}
