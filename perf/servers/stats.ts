/**
 * Routes shared by the echo servers. `/stats`: the process's memory as JSON, after a full GC when the server
 * runs with `--expose-gc`, so that `heapUsed` is the live heap (what perf/ws-memory and `quay-load idle
 * --heap-url` read); without --expose-gc the figures include garbage and `gc` is false in the answer.
 * `/heapsnapshot`: writes a V8 heap snapshot into the server's working directory and answers its path (what
 * `npm run profile -- heap` diffs). Benchmark servers listen on 127.0.0.1 only.
 */
import { resolve } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';

/** The shape of the JSON answer; `process.memoryUsage()` plus whether a GC ran first. */
export interface MemoryStats {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  gc: boolean;
}

type GcFunction = () => void;

/** Runs a full GC (twice: the first pass can leave objects that weak callbacks freed) and reads the memory. */
export function memoryStats(): MemoryStats {
  const gc = (globalThis as { gc?: GcFunction }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, gc: gc !== undefined };
}

/** `memoryStats()` as the JSON body of the /stats route. */
export function memoryStatsJson(): string {
  return `${JSON.stringify(memoryStats())}\n`;
}

/** Writes a heap snapshot (V8 collects garbage first) and returns its absolute path, as the /heapsnapshot body. */
export function heapSnapshotPath(): string {
  return `${resolve(writeHeapSnapshot())}\n`;
}
