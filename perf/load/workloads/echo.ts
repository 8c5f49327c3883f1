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
import { workloadRun } from '../report.js';
import type { WorkloadRun } from '../report.js';
import { parseTarget } from '../target.js';
import { CLIENT_FRAMES, LOAD_DEFLATE } from '../WsLoadClient.js';
import type { WsLoadClient } from '../WsLoadClient.js';
import { InFlightLedger } from './InFlightLedger.js';
import { PacedSender } from './PacedSender.js';
import { TrafficRun } from './TrafficRun.js';
import type { Traffic } from './TrafficRun.js';
import { WsWorkload } from './WsWorkload.js';

/** The payload of every message: printable ASCII (valid UTF-8 for text messages). */
export function payloadOf(size: number): Buffer {
  const payload = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) payload[i] = 0x61 + (i % 26);
  return payload;
}

/** One client frame of `payload`, compressed (RSV1, RFC 7692 §6) when `deflate` and it shrinks. */
export function encodeMessage(opcode: DataOpCode, payload: Buffer, deflate: boolean): Buffer {
  const compressed = deflate ? LOAD_DEFLATE.compress(payload) : undefined;
  return compressed === undefined ? CLIENT_FRAMES.encode(opcode, payload)[0]! : CLIENT_FRAMES.encode(opcode, compressed, true, true)[0]!;
}

export class EchoWorkload extends WsWorkload implements Traffic {
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
  /** The messages in flight per connection; an echo comes back in send order. */
  private readonly ledger: InFlightLedger;
  private readonly traffic = new TrafficRun(this);
  /** `--rate`: sends paced to at most that many messages a second; otherwise every echo sends the next at once. */
  private readonly pacer: PacedSender | undefined;
  private sending = false;

  constructor(options: LoadOptions, m: Measurement) {
    super(options, parseTarget(options.url), m);
    this.depth = options.inflight;
    this.size = options.size;
    this.opcode = options.binary ? OpCode.BINARY : OpCode.TEXT;
    this.frames = new RepeatedBytes(encodeMessage(this.opcode, payloadOf(this.size), options.deflate), this.depth);
    this.ledger = new InFlightLedger(options.connections, this.depth);
    this.pacer = options.rate === undefined ? undefined : new PacedSender(options.rate, options.connections, (i, n) => this.sendOn(i, n));
  }

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    await this.openAll(o.connections, signal);
    if (!this.noneOpened) await this.traffic.run(o, this.m, signal);
    await this.closeAll(signal?.aborted === true ? 200 : 2000);
    return workloadRun(
      o,
      o.connections,
      this.m,
      { warmupSec: o.warmupSec, inflight: this.depth, size: this.size, binary: o.binary, sent: this.ledger.sent, received: this.ledger.received },
      signal,
    );
  }

  onMessage(client: WsLoadClient, opcode: DataOpCode, data: Buffer): void {
    const i = client.index;
    // Nothing in flight: not an echo (a greeting some servers send on open); ignored.
    if (this.ledger.inFlightOn(i) === 0) return;
    if (opcode !== this.opcode || data.length !== this.size) {
      client.fail('protocol', `an echo of ${data.length} bytes (opcode ${opcode}), ${this.size} expected`);
      return;
    }
    this.m.deliver(this.ledger.answer(i, client.readAt), client.readAt, data.length);
    if (this.sending) this.ledger.queue(i);
  }

  onReadComplete(client: WsLoadClient): void {
    const n = this.ledger.takeQueued(client.index);
    if (n !== 0) {
      if (this.pacer === undefined) this.send(client, n);
      else this.pacer.offer(client.index, n);
    }
    this.traffic.checkDrained();
  }

  protected override lost(client: WsLoadClient): void {
    this.ledger.drop(client.index);
    this.pacer?.drop(client.index);
    this.traffic.checkDrained();
  }

  // ------------------------------------------------------------------------------------------------ Traffic

  canSend(): boolean {
    return true;
  }

  startSending(): void {
    this.sending = true;
    const pacer = this.pacer;
    pacer?.start();
    for (const client of this.openClients()) {
      if (pacer === undefined) this.send(client, this.depth);
      else pacer.offer(client.index, this.depth);
    }
  }

  stopSending(): void {
    this.sending = false;
    this.pacer?.stop();
  }

  get settled(): boolean {
    return this.ledger.settled;
  }

  countUnanswered(waitMs: number): void {
    for (const client of this.openClients()) {
      const n = this.ledger.inFlightOn(client.index);
      if (n !== 0) this.m.error('timeout', `${n} messages not echoed ${waitMs} ms after the end of the run`);
    }
  }

  /** A connection whose messages go unanswered for the timeout counts one timeout and is dropped. */
  watch(): void {
    const now = performance.now();
    const limit = this.options.timeoutSec * 1000;
    for (const client of this.openClients()) {
      if (this.ledger.overdue(client.index, now, limit)) {
        client.fail('timeout', `no echo for ${this.options.timeoutSec} s with ${this.ledger.inFlightOn(client.index)} messages in flight`);
      }
    }
  }

  /** The pacer's sends: connection `i` is still open (a lost one was dropped from the pacer). */
  private sendOn(i: number, n: number): void {
    const client = this.clients[i];
    if (client !== undefined && client.state === 'OPEN') this.send(client, n);
  }

  /** Sends n messages on a connection, stamping their send time (one clock read for the batch). */
  private send(client: WsLoadClient, n: number): void {
    this.ledger.sendMany(client.index, n, performance.now());
    this.frames.writeTo(client, n);
  }
}

export async function runEcho(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  return new EchoWorkload(options, m).run(signal);
}
