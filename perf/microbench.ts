/**
 * quay's own CPU per operation, without sockets: `npm run bench:micro`.
 *
 * The server-side benchmarks (compare.ts, profile.ts) measure quay with the kernel, Node's stream layer and a load
 * generator in the loop, on a shared 2-core machine: run to run they swing by 10-20%, more than most changes to
 * quay's own code are worth. Here the same exchanges run over a MemoryEndPoint (lib/io/MemoryEndPoint.ts: writes
 * complete synchronously, nothing leaves the process), so what is timed is quay alone: the HTTP parser, router,
 * response head and flusher for `http`, the frame parser, UTF-8 validation, session send, frame generator and
 * flusher for `echo`. One process, one core, a few seconds; the fastest round is the figure (other tenants of
 * the machine only ever slow a round down), the median is printed beside it.
 *
 *   node dist/perf/microbench.js [--rounds 15] [--only http,echo,echo-string]
 *
 * http: `GET /hello` with a Host field (what wrk sends) answered by `res.end(body)` with a Content-Type, through a
 * Router, 16 requests per read (http-1: one per read, as wrk sends them without pipelining); echo: 10 masked 64-byte text frames per read (quay-load's echo -c 100 --inflight
 * 10) relayed as their validated bytes (`onTextBytes` then `send(bytes, cb, { text: true })`); echo-string: the
 * same through `onText` and `send(string)`.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import { HttpConnection } from '../lib/http/HttpConnection.js';
import { Router } from '../lib/http/Router.js';
import type { Request } from '../lib/http/Request.js';
import type { Response } from '../lib/http/Response.js';
import { WebSocketConnection, resolveSettings } from '../lib/websocket/WebSocketConnection.js';
import type { WebSocketListener } from '../lib/websocket/WebSocketListener.js';
import { OpCode } from '../lib/websocket/OpCode.js';
import { encodeMessage, payloadOf } from './load/workloads/echo.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, only: { type: 'string' } } });
const rounds = Math.max(1, Number(values.rounds));
const only = values.only?.split(',');

/** One workload: `step()` runs `perStep` operations (the loop below lets write callbacks and Promise reactions run between batches). */
interface Workload {
  name: string;
  perStep: number;
  step(): void;
  close(): void;
}

const scheduler = new IdleTimeoutScheduler({ tickMs: 1000 });

function httpWorkload(name: string, perStep: number): Workload {
  const body = Buffer.from('hello world\n');
  const router = new Router().route('/hello', (_req: Request, res: Response) => {
    res.setHeader('Content-Type', 'text/plain');
    void res.end(body);
  });
  const ep = new MemoryEndPoint({ scheduler, idleTimeoutMs: 60_000 });
  const connection = new HttpConnection(ep, () => router, { reportError() {} });
  ep.open(connection);
  const requests = Buffer.from('GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n'.repeat(perStep), 'latin1');
  return {
    name,
    perStep,
    step() {
      ep.feed(requests);
      const out = ep.takeOutput();
      if (out.length === 0) throw new Error('http: no response');
    },
    close: () => ep.close(),
  };
}

/** Reads handed over as fresh buffers, as a socket's are (SocketEndPoint): the connection keeps views, no copies. */
class FreshReadsEndPoint extends MemoryEndPoint {
  override get freshReadBuffers(): boolean {
    return true;
  }
}

function echoWorkload(name: string, listener: WebSocketListener): Workload {
  const ep = new FreshReadsEndPoint({ scheduler, idleTimeoutMs: 60_000 });
  const connection = new WebSocketConnection(ep, listener, { role: 'server', settings: resolveSettings({}), path: '/echo' });
  ep.open(connection);
  const perStep = 10;
  const frames = Buffer.concat(Array.from({ length: perStep }, () => encodeMessage(OpCode.TEXT, payloadOf(64), false)));
  return {
    name,
    perStep,
    step() {
      // A fresh copy per read, as Node's reads are: the frame parser unmasks in place.
      ep.feed(Buffer.from(frames));
      const out = ep.takeOutput();
      if (out.length !== perStep * 66) throw new Error(`${name}: ${out.length} bytes echoed, ${perStep * 66} expected`);
    },
    close: () => ep.close(),
  };
}

const TEXT = { text: true } as const;
const workloads: (() => Workload)[] = [
  () => httpWorkload('http', 16),
  () => httpWorkload('http-1', 1),
  () =>
    echoWorkload('echo', {
      onTextBytes(session, bytes) {
        session.send(bytes, undefined, TEXT);
      },
    }),
  () =>
    echoWorkload('echo-string', {
      onText(session, text) {
        session.send(text);
      },
    }),
];

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Steps per batch between two event-loop turns (write callbacks and Promise reactions run there, as in a server). */
const BATCH = 64;
const ROUND_MS = 200;

for (const make of workloads) {
  const w = make();
  if (only !== undefined && !only.includes(w.name)) {
    w.close();
    continue;
  }
  // Warm-up: the optimizing compiler has seen every path before the first round.
  for (let i = 0; i < 200; i++) {
    for (let k = 0; k < BATCH; k++) w.step();
    await tick();
  }
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    const start = performance.now();
    let elapsed = 0;
    // Bounded: ROUND_MS of steps, each batch a fixed count.
    while (elapsed < ROUND_MS) {
      for (let k = 0; k < BATCH; k++) w.step();
      ops += BATCH * w.perStep;
      await tick();
      elapsed = performance.now() - start;
    }
    results.push((elapsed * 1e6) / ops);
  }
  w.close();
  results.sort((a, b) => a - b);
  const median = results[results.length >> 1]!;
  // The minimum is the figure to compare: this machine's other tenants slow some rounds (a CPU-bound loop here
  // sometimes takes 9x its usual time), never speed one up.
  console.log(
    `${w.name.padEnd(12)} ${results[0]!.toFixed(0).padStart(6)} ns/op (fastest of ${rounds} rounds of ${ROUND_MS} ms; median ${median.toFixed(0)})`,
  );
}
scheduler.close();
