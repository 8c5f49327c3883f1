/**
 * fanout: one sender and R receivers on a broadcast URL (the server sends every message it receives to every
 * connection). The sender keeps D messages in flight; each carries its sequence number in its first 12 bytes
 * (ASCII digits: valid text), and a delivery counts when EVERY receiver has it. Latency is from the send to the
 * last receiver.
 */
import { performance } from 'node:perf_hooks';
import { OpCode } from '../../../lib/index.js';
import type { DataOpCode } from '../../../lib/index.js';
import { Measurement } from '../Measurement.js';
import type { LoadOptions } from '../options.js';
import { workloadRun } from '../report.js';
import type { WorkloadRun } from '../report.js';
import { parseTarget } from '../target.js';
import { CLIENT_FRAMES } from '../WsLoadClient.js';
import type { WsLoadClient } from '../WsLoadClient.js';
import { payloadOf } from './echo.js';
import { TrafficRun } from './TrafficRun.js';
import type { Traffic } from './TrafficRun.js';
import { WsWorkload } from './WsWorkload.js';

/** Digits of the sequence number at the start of each payload. */
export const SEQUENCE_DIGITS = 12;
/** A pause between the last handshake and the first broadcast, for servers that register a session after the 101. */
const SETTLE_MS = 100;

/** The sequence number in a payload's first 12 bytes; -1 when they are not digits. */
export function readSequence(data: Buffer): number {
  if (data.length < SEQUENCE_DIGITS) return -1;
  let seq = 0;
  for (let i = 0; i < SEQUENCE_DIGITS; i++) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    seq = seq * 10 + d;
  }
  return seq;
}

export class FanoutWorkload extends WsWorkload implements Traffic {
  private readonly depth: number;
  private readonly receivers: number;
  private readonly size: number;
  private readonly opcode: DataOpCode;
  /**
   * One masked frame per in-flight slot: a message's sequence number is written (masked) into its slot's frame;
   * a slot is reused only once its message was delivered, long after its bytes left.
   */
  private readonly frames: Buffer[] = [];
  /** Where the payload starts in a frame (its masking key is the 4 bytes before). */
  private readonly payloadAt: number;
  private readonly slotSeq: Float64Array;
  private readonly slotReceipts: Uint32Array;
  private readonly sentAt: Float64Array;
  /** Per receiver (by client index; 0 is the sender): messages received and the last sequence number. */
  private readonly receivedBy: Float64Array;
  private readonly lastSeq: Float64Array;
  private liveReceivers: number;
  private nextSeq = 0;
  private inFlight = 0;
  private toSend = 0;
  private sending = false;
  private sent = 0;
  private delivered = 0;
  private readonly traffic = new TrafficRun(this, SETTLE_MS);

  constructor(options: LoadOptions, m: Measurement) {
    super(options, parseTarget(options.url), m);
    this.depth = options.inflight;
    this.receivers = this.liveReceivers = options.receivers;
    this.size = options.size;
    this.opcode = options.binary ? OpCode.BINARY : OpCode.TEXT;
    const payload = payloadOf(this.size);
    for (let s = 0; s < this.depth; s++) this.frames.push(CLIENT_FRAMES.encode(this.opcode, payload)[0]!);
    this.payloadAt = this.frames[0]!.length - this.size;
    this.slotSeq = new Float64Array(this.depth).fill(-1);
    this.slotReceipts = new Uint32Array(this.depth);
    this.sentAt = new Float64Array(this.depth);
    this.receivedBy = new Float64Array(this.receivers + 1);
    this.lastSeq = new Float64Array(this.receivers + 1).fill(-1);
  }

  private get sender(): WsLoadClient | undefined {
    return this.clients[0];
  }

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    // Client 0, the sender, is opened first: openAll launches in index order.
    await this.openAll(this.receivers + 1, signal);
    if (!this.noneOpened) await this.traffic.run(o, this.m, signal);
    await this.closeAll(signal?.aborted === true ? 200 : 2000);
    let min = Infinity;
    let max = 0;
    for (let r = 1; r <= this.receivers; r++) {
      const n = this.receivedBy[r]!;
      if (n < min) min = n;
      if (n > max) max = n;
    }
    return workloadRun(
      o,
      this.receivers + 1,
      this.m,
      {
        warmupSec: o.warmupSec,
        inflight: this.depth,
        size: this.size,
        binary: o.binary,
        receivers: this.receivers,
        sent: this.sent,
        delivered: this.delivered,
        receiverMin: min === Infinity ? 0 : min,
        receiverMax: max,
      },
      signal,
    );
  }

  onMessage(client: WsLoadClient, opcode: DataOpCode, data: Buffer): void {
    const r = client.index;
    if (r === 0) return; // the sender gets its own broadcasts too, on most servers
    const seq = readSequence(data);
    if (opcode !== this.opcode || data.length !== this.size || seq < 0) {
      client.fail('protocol', `a message of ${data.length} bytes (opcode ${opcode}) that is not one of ours`);
      return;
    }
    // One sender, in-order streams: each receiver sees increasing numbers, or something was duplicated.
    if (seq <= this.lastSeq[r]! || seq >= this.nextSeq) {
      client.fail('protocol', `message #${seq} after #${this.lastSeq[r]} (${this.nextSeq} sent)`);
      return;
    }
    this.lastSeq[r] = seq;
    this.receivedBy[r]!++;
    const slot = seq % this.depth;
    if (this.slotSeq[slot] !== seq) return; // abandoned after a timeout, arriving late
    if (++this.slotReceipts[slot]! >= this.liveReceivers) this.complete(slot, client.readAt);
  }

  onReadComplete(_client: WsLoadClient): void {
    if (this.toSend !== 0) {
      const n = this.toSend;
      this.toSend = 0;
      this.sendMany(n);
    }
    this.traffic.checkDrained();
  }

  protected override lost(client: WsLoadClient): void {
    if (client.index === 0) {
      this.sending = false;
      return;
    }
    // A receiver gone: deliveries now need one receipt fewer; some may be complete already.
    this.liveReceivers--;
    const now = performance.now();
    for (let slot = 0; slot < this.depth; slot++) {
      if (this.slotSeq[slot] !== -1 && this.slotReceipts[slot]! >= this.liveReceivers) this.complete(slot, now);
    }
    this.onReadComplete(client);
  }

  // ------------------------------------------------------------------------------------------------ Traffic

  canSend(): boolean {
    if (this.sender?.state === 'OPEN') return true;
    this.m.error('refused', 'the sender connection did not open: nothing to measure');
    return false;
  }

  startSending(): void {
    this.sending = true;
    this.sendMany(this.depth);
  }

  stopSending(): void {
    this.sending = false;
  }

  get settled(): boolean {
    return this.inFlight === 0;
  }

  countUnanswered(waitMs: number): void {
    if (this.inFlight !== 0) this.m.error('timeout', `${this.inFlight} broadcasts not delivered to every receiver ${waitMs} ms after the end`);
  }

  /** The oldest message, undelivered for the timeout, counts one timeout and is abandoned (replaced). */
  watch(): void {
    const now = performance.now();
    const limit = this.options.timeoutSec * 1000;
    for (let seq = this.nextSeq - this.depth; seq < this.nextSeq; seq++) {
      if (seq < 0) continue;
      const slot = seq % this.depth;
      if (this.slotSeq[slot] === seq && now - this.sentAt[slot]! > limit) {
        this.m.error('timeout', `broadcast #${seq} reached ${this.slotReceipts[slot]} of ${this.liveReceivers} receivers in ${this.options.timeoutSec} s`);
        this.slotSeq[slot] = -1;
        this.inFlight--;
        if (this.sending) this.toSend++;
      }
    }
    if (this.toSend !== 0 && this.sender !== undefined) this.onReadComplete(this.sender);
  }

  private complete(slot: number, now: number): void {
    this.slotSeq[slot] = -1;
    this.inFlight--;
    this.delivered++;
    this.m.deliver(this.sentAt[slot]!, now, this.size * this.liveReceivers);
    if (this.sending) this.toSend++;
  }

  /** Sends up to n messages (fewer when a slot is still busy: then the window is full). */
  private sendMany(n: number): void {
    const sender = this.sender;
    if (sender === undefined || sender.state !== 'OPEN') return;
    const now = performance.now();
    sender.cork();
    for (let k = 0; k < n; k++) {
      const seq = this.nextSeq;
      const slot = seq % this.depth;
      if (this.slotSeq[slot] !== -1) break;
      this.nextSeq++;
      const frame = this.frames[slot]!;
      this.writeSequence(frame, seq);
      this.slotSeq[slot] = seq;
      this.slotReceipts[slot] = 0;
      this.sentAt[slot] = now;
      this.inFlight++;
      this.sent++;
      sender.write(frame);
    }
    sender.uncork();
  }

  /** Writes the number's digits into the masked payload: digit i XOR key[i mod 4] (RFC 6455 §5.3). */
  private writeSequence(frame: Buffer, seq: number): void {
    const at = this.payloadAt;
    let rest = seq;
    for (let i = SEQUENCE_DIGITS - 1; i >= 0; i--) {
      const digit = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
      frame[at + i] = digit ^ frame[at - 4 + (i & 3)]!;
    }
  }
}

export async function runFanout(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  return new FanoutWorkload(options, m).run(signal);
}
