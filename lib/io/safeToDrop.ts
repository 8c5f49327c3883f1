import type { WriteCallback } from './WriteFlusher.js';

/**
 * "Every Promise that quay returns is safe to ignore" (design.md, Bounds), in one place: a rejection nobody awaits
 * (a fire-and-forget `end()` or `sendText()` to a peer that left, a `connect()` to a server that is down) never
 * reaches `unhandledRejection`; who awaits the Promise still sees the rejection.
 */

/** The rejection handler that marks a Promise handled. */
export function handled(): void {}

/** Marks `promise`'s rejection handled and returns it (for Promises that are made anyway). */
export function safeToDrop<T>(promise: Promise<T>): Promise<T> {
  promise.catch(handled);
  return promise;
}

/**
 * A Promise settled by a write-style callback: `start(callback)` issues the write; the Promise resolves on
 * `callback(null)` and rejects with `mapError(error)` (default: the error itself). It is marked handled only when
 * it rejects, so a write that succeeds costs no second Promise (this runs per response and per message). The
 * callback may run before `new Promise` returns (a write refused at once): it is marked right after then.
 */
export function settleWrite(start: (callback: WriteCallback) => unknown, mapError?: (error: Error) => Error): Promise<void> {
  let promise: Promise<void> | undefined;
  let failedEarly = false;
  promise = new Promise<void>((resolve, reject) => {
    start((error) => {
      if (error === null) return resolve();
      if (promise === undefined) failedEarly = true;
      else promise.catch(handled);
      reject(mapError === undefined ? error : mapError(error));
    });
  });
  if (failedEarly) promise.catch(handled);
  return promise;
}
