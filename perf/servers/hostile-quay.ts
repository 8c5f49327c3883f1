/**
 * Target of `npm run bench:hostile` (perf/hostile/bench.ts): quay, through its public API only, with the handlers
 * that the attack scenarios aim at. Its peer is perf/servers/hostile-node.ts (node:http + ws 8), same routes.
 *
 *   node dist/perf/servers/hostile-quay.js [--port 0] [--header-timeout-ms 10000] [--request-timeout-ms 20000]
 *        [--min-request-data-rate N] [--max-message-bytes 67108864]
 *        [--tls [--tls-key FILE --tls-cert FILE] [--tls-handshake-timeout-ms 10000]]
 *
 * Routes: `/hello` and `/` hello world; `/late` ends 50 ms later without awaiting `end()`; `/sync` calls `end()`
 * without awaiting it; `/redirect` copies `?next=` into Location; `/download` sends a Content-Disposition naming
 * `日.txt`; `/slow-end` awaits a 10 ms timer, then awaits `end()`; `/upload` (POST) reads the body, answers 200;
 * `/stats` the process's memory, the event-loop delay (max and p99 since the last `?reset=1`, in ms) and
 * `server.stats()`; WebSocket `/echo` (echo, no compression) and `/sink` (permessage-deflate accepted, messages
 * dropped, `maxMessageBytes` from the flag). Prints `listening PORT`.
 *
 * `--tls`: https and wss on the same port (the `tls` option), with the key and certificate of the files, or without
 * them the `server` certificate of examples/certificates.ts (for localhost and 127.0.0.1, signed by a test CA made
 * for the run); `--tls-handshake-timeout-ms` is `tlsHandshakeTimeoutMs` (quay's default when absent). With `--tls`,
 * every report to `onError` is one line on stderr (`quay: KIND: message`, the TLS failure counts included, which the
 * default `onError` only shows under NODE_DEBUG=quay) and `/stats` has `reports` (the count by kind): what the TLS
 * scenarios count. Without it, the default `onError`, as in the other scenarios.
 *
 * Options that later fixes add (requestTimeoutMs, minRequestDataRate) are passed whether or not this build knows
 * them: once merged they take effect, before that they are ignored.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Router, Server, WebSocketUpgradeHandler } from '../../lib/index.js';
import type { Request, Response, ServerErrorContext, ServerOptions, WebSocketListener } from '../../lib/index.js';
import { testCertificates } from '../../examples/certificates.js';
import { announce, exitOnSignal, serverPort } from './args.js';

exitOnSignal();

const { values } = parseArgs({
  options: {
    'header-timeout-ms': { type: 'string', default: '10000' },
    'request-timeout-ms': { type: 'string', default: '20000' },
    'min-request-data-rate': { type: 'string' },
    'max-message-bytes': { type: 'string', default: String(64 * 1024 * 1024) },
    tls: { type: 'boolean', default: false },
    'tls-key': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-handshake-timeout-ms': { type: 'string' },
  },
  strict: false,
});

const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();

const hello = Buffer.from('hello world\n');
const helloHandler = (_req: Request, res: Response): Promise<void> => {
  res.setHeader('Content-Type', 'text/plain');
  return res.end(hello);
};

const echo: WebSocketListener = {
  onText(session, text) {
    session.send(text);
  },
  onBinary(session, data) {
    session.send(data);
  },
};
const sink: WebSocketListener = {};
const maxMessageBytes = Number(values['max-message-bytes']);

const router: Router = new Router()
  .route('/echo', new WebSocketUpgradeHandler({ accept: () => echo }))
  .route('/sink', new WebSocketUpgradeHandler({ accept: () => sink, perMessageDeflate: true, maxMessageBytes, maxFrameBytes: maxMessageBytes }))
  .route('/late', (_req: Request, res: Response) => {
    // Deliberately not awaited: a common way to write a handler.
    setTimeout(() => {
      res.end('x');
    }, 50);
  })
  .route('/sync', (_req: Request, res: Response) => {
    res.end('x');
  })
  .route('/redirect', (req: Request, res: Response) => {
    res.status = 302;
    res.setHeader('Location', req.query.get('next') ?? '/');
    res.end('x');
  })
  .route('/download', (_req: Request, res: Response) => {
    res.setHeader('Content-Disposition', 'attachment; filename="日.txt"');
    res.end('x');
  })
  .route('/slow-end', async (_req: Request, res: Response) => {
    await new Promise((r) => setTimeout(r, 10));
    await res.end('x');
  })
  .route(
    '/upload',
    async (req: Request, res: Response) => {
      let n = 0;
      for await (const chunk of req) n += (chunk as Buffer).length;
      await res.send(200, `${n}\n`);
    },
    { methods: ['POST', 'PUT'] },
  )
  .route('/stats', (req: Request, res: Response): Promise<void> => {
    const m = process.memoryUsage();
    const body: string = JSON.stringify({
      rss: m.rss,
      heapUsed: m.heapUsed,
      external: m.external,
      eldMaxMs: eld.max / 1e6,
      eldP99Ms: eld.percentile(99) / 1e6,
      server: server.stats(),
      ...(reports === undefined ? {} : { reports }),
    });
    if (req.query.get('reset') === '1') eld.reset();
    return res.send(200, `${body}\n`, 'application/json');
  })
  .route('/hello', helloHandler)
  .route('/', helloHandler);

/** The options of this build plus those the hardening adds; unknown keys are ignored by older builds. */
interface HardenedServerOptions extends ServerOptions {
  requestTimeoutMs?: number;
  minRequestDataRate?: number;
}
const options: HardenedServerOptions = {
  port: serverPort(),
  host: '127.0.0.1',
  headerTimeoutMs: Number(values['header-timeout-ms']),
  requestTimeoutMs: Number(values['request-timeout-ms']),
  ...(values['min-request-data-rate'] === undefined ? {} : { minRequestDataRate: Number(values['min-request-data-rate']) }),
};
/** With --tls: the reports to onError by kind, each also one line on stderr. */
let reports: Partial<Record<ServerErrorContext['kind'], number>> | undefined;
if (values.tls === true) {
  const key = values['tls-key'];
  const cert = values['tls-cert'];
  options.tls =
    typeof key === 'string' && typeof cert === 'string' ? { key: readFileSync(key), cert: readFileSync(cert) } : testCertificates().server;
  const timeout = values['tls-handshake-timeout-ms'];
  if (typeof timeout === 'string') options.tlsHandshakeTimeoutMs = Number(timeout);
  const counts: Partial<Record<ServerErrorContext['kind'], number>> = {};
  reports = counts;
  options.onError = (error: Error, context: ServerErrorContext): void => {
    counts[context.kind] = (counts[context.kind] ?? 0) + 1;
    console.error(`quay: ${context.kind}: ${error.message}`);
  };
}
const server: Server = new Server(options, router);
const { port } = await server.start();
announce(port);
