import { Measurement } from './Measurement.js';
import { MAX_CONNECTIONS, OptionsError, connectionsOf } from './options.js';
import type { LoadOptions } from './options.js';
import type { WorkloadRun } from './report.js';
import { runSelftest } from './selftest.js';
import { runEcho } from './workloads/echo.js';
import { runFanout } from './workloads/fanout.js';
import { runHttp } from './workloads/http.js';
import { runIdle } from './workloads/idle.js';

export interface RunHooks {
  /** Aborting stops the run early; the result covers what was measured until then (`interrupted`). */
  signal?: AbortSignal;
  /** The measurement to fill (to watch it while the run goes, as the progress line does). */
  measurement?: Measurement;
}

/**
 * Runs one workload to its end (or the signal) and returns its report. Errors of the connections are counted in
 * the report, never thrown.
 * @throws OptionsError for options the process cannot honour (more connections than its open-file limit allows).
 */
export function runLoad(options: LoadOptions, hooks: RunHooks = {}): Promise<WorkloadRun> {
  const n = connectionsOf(options);
  if (n > MAX_CONNECTIONS) {
    throw new OptionsError(`${n} connections: at most ${MAX_CONNECTIONS} per process (ulimit -n less a reserve); raise the limit, or spread them over several processes`);
  }
  const m = hooks.measurement ?? new Measurement(options.rateIntervalMs);
  switch (options.workload) {
    case 'echo':
      return runEcho(options, m, hooks.signal);
    case 'fanout':
      return runFanout(options, m, hooks.signal);
    case 'idle':
      return runIdle(options, m, hooks.signal);
    case 'http':
      return runHttp(options, m, hooks.signal);
    case 'selftest':
      return runSelftest(options, m, hooks.signal);
  }
}
