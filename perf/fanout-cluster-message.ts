/**
 * The messages of `npm run bench:fanout-cluster` and the clock they carry. A message is 64 ASCII bytes (valid text):
 * `PUBLISHER:SEQUENCE:SENT_US:` padded with `.`, where SENT_US is the publisher's send time in microseconds of the
 * machine's monotonic clock (CLOCK_MONOTONIC, the same in every process of the machine: `process.hrtime`), so a
 * subscriber in another process subtracts it from its own receive time to get the delivery latency.
 */
import { performance } from 'node:perf_hooks';

/** Bytes of every message (as the fan-out of `npm run bench`: 64 B text). */
export const MESSAGE_BYTES = 64;

/**
 * performance.now() is this process's monotonic clock from its own origin; this offset turns it into the machine's
 * (process.hrtime's CLOCK_MONOTONIC), which every process shares. Measured once: both clocks are the same clock.
 */
const MONOTONIC_OFFSET_MS = Number(process.hrtime.bigint()) / 1e6 - performance.now();

/** The machine's monotonic clock in ms (fractional), comparable between processes. */
export function monotonicMs(): number {
  return performance.now() + MONOTONIC_OFFSET_MS;
}

/** A performance.now() value of this process on the machine's monotonic clock. */
export function toMonotonicMs(performanceNow: number): number {
  return performanceNow + MONOTONIC_OFFSET_MS;
}

const PADDING = '.'.repeat(MESSAGE_BYTES);

/** The message `publisher:sequence:sentUs:` padded to {@link MESSAGE_BYTES}. */
export function encodeMessage(publisher: number, sequence: number, sentMs: number): string {
  const head = `${publisher}:${sequence}:${Math.round(sentMs * 1000)}:`;
  return head + PADDING.slice(head.length);
}

/** A parsed message; one object reused by the parser (no allocation per message). */
export interface ParsedMessage {
  publisher: number;
  sequence: number;
  /** Send time on the machine's monotonic clock, ms. */
  sentMs: number;
}

/** Parses the three numbers at the start of `data` (bytes or a string) into `out`; false when it is not ours. */
export function parseMessage(data: Buffer | string, out: ParsedMessage): boolean {
  const length = data.length;
  if (length !== MESSAGE_BYTES) return false;
  let field = 0;
  let value = 0;
  let digits = 0;
  const bytes = typeof data === 'string';
  for (let i = 0; i < length; i++) {
    const c = bytes ? (data as string).charCodeAt(i) : (data as Buffer)[i]!;
    if (c === 0x3a) {
      if (digits === 0) return false;
      if (field === 0) out.publisher = value;
      else if (field === 1) out.sequence = value;
      else {
        out.sentMs = value / 1000;
        return true;
      }
      field++;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      digits++;
    } else {
      return false;
    }
  }
  return false;
}
