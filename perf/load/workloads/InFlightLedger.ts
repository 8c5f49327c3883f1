/**
 * The books of a request-response workload whose answers come back in send order on each connection (an echo
 * per message; pipelined HTTP responses in request order, RFC 9112 §9.3.2): per connection a ring of the send
 * times of the `depth` requests it may have in flight, their count, the answers of the current read whose next
 * request is still to be sent, and the time of the last activity (for the timeout watchdog); plus the totals.
 * Typed arrays indexed by the connection's index, allocated once: nothing is allocated per message.
 */
export class InFlightLedger {
  /** Requests sent, answered, and lost (in flight on a connection that ended). */
  sent = 0;
  received = 0;
  lost = 0;
  private readonly depth: number;
  private readonly sentAt: Float64Array;
  private readonly headSlot: Uint32Array;
  private readonly tailSlot: Uint32Array;
  private readonly inFlight: Uint32Array;
  private readonly toSend: Uint32Array;
  private readonly lastActivity: Float64Array;

  constructor(connections: number, depth: number) {
    this.depth = depth;
    this.sentAt = new Float64Array(connections * depth);
    this.headSlot = new Uint32Array(connections);
    this.tailSlot = new Uint32Array(connections);
    this.inFlight = new Uint32Array(connections);
    this.toSend = new Uint32Array(connections);
    this.lastActivity = new Float64Array(connections);
  }

  /** Every request sent was answered or lost. */
  get settled(): boolean {
    return this.sent === this.received + this.lost;
  }

  /** Requests neither answered nor lost. */
  get outstanding(): number {
    return this.sent - this.received - this.lost;
  }

  /** Requests in flight on connection `i`. */
  inFlightOn(i: number): number {
    return this.inFlight[i]!;
  }

  /** `n` requests were sent on connection `i` at `now` (one clock read for the batch). */
  sendMany(i: number, n: number, now: number): void {
    const depth = this.depth;
    const base = i * depth;
    let slot = this.headSlot[i]!;
    for (let k = 0; k < n; k++) {
      this.sentAt[base + slot] = now;
      slot = slot + 1 === depth ? 0 : slot + 1;
    }
    this.headSlot[i] = slot;
    if (this.inFlight[i] === 0) this.lastActivity[i] = now;
    this.inFlight[i]! += n;
    this.sent += n;
  }

  /** The oldest request in flight on `i` (there must be one) was answered at `now`; returns its send time. */
  answer(i: number, now: number): number {
    const slot = this.tailSlot[i]!;
    this.tailSlot[i] = slot + 1 === this.depth ? 0 : slot + 1;
    this.inFlight[i]!--;
    this.received++;
    this.lastActivity[i] = now;
    return this.sentAt[i * this.depth + slot]!;
  }

  /** One more request to send on `i` once the current read is done. */
  queue(i: number): void {
    this.toSend[i]!++;
  }

  /** The requests queued on `i` since the last call. */
  takeQueued(i: number): number {
    const n = this.toSend[i]!;
    if (n !== 0) this.toSend[i] = 0;
    return n;
  }

  /** Connection `i` ended: what it had in flight is lost, and its slot starts afresh (it may be reopened). */
  drop(i: number): void {
    this.lost += this.inFlight[i]!;
    this.inFlight[i] = 0;
    this.toSend[i] = 0;
    this.headSlot[i] = this.tailSlot[i] = 0;
  }

  /** Connection `i` has had requests in flight and no answer for more than `limitMs` at `now`. */
  overdue(i: number, now: number, limitMs: number): boolean {
    return this.inFlight[i] !== 0 && now - this.lastActivity[i]! > limitMs;
  }
}
