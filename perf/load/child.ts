/**
 * A child process of a run split over processes (processes.ts): runs its share of the workload when the parent
 * says `run`, reports its progress five times a second, and its report (with its latency histograms) at the end.
 * idle: once its connections are open it says so and holds them until the parent says `close`.
 *
 * Ctrl-C reaches every process of the terminal's group: a child ignores SIGINT, the parent decides (it sends
 * `abort`). A child whose parent went away aborts its run and exits.
 */
import { Measurement } from './Measurement.js';
import type { ChildMessage, ChildProgress, ParentMessage } from './processes.js';
import { runLoad } from './run.js';
import type { IdleLive } from './workloads/idle.js';

const PROGRESS_MS = 200;

if (process.send === undefined) {
  process.stderr.write('quay-load: child.js runs only as a child of quay-load --processes\n');
  process.exit(2);
}

const abort = new AbortController();
let releaseHold: (() => void) | undefined;
let live: IdleLive | undefined;
let m: Measurement | undefined;

function send(message: ChildMessage, then?: () => void): void {
  if (!process.connected) return;
  process.send!(message, undefined, {}, () => then?.());
}

function progress(): ChildProgress {
  return {
    liveCount: m?.liveCount ?? 0,
    errors: m === undefined ? { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 } : { ...m.errors },
    opened: live?.opened ?? m?.liveCount ?? 0,
    failed: live?.failed ?? 0,
    received: live?.received ?? 0,
  };
}

function stop(): void {
  abort.abort();
  releaseHold?.();
}

process.on('SIGINT', () => {});
process.on('disconnect', () => {
  stop();
  setTimeout(() => process.exit(1), 5000).unref();
});

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'run':
      void run(message.options);
      break;
    case 'close':
      releaseHold?.();
      break;
    case 'abort':
      stop();
      break;
  }
});

async function run(options: Parameters<typeof runLoad>[0]): Promise<void> {
  m = new Measurement(options.rateIntervalMs);
  const timer = setInterval(() => send({ type: 'progress', ...progress() }), PROGRESS_MS);
  try {
    const result = await runLoad(options, {
      signal: abort.signal,
      measurement: m,
      idle: {
        held: (l) => {
          live = l;
          return new Promise<void>((resolve) => {
            releaseHold = resolve;
            if (abort.signal.aborted) resolve();
            send({ type: 'opened', ...progress() });
          });
        },
      },
    });
    clearInterval(timer);
    send({ type: 'progress', ...progress() });
    const message: ChildMessage = { type: 'result', report: result.report, histogram: result.measurement.histogram.toJSON() };
    if (result.broadcastHistogram !== undefined) message.broadcastHistogram = result.broadcastHistogram.toJSON();
    send(message, () => process.exit(0));
  } catch (error) {
    clearInterval(timer);
    send({ type: 'error', message: error instanceof Error ? error.message : String(error) }, () => process.exit(1));
  }
}

send({ type: 'ready' });
