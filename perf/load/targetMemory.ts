/** The target's memory, for the idle workload's bytes per connection. */
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';

/** How an https:// heap URL is verified: the run's --ca and --insecure. */
export interface HeapUrlTls {
  ca?: string | undefined;
  rejectUnauthorized: boolean;
}

/** Resident set size of a process in bytes, from /proc/PID/status (VmRSS, in kB); undefined where unavailable. */
export function readRss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * The target's heap in bytes, from a URL answering JSON with a numeric `heapUsed` (what
 * `process.memoryUsage()` returns; a server started with --expose-gc should call gc() first for a stable figure).
 * Undefined when the URL does not answer that within the timeout. An https:// URL is verified as `tls` says.
 */
export function fetchHeapUsed(url: string, timeoutMs = 2000, tls: HeapUrlTls = { rejectUnauthorized: true }): Promise<number | undefined> {
  return new Promise((resolve) => {
    const options = { timeout: timeoutMs, agent: false };
    const onResponse = (response: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        try {
          const heap = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { heapUsed?: unknown }).heapUsed;
          resolve(response.statusCode === 200 && typeof heap === 'number' && Number.isFinite(heap) ? heap : undefined);
        } catch {
          resolve(undefined);
        }
      });
      response.on('error', () => resolve(undefined));
    };
    const request = url.startsWith('https:')
      ? httpsGet(url, { ...options, rejectUnauthorized: tls.rejectUnauthorized, ...(tls.ca === undefined ? {} : { ca: tls.ca }) }, onResponse)
      : get(url, options, onResponse);
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}
