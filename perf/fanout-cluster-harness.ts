/**
 * The machinery of `npm run bench:fanout-cluster` (perf/fanout-cluster.ts) and of its test
 * (test/fanout-cluster.test.ts): a setup of server processes (quay with a topic, or Socket.IO with its Redis
 * adapter, on one real redis-server), subscriber processes (perf/fanout-cluster-client.ts) and publishers (in this
 * process), and steps that publish timestamped messages and collect what the subscribers received.
 *
 * - Subscriber i connects to server i mod N and lives in client process i mod K: every client process holds the
 *   same share of each server's sessions.
 * - Publisher p (2 of them) connects to server p mod N and sends its messages with its own sequence numbers.
 *   Each message goes to every subscriber; the subscribers check exactly-once, in-order per publisher.
 * - A step is open-loop at a fixed rate (messages/s, whatever the subscribers receive), or closed-loop with a window
 *   of messages in flight (sent and not yet received by every subscriber, from the clients' progress reports): the
 *   highest rate the setup sustains with bounded queues (an open-loop rate past capacity only grows the servers'
 *   buffers: Socket.IO's without bound, quay's up to its overflow policy).
 * - Deliveries of a step = messages received by the subscribers inside the measured window; latency = receive time
 *   minus the send time in the message (the machine's monotonic clock). CPU of every process from /proc/PID/stat
 *   over the window.
 *
 * Children run from the same tree as this module: .js from dist/, or .ts with the parent's TypeScript loader (tap).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import { OpCode } from '../lib/index.js';
import type { ClientCommand, ClientEvent, ClientImpl, ClientReport } from './fanout-cluster-client.js';
import { encodeMessage, monotonicMs } from './fanout-cluster-message.js';
import { Histogram } from './load/Histogram.js';
import { parseTarget } from './load/target.js';
import { CLIENT_FRAMES, WsLoadClient } from './load/WsLoadClient.js';
import type { WsLoadHandler } from './load/WsLoadClient.js';
import { httpGet } from './serverProcess.js';
import { cpuTicks, listeningPort } from './lib.js';

/** The three setups compared. */
export type SetupKind = 'quay-2proc-redis' | 'socketio-2proc-redis' | 'quay-1proc';
export const SETUP_KINDS: readonly SetupKind[] = ['quay-2proc-redis', 'socketio-2proc-redis', 'quay-1proc'];

export interface SetupOptions {
  kind: SetupKind;
  subscribers: number;
  /** Subscriber processes (default 1). */
  clientProcesses?: number;
  /** redis://127.0.0.1:PORT, required by the 2-process setups. */
  redisUrl?: string;
  /** Pin the servers to core 0 and the client processes to core 1 (taskset). Default false. */
  pin?: boolean;
  /** Publishers (default 2). */
  publishers?: number;
  /** Node flags of the server processes, e.g. ['--cpu-prof'] (profiles are written in the working directory). */
  serverNodeFlags?: readonly string[];
}

export interface StepOptions {
  /** Open loop: messages per second (over all publishers). */
  rate?: number;
  /** Closed loop: messages in flight (sent, not yet received by every subscriber). */
  inflight?: number;
  /** Sending before the measured window (not counted). */
  warmupMs: number;
  /** The measured window; sending stops at its end. */
  durationMs: number;
  /** How long to wait after the window for every subscriber to have every message. */
  drainTimeoutMs: number;
}

export interface StepResult {
  /** Messages sent in the step, and inside the window. */
  sent: number;
  sentInWindow: number;
  /** Messages received by the subscribers inside the window, per second. */
  deliveriesPerSec: number;
  /** Messages published per second inside the window. */
  publishedPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Every subscriber had every message sent so far within the drain timeout (else how many were missing). */
  drained: boolean;
  missing: number;
  /** Sum over the setup's lifetime, as the clients report. */
  totalSent: number;
  minReceived: number;
  maxReceived: number;
  gaps: number;
  repeats: number;
  foreign: number;
  /** Subscribers open at the end of the step. */
  open: number;
  /** CPU over the window in % of one core: servers (summed), subscriber processes (summed), redis, this process. */
  serverCpuPct: number;
  clientCpuPct: number;
  redisCpuPct: number;
  publisherCpuPct: number;
  /** Servers' CPU per delivery of the window, µs. */
  serverCpuUsPerDelivery: number;
  /**
   * Subscriber processes' CPU per delivery of the window, µs: 1e6 / this is the deliveries/s one core of clients
   * can take (the client ceiling).
   */
  clientCpuUsPerDelivery: number;
  /** How busy each core of the machine was over the window, % (every process, other users' too). */
  coreBusyPct: number[];
  errors: string[];
}

/** Where the children's scripts are: next to this module, with its extension (.ts under tap's loader). */
const HERE = fileURLToPath(import.meta.url);
const EXT = HERE.endsWith('.ts') ? '.ts' : '.js';
const SCRIPT_DIR = HERE.slice(0, HERE.lastIndexOf('/'));
/** The TypeScript loader of the parent (tap), so that children run the same sources; empty for dist/. */
const LOADER = EXT === '.ts' ? process.execArgv.filter((a) => a.includes('@tapjs') || a.includes('tsimp') || a.includes('ts-node')) : [];
const HAVE_TASKSET = spawnSync('taskset', ['--version']).status === 0;
export const SERVER_CORE = '0';
export const CLIENT_CORE = '1';
const CLK_TCK = 100;

/** Busy and total jiffies of each core (/proc/stat): how busy the cores were, whoever used them. */
export function coreJiffies(): { busy: number; total: number }[] {
  const out: { busy: number; total: number }[] = [];
  try {
    for (const line of readFileSync('/proc/stat', 'latin1').split('\n')) {
      if (!/^cpu\d+ /.test(line)) continue;
      const f = line.trim().split(/\s+/).slice(1).map(Number);
      const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
      out.push({ busy: total - f[3]! - f[4]!, total }); // idle and iowait are not busy
    }
  } catch {
    // not Linux: no per-core figures
  }
  return out;
}

/** Pins a running process (all its threads) to a core; false without taskset. */
export function pin(pid: number, core: string): boolean {
  return HAVE_TASKSET && spawnSync('taskset', ['-a', '-p', '-c', core, String(pid)], { stdio: 'ignore' }).status === 0;
}

function nodeArgv(script: string, args: readonly string[], flags: readonly string[] = []): string[] {
  return [process.execPath, ...LOADER, ...flags, `${SCRIPT_DIR}/${script}${EXT}`, ...args];
}

const CHILD_ENV = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' };

/** A server process of the setup. */
export interface ServerChild {
  port: number;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill(signal);
  });
}

/** Starts perf/servers/<name> with args; resolves once it printed `listening PORT`. */
export async function startServerChild(name: string, args: readonly string[], core: string | undefined, flags: readonly string[] = []): Promise<ServerChild> {
  const argv = nodeArgv(`servers/${name}`, args, flags);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], env: { ...CHILD_ENV, QUAY_FANOUT_EXIT_ON_STDIN_END: '1' } });
  if (core !== undefined) pin(child.pid!, core);
  try {
    const port = await listeningPort(child, name, 90_000);
    return { port, pid: child.pid!, child, stop: () => stopChild(child) };
  } catch (e) {
    await stopChild(child); // silent for 90 s: it may still be running
    throw e;
  }
}

/** A subscriber process and its last reports. */
class ClientChild {
  readonly child: ChildProcess;
  minReceived = 0;
  /** Resolves when the process listens for commands. */
  readonly ready: Promise<void>;
  private waiting: { type: ClientEvent['type']; resolve: (e: ClientEvent) => void } | undefined;

  constructor(core: string | undefined, onProgress: () => void) {
    const argv = nodeArgv('fanout-cluster-client', []);
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: CHILD_ENV });
    if (core !== undefined) pin(this.child.pid!, core);
    let ready = (): void => {};
    this.ready = new Promise((resolve, reject) => {
      ready = resolve;
      this.child.once('exit', (code) => reject(new Error(`subscriber process exited with ${code} before it was ready`)));
    });
    this.ready.catch(() => {}); // awaited in init(); a process that dies later is reported by its requests
    this.child.on('message', (event: ClientEvent) => {
      if (event.type === 'ready') ready();
      if (event.type === 'progress') {
        this.minReceived = event.minReceived;
        onProgress();
      } else if (this.waiting?.type === event.type) {
        const w = this.waiting;
        this.waiting = undefined;
        w.resolve(event);
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(command: ClientCommand): void {
    this.child.send(command);
  }

  request<T extends ClientEvent['type']>(command: ClientCommand, answer: T, timeoutMs: number): Promise<Extract<ClientEvent, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber process ${this.pid}: no ${answer} within ${timeoutMs} ms`)), timeoutMs);
      const exit = (): void => reject(new Error(`subscriber process ${this.pid} exited`));
      this.child.once('exit', exit);
      this.waiting = {
        type: answer,
        resolve: (e) => {
          clearTimeout(timer);
          this.child.off('exit', exit);
          resolve(e as Extract<ClientEvent, { type: T }>);
        },
      };
      this.send(command);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    if (this.child.connected) this.send({ type: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** A publisher connection: sends encoded messages to one server. */
interface Publisher {
  send(message: string): void;
  close(): void;
}

const NO_EVENTS: WsLoadHandler = { onOpen() {}, onMessage() {}, onReadComplete() {}, onEnd() {} };

function openQuayPublisher(port: number, index: number): Promise<Publisher> {
  return new Promise((resolve, reject) => {
    const client = new WsLoadClient(
      index,
      parseTarget(`ws://127.0.0.1:${port}/pub`),
      {
        ...NO_EVENTS,
        onOpen: () =>
          resolve({
            send: (message) => client.write(CLIENT_FRAMES.encode(OpCode.TEXT, Buffer.from(message, 'latin1'))[0]!),
            close: () => client.close(),
          }),
        onEnd: (_c, kind, message) => reject(new Error(`publisher ${index}: ${kind}: ${message}`)),
      },
      { timeoutMs: 10_000 },
    );
    client.connect();
  });
}

function openSocketIoPublisher(port: number): Promise<Publisher> {
  return new Promise((resolve, reject) => {
    const socket: Socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], query: { role: 'pub' }, reconnection: false, forceNew: true });
    socket.once('connect', () => resolve({ send: (message) => socket.emit('pub', message), close: () => socket.disconnect() }));
    socket.once('connect_error', (e: Error) => reject(e));
  });
}

/** Servers, subscribers and publishers of one setup; {@link runStep} measures, {@link stop} ends every process. */
export class FanoutSetup {
  readonly kind: SetupKind;
  readonly subscribers: number;
  readonly servers: ServerChild[] = [];
  readonly clients: ClientChild[] = [];
  private publishers: Publisher[] = [];
  private readonly sequences: number[] = [];
  private sentTotal = 0;
  private onProgress: (() => void) | undefined;
  redisPid: number | undefined;

  private constructor(kind: SetupKind, subscribers: number) {
    this.kind = kind;
    this.subscribers = subscribers;
  }

  /** Starts the servers, opens the subscribers (checked against the servers' member counts) and the publishers. */
  static async start(options: SetupOptions): Promise<FanoutSetup> {
    const setup = new FanoutSetup(options.kind, options.subscribers);
    try {
      await setup.init(options);
    } catch (error) {
      await setup.stop();
      throw error;
    }
    return setup;
  }

  private async init(options: SetupOptions): Promise<void> {
    const { kind } = options;
    const serverCore = options.pin === true ? SERVER_CORE : undefined;
    const clientCore = options.pin === true ? CLIENT_CORE : undefined;
    const impl: ClientImpl = kind === 'socketio-2proc-redis' ? 'socketio' : 'quay';
    const script = impl === 'socketio' ? 'fanout-socketio' : 'fanout-quay-pubsub';
    const instances = kind === 'quay-1proc' ? 1 : 2;
    if (instances === 2 && options.redisUrl === undefined) throw new Error(`${kind} needs redisUrl`);
    const args = instances === 2 ? ['--redis', options.redisUrl!] : [];
    const k = options.clientProcesses ?? 1;
    // The subscriber processes load while the servers start.
    for (let c = 0; c < k; c++) this.clients.push(new ClientChild(clientCore, () => this.onProgress?.()));
    const started = await Promise.allSettled(Array.from({ length: instances }, () => startServerChild(script, args, serverCore, options.serverNodeFlags)));
    for (const s of started) if (s.status === 'fulfilled') this.servers.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;

    const urls: string[][] = Array.from({ length: k }, () => []);
    for (let s = 0; s < this.subscribers; s++) {
      const port = this.servers[s % instances]!.port;
      urls[s % k]!.push(impl === 'quay' ? `ws://127.0.0.1:${port}/sub` : `http://127.0.0.1:${port}`);
    }
    const publishers = options.publishers ?? 2;
    await Promise.all(this.clients.map((c) => c.ready));
    const opened = await Promise.all(this.clients.map((c, i) => c.request({ type: 'open', impl, urls: urls[i]!, publishers }, 'opened', 60_000)));
    const open = opened.reduce((n, o) => n + o.open, 0);
    if (open !== this.subscribers) throw new Error(`${open} of ${this.subscribers} subscribers opened: ${opened.flatMap((o) => o.errors).join('; ')}`);
    await this.waitForMembers();

    for (let p = 0; p < publishers; p++) {
      const port = this.servers[p % instances]!.port;
      this.publishers.push(await (impl === 'quay' ? openQuayPublisher(port, p) : openSocketIoPublisher(port)));
      this.sequences.push(0);
    }
  }

  /** The servers' own count of topic (room) members must reach the subscribers: every join done. */
  private async waitForMembers(): Promise<void> {
    let members = 0;
    for (let attempt = 0; attempt < 100; attempt++) {
      members = 0;
      for (const s of this.servers) members += (JSON.parse(await httpGet(s.port, '/stats', 5000)) as { members: number }).members;
      if (members === this.subscribers) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the servers count ${members} members, not ${this.subscribers}`);
  }

  /** The fewest messages any subscriber received so far (the clients' last progress reports). */
  private frontier(): number {
    let min = Infinity;
    for (const c of this.clients) if (c.minReceived < min) min = c.minReceived;
    return min;
  }

  /** Sends one message from the next publisher (round robin), stamped with the current time. */
  private sendOne(): void {
    const p = this.sentTotal % this.publishers.length;
    const seq = this.sequences[p]!++;
    this.sentTotal++;
    this.publishers[p]!.send(encodeMessage(p, seq, monotonicMs()));
  }

  /** One step: publish, measure the window, wait for every subscriber to have every message, collect. */
  async runStep(step: StepOptions): Promise<StepResult> {
    if ((step.rate === undefined) === (step.inflight === undefined)) throw new TypeError('a step has a rate or an in-flight window, not both');
    const t0 = monotonicMs();
    const windowStart = t0 + step.warmupMs;
    const windowEnd = windowStart + step.durationMs;
    for (const c of this.clients) c.send({ type: 'window', startMs: windowStart, endMs: windowEnd });
    const pids = {
      servers: this.servers.map((s) => s.pid),
      clients: this.clients.map((c) => c.pid),
      redis: this.redisPid === undefined ? [] : [this.redisPid],
    };
    const ticks = (list: number[]): number => list.reduce((n, pid) => n + cpuTicks(pid), 0);
    let cpuAtStart = { servers: 0, clients: 0, redis: 0, self: 0, cores: [] as { busy: number; total: number }[] };
    let cpuAtEnd = cpuAtStart;
    const sample = (): typeof cpuAtStart => ({
      servers: ticks(pids.servers),
      clients: ticks(pids.clients),
      redis: ticks(pids.redis),
      self: (process.cpuUsage().user + process.cpuUsage().system) / 1e4,
      cores: coreJiffies(),
    });
    // Messages a subscriber never got in an earlier step (lost: the step drained with some missing) are not in
    // flight: without this, a closed-loop step after a loss would wait for them forever.
    const lostBefore = this.sentTotal - this.frontier();
    let stepSent = 0;
    let sentAtWindowStart = -1;
    let sentAtWindowEnd = -1;
    const base = this.sentTotal;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = monotonicMs();
        if (sentAtWindowStart < 0 && now >= windowStart) {
          sentAtWindowStart = stepSent;
          cpuAtStart = sample();
        }
        if (now >= windowEnd) {
          sentAtWindowEnd = stepSent;
          cpuAtEnd = sample();
          clearInterval(timer);
          this.onProgress = undefined;
          resolve();
          return;
        }
        let due: number;
        if (step.rate !== undefined) due = Math.floor((step.rate * (now - t0)) / 1000) - stepSent;
        else due = step.inflight! - (this.sentTotal - this.frontier() - lostBefore);
        for (let i = 0; i < due; i++) this.sendOne();
        if (due > 0) stepSent += due;
        this.sentTotal = base + stepSent;
      };
      const timer = setInterval(tick, 1);
      if (step.inflight !== undefined) this.onProgress = tick;
      tick();
    });

    // Drain: every subscriber has every message, or the timeout.
    const drainUntil = monotonicMs() + step.drainTimeoutMs;
    while (this.frontier() < this.sentTotal && monotonicMs() < drainUntil) await new Promise((r) => setTimeout(r, 10));
    const reports = await Promise.all(this.clients.map((c) => c.request({ type: 'report' }, 'report', 10_000)));
    return this.summarize(reports, step, stepSent, sentAtWindowEnd - sentAtWindowStart, cpuAtStart, cpuAtEnd);
  }

  private summarize(
    reports: ClientReport[],
    step: StepOptions,
    sent: number,
    sentInWindow: number,
    start: { servers: number; clients: number; redis: number; self: number; cores: { busy: number; total: number }[] },
    end: { servers: number; clients: number; redis: number; self: number; cores: { busy: number; total: number }[] },
  ): StepResult {
    const latency = new Histogram();
    let windowDeliveries = 0;
    let minReceived = Infinity;
    let maxReceived = 0;
    let totalReceived = 0;
    let gaps = 0;
    let repeats = 0;
    let foreign = 0;
    let open = 0;
    const errors: string[] = [];
    for (const r of reports) {
      latency.merge(Histogram.fromJSON(r.latency));
      windowDeliveries += r.windowDeliveries;
      minReceived = Math.min(minReceived, r.minReceived);
      maxReceived = Math.max(maxReceived, r.maxReceived);
      totalReceived += r.totalReceived;
      gaps += r.gaps;
      repeats += r.repeats;
      foreign += r.foreign;
      open += r.open;
      errors.push(...r.errors);
    }
    const seconds = step.durationMs / 1000;
    const pct = (ticks: number): number => (ticks / CLK_TCK / seconds) * 100;
    const serverTicks = end.servers - start.servers;
    return {
      sent,
      sentInWindow,
      deliveriesPerSec: windowDeliveries / seconds,
      publishedPerSec: sentInWindow / seconds,
      p50Ms: latency.valueAtPercentile(50) / 1000,
      p99Ms: latency.valueAtPercentile(99) / 1000,
      maxMs: latency.max / 1000,
      drained: totalReceived === this.sentTotal * this.subscribers,
      missing: this.sentTotal * this.subscribers - totalReceived,
      totalSent: this.sentTotal,
      minReceived,
      maxReceived,
      gaps,
      repeats,
      foreign,
      open,
      serverCpuPct: pct(serverTicks),
      clientCpuPct: pct(end.clients - start.clients),
      redisCpuPct: pct(end.redis - start.redis),
      publisherCpuPct: pct(end.self - start.self),
      clientCpuUsPerDelivery: windowDeliveries === 0 ? 0 : (((end.clients - start.clients) / CLK_TCK) * 1e6) / windowDeliveries,
      coreBusyPct: end.cores.map((c, i) => {
        const total = c.total - (start.cores[i]?.total ?? 0);
        return total === 0 ? 0 : ((c.busy - (start.cores[i]?.busy ?? 0)) / total) * 100;
      }),
      serverCpuUsPerDelivery: windowDeliveries === 0 ? 0 : ((serverTicks / CLK_TCK) * 1e6) / windowDeliveries,
      errors,
    };
  }

  /** Closes the publishers and subscribers and stops every process this setup started (by PID). */
  async stop(): Promise<void> {
    for (const p of this.publishers) p.close();
    this.publishers = [];
    await Promise.all(this.clients.map((c) => c.close()));
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}
