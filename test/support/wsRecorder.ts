/** Test helpers for WebSocket sessions: a recording listener and a bounded wait. */
import type { WebSocketListener } from '../../lib/websocket/WebSocketListener.js';
import type { WebSocketSession } from '../../lib/websocket/WebSocketSession.js';

/** A listener that records every event and lets a test await the next message, the close, a pong. */
export class Recorder implements WebSocketListener {
  readonly events: string[] = [];
  readonly errors: Error[] = [];
  private readonly inbox: (string | Buffer)[] = [];
  private waiting: ((message: string | Buffer) => void) | undefined;
  private pongWaiting: ((payload: string) => void) | undefined;
  private closeResolve!: (result: [number, string]) => void;
  readonly closed = new Promise<[number, string]>((resolve) => (this.closeResolve = resolve));

  onOpen(): void {
    this.events.push('open');
  }
  onText(_s: WebSocketSession, text: string): void {
    this.events.push(`text:${text.length > 32 ? text.length : text}`);
    this.deliver(text);
  }
  onBinary(_s: WebSocketSession, data: Buffer): void {
    this.events.push(`binary:${data.length}`);
    this.deliver(Buffer.from(data));
  }
  onPing(_s: WebSocketSession, payload: Buffer): void {
    this.events.push(`ping:${payload.toString()}`);
  }
  onPong(_s: WebSocketSession, payload: Buffer): void {
    this.events.push(`pong:${payload.toString()}`);
    const waiter = this.pongWaiting;
    this.pongWaiting = undefined;
    waiter?.(payload.toString());
  }
  onClose(_s: WebSocketSession, code: number, reason: string): void {
    this.events.push(`close:${code}`);
    this.closeResolve([code, reason]);
  }
  onError(_s: WebSocketSession, error: Error): void {
    this.errors.push(error);
  }

  next(): Promise<string | Buffer> {
    const queued = this.inbox.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => (this.waiting = resolve));
  }
  nextPong(): Promise<string> {
    return new Promise((resolve) => (this.pongWaiting = resolve));
  }
  private deliver(message: string | Buffer): void {
    const waiter = this.waiting;
    if (waiter === undefined) {
      this.inbox.push(message);
      return;
    }
    this.waiting = undefined;
    waiter(message);
  }
}

/** Waits (bounded) until `check` holds; for counters that settle a few ticks after an event. */
export async function eventually(check: () => boolean, rounds = 200): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return check();
}
