/**
 * A subscriber process of `npm run bench:fanout-cluster` (started by perf/fanout-cluster-harness.ts with an IPC
 * channel): opens its share of the subscriber sessions, checks and times every message they receive, and reports.
 *
 * - quay: lean raw WebSocket clients (perf/load's WsLoadClient: node:net, quay's FrameParser, one shared read
 *   buffer, one handler object), the receive time taken once per read.
 * - socketio: socket.io-client 4 with `transports: ['websocket']` (what users run), one `m` listener each; the
 *   receive time taken per message.
 *
 * Every subscriber checks that each publisher's sequence numbers arrive exactly once and in order (a gap or a
 * repeat is counted), and counts its messages; a message received inside the measured window counts as a delivery
 * of the window and its latency (receive time minus the send time it carries) goes into a histogram (µs).
 *
 * IPC, parent -> child: {@link ClientCommand}; child -> parent: {@link ClientEvent}.
 */
import type { Socket } from 'socket.io-client';
import type { DataOpCode } from '../lib/index.js';
import { parseMessage, toMonotonicMs, monotonicMs } from './fanout-cluster-message.js';
import type { ParsedMessage } from './fanout-cluster-message.js';
import { Histogram } from './load/Histogram.js';
import type { HistogramSnapshot } from './load/Histogram.js';
import type { ErrorKind } from './load/Measurement.js';
import { parseTarget } from './load/target.js';
import { WsLoadClient } from './load/WsLoadClient.js';
import type { WsLoadHandler } from './load/WsLoadClient.js';

/** Which client library speaks to the servers. */
export type ClientImpl = 'quay' | 'socketio';

export type ClientCommand =
  /** Open one subscriber per URL (quay: ws://host:port/sub; socketio: http://host:port). */
  | { type: 'open'; impl: ClientImpl; urls: string[]; publishers: number }
  /** Count deliveries and latencies of messages received in [startMs, endMs) of the monotonic clock from now on. */
  | { type: 'window'; startMs: number; endMs: number }
  | { type: 'report' }
  | { type: 'close' };

export interface ClientReport {
  /** Messages received inside the window (by all subscribers of this process). */
  windowDeliveries: number;
  /** Their latencies, µs. */
  latency: HistogramSnapshot;
  /** Messages received since the start, fewest and most by one subscriber. */
  minReceived: number;
  maxReceived: number;
  /** Sum over the subscribers. */
  totalReceived: number;
  /** Messages missing in a publisher's sequence (later ones arrived), and repeated or out-of-order ones. */
  gaps: number;
  repeats: number;
  /** Messages that are not ours. */
  foreign: number;
  /** Subscribers open now. */
  open: number;
  /** Why subscribers ended, when they did. */
  errors: string[];
}

export type ClientEvent =
  /** The process listens for commands (a command sent before that could be lost). */
  | { type: 'ready' }
  | { type: 'opened'; open: number; errors: string[] }
  /** The fewest messages one subscriber received so far (sent when it changes, at most every 5 ms). */
  | { type: 'progress'; minReceived: number }
  | ({ type: 'report' } & ClientReport);

const OPEN_BATCH = 100;
const OPEN_TIMEOUT_MS = 15_000;
const PROGRESS_MS = 5;

let subscribers = 0;
let publishers = 1;
/** Per subscriber: messages received. Per subscriber x publisher: the last sequence number (-1: none). */
let received = new Float64Array(0);
let lastSequence = new Float64Array(0);
let gaps = 0;
let repeats = 0;
let foreign = 0;
let windowStart = Infinity;
let windowEnd = -Infinity;
let windowDeliveries = 0;
const latency = new Histogram();
const errors: string[] = [];
const parsed: ParsedMessage = { publisher: 0, sequence: 0, sentMs: 0 };
const quayClients: WsLoadClient[] = [];
const sockets: Socket[] = [];

/** One message to subscriber `s`, received at `atMs` (monotonic clock). */
function onMessage(s: number, data: Buffer | string, atMs: number): void {
  if (!parseMessage(data, parsed) || parsed.publisher >= publishers) {
    foreign++;
    return;
  }
  const slot = s * publishers + parsed.publisher;
  const last = lastSequence[slot]!;
  if (parsed.sequence <= last) {
    repeats++;
    return;
  }
  if (parsed.sequence !== last + 1) gaps += parsed.sequence - last - 1;
  lastSequence[slot] = parsed.sequence;
  received[s]!++;
  if (atMs >= windowStart && atMs < windowEnd) {
    windowDeliveries++;
    const us = Math.round((atMs - parsed.sentMs) * 1000);
    latency.record(us < 0 ? 0 : us);
  }
}

function minReceived(): number {
  let min = Infinity;
  for (let s = 0; s < subscribers; s++) if (received[s]! < min) min = received[s]!;
  return min === Infinity ? 0 : min;
}

/** The lean quay subscribers' handler: one object for all of them. */
const quayHandler: WsLoadHandler = {
  onOpen() {},
  onMessage(client: WsLoadClient, _opcode: DataOpCode, data: Buffer) {
    onMessage(client.index, data, toMonotonicMs(client.readAt));
  },
  onReadComplete() {},
  onEnd(client: WsLoadClient, kind: ErrorKind | undefined, message: string) {
    if (kind !== undefined && errors.length < 20) errors.push(`subscriber ${client.index}: ${kind}: ${message}`);
  },
};

function openQuay(index: number, url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = new WsLoadClient(
      index,
      parseTarget(url),
      {
        ...quayHandler,
        onOpen: () => resolve(true),
        onEnd: (c, kind, message) => {
          quayHandler.onEnd(c, kind, message);
          resolve(false);
        },
      },
      { timeoutMs: OPEN_TIMEOUT_MS },
    );
    quayClients[index] = client;
    client.connect();
  });
}

/** socket.io-client, loaded only by the processes that use it. */
let io: typeof import('socket.io-client').io;

function openSocketIo(index: number, url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = io(url, { transports: ['websocket'], query: { role: 'sub' }, reconnection: false, forceNew: true, timeout: OPEN_TIMEOUT_MS });
    sockets[index] = socket;
    socket.on('m', (payload: string) => onMessage(index, payload, monotonicMs()));
    socket.once('connect', () => resolve(true));
    socket.once('connect_error', (e: Error) => {
      if (errors.length < 20) errors.push(`subscriber ${index}: connect_error: ${e.message}`);
      resolve(false);
    });
    socket.on('disconnect', (reason: string) => {
      if (reason !== 'io client disconnect' && errors.length < 20) errors.push(`subscriber ${index}: disconnected: ${reason}`);
    });
  });
}

async function open(impl: ClientImpl, urls: string[]): Promise<number> {
  subscribers = urls.length;
  received = new Float64Array(subscribers);
  lastSequence = new Float64Array(subscribers * publishers).fill(-1);
  if (impl === 'socketio') io = (await import('socket.io-client')).io;
  let opened = 0;
  for (let i = 0; i < urls.length; i += OPEN_BATCH) {
    const batch = urls.slice(i, i + OPEN_BATCH).map((url, k) => (impl === 'quay' ? openQuay(i + k, url) : openSocketIo(i + k, url)));
    for (const ok of await Promise.all(batch)) if (ok) opened++;
  }
  return opened;
}

function openCount(): number {
  let n = 0;
  for (const c of quayClients) if (c.state === 'OPEN') n++;
  for (const s of sockets) if (s.connected) n++;
  return n;
}

function report(): ClientReport {
  let max = 0;
  let total = 0;
  for (let s = 0; s < subscribers; s++) {
    total += received[s]!;
    if (received[s]! > max) max = received[s]!;
  }
  return {
    windowDeliveries,
    latency: latency.toJSON(),
    minReceived: minReceived(),
    maxReceived: max,
    totalReceived: total,
    gaps,
    repeats,
    foreign,
    open: openCount(),
    errors: errors.slice(),
  };
}

function send(event: ClientEvent): void {
  process.send!(event);
}

let lastProgress = -1;
const progress = setInterval(() => {
  const min = minReceived();
  if (min !== lastProgress) {
    lastProgress = min;
    send({ type: 'progress', minReceived: min });
  }
}, PROGRESS_MS);

async function close(): Promise<void> {
  clearInterval(progress);
  for (const c of quayClients) c.close();
  for (const s of sockets) s.disconnect();
  // The closing handshakes get a moment; then the process ends (its sockets with it).
  await new Promise((r) => setTimeout(r, 200));
  process.disconnect();
  process.exit(0);
}

if (process.send === undefined) throw new Error('fanout-cluster-client runs as a child with an IPC channel');
process.on('message', (command: ClientCommand) => {
  switch (command.type) {
    case 'open':
      publishers = command.publishers;
      void open(command.impl, command.urls).then(() => send({ type: 'opened', open: openCount(), errors: errors.slice() }));
      break;
    case 'window':
      windowStart = command.startMs;
      windowEnd = command.endMs;
      windowDeliveries = 0;
      latency.reset();
      break;
    case 'report':
      send({ type: 'report', ...report() });
      break;
    case 'close':
      void close();
      break;
  }
});
// The parent gone: nothing left to do.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
