/**
 * selftest: the echo workload against a raw node:net WebSocket echo in this process (RawEchoServer), by default
 * on a worker thread so that the server has a core of its own and the rate is the generator's ceiling on the
 * machine rather than half of it.
 */
import { Measurement } from './Measurement.js';
import type { LoadOptions } from './options.js';
import { startRawEchoServer, startRawEchoServerThread } from './RawEchoServer.js';
import type { WorkloadRun } from './report.js';
import { EchoWorkload } from './workloads/echo.js';

export async function runSelftest(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  const server = options.serverThread === 'worker' ? await startRawEchoServerThread() : await startRawEchoServer();
  try {
    const url = `ws://127.0.0.1:${server.port}/`;
    const run = await new EchoWorkload({ ...options, workload: 'selftest', url }, m).run(signal);
    run.report.serverThread = server.thread;
    return run;
  } finally {
    await server.close();
  }
}
