import { Measurement } from './Measurement.js';
import { checkCapacity } from './options.js';
import type { LoadOptions } from './options.js';
import { runProcesses } from './processes.js';
import type { WorkloadRun } from './report.js';
import { runSelftest } from './selftest.js';
import { runEcho } from './workloads/echo.js';
import { runFanout } from './workloads/fanout.js';
import { runHttp } from './workloads/http.js';
import { runIdle } from './workloads/idle.js';
import type { IdleHooks } from './workloads/idle.js';

export interface RunHooks {
  /** Aborting stops the run early; the result covers what was measured until then (`interrupted`). */
  signal?: AbortSignal;
  /** The measurement to fill (to watch it while the run goes, as the progress line does). */
  measurement?: Measurement;
  /** idle: what to do while the connections are held (see {@link IdleHooks}). */
  idle?: IdleHooks;
  /**
   * With `processes` > 1: the module the children run. Default: child.js next to processes.js (child.ts when run
   * from the TypeScript sources, which every child then compiles again: the tests pass the built dist/ one).
   */
  childModule?: URL;
}

/**
 * Runs one workload to its end (or the signal) and returns its report; with `processes` > 1, in that many child
 * processes (processes.ts), their reports merged. Errors of the connections are counted in the report, never
 * thrown.
 * @throws OptionsError for options the machine cannot honour (more connections per process than its open-file
 *   limit allows, more per source address than the ephemeral port range).
 */
export function runLoad(options: LoadOptions, hooks: RunHooks = {}): Promise<WorkloadRun> {
  checkCapacity(options);
  const m = hooks.measurement ?? new Measurement(options.rateIntervalMs);
  if (options.processes > 1) return runProcesses(options, m, hooks.signal, hooks.idle, hooks.childModule);
  switch (options.workload) {
    case 'echo':
      return runEcho(options, m, hooks.signal);
    case 'fanout':
      return runFanout(options, m, hooks.signal);
    case 'idle':
      return runIdle(options, m, hooks.signal, hooks.idle);
    case 'http':
      return runHttp(options, m, hooks.signal);
    case 'selftest':
      return runSelftest(options, m, hooks.signal);
  }
}
