/**
 * The end-of-turn flush: the flushers of socket endpoints that have something to write are flushed together, once
 * per turn of the event loop, after every read of that turn has been handled (Netty's flush consolidation, at the
 * scale of the event loop instead of one channel).
 *
 * Why: a turn of Node's loop delivers the reads of every socket that was ready (libuv's poll phase calls them one
 * after the other), then runs `setImmediate` callbacks (the check phase). When each connection writes its answer
 * right after its own read, the answers leave one by one, spread over the whole turn; a peer on another core that
 * went to sleep after taking the previous one must be woken again by the next write. On a virtual machine that
 * wake-up is an inter-processor interrupt, and the writer pays for it in its write system call (15-30 µs on the
 * benchmark machine: perf/RESULTS.md, "Server CPU per operation near raw node:net"). Written back to back at the
 * end of the turn, the answers find the peer already awake after the first, and a peer that is awake takes more
 * of them per wake-up. Measured: 2-6x fewer wake-ups per request or message under load; server CPU per HTTP
 * request and per echoed message down 5-8% (perf/RESULTS.md).
 *
 * What it costs: one `setImmediate` per turn that writes (not per write), and the answers of a turn wait for the
 * turn's other reads to be handled (at most one turn of the loop; under light load the turn holds one read and
 * the answer leaves at once after it). Writes stay in order per endpoint; nothing about completion changes.
 */
import { setImmediate } from 'node:timers';

/** What the end-of-turn flush calls: a flusher that flushes if it still has a scheduled flush. */
export interface TurnFlushable {
  flushScheduled(): void;
}

let queue: TurnFlushable[] = [];
let spare: TurnFlushable[] = [];
let scheduled = false;

/**
 * Flushes `flusher` at the end of this turn of the event loop, with every other flusher queued in the turn. A flusher
 * queued twice is flushed once (the second call finds nothing scheduled). Queued from an end-of-turn flush itself
 * (a write completion callback that writes again), it waits for the next turn.
 */
export function flushAtEndOfTurn(flusher: TurnFlushable): void {
  queue.push(flusher);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushTurn);
  }
}

/** @internal The end-of-turn flush itself (exported for its test). */
export function flushTurn(): void {
  scheduled = false;
  // Swap: flushers queued while these flush go to the other array (and the next turn); no allocation per turn.
  const flushers = queue;
  queue = spare;
  spare = flushers;
  let thrown: { error: unknown } | undefined;
  for (let i = 0; i < flushers.length; i++) {
    // A flusher does not throw (a failing transport fails its writes; callback errors go to its endpoint). Should
    // one throw anyway, the others still flush (none is left scheduled forever) and the error is thrown after.
    try {
      flushers[i]!.flushScheduled();
    } catch (error) {
      thrown ??= { error };
    }
  }
  flushers.length = 0;
  if (thrown !== undefined) throw thrown.error;
}
