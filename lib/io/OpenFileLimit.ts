import { closeSync, openSync, readFileSync } from 'node:fs';

/**
 * The process's open-file limit, and a probe for having reached it.
 *
 * Why quay needs it: at the open-file limit, `accept()` fails with EMFILE, and libuv handles that on its own (it
 * closes a reserved descriptor, accepts the pending connection and closes it at once, so the listener does not
 * spin): the peer sees its connection closed, and Node's `net.Server` reports nothing, no `'error'`, no
 * `'connection'`. Left alone, a server at its limit drops every new client silently. So quay (1) derives a
 * default `maxConnections` from the limit, leaving a reserve of descriptors for files, outbound connections and
 * pipes, and refuses past it itself, where it can count (`stats().refusedAtLimit`); and (2) probes once a second
 * while listening (one open and close of /dev/null, whatever the number of endpoints: files and outbound sockets
 * use descriptors too) whether one more descriptor can be opened, to count the time spent at the limit
 * (`stats().openFileLimitHits`) when something else used the reserve.
 */

/** Descriptors kept out of the default `maxConnections` for everything that is not an accepted connection. */
export const DEFAULT_FILE_DESCRIPTOR_RESERVE = 128;

let cachedLimit: number | null | undefined;

/**
 * The soft limit on open files of this process (`ulimit -n`, RLIMIT_NOFILE), read from `/proc/self/limits` on
 * Linux once and cached; `undefined` where it cannot be read (another OS) or is unlimited.
 */
export function openFileLimit(): number | undefined {
  if (cachedLimit === undefined) cachedLimit = readOpenFileLimit() ?? null;
  return cachedLimit ?? undefined;
}

/** Reads the soft limit now (uncached); `undefined` when unknown or unlimited. */
export function readOpenFileLimit(): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'latin1');
  } catch {
    return undefined;
  }
  // "Max open files            20000                20000                files"
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (match === null || match[1] === 'unlimited') return undefined;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * The default `maxConnections` for a process with this open-file limit: the limit less the reserve (at least half
 * of the limit is always left to connections); `Infinity` when the limit is unknown.
 */
export function defaultMaxConnections(limit: number | undefined, reserve = DEFAULT_FILE_DESCRIPTOR_RESERVE): number {
  if (limit === undefined) return Infinity;
  return Math.max(Math.floor(limit / 2), limit - reserve);
}

/**
 * True when the process cannot open one more file descriptor now (EMFILE or ENFILE): new connections are then
 * being dropped before quay sees them. Costs one open and close of /dev/null.
 */
export function isAtOpenFileLimit(): boolean {
  let fd: number;
  try {
    fd = openSync('/dev/null', 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE';
  }
  closeSync(fd);
  return false;
}
