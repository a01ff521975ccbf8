// Every CLI command, one module each. Add new commands here.
import type { CommandModule } from 'yargs';
import { inspectCommand } from './inspect';
import { createRandomCommand } from './create-random';
import { sliceCommand } from './slice';
import { logitsCommand } from './logits';
import { generateCommand } from './generate';
import { benchCommand } from './bench';
import { evalCommand } from './eval';
import { compareCommand } from './compare';
import { downloadCommand } from './download';
import { downloadDataCommand } from './download-data';
import { reportCommand } from './report';
import { sweepCommand } from './sweep';
import { resultsCommand } from './results';
import { exportBestCommand } from './export-best';
import { exportCommand } from './export';
import { workerCommand } from './worker';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  inspectCommand,
  createRandomCommand,
  sliceCommand,
  logitsCommand,
  generateCommand,
  benchCommand,
  evalCommand,
  compareCommand,
  downloadCommand,
  downloadDataCommand,
  reportCommand,
  sweepCommand,
  resultsCommand,
  exportBestCommand,
  exportCommand,
  workerCommand,
];
