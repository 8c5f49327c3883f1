/**
 * The attack scenarios of `npm run bench:hostile`. Each runs against one implementation at a time (quay, or
 * node:http with ws 8) in a fresh server process, and returns its figures as metric -> value; a server that dies
 * is a figure ("crashed (exit code N)"), never a harness failure.
 */
import { join } from 'node:path';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { PERF_DIR, SERVER_CORE } from '../lib.js';
import {
  HOST,
  HeadCounter,
  ServerFrameScanner,
  acceptHandshake,
  connectRaw,
  drainOrTimeout,
  getJson,
  histogram,
  openMany,
  percentile,
  probe,
  rawExchange,
  repeat,
  serverFrame,
  sleep,
  statusOf,
  wsHandshake,
} from './clients.js';
import type { HostileOptions, ScenarioId } from './options.js';
import { RssSampler, childArgv, crashReason, fate, rssOf, startHostileServer, waitForLine, watch } from './proc.js';
import type { HostileServer, Impl } from './proc.js';
import { maskedFrame } from '../rawFrames.js';

export type Value = string | number;
export type Figures = Record<string, Value>;

export interface Scenario {
  id: ScenarioId;
  title: string;
  /** What was configured, printed above the table. */
  setup(o: HostileOptions): string;
  /** Column headings when the servers are not the usual ones (default: quay, node:http / ws 8). */
  labels?: Partial<Record<Impl, string>>;
  run(impl: Impl, o: HostileOptions, log: (s: string) => void): Promise<Figures>;
}

const MiB = 1024 * 1024;
export const mib = (bytes: number): number => (Number.isFinite(bytes) ? Math.round((bytes / MiB) * 10) / 10 : NaN);
export const round1 = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : NaN);

interface ServerStats {
  rss: number;
  eldMaxMs: number;
  eldP99Ms: number;
  server: Record<string, unknown>;
}

export function serverArgs(o: HostileOptions, extra: string[] = []): string[] {
  const args = ['--header-timeout-ms', String(o.headerTimeoutMs), '--request-timeout-ms', String(o.requestTimeoutMs)];
  if (o.minRequestDataRate !== undefined) args.push('--min-request-data-rate', String(o.minRequestDataRate));
  return [...args, ...extra];
}

/** Runs `body` against a fresh server, always stopping it; adds its fate and, if it died, why. */
export async function withServer(impl: Impl, args: string[], body: (s: HostileServer) => Promise<Figures>, nofile?: number): Promise<Figures> {
  const server = await startHostileServer(impl, args, nofile === undefined ? {} : { nofile });
  try {
    const figures = await body(server);
    await sleep(100);
    figures['server process'] = fate(server);
    if (server.exit !== undefined) figures['why it died'] = crashReason(server) || '-';
    return figures;
  } finally {
    await server.kill();
  }
}

/** Alive and answering: the status of a GET /hello, or why none. */
async function answers(server: HostileServer): Promise<string> {
  if (server.exit !== undefined) return 'no (process gone)';
  const status = await probe(server.port, '/hello', 3_000);
  return status === '200' ? 'yes (200)' : `no (${status})`;
}

// ---- 1. crash-rst ----

const crashRst: Scenario = {
  id: 'crash-rst',
  title: 'Reset by the peer while responses are pending (handlers that do not await end())',
  setup: (o) =>
    `${o.rstRequests} pipelined GETs on one connection, then a TCP reset (socket.resetAndDestroy()) as soon as they are written. /late: the handler calls end() 50 ms later without awaiting it; /sync: it calls end() at once without awaiting it (node:http: res.end() in the same places). Then a GET /hello on a new connection.`,
  async run(impl, o) {
    const figures: Figures = {};
    for (const path of ['/late', '/sync']) {
      const f = await withServer(impl, serverArgs(o), async (server) => {
        const socket = await connectRaw(server.port);
        socket.on('error', () => {});
        // The reset goes out as soon as the requests are in the kernel: the server is reading and answering them.
        await new Promise<void>((resolve) => socket.write(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`.repeat(o.rstRequests), 'latin1'), () => resolve()));
        socket.resetAndDestroy();
        await sleep(1_000);
        return { answers: await answers(server) };
      });
      figures[`${path}: GET answered afterwards`] = f['answers']!;
      figures[`${path}: server process`] = f['server process']!;
      if (f['why it died'] !== undefined) figures[`${path}: why it died`] = f['why it died'];
    }
    return figures;
  },
};

// ---- 2. crash-header ----

const crashHeader: Scenario = {
  id: 'crash-header',
  title: 'Header values a peer controls (response splitting, non-Latin-1)',
  setup: () =>
    '/redirect copies ?next= into Location, the client sends ?next=%0d%0aSet-Cookie:x; /download sets Content-Disposition: attachment; filename="日.txt". Each on a fresh server; then a GET /hello.',
  async run(impl, o) {
    const figures: Figures = {};
    const cases = [
      { name: 'Location CRLF', path: '/redirect?next=%0d%0aSet-Cookie:x' },
      { name: 'Content-Disposition 日.txt', path: '/download' },
    ];
    for (const c of cases) {
      const f = await withServer(impl, serverArgs(o), async (server) => {
        const r = await rawExchange(server.port, `GET ${c.path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, 3_000);
        const at = r.text.indexOf('\r\n\r\n');
        const head = at < 0 ? r.text : r.text.slice(0, at);
        await sleep(200);
        return {
          status: statusOf(r.text) ?? `none (${r.ended})`,
          injected: /^set-cookie:/im.test(head) ? 'YES' : 'no',
          answers: await answers(server),
        };
      });
      figures[`${c.name}: status received`] = f['status']!;
      if (c.name.startsWith('Location')) figures[`${c.name}: Set-Cookie injected`] = f['injected']!;
      figures[`${c.name}: GET answered afterwards`] = f['answers']!;
      figures[`${c.name}: server process`] = f['server process']!;
      if (f['why it died'] !== undefined) figures[`${c.name}: why it died`] = f['why it died'];
    }
    return figures;
  },
};

// ---- 3. pipeline-flood ----

/** How long the pipelining client holds without reading after its writes. */
const holdSeconds = (capSeconds: number): number => Math.min(10, Math.ceil(capSeconds / 2));

const pipelineFlood: Scenario = {
  id: 'pipeline-flood',
  title: 'Pipelined requests from a client that does not read',
  setup: (o) =>
    `one connection writes ${o.pipelineRequests.toLocaleString('en-US')} pipelined "GET / HTTP/1.1" (with backpressure on the client side, at most ${o.pipelineSeconds} s) without reading, then holds ${holdSeconds(o.pipelineSeconds)} s without reading; server RSS sampled every 200 ms; then the client reads (at most ${2 * o.pipelineSeconds} s, or until 5 s without data).`,
  async run(impl, o, log) {
    return withServer(impl, serverArgs(o), async (server) => {
      const sampler = new RssSampler(server.pid);
      const socket = await connectRaw(server.port);
      let closedByServer = false;
      socket.on('error', () => (closedByServer = true));
      socket.on('end', () => (closedByServer = true));
      socket.pause();
      const request = `GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
      const perChunk = 2_000;
      const chunk = Buffer.from(request.repeat(perChunk), 'latin1');
      const t0 = performance.now();
      const deadline = t0 + o.pipelineSeconds * 1000;
      let sent = 0;
      let stalled = false;
      while (sent < o.pipelineRequests && !socket.destroyed) {
        const n = Math.min(perChunk, o.pipelineRequests - sent);
        const ok = socket.write(n === perChunk ? chunk : chunk.subarray(0, n * request.length));
        sent += n;
        if (!ok && !(await drainOrTimeout(socket, deadline - performance.now()))) {
          stalled = !socket.destroyed;
          break;
        }
      }
      const writeSec = (performance.now() - t0) / 1000;
      // Hold without reading a while: the server works through what it read, its answers pile up somewhere.
      await sleep(holdSeconds(o.pipelineSeconds) * 1000);
      const rssHeld = sampler.max - sampler.baseline;
      log(`  ${impl}: ${sent.toLocaleString('en-US')} requests written in ${writeSec.toFixed(1)} s${stalled ? ' (stalled: server stopped reading)' : ''}`);
      const counter = new HeadCounter();
      let lastData = performance.now();
      socket.on('data', (b: Buffer) => {
        counter.feed(b);
        lastData = performance.now();
      });
      socket.resume();
      const readStart = performance.now();
      const readDeadline = readStart + 2 * o.pipelineSeconds * 1000;
      while (counter.count < sent && !socket.destroyed && performance.now() < readDeadline && performance.now() - lastData < 5_000) await sleep(100);
      const readSec = (performance.now() - readStart) / 1000;
      const growth = sampler.stop();
      socket.destroy();
      return {
        'requests written': sent,
        'writer stalled (server stopped reading)': stalled ? 'yes' : 'no',
        'write phase (s)': round1(writeSec),
        [`server RSS growth, max while not read (write + ${holdSeconds(o.pipelineSeconds)} s) (MiB)`]: mib(rssHeld),
        'server RSS growth, max over the run (MiB)': mib(growth),
        'responses read back': counter.count,
        'read phase (s)': round1(readSec),
        'connection closed by server': closedByServer ? 'yes' : 'no',
        'GET answered afterwards': await answers(server),
      };
    });
  },
};

// ---- 4. ping-flood ----

/** Writes `frames` (a buffer of whole frames) until `bytes` or `seconds`; respects backpressure. */
async function flood(socket: Socket, frames: Buffer, bytes: number, seconds: number): Promise<{ sent: number; stalled: boolean; sec: number }> {
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let sent = 0;
  let stalled = false;
  while (sent < bytes && !socket.destroyed && performance.now() < deadline) {
    const ok = socket.write(frames);
    sent += frames.length;
    if (!ok && !(await drainOrTimeout(socket, deadline - performance.now()))) {
      stalled = !socket.destroyed;
      break;
    }
  }
  return { sent, stalled, sec: (performance.now() - t0) / 1000 };
}

const pingFlood: Scenario = {
  id: 'ping-flood',
  title: 'Ping flood from a peer that never reads (server, then client)',
  setup: (o) =>
    `server: a client on /echo sends ${mib(o.pingBytes)} MiB of masked pings (125-byte payload) and never reads (at most ${o.pingSeconds} s), then reads for at most 10 s. ` +
    `client: a raw node:net server does the 101 then floods ${mib(o.pingBytes)} MiB of pings without reading, against quay's WebSocketClient / a ws 8 client, each in its own process; the client's RSS is sampled.`,
  async run(impl, o, log) {
    const frames = repeat(maskedFrame(0x89, Buffer.alloc(125, 0x61)), 512);
    const server = await withServer(impl, serverArgs(o), async (server) => {
      const sampler = new RssSampler(server.pid);
      const { socket } = await wsHandshake(server.port, '/echo');
      let closedByServer = false;
      let resetByServer = false;
      socket.on('error', () => (closedByServer = resetByServer = true));
      socket.on('end', () => (closedByServer = true));
      const r = await flood(socket, frames, o.pingBytes, o.pingSeconds);
      log(`  ${impl} server: ${mib(r.sent)} MiB of pings in ${r.sec.toFixed(1)} s${r.stalled ? ' (stalled)' : ''}`);
      const growthWhileFlooding = rssOf(server.pid) - sampler.baseline;
      const scanner = new ServerFrameScanner();
      let lastData = performance.now();
      socket.on('data', (b: Buffer) => {
        scanner.feed(b);
        lastData = performance.now();
      });
      socket.resume();
      const readStart = performance.now();
      while (!socket.destroyed && scanner.closeCode === undefined && performance.now() - readStart < 10_000 && performance.now() - lastData < 2_000) await sleep(50);
      const growth = sampler.stop();
      socket.destroy();
      return {
        'server: pings sent (MiB)': mib(r.sent),
        'server: sender stalled (server stopped reading)': r.stalled ? 'yes' : 'no',
        'server: RSS growth, max (MiB)': mib(growth),
        'server: RSS growth at end of flood (MiB)': mib(growthWhileFlooding),
        'server: pongs read back (10 s at most)': scanner.pongs,
        'server: close code received': scanner.closeCode ?? (closedByServer ? `none (TCP ${resetByServer ? 'reset' : 'closed'})` : 'none (still open)'),
        'server: GET answered afterwards': await answers(server),
      };
    });
    const client = await clientPingFlood(impl, o, log);
    const out: Figures = {};
    for (const [k, v] of Object.entries(server)) out[k === 'server process' ? 'server: process' : k === 'why it died' ? 'server: why it died' : k] = v;
    return { ...out, ...client };
  },
};

async function clientPingFlood(impl: Impl, o: HostileOptions, log: (s: string) => void): Promise<Figures> {
  const frames = repeat(serverFrame(0x89, Buffer.alloc(125, 0x61)), 512);
  let result: { sent: number; stalled: boolean; sec: number } | undefined;
  const floodDone: Promise<void>[] = [];
  const attackSockets: Socket[] = [];
  const attacker = createServer((socket) => {
    attackSockets.push(socket);
    socket.on('error', () => {});
    floodDone.push(
      (async () => {
        await acceptHandshake(socket);
        socket.pause();
        result = await flood(socket, frames, o.pingBytes, o.pingSeconds);
      })().catch(() => {}),
    );
  });
  await new Promise<void>((r) => attacker.listen(0, HOST, r));
  const port = (attacker.address() as AddressInfo).port;
  const script = join(PERF_DIR, 'hostile', 'wsclient.js');
  const child = watch(childArgv(script, ['--impl', impl === 'quay' ? 'quay' : 'ws', '--url', `ws://${HOST}:${port}/`], { core: SERVER_CORE }));
  try {
    await waitForLine(child, /^(open|error .*)$/m, 10_000);
    const sampler = new RssSampler(child.pid);
    const t0 = performance.now();
    while (floodDone.length === 0 && performance.now() - t0 < 5_000) await sleep(20);
    await Promise.all(floodDone);
    await sleep(1_000);
    const growth = sampler.stop();
    const closed = /^closed (\d+)$/m.exec(child.stdoutText);
    const error = /^error (.*)$/m.exec(child.stdoutText);
    log(`  ${impl} client: ${mib(result?.sent ?? 0)} MiB of pings in ${(result?.sec ?? 0).toFixed(1)} s`);
    return {
      'client: pings sent (MiB)': mib(result?.sent ?? 0),
      'client: flooder stalled (client stopped reading)': result?.stalled === true ? 'yes' : 'no',
      'client: RSS growth, max (MiB)': mib(growth),
      'client: session': closed !== null ? `closed ${closed[1]}` : error !== null ? `error: ${error[1]!.slice(0, 80)}` : 'still open',
      'client: process': fate(child),
      ...(child.exit !== undefined ? { 'client: why it died': crashReason(child) || '-' } : {}),
    };
  } finally {
    await child.kill();
    attacker.close();
    for (const s of attackSockets) s.destroy();
  }
}

// ---- 5. slow-body and header slowloris ----

const slowBody: Scenario = {
  id: 'slow-body',
  title: 'Slow request bodies (1 byte/s) and the header slowloris',
  setup: (o) =>
    `body: ${o.slowConnections.toLocaleString('en-US')} connections each send a POST head with Content-Length: 1000000, then 1 byte/s. Both servers get the same deadline: ` +
    `quay requestTimeoutMs = node:http requestTimeout = ${o.requestTimeoutMs} ms (the default, 300 s, is too long for a benchmark)` +
    `${o.minRequestDataRate === undefined ? '' : `, quay minRequestDataRate = ${o.minRequestDataRate}`}; counted ${o.slowMarginMs} ms after it. ` +
    `head: ${o.slowlorisConnections} connections send one byte of a request head, then nothing; quay headerTimeoutMs = node:http headersTimeout = ${o.headerTimeoutMs} ms; ` +
    `node:http connectionsCheckingInterval 1 s (quay's idle sweep also ticks every 1 s); quay's idle timeout is its default (30 s), node's keepAliveTimeout its default (5 s).`,
  async run(impl, o, log) {
    return withServer(impl, serverArgs(o), async (server) => {
      const head = Buffer.from(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`, 'latin1');
      const t0 = performance.now();
      const { sockets, failed } = await openMany(server.port, o.slowConnections);
      const opened = performance.now();
      const status = new Map<Socket, string>();
      const closedAt = new Map<Socket, number>();
      const startedAt = new Map<Socket, number>();
      for (const s of sockets) {
        startedAt.set(s, performance.now());
        s.on('data', (b: Buffer) => {
          if (!status.has(s)) status.set(s, String(statusOf(b.toString('latin1', 0, 16)) ?? 'other'));
        });
        s.on('close', () => closedAt.set(s, performance.now()));
        s.write(head);
      }
      log(`  ${impl}: ${sockets.length} slow bodies open in ${((opened - t0) / 1000).toFixed(1)} s (${failed} failed)`);
      const trickle = setInterval(() => {
        for (const s of sockets) if (!s.destroyed && s.writable) s.write('a');
      }, 1_000);
      const checkAt = opened + o.requestTimeoutMs + o.slowMarginMs;
      while (performance.now() < checkAt && closedAt.size < sockets.length) await sleep(200);
      clearInterval(trickle);
      const stillOpen = sockets.filter((s) => !closedAt.has(s)).length;
      const times = [...closedAt.entries()].map(([s, t]) => (t - startedAt.get(s)!) / 1000).sort((a, b) => a - b);
      const statuses = histogram(sockets.map((s) => status.get(s) ?? (closedAt.has(s) ? 'closed, no status' : 'open, no status')));
      const statsMid = await getJson<ServerStats>(server.port, '/stats', 3_000);
      for (const s of sockets) s.destroy();

      // The header slowloris.
      const loris = await openMany(server.port, o.slowlorisConnections);
      const lorisStatus = new Map<Socket, string>();
      const lorisClosed = new Map<Socket, number>();
      const lorisStart = performance.now();
      for (const s of loris.sockets) {
        s.on('data', (b: Buffer) => {
          if (!lorisStatus.has(s)) lorisStatus.set(s, String(statusOf(b.toString('latin1', 0, 16)) ?? 'other'));
        });
        s.on('close', () => lorisClosed.set(s, performance.now()));
        s.write('G');
      }
      const lorisCap = lorisStart + o.headerTimeoutMs + (o.quick ? 8_000 : 35_000);
      while (performance.now() < lorisCap && lorisClosed.size < loris.sockets.length) await sleep(100);
      const lorisTimes = [...lorisClosed.values()].map((t) => (t - lorisStart) / 1000).sort((a, b) => a - b);
      const lorisOpen = loris.sockets.length - lorisClosed.size;
      for (const s of loris.sockets) s.destroy();
      return {
        'body: connections opened': sockets.length,
        [`body: still open ${(o.requestTimeoutMs + o.slowMarginMs) / 1000} s after the last opened`]: stillOpen,
        'body: status received': statuses,
        'body: closed after (s), p50 / max': times.length === 0 ? '-' : `${percentile(times, 50).toFixed(1)} / ${times[times.length - 1]!.toFixed(1)}`,
        'body: server RSS at the deadline (MiB)': statsMid === undefined ? 'no answer' : mib(statsMid.rss),
        'head: connections opened': loris.sockets.length,
        [`head: still open after ${Math.round((lorisCap - lorisStart) / 1000)} s`]: lorisOpen,
        'head: status received': histogram(loris.sockets.map((s) => lorisStatus.get(s) ?? (lorisClosed.has(s) ? 'closed, no status' : 'open, no status'))),
        'head: closed after (s), min / p50 / max': lorisTimes.length === 0 ? '-' : `${lorisTimes[0]!.toFixed(1)} / ${percentile(lorisTimes, 50).toFixed(1)} / ${lorisTimes[lorisTimes.length - 1]!.toFixed(1)}`,
        'GET answered afterwards': await answers(server),
      };
    });
  },
};

// ---- 6. deflate-bomb ----

/** A permessage-deflate message (RFC 7692 §7.2.1: raw DEFLATE, sync-flushed, the 4-byte tail removed) of `bytes` zeros. */
function bomb(bytes: number): Buffer {
  const z = deflateRawSync(Buffer.alloc(bytes), { level: 9, finishFlush: zlibConstants.Z_SYNC_FLUSH, memLevel: 9 });
  return z.subarray(z.length - 4).equals(Buffer.from([0, 0, 0xff, 0xff])) ? z.subarray(0, z.length - 4) : z;
}

interface BombRun {
  gets: number;
  p50: number;
  p99: number;
  max: number;
  getErrors: number;
  sent: number;
  closes: string;
  handshakeErrors: number;
  eldMaxMs: number;
  rssGrowth: number;
}

async function bombRun(server: HostileServer, payload: Buffer, seconds: number, rate: number): Promise<BombRun> {
  const frame = maskedFrame(0xc2, payload); // FIN + RSV1 (compressed, RFC 7692 §6) + binary
  await getJson<ServerStats>(server.port, '/stats?reset=1');
  const sampler = new RssSampler(server.pid);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const closes: string[] = [];
  let sent = 0;
  let handshakeErrors = 0;
  const interval = (frame.length / (rate / 2)) * 1000;

  const attacker = async (offset: number): Promise<void> => {
    await sleep(offset);
    let next = performance.now();
    while (performance.now() < end && server.exit === undefined) {
      let hs;
      try {
        hs = await wsHandshake(server.port, '/sink', 'permessage-deflate; client_no_context_takeover; server_no_context_takeover');
      } catch {
        handshakeErrors++;
        await sleep(200);
        continue;
      }
      const socket = hs.socket;
      const scanner = new ServerFrameScanner();
      let closed = false;
      socket.on('data', (b: Buffer) => scanner.feed(b));
      socket.on('close', () => (closed = true));
      socket.on('error', () => {});
      scanner.feed(hs.rest);
      socket.resume();
      if (!/permessage-deflate/i.test(hs.head)) closes.push('deflate not agreed');
      while (!closed && scanner.closeCode === undefined && performance.now() < end) {
        socket.write(frame);
        sent++;
        next += interval;
        await sleep(Math.max(0, next - performance.now()));
      }
      if (scanner.closeCode !== undefined) closes.push(String(scanner.closeCode));
      else if (closed) closes.push('TCP closed');
      socket.destroy();
    }
  };

  // The victim: sequential GETs over one keep-alive connection.
  const latencies: number[] = [];
  let getErrors = 0;
  const getter = async (): Promise<void> => {
    let socket: Socket | undefined;
    while (performance.now() < end && server.exit === undefined) {
      try {
        socket ??= await connectRaw(server.port);
        const s = socket;
        const t = performance.now();
        await new Promise<void>((resolve, reject) => {
          const counter = new HeadCounter();
          const timer = setTimeout(() => done(new Error('GET timeout')), Math.max(1, end - performance.now() + 5_000));
          const onData = (b: Buffer): void => {
            counter.feed(b);
            // "hello world\n" is the last 12 bytes of the response.
            if (counter.count > 0 && b.toString('latin1').endsWith('hello world\n')) done();
          };
          const onClose = (): void => done(new Error('closed'));
          function done(e?: Error): void {
            clearTimeout(timer);
            s.off('data', onData);
            s.off('close', onClose);
            if (e === undefined) resolve();
            else reject(e);
          }
          s.on('data', onData);
          s.on('close', onClose);
          s.write(`GET /hello HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        });
        latencies.push(performance.now() - t);
      } catch {
        getErrors++;
        socket?.destroy();
        socket = undefined;
        await sleep(50);
      }
    }
    socket?.destroy();
  };

  await Promise.all([attacker(0), attacker(interval / 2), getter()]);
  await sleep(200);
  const growth = sampler.stop();
  const stats = await getJson<ServerStats>(server.port, '/stats');
  latencies.sort((a, b) => a - b);
  return {
    gets: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length === 0 ? NaN : latencies[latencies.length - 1]!,
    getErrors,
    sent,
    closes: histogram(closes),
    handshakeErrors,
    eldMaxMs: stats?.eldMaxMs ?? NaN,
    rssGrowth: growth,
  };
}

let bombCache: Buffer | undefined;

const deflateBomb: Scenario = {
  id: 'deflate-bomb',
  title: 'permessage-deflate bombs beside plain GETs on the same server',
  setup: (o) => {
    bombCache ??= bomb(o.bombBytes);
    return (
      `two attackers with permessage-deflate send ${(bombCache.length / 1024).toFixed(1)} KiB messages that inflate to ${mib(o.bombBytes)} MiB of zeros, paced to ${(o.deflateRate / 1000).toFixed(0)} KB/s in all, ` +
      `for ${o.deflateSeconds} s (reconnecting when closed), while a third client does sequential GETs over keep-alive. ` +
      `accepted: quay maxMessageBytes = maxFrameBytes = ws maxPayload = 64 MiB; refused: the same at 1 MiB (1009 expected). Event-loop delay: the server's monitorEventLoopDelay (10 ms resolution).`
    );
  },
  async run(impl, o, log) {
    bombCache ??= bomb(o.bombBytes);
    const payload = bombCache;
    const figures: Figures = {};
    for (const part of [
      { name: 'accepted', max: 64 * MiB },
      { name: 'refused', max: 1 * MiB },
    ]) {
      const f = await withServer(impl, serverArgs(o, ['--max-message-bytes', String(part.max)]), async (server) => {
        const r = await bombRun(server, payload, o.deflateSeconds, o.deflateRate);
        log(`  ${impl} ${part.name}: ${r.sent} bombs, ${r.gets} GETs, p99 ${r.p99.toFixed(1)} ms, event-loop delay max ${r.eldMaxMs.toFixed(0)} ms`);
        return {
          'GETs answered': r.gets,
          'GET p50 / p99 / max (ms)': `${r.p50.toFixed(2)} / ${r.p99.toFixed(1)} / ${r.max.toFixed(0)}`,
          'GET errors': r.getErrors,
          'server event-loop delay max (ms)': round1(r.eldMaxMs),
          'server RSS growth, max (MiB)': mib(r.rssGrowth),
          'bombs sent': r.sent,
          'close codes received': r.closes,
          ...(r.handshakeErrors > 0 ? { 'handshakes failed': r.handshakeErrors } : {}),
        };
      });
      for (const [k, v] of Object.entries(f)) figures[`${part.name}: ${k}`] = v;
    }
    return figures;
  },
};

// ---- 7. log-flood ----

const logFlood: Scenario = {
  id: 'log-flood',
  title: 'Peers that leave before their responses: what the server writes to stderr',
  setup: (o) =>
    `/slow-end awaits a 10 ms timer, then awaits end() (node:http: res.end() after 10 ms). A: one connection with ${o.logRequests.toLocaleString('en-US')} pipelined requests, reset 200 ms later. ` +
    `B: ${o.logConnections.toLocaleString('en-US')} connections with ${o.logRequestsPerConnection} pipelined requests each, all reset 200 ms later. quay's default onError; the server's stderr is captured and counted until 2 s pass without a line (30 s at most).`,
  async run(impl, o, log) {
    const figures: Figures = {};
    for (const part of [
      { name: 'A', connections: 1, requests: o.logRequests },
      { name: 'B', connections: o.logConnections, requests: o.logRequestsPerConnection },
    ]) {
      const f = await withServer(impl, serverArgs(o), async (server) => {
        await getJson<ServerStats>(server.port, '/stats?reset=1');
        const { sockets } = await openMany(server.port, part.connections);
        const payload = Buffer.from(`GET /slow-end HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`.repeat(part.requests), 'latin1');
        for (const s of sockets) s.write(payload);
        await sleep(200);
        for (const s of sockets) s.resetAndDestroy();
        const t0 = performance.now();
        let lines = server.stderrLines;
        let quietSince = performance.now();
        while (performance.now() - t0 < 30_000 && performance.now() - quietSince < 2_000 && server.exit === undefined) {
          await sleep(100);
          if (server.stderrLines !== lines) {
            lines = server.stderrLines;
            quietSince = performance.now();
          }
        }
        const stats = await getJson<ServerStats>(server.port, '/stats');
        log(`  ${impl} ${part.name}: ${server.stderrLines} stderr lines`);
        const first = server.stderrHead.split('\n').find((l) => l.trim() !== '');
        return {
          'stderr lines': server.stderrLines,
          'stderr bytes': server.stderrBytes,
          'first stderr line': first === undefined ? '-' : first.slice(0, 100),
          'event-loop delay max (ms)': stats === undefined ? 'no answer' : round1(stats.eldMaxMs),
        };
      });
      for (const [k, v] of Object.entries(f)) figures[`${part.name}: ${k}`] = v;
    }
    return figures;
  },
};

// ---- 8. emfile ----

const emfile: Scenario = {
  id: 'emfile',
  title: 'More connections than the server may open files (EMFILE)',
  setup: (o) =>
    `the server runs with an open-file limit of ${o.emfileLimit} (prlimit --nofile, or ulimit -n); ${o.emfileConnections.toLocaleString('en-US')} connections are opened and held 2 s; a GET during that; then they close and, 2 s later, /stats and a GET /hello.`,
  async run(impl, o, log) {
    return withServer(
      impl,
      serverArgs(o),
      async (server) => {
        const { sockets, failed, errors } = await openMany(server.port, o.emfileConnections, 128, 3_000);
        const serverSaw = new Map<Socket, boolean>();
        for (const s of sockets) s.on('close', () => serverSaw.set(s, true));
        await sleep(2_000);
        const during = server.exit === undefined ? await probe(server.port, '/hello', 3_000) : 'process gone';
        const closedByServer = serverSaw.size;
        log(`  ${impl}: ${sockets.length} connected, ${failed} failed, ${closedByServer} closed by the server, GET during: ${during}`);
        for (const s of sockets) s.destroy();
        await sleep(2_000);
        const stats = server.exit === undefined ? await getJson<ServerStats>(server.port, '/stats', 5_000) : undefined;
        return {
          'client connections established': sockets.length,
          'client connects failed': failed === 0 ? 0 : `${failed} (${[...errors.entries()].map(([k, n]) => `${k} x${n}`).join(', ')})`,
          'closed by the server while held': closedByServer,
          'GET during the flood': during,
          'GET answered afterwards': await answers(server),
          'stats() afterwards': stats === undefined ? 'no answer' : JSON.stringify(stats.server),
          'stderr lines': server.stderrLines,
        };
      },
      o.emfileLimit,
    );
  },
};

export const ALL: readonly Scenario[] = [crashRst, crashHeader, pipelineFlood, pingFlood, slowBody, deflateBomb, logFlood, emfile];
