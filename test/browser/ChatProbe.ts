/**
 * A chat member without a browser: a WebSocket client (quay's) that records what the room sends and lets a test
 * await the next message of a type. For the protocol checks that need no page.
 */
import type { WebSocketListener } from '../../lib/websocket/WebSocketListener.js';
import type { WebSocketSession } from '../../lib/websocket/WebSocketSession.js';

/** A server message, loosely typed for assertions. */
export interface Received {
  type: string;
  [field: string]: unknown;
}

interface Waiter {
  type: string;
  resolve: (message: Received) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class ChatProbe implements WebSocketListener {
  private readonly inbox: Received[] = [];
  private waiter: Waiter | undefined;
  private closeResolve!: (result: [number, string]) => void;
  readonly closed = new Promise<[number, string]>((resolve) => (this.closeResolve = resolve));

  onText(_session: WebSocketSession, text: string): void {
    const message = JSON.parse(text) as Received;
    const waiter = this.waiter;
    if (waiter !== undefined && waiter.type === message.type) {
      this.waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.resolve(message);
      return;
    }
    this.inbox.push(message);
  }

  onClose(_session: WebSocketSession, code: number, reason: string): void {
    this.closeResolve([code, reason]);
    const waiter = this.waiter;
    if (waiter === undefined) return;
    this.waiter = undefined;
    clearTimeout(waiter.timer);
    waiter.reject(new Error(`closed (${code}) while waiting for a '${waiter.type}' message`));
  }

  /**
   * The first message of `type` (earlier messages of other types are kept for later calls). Rejects after
   * `timeoutMs` so that a test fails instead of hanging.
   */
  next(type: string, timeoutMs = 3000): Promise<Received> {
    const index = this.inbox.findIndex((m) => m.type === type);
    if (index >= 0) return Promise.resolve(this.inbox.splice(index, 1)[0]!);
    if (this.waiter !== undefined) return Promise.reject(new Error('one next() at a time'));
    return new Promise<Received>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no '${type}' message within ${timeoutMs} ms (inbox: ${JSON.stringify(this.inbox)})`));
      }, timeoutMs);
      this.waiter = { type, resolve, reject, timer };
    });
  }

  /**
   * The first message of `type` for which `test` holds, skipping (and dropping) the others of that type: for a
   * member that also receives messages a test does not wait for. Bounded: at most 1000 messages, `timeoutMs`.
   */
  async nextWhere(type: string, test: (message: Received) => boolean, timeoutMs = 5000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 1000; i++) {
      const message = await this.next(type, Math.max(1, deadline - Date.now()));
      if (test(message)) return message;
    }
    throw new Error(`no matching '${type}' message in 1000`);
  }

  /** Forgets the messages received and not taken. */
  clear(): void {
    this.inbox.length = 0;
  }

  /** Messages received and not taken by `next`. */
  get pending(): readonly Received[] {
    return this.inbox;
  }
}
