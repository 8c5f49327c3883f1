/** The pubsub tests' helpers: sessions that record what they are sent (perf/pubsub/members.ts), bounded waits. */
export { member, texts } from '../../perf/pubsub/members.js';
export type { Member, Received } from '../../perf/pubsub/members.js';

/** Resolves once `condition()` is true, checking every 10 ms for at most `timeoutMs` (then rejects with `what`). */
export async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    if (condition()) return;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}
