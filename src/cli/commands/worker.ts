// Distributed sweeps from the CLI: `sweep <file> --db postgres://... --enqueue` makes the sweep's work into
// jobs; `worker --db postgres://...` on every GPU host claims and scores them until the run is finished.
import type { Argv, CommandModule } from 'yargs';
import { BACKEND_CHOICES } from '../../engine';
import { InterruptedError, UserInputError } from '../../formats';
import {
  type SweepFile,
  DEFAULT_JOB_SETTINGS,
  PostgresSweepStore,
  checkEnqueueable,
  enqueueSweep,
  isPostgresUrl,
  redactUrl,
  runWorker,
} from '../../sweep';
import { interruptible } from '../boundary';
import { PRECISION_OPTIONS, type PrecisionFlags, exactOnlyPrecision, intFlag } from '../flags';

export interface EnqueueArgs {
  db: string;
  fresh: boolean;
  enqueue: boolean;
  'job-questions': number;
  'job-candidates': number;
  lease: number;
}

/** `sweep`'s flags of distributed runs. */
export const ENQUEUE_OPTIONS = {
  enqueue: {
    type: 'boolean',
    default: false,
    describe: 'with --db postgres://...: make the work into jobs for `worker`s instead of scoring here',
  },
  'job-questions': {
    type: 'number',
    default: DEFAULT_JOB_SETTINGS.questionsPerJob,
    describe: 'with --enqueue: questions (of one subject) per job',
  },
  'job-candidates': {
    type: 'number',
    default: DEFAULT_JOB_SETTINGS.candidatesPerJob,
    describe: 'with --enqueue: candidates per job, grouped by shared layer prefix (0 = all of a round)',
  },
  lease: {
    type: 'number',
    default: DEFAULT_JOB_SETTINGS.leaseSeconds,
    describe:
      'with --enqueue: seconds without a sign of life (its worker renews it) before a claimed job goes back to the queue',
  },
} as const;

const requirePostgres = (flag: string, db: string) => {
  if (!isPostgresUrl(db))
    throw new UserInputError(
      `${flag} ${db}: distributed sweeps need a PostgreSQL database (postgres://user@host:port/database)`,
    );
};

export async function enqueue(argv: EnqueueArgs, sweep: SweepFile, toolVersion: string): Promise<void> {
  requirePostgres('--db', argv.db);
  checkEnqueueable(sweep);
  const settings = {
    questionsPerJob: intFlag('--job-questions', argv['job-questions'], 1),
    candidatesPerJob: intFlag('--job-candidates', argv['job-candidates'], 0),
    leaseSeconds: intFlag('--lease', argv.lease, 1, 86_400),
  };
  const store = await PostgresSweepStore.open(argv.db, { flag: '--db' });
  try {
    const out = await enqueueSweep({
      sweep,
      store,
      settings,
      fresh: argv.fresh,
      toolVersion,
      log: (m) => process.stderr.write(`${m}\n`),
    });
    const db = redactUrl(argv.db);
    if (out.done)
      process.stderr.write(
        `run ${out.runId}: finished (nothing left to score); see: matformer-lab results ${db}\n`,
      );
    else
      process.stderr.write(
        `run ${out.runId}: ${out.created ? '' : 'enqueued before; '}round ${out.round}: ${out.jobs} jobs ` +
          `(${out.pairs} candidate × question pairs) on the queue; start workers with: matformer-lab worker --db ${db}\n`,
      );
  } finally {
    await store.end();
  }
}

interface WorkerArgs extends PrecisionFlags {
  db: string;
  run?: number;
  model?: string;
  mmlu?: string;
  backend?: string;
  device?: number;
  name?: string;
  poll: number;
  maintenance: number;
  'reconnect-timeout': number;
}

export const workerCommand: CommandModule<object, WorkerArgs> = {
  command: 'worker',
  describe: 'Score the jobs of a distributed sweep (`sweep --enqueue`) until its run is finished',
  builder: (y: Argv<object>) =>
    y
      .option('db', {
        type: 'string',
        demandOption: true,
        describe: 'the sweep’s PostgreSQL database (postgres://user@host:port/database)',
      })
      .option('run', { type: 'number', describe: 'run id (default: the latest unfinished distributed run)' })
      .option('model', {
        type: 'string',
        describe: 'this host’s copy of the parent checkpoint (default: the path the sweep used)',
      })
      .option('mmlu', {
        type: 'string',
        describe: 'this host’s copy of the MMLU data (default: the sweep’s)',
      })
      .option('backend', {
        type: 'string',
        choices: BACKEND_CHOICES as unknown as string[],
        describe: 'TF.js backend (default: the sweep file’s)',
      })
      .option('device', {
        type: 'number',
        describe:
          'GPU index for CUDA-based backends (sets CUDA_VISIBLE_DEVICES before the backend starts); webgpu takes the default adapter',
      })
      .option('name', { type: 'string', describe: 'worker name in `results` (default: host:pid)' })
      .option('poll', { type: 'number', default: 1, describe: 'seconds between looks at an empty queue' })
      .option('maintenance', {
        type: 'number',
        default: 30,
        describe:
          'seconds between passes that return the jobs of dead workers (past their lease) to the queue',
      })
      .option('reconnect-timeout', {
        type: 'number',
        default: 600,
        describe: 'seconds to wait for a lost database before giving up',
      })
      .options(PRECISION_OPTIONS)
      .example('$0 worker --db postgres://lab@db-host/sweeps --backend webgpu', 'one per GPU host')
      .example(
        '$0 worker --db postgres://lab@db-host/sweeps --backend tensorflow --device 1',
        '',
      ) as unknown as Argv<WorkerArgs>,
  handler: async (argv) => {
    exactOnlyPrecision(argv, 'worker');
    requirePostgres('--db', argv.db);
    if (argv.run !== undefined) intFlag('--run', argv.run, 1);
    if (!(argv.poll > 0 && argv.poll <= 3600))
      throw new UserInputError(`--poll: expected seconds in (0, 3600], got ${argv.poll}`);
    intFlag('--maintenance', argv.maintenance, 1, 3600);
    intFlag('--reconnect-timeout', argv['reconnect-timeout'], 1);
    if (argv.device !== undefined)
      process.env.CUDA_VISIBLE_DEVICES = String(intFlag('--device', argv.device, 0));
    const store = await PostgresSweepStore.open(argv.db, { flag: '--db' });
    try {
      // Ctrl-C or SIGTERM: the job in flight is finished and written, then the worker leaves (exit 130).
      const out = await interruptible((signal) =>
        runWorker({
          store,
          run: argv.run,
          model: argv.model,
          mmlu: argv.mmlu,
          backend: argv.backend,
          name: argv.name,
          pollSeconds: argv.poll,
          maintenanceSeconds: argv.maintenance,
          reconnectSeconds: argv['reconnect-timeout'],
          log: (m) => process.stderr.write(`${m}\n`),
          shouldStop: () => signal.aborted,
        }),
      );
      if (out.runId === null) {
        process.stderr.write(`${redactUrl(argv.db)}: no unfinished distributed run; nothing to do\n`);
        return;
      }
      process.stderr.write(
        `worker: run ${out.runId} ${out.finished ? 'finished' : 'left'}; ${out.jobs} jobs, ${out.results} new results here\n`,
      );
      if (out.stopped)
        throw new InterruptedError(
          `worker left run ${out.runId} after its job in flight; the other workers go on`,
        );
    } finally {
      await store.end();
    }
  },
};
