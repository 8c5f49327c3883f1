/**
 * echo: C connections, each keeping D messages of S bytes in flight; every echo received sends the next one.
 * Counts echoes; latency is from the send to the echo.
 */
import { performance } from 'node:perf_hooks';
import { OpCode } from '../../../lib/index.js';
import type { DataOpCode } from '../../../lib/index.js';
import { Measurement } from '../Measurement.js';
import { RepeatedBytes } from '../RepeatedBytes.js';
import type { LoadOptions } from '../options.js';
import { buildReport } from '../report.js';
import type { WorkloadRun } from '../report.js';
import { sleep } from '../sleep.js';
import { parseTarget } from '../target.js';
import { CLIENT_FRAMES } from '../WsLoadClient.js';
import type { WsLoadClient } from '../WsLoadClient.js';
import { WsWorkload } from './WsWorkload.js';

/** How long the end of a run waits for the echoes still in flight, at most. */
const DRAIN_MS = 5000;

/** The payload of every message: printable ASCII (valid UTF-8 for text messages). */
export function payloadOf(size: number): Buffer {
  const payload = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) payload[i] = 0x61 + (i % 26);
  return payload;
}

export class EchoWorkload extends WsWorkload {
  private readonly depth: number;
  private readonly size: number;
  private readonly opcode: DataOpCode;
  /**
   * The frames to send, encoded once for the whole run and repeated up to D times, so that the k echoes of one
   * read are answered with one write of bytes that already exist. Re-sending one masked frame reuses its masking
   * key, which RFC 6455 §5.3 asks to be fresh per frame: the key protects intermediaries from a hostile page's
   * chosen bytes, which a load test against a test server has no use for, and the server cannot tell.
   */
  private readonly frames: RepeatedBytes;
  // Per connection, indexed by client.index: a ring of D send times, its head and tail slots, the count in
  // flight, the echoes of the current read to answer, and the time of the last echo (for the timeout watchdog).
  private readonly sentAt: Float64Array;
  private readonly headSlot: Uint32Array;
  private readonly tailSlot: Uint32Array;
  private readonly inFlight: Uint32Array;
  private readonly toSend: Uint32Array;
  private readonly lastActivity: Float64Array;
  private sending = false;
  private sent = 0;
  private received = 0;
  /** Messages in flight on connections that ended. */
  private lostMessages = 0;
  private drained: (() => void) | undefined;

  constructor(options: LoadOptions, m: Measurement) {
    super(options, parseTarget(options.url), m);
    const c = options.connections;
    this.depth = options.inflight;
    this.size = options.size;
    this.opcode = options.binary ? OpCode.BINARY : OpCode.TEXT;
    this.frames = new RepeatedBytes(CLIENT_FRAMES.encode(this.opcode, payloadOf(this.size))[0]!, this.depth);
    this.sentAt = new Float64Array(c * this.depth);
    this.headSlot = new Uint32Array(c);
    this.tailSlot = new Uint32Array(c);
    this.inFlight = new Uint32Array(c);
    this.toSend = new Uint32Array(c);
    this.lastActivity = new Float64Array(c);
  }

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    const m = this.m;
    await this.openAll(o.connections, signal);
    const watchdog = setInterval(() => this.watch(), 1000);
    try {
      if (signal?.aborted !== true) {
        this.sending = true;
        if (o.warmupSec > 0) m.beginWarmup();
        else m.beginMeasuring();
        for (const client of this.openClients()) this.send(client, this.depth);
        if (o.warmupSec > 0) {
          await sleep(o.warmupSec * 1000, signal);
          m.beginMeasuring();
        }
        await sleep(o.durationSec * 1000, signal);
      }
      m.stop();
      this.sending = false;
      if (signal?.aborted !== true) await this.drain();
    } finally {
      clearInterval(watchdog);
      m.stop();
      this.sending = false;
    }
    await this.closeAll(signal?.aborted === true ? 200 : 2000);
    const report = buildReport(o, o.connections, m, {
      warmupSec: o.warmupSec,
      inflight: this.depth,
      size: this.size,
      binary: o.binary,
      sent: this.sent,
      received: this.received,
    });
    if (signal?.aborted === true) report.interrupted = true;
    return { report, measurement: m };
  }

  onMessage(client: WsLoadClient, opcode: DataOpCode, data: Buffer): void {
    const i = client.index;
    // Nothing in flight: not an echo (a greeting some servers send on open); ignored.
    if (this.inFlight[i] === 0) return;
    if (opcode !== this.opcode || data.length !== this.size) {
      client.fail('protocol', `an echo of ${data.length} bytes (opcode ${opcode}), ${this.size} expected`);
      return;
    }
    const slot = this.tailSlot[i]!;
    this.tailSlot[i] = slot + 1 === this.depth ? 0 : slot + 1;
    this.inFlight[i]!--;
    this.received++;
    this.lastActivity[i] = client.readAt;
    this.m.deliver(this.sentAt[i * this.depth + slot]!, client.readAt, data.length);
    if (this.sending) this.toSend[i]!++;
  }

  onReadComplete(client: WsLoadClient): void {
    const i = client.index;
    const n = this.toSend[i]!;
    if (n !== 0) {
      this.toSend[i] = 0;
      this.send(client, n);
    }
    if (this.drained !== undefined && this.sent === this.received + this.lostMessages) this.drained();
  }

  protected override lost(client: WsLoadClient): void {
    const i = client.index;
    this.lostMessages += this.inFlight[i]!;
    this.inFlight[i] = 0;
    if (this.drained !== undefined && this.sent === this.received + this.lostMessages) this.drained();
  }

  /** Sends n messages on a connection, stamping their send time (one clock read for the batch). */
  private send(client: WsLoadClient, n: number): void {
    const i = client.index;
    const depth = this.depth;
    const base = i * depth;
    const now = performance.now();
    let slot = this.headSlot[i]!;
    for (let k = 0; k < n; k++) {
      this.sentAt[base + slot] = now;
      slot = slot + 1 === depth ? 0 : slot + 1;
    }
    this.headSlot[i] = slot;
    if (this.inFlight[i] === 0) this.lastActivity[i] = now;
    this.inFlight[i]! += n;
    this.sent += n;
    this.frames.writeTo(client, n);
  }

  /** Waits for the echoes still in flight (sent = received), for at most the timeout; the rest count as timeouts. */
  private async drain(): Promise<void> {
    if (this.sent === this.received + this.lostMessages) return;
    const waitMs = Math.min(this.options.timeoutSec * 1000, DRAIN_MS);
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    const timer = new AbortController();
    await Promise.race([done, sleep(waitMs, timer.signal)]);
    timer.abort();
    this.drained = undefined;
    for (const client of this.openClients()) {
      const n = this.inFlight[client.index]!;
      if (n !== 0) this.m.error('timeout', `${n} messages not echoed ${waitMs} ms after the end of the run`);
    }
  }

  /** A connection whose messages go unanswered for the timeout counts one timeout and is dropped. */
  private watch(): void {
    const now = performance.now();
    const limit = this.options.timeoutSec * 1000;
    for (const client of this.openClients()) {
      const i = client.index;
      if (this.inFlight[i] !== 0 && now - this.lastActivity[i]! > limit) {
        client.fail('timeout', `no echo for ${this.options.timeoutSec} s with ${this.inFlight[i]} messages in flight`);
      }
    }
  }
}

export async function runEcho(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  return new EchoWorkload(options, m).run(signal);
}
