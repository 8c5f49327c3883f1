import { performance } from 'node:perf_hooks';

/** How often owed sends are released, in ms. */
const TICK_MS = 1;
/** Tokens kept for a late tick, in ms of the rate: enough to catch up one delayed timer, not a long burst. */
const BURST_MS = 10;

/**
 * Open-loop pacing for `--rate` (as wrk2's and autocannon's `-R`): at most `rate` requests (messages) a second over
 * the whole run, whatever the server could take. A request-response workload asks {@link offer} to send the `n`
 * requests whose answers just arrived on connection `i`: what the token bucket allows goes at once (through
 * `send(i, n)`), the rest is owed to that connection and released, oldest first, by a timer every millisecond as
 * tokens accrue. Tokens accrue with the clock (`rate` per second, at most {@link BURST_MS} worth kept), so a
 * late timer tick sends a little more, and the average holds.
 *
 * Why the harness has it: server CPU per operation depends on the rate it runs at. A server that is slower than the
 * load generator leaves the generator waiting, so each of its writes has to wake the generator's thread on the
 * other core (an inter-processor interrupt, a VM exit in a virtual machine, charged to the sender), while a server
 * faster than the generator writes to a thread that is already running. Comparing two servers' CPU per
 * operation at the same rate, below what either can take, removes that difference (perf/RESULTS.md).
 *
 * Latency stays the time from the send to the answer: the wait for a token is not counted.
 */
export class PacedSender {
  private tokens: number;
  private last: number;
  /** Sends owed per connection. */
  private readonly owed: Uint32Array;
  /** Connections with sends owed, oldest first (a connection appears once, when its count goes from 0). */
  private readonly waiting: number[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Requests per second, > 0. */
    readonly rate: number,
    connections: number,
    private readonly send: (i: number, n: number) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a finite number > 0, got ${rate}`);
    this.owed = new Uint32Array(connections);
    this.tokens = 0;
    this.last = this.now();
  }

  /** Sends owed now, over all connections. */
  get backlog(): number {
    let n = 0;
    for (let k = this.head; k < this.waiting.length; k++) n += this.owed[this.waiting[k]!]!;
    return n;
  }

  /** Starts releasing owed sends (the timer); the bucket starts empty, so the first sends wait for tokens. */
  start(): void {
    this.last = this.now();
    this.tokens = 0;
    this.timer ??= setInterval(() => this.release(), TICK_MS);
  }

  /** Stops the timer and forgets what was owed (the run is over). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.owed.fill(0);
    this.waiting.length = 0;
    this.head = 0;
  }

  /** `n` requests are due on connection `i`: sends what the bucket allows now, owes the rest (after any owed before). */
  offer(i: number, n: number): void {
    if (n === 0) return;
    const before = this.owed[i]!;
    // Behind what is owed already (on this connection or others): first come, first sent.
    const granted = before === 0 && this.head === this.waiting.length ? this.take(n) : 0;
    if (granted !== 0) this.send(i, granted);
    if (granted === n) return;
    this.owed[i] = before + n - granted;
    if (before === 0) this.waiting.push(i);
  }

  /** Connection `i` ended: nothing is owed to it any more. */
  drop(i: number): void {
    this.owed[i] = 0;
  }

  /** Releases owed sends in order while tokens last (the timer calls it; tests call it with their own clock). */
  release(): void {
    const waiting = this.waiting;
    while (this.head < waiting.length) {
      const i = waiting[this.head]!;
      const due = this.owed[i]!;
      if (due === 0) {
        this.head++; // dropped
        continue;
      }
      const granted = this.take(due);
      if (granted === 0) break;
      this.owed[i] = due - granted;
      this.send(i, granted);
      if (granted < due) break;
      this.head++;
    }
    if (this.head === waiting.length) {
      waiting.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > waiting.length) {
      waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Up to `n` whole tokens, after adding those accrued since the last call. */
  private take(n: number): number {
    const now = this.now();
    const cap = Math.max(1, (this.rate * BURST_MS) / 1000);
    this.tokens = Math.min(cap, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    const granted = Math.min(n, Math.floor(this.tokens));
    this.tokens -= granted;
    return granted;
  }
}
