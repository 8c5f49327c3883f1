/**
 * The TLS attacks of `npm run bench:hostile`: peers that stall mid-handshake (`tls-stall`) and peers
 * that send what no TLS server can take (`tls-garbage`), against quay with `tls` and against node:https with ws 8,
 * each in a fresh server process started with `--tls` (the same test certificate for both: tls.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { HOST, connectRaw, histogram, percentile, sleep } from './clients.js';
import type { HostileOptions } from './options.js';
import { RssSampler } from './proc.js';
import type { HostileServer, Impl } from './proc.js';
import { mib, serverArgs, withServer } from './scenarios.js';
import type { Figures, Scenario } from './scenarios.js';
import { HttpsVictim, answersTls, clientHellos, getJsonTls, tlsMaterial } from './tls.js';

const LABELS: Partial<Record<Impl, string>> = { node: 'node:https / ws 8' };

/** What the servers' `/stats` answer (hostile-quay.ts and hostile-node.ts with --tls). */
interface TlsServerStats {
  rss: number;
  heapUsed: number;
  eldMaxMs: number;
  /** quay: `server.stats()` (with `tls`); node: `{ connections }`. */
  server: { open?: number; connections?: number; tls?: { handshakes: number; handshakeFailures: Record<string, number> } };
  /** quay: the reports to onError by kind. */
  reports?: Record<string, number>;
  /** node: 'tlsClientError' events by code. */
  tlsClientErrors?: Record<string, number>;
}

/** node's own default handshakeTimeout (tls.createServer), used when the benchmark does not set one. */
const NODE_DEFAULT_HANDSHAKE_MS = 120_000;

function tlsServerArgs(impl: Impl, o: HostileOptions): string[] {
  const args = serverArgs(o, tlsMaterial().serverArgs);
  if (impl === 'quay') args.push('--tls-handshake-timeout-ms', String(o.tlsHandshakeTimeoutMs));
  else if (o.nodeHandshakeTimeoutMs !== undefined) args.push('--handshake-timeout-ms', String(o.nodeHandshakeTimeoutMs));
  return args;
}

function handshakeMs(impl: Impl, o: HostileOptions): number {
  return impl === 'quay' ? o.tlsHandshakeTimeoutMs : (o.nodeHandshakeTimeoutMs ?? NODE_DEFAULT_HANDSHAKE_MS);
}

/** The server's /stats over https; `reset` restarts its event-loop delay histogram. */
function stats(server: HostileServer, reset = false): Promise<TlsServerStats | undefined> {
  if (server.exit !== undefined) return Promise.resolve(undefined);
  return getJsonTls<TlsServerStats>(server.port, tlsMaterial().ca, reset ? '/stats?reset=1' : '/stats', 10_000);
}

/** The TLS counts of a server's /stats: quay's stats().tls, node's tlsClientError events by code. */
function tlsCounts(s: TlsServerStats | undefined): string {
  if (s === undefined) return 'no answer';
  const tls = s.server.tls;
  if (tls !== undefined) {
    const failed = Object.entries(tls.handshakeFailures)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`)
      .join(', ');
    return `handshakes ${tls.handshakes.toLocaleString('en-US')}; failed: ${failed === '' ? 'none' : failed}`;
  }
  const errors = Object.entries(s.tlsClientErrors ?? {})
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`)
    .join(', ');
  return `tlsClientError: ${errors === '' ? 'none' : errors}`;
}

/** "rss / heap" in MiB. */
function memory(s: TlsServerStats | undefined): string {
  return s === undefined ? 'no answer' : `${mib(s.rss)} / ${mib(s.heapUsed)}`;
}

const serverConnections = (s: TlsServerStats | undefined): number | string => (s === undefined ? 'no answer' : (s.server.open ?? s.server.connections ?? '-'));

/** "min / p50 / max" of seconds. */
function spread(seconds: number[]): string {
  if (seconds.length === 0) return '-';
  const sorted = [...seconds].sort((a, b) => a - b);
  return `${sorted[0]!.toFixed(1)} / ${percentile(sorted, 50).toFixed(1)} / ${sorted[sorted.length - 1]!.toFixed(1)}`;
}

/** What a peer saw before its connection ended: an alert (a TLS record of type 21), other bytes, nothing. */
function answerOf(first: Buffer | undefined, bytes: number): string {
  if (first === undefined || bytes === 0) return 'no bytes';
  if (first[0] === 0x15) return `alert (${bytes} B)`;
  if (first.toString('latin1', 0, 5) === 'HTTP/') return `HTTP ${first.toString('latin1', 9, 12)}`;
  return `${bytes} B`;
}

// ---- tls-stall ----

/** A peer that opened TCP and sent part of a ClientHello. */
interface Staller {
  socket: Socket;
  trickles: boolean;
  /** The next byte of the hello to send (tricklers). */
  next: number;
  openedAt: number;
  closedAt: number | undefined;
  bytes: number;
  first: Buffer | undefined;
  reset: boolean;
}

/** The part of the hello a staller sends at once: the record header (which announces the whole hello) and 50 bytes. */
const STALL_PREFIX = 5 + 50;

async function openStallers(port: number, hello: Buffer, count: number, tricklers: number): Promise<{ stallers: Staller[]; failed: number }> {
  const stallers: Staller[] = [];
  let failed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      let socket: Socket;
      try {
        socket = await connectRaw(port, 10_000);
      } catch {
        failed++;
        continue;
      }
      const s: Staller = { socket, trickles: i < tricklers, next: STALL_PREFIX, openedAt: performance.now(), closedAt: undefined, bytes: 0, first: undefined, reset: false };
      socket.on('data', (b: Buffer) => {
        s.first ??= Buffer.from(b.subarray(0, 16));
        s.bytes += b.length;
      });
      socket.on('error', () => (s.reset = true));
      socket.on('close', () => (s.closedAt = performance.now()));
      socket.write(hello.subarray(0, STALL_PREFIX));
      stallers.push(s);
    }
  };
  await Promise.all(Array.from({ length: Math.min(128, count) }, worker));
  return { stallers, failed };
}

/** Seconds after the last staller opened at which the held connections are shown: around each deadline. */
function checkpoints(o: HostileOptions): number[] {
  const quay = o.tlsHandshakeTimeoutMs / 1000;
  const node = (o.nodeHandshakeTimeoutMs ?? NODE_DEFAULT_HANDSHAKE_MS) / 1000;
  const points = [2, quay - 1, quay + 2, 30, 60, 90, node - 1, node + 2].filter((t) => t > 0 && t < o.tlsStallSeconds);
  return [...new Set(points.map((t) => Math.round(t)))].sort((a, b) => a - b);
}

const tlsStall: Scenario = {
  id: 'tls-stall',
  title: 'Peers that stall mid-handshake (a partial ClientHello) beside https GETs',
  labels: LABELS,
  setup: (o) =>
    `${o.tlsStallConnections.toLocaleString('en-US')} peers open TCP to the TLS port and send the record header of a real ClientHello (node:tls's, TLS 1.3 with SNI, ${'~'}370 B, the header announcing all of it) and its first 50 bytes, then stall; ` +
    `${o.tlsTricklers.toLocaleString('en-US')} of them send the next byte every ${o.tlsTrickleMs / 1000} s (never the last). Meanwhile a client does sequential GETs over one keep-alive https connection, and a GET on a new https connection every 500 ms. ` +
    `quay tlsHandshakeTimeoutMs = ${o.tlsHandshakeTimeoutMs} ms; node:https handshakeTimeout = ${o.nodeHandshakeTimeoutMs === undefined ? `its default (${NODE_DEFAULT_HANDSHAKE_MS / 1000} s)` : `${o.nodeHandshakeTimeoutMs} ms`}. ` +
    `The run ends 3 s after the last staller is closed, or ${o.tlsStallSeconds} s after the last one opened. Times are from each peer's connect; "held" is counted by the peers (their sockets not closed by then).`,
  async run(impl, o, log) {
    const { ca } = tlsMaterial();
    const { modern } = await clientHellos();
    return withServer(impl, tlsServerArgs(impl, o), async (server) => {
      const sampler = new RssSampler(server.pid);
      const victim = new HttpsVictim(server.port, ca, () => server.exit === undefined);
      await sleep(1_000);
      // After the victim started: the difference to `held` is the stallers'.
      const before = await stats(server, true);
      const t0 = performance.now();
      const { stallers, failed } = await openStallers(server.port, modern, o.tlsStallConnections, o.tlsTricklers);
      const openedAll = performance.now();
      log(`  ${impl}: ${stallers.length} stallers open in ${((openedAll - t0) / 1000).toFixed(1)} s (${failed} failed)`);
      const trickle = setInterval(() => {
        for (const s of stallers) {
          if (!s.trickles || s.closedAt !== undefined || s.socket.destroyed || s.next >= modern.length - 1) continue;
          s.socket.write(modern.subarray(s.next, s.next + 1));
          s.next++;
        }
      }, o.tlsTrickleMs);
      // The servers' view while every staller is still held (before the shorter deadline), then at the end.
      await sleep(Math.min(2_000, Math.max(0, o.tlsHandshakeTimeoutMs - 1_500)));
      const held = await stats(server);
      const cap = openedAll + o.tlsStallSeconds * 1000;
      let lastClose = 0;
      while (performance.now() < cap && server.exit === undefined) {
        const open = stallers.filter((s) => s.closedAt === undefined).length;
        if (open === 0) {
          lastClose = Math.max(...stallers.map((s) => s.closedAt!));
          if (performance.now() - lastClose >= 3_000) break;
        }
        await sleep(250);
      }
      clearInterval(trickle);
      const end = performance.now();
      const after = await stats(server);
      await victim.stop();
      const growth = sampler.stop();
      const stillOpen = stallers.filter((s) => s.closedAt === undefined);
      for (const s of stallers) s.socket.destroy();
      const closedAfter = (group: Staller[]): number[] => group.filter((s) => s.closedAt !== undefined).map((s) => (s.closedAt! - s.openedAt) / 1000);
      const silent = stallers.filter((s) => !s.trickles);
      const tricklers = stallers.filter((s) => s.trickles);
      const deadline = handshakeMs(impl, o) / 1000;
      const heldAt = checkpoints(o).map((t) => {
        const at = openedAll + t * 1000;
        if (at > end) return `${t} s: ${stillOpen.length === 0 ? 0 : '-'}`;
        return `${t} s: ${stallers.filter((s) => s.closedAt === undefined || s.closedAt > at).length.toLocaleString('en-US')}`;
      });
      log(`  ${impl}: ${stillOpen.length} stallers still open after ${((end - openedAll) / 1000).toFixed(0)} s; keep-alive GET p50/p99/max ${victim.keepAlive.summary()} ms`);
      const within = (group: Staller[]): number => group.filter((s) => s.closedAt !== undefined && (s.closedAt - s.openedAt) / 1000 <= deadline + 2).length;
      return {
        'stallers opened (connects failed)': `${stallers.length.toLocaleString('en-US')} (${failed})`,
        'handshake deadline (s)': deadline,
        'silent: closed after (s), min / p50 / max': spread(closedAfter(silent)),
        'tricklers: closed after (s), min / p50 / max': spread(closedAfter(tricklers)),
        'closed within the deadline + 2 s (silent, tricklers)': `${within(silent).toLocaleString('en-US')} of ${silent.length.toLocaleString('en-US')}, ${within(tricklers).toLocaleString('en-US')} of ${tricklers.length.toLocaleString('en-US')}`,
        'still open at the end (when it ended, s after the last opened)': `${stillOpen.length.toLocaleString('en-US')} (${Math.round((end - openedAll) / 1000)} s)`,
        'held over time (s after the last opened: connections)': heldAt.join(', '),
        'what a staller got before its close': histogram(stallers.filter((s) => s.closedAt !== undefined).map((s) => `${answerOf(s.first, s.bytes)}, ${s.reset ? 'reset' : 'FIN'}`)),
        'server connections while held (its stats)': serverConnections(held),
        'server RSS / heap used (MiB): before, held, end': `${memory(before)}, ${memory(held)}, ${memory(after)}`,
        'server RSS growth, max (MiB)': mib(growth),
        'server RSS per held staller (KiB, held - before)':
          before === undefined || held === undefined || stallers.length === 0 ? '-' : Math.round((held.rss - before.rss) / stallers.length / 1024),
        'keep-alive GETs (errors)': `${victim.keepAlive.ms.length.toLocaleString('en-US')} (${victim.keepAlive.errors})`,
        'keep-alive GET p50 / p99 / max (ms)': victim.keepAlive.summary(),
        'new-connection GETs (errors)': `${victim.fresh.ms.length} (${victim.fresh.errors})`,
        'new-connection GET (connect + handshake + GET) p50 / p99 / max (ms)': victim.fresh.summary(),
        'slowest GET started at (s after the last staller opened): keep-alive, new connection': `${victim.keepAlive.slowestAt(openedAll)}, ${victim.fresh.slowestAt(openedAll)}`,
        'server event-loop delay max (ms)': after === undefined ? 'no answer' : Math.round(after.eldMaxMs),
        'TLS counts at the end (server)': tlsCounts(after),
        'stderr lines': server.stderrLines,
        ...(after?.reports === undefined ? {} : { 'onError reports by kind': JSON.stringify(after.reports) }),
        'GET answered afterwards': await answersTls(server.port, ca, server.exit !== undefined),
      };
    });
  },
};

// ---- tls-garbage ----

type GarbageKind = 'plaintext HTTP' | 'random bytes' | 'TLS 1.0/1.1 only' | 'no shared cipher';
const GARBAGE_KINDS: readonly GarbageKind[] = ['plaintext HTTP', 'random bytes', 'TLS 1.0/1.1 only', 'no shared cipher'];

/** One peer: connect, send `payload`, wait for the server to close (3 s at most, then we close); its outcome. */
async function garbagePeer(port: number, payload: Buffer): Promise<string> {
  let socket: Socket;
  try {
    socket = await connectRaw(port, 5_000);
  } catch (error) {
    return `connect failed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
  return new Promise((resolve) => {
    let first: Buffer | undefined;
    let bytes = 0;
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('still open after 3 s (closed by us)');
    }, 3_000);
    socket.on('data', (b: Buffer) => {
      first ??= Buffer.from(b.subarray(0, 16));
      bytes += b.length;
    });
    socket.on('error', () => (reset = true));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(`${answerOf(first, bytes)}, ${reset ? 'reset' : 'FIN'}`);
    });
    socket.write(payload);
  });
}

const tlsGarbage: Scenario = {
  id: 'tls-garbage',
  title: 'Plaintext, random bytes and refused hellos on the TLS port: what the server writes to stderr',
  labels: LABELS,
  setup: (o) =>
    `for ${o.tlsGarbageSeconds} s, ${o.tlsGarbageConcurrency} peers at a time connect and send, in turn: a plain HTTP GET; 512 random bytes; a real ClientHello offering TLS 1.0-1.1 only (node:tls at SECLEVEL=0); a TLS 1.2 ClientHello with RSA key exchange only (AES128-SHA; the server's key is ECDSA: no shared cipher). ` +
    `Each waits for the server to close (3 s at most). Meanwhile the same https client as in tls-stall. The servers' stderr is counted until 3 s after the attack (quay's hostile server with --tls prints every onError report as one line; node:https has no report of its own). ` +
    `quay tlsHandshakeTimeoutMs = ${o.tlsHandshakeTimeoutMs} ms.`,
  async run(impl, o, log) {
    const { ca } = tlsMaterial();
    const hellos = await clientHellos();
    const payloadOf = (kind: GarbageKind): Buffer =>
      kind === 'plaintext HTTP'
        ? Buffer.from(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, 'latin1')
        : kind === 'random bytes'
          ? randomBytes(512)
          : kind === 'TLS 1.0/1.1 only'
            ? hellos.legacy
            : hellos.noSharedCipher;
    return withServer(impl, tlsServerArgs(impl, o), async (server) => {
      const sampler = new RssSampler(server.pid);
      const victim = new HttpsVictim(server.port, ca, () => server.exit === undefined);
      await sleep(1_000);
      await stats(server, true);
      // When each stderr line came: quay's report is at most one a second, so no two lines closer than ~1 s.
      const lineTimes: number[] = [];
      const onStderr = (b: Buffer): void => {
        for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) lineTimes.push(performance.now());
      };
      server.child.stderr!.on('data', onStderr);
      const t0 = performance.now();
      const end = t0 + o.tlsGarbageSeconds * 1000;
      const outcomes = new Map<GarbageKind, string[]>(GARBAGE_KINDS.map((k) => [k, []]));
      let sent = 0;
      const worker = async (): Promise<void> => {
        while (performance.now() < end && server.exit === undefined) {
          const kind = GARBAGE_KINDS[sent++ % GARBAGE_KINDS.length]!;
          outcomes.get(kind)!.push(await garbagePeer(server.port, payloadOf(kind)));
        }
      };
      await Promise.all(Array.from({ length: o.tlsGarbageConcurrency }, worker));
      const attackSeconds = (performance.now() - t0) / 1000;
      await sleep(Math.max(0, end + 3_000 - performance.now()));
      server.child.stderr!.off('data', onStderr);
      await victim.stop();
      const growth = sampler.stop();
      const after = await stats(server);
      const lines = lineTimes.length;
      let minGap = Infinity;
      for (let i = 1; i < lineTimes.length; i++) minGap = Math.min(minGap, lineTimes[i]! - lineTimes[i - 1]!);
      log(`  ${impl}: ${sent.toLocaleString('en-US')} peers in ${attackSeconds.toFixed(1)} s, ${lines} stderr lines`);
      const first = server.stderrHead.split('\n').find((l) => l.trim() !== '');
      const figures: Figures = {
        'peers (per second)': `${sent.toLocaleString('en-US')} (${Math.round(sent / attackSeconds).toLocaleString('en-US')})`,
      };
      for (const [kind, list] of outcomes) figures[`${kind}: what the peer got`] = histogram(list);
      return {
        ...figures,
        [`stderr lines (${o.tlsGarbageSeconds} s + 3 s)`]: lines,
        'shortest time between two stderr lines (s)': Number.isFinite(minGap) ? Math.round(minGap / 10) / 100 : '-',
        'first stderr line': first === undefined ? '-' : first.slice(0, 140),
        'TLS counts at the end (server)': tlsCounts(after),
        ...(after?.reports === undefined ? {} : { 'onError reports by kind': JSON.stringify(after.reports) }),
        'server RSS growth, max (MiB)': mib(growth),
        'keep-alive GETs (errors)': `${victim.keepAlive.ms.length.toLocaleString('en-US')} (${victim.keepAlive.errors})`,
        'keep-alive GET p50 / p99 / max (ms)': victim.keepAlive.summary(),
        'new-connection GET p50 / p99 / max (ms) (errors)': `${victim.fresh.summary()} (${victim.fresh.errors})`,
        'server event-loop delay max (ms)': after === undefined ? 'no answer' : Math.round(after.eldMaxMs),
        'GET answered afterwards': await answersTls(server.port, ca, server.exit !== undefined),
      };
    });
  },
};

export const TLS_SCENARIOS: readonly Scenario[] = [tlsStall, tlsGarbage];
