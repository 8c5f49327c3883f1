/**
 * The stamp a server puts at the start of a broadcast for quay-load's idle workload to time it: `SEQ:SENT`, two
 * runs of ASCII decimal digits (valid text), SEQ a sequence number and SENT the sender's wall-clock time in
 * microseconds since the Unix epoch. Anything after SENT (a space, more payload) is ignored.
 *
 * The latency of a delivery is the receiver's wall clock minus SENT: both ends read the same system clock when
 * they run on one machine (different processes: `performance.timeOrigin` + `performance.now()`, which agree to
 * well under a millisecond); across machines it is only as good as their clock synchronisation.
 */
import { performance } from 'node:perf_hooks';

/** Broadcasts tracked one by one (deliveries and last receipt per sequence number); later ones are only timed. */
export const MAX_TRACKED_BROADCASTS = 4096;

/** Digits of SENT: microseconds since the epoch have 16 digits until the year 2286. */
const MAX_DIGITS = 17;

/** Now, in microseconds since the Unix epoch (fractional), from the monotonic clock anchored at the time origin. */
export function epochMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** The stamp for broadcast `seq` sent now (or at `sentUs`), as text. */
export function broadcastStamp(seq: number, sentUs: number = epochMicros()): string {
  return `${Math.trunc(seq)}:${Math.trunc(sentUs)}`;
}

/** A parsed stamp; `seq` is -1 when the bytes do not start with one. Reused by {@link readBroadcastStamp}. */
export interface BroadcastStamp {
  seq: number;
  sentUs: number;
}

/**
 * Reads the stamp at the start of `data` into `into` (no allocation: it runs once per received message);
 * returns false (and `into.seq = -1`) when `data` does not start with `digits:digits`.
 */
export function readBroadcastStamp(data: Uint8Array, into: BroadcastStamp): boolean {
  into.seq = -1;
  let i = 0;
  let seq = 0;
  const n = data.length;
  for (; i < n && i < MAX_DIGITS; i++) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) break;
    seq = seq * 10 + d;
  }
  if (i === 0 || i >= n || data[i] !== 0x3a /* : */) return false;
  const start = ++i;
  let sent = 0;
  for (; i < n && i - start < MAX_DIGITS; i++) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) break;
    sent = sent * 10 + d;
  }
  if (i === start) return false;
  into.seq = seq;
  into.sentUs = sent;
  return true;
}
