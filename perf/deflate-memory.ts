/**
 * `npm run bench:deflate-memory`: memory per compressing WebSocket session, quay against ws, both with
 * permessage-deflate (the /echo-deflate route of perf/servers: threshold 1024 on both).
 *
 *   npm run build && node dist/perf/deflate-memory.js [--connections 1000] [--size 16384] [--seconds 8] [--runs 3]
 *
 * Each run: a fresh server (`node --expose-gc`, pinned to the server core), warmed up by a short compressed echo,
 * its memory read after a full GC (/stats); then `quay-load echo --deflate` with N connections, one 16 KiB
 * compressible text message in flight each, on the load core; at 70% of the measured window, while every session
 * is open and busy, the memory is read again (after a full GC). Reported per session: RSS delta, live heap delta
 * and external delta (Node reports zlib's allocations to V8 as external memory), and the echo rate of the run.
 * The servers alternate (quay, ws, quay, ws, ...); each figure is the median of the runs.
 *
 * The load client offers no context takeover either way, so ws too may reset its streams after each message;
 * what remains is what each design keeps per session.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PERF_DIR, fmt, median, runLoad } from './lib.js';
import { httpGet, startServerProcess } from './serverProcess.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1000' },
    size: { type: 'string', default: '16384' },
    seconds: { type: 'string', default: '8' },
    runs: { type: 'string', default: '3' },
  },
});

const CLI = join(PERF_DIR, 'load', 'cli.js');
const SERVERS = [
  { name: 'quay', script: 'echo-quay' },
  { name: 'ws', script: 'echo-ws' },
] as const;

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
}

interface Sample {
  rss: number;
  heap: number;
  external: number;
  rate: number;
  errors: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function stats(port: number): Promise<Memory> {
  const s = JSON.parse(await httpGet(port, '/stats')) as Memory & { gc: boolean };
  if (!s.gc) throw new Error('the server has no gc(): start it with --expose-gc');
  return s;
}

function loadArgs(port: number, connections: number, size: number, seconds: number, warmup: number): string[] {
  return [CLI, 'echo', '--url', `ws://127.0.0.1:${port}/echo-deflate`, '--deflate', '-c', String(connections), '--inflight', '1',
    '--size', String(size), '--duration', String(seconds), '--warmup', String(warmup), '--json', '--quiet'];
}

async function measure(script: string, connections: number, size: number, seconds: number): Promise<Sample> {
  const server = await startServerProcess(script, { nodeFlags: ['--expose-gc'] });
  try {
    await runLoad(process.execPath, loadArgs(server.port, 50, size, 1, 0));
    await sleep(300);
    const before = await stats(server.port);
    const load = runLoad(process.execPath, loadArgs(server.port, connections, size, seconds, 1));
    await sleep((1 + seconds * 0.7) * 1000);
    const during = await stats(server.port);
    const report = JSON.parse(await load) as { rate: number; errors: Record<string, number> };
    const errors = Object.values(report.errors).reduce((a, b) => a + b, 0);
    return {
      rss: (during.rss - before.rss) / connections,
      heap: (during.heapUsed - before.heapUsed) / connections,
      external: (during.external - before.external) / connections,
      rate: report.rate,
      errors,
    };
  } finally {
    await server.stop();
  }
}

const connections = Number(values.connections);
const size = Number(values.size);
const seconds = Number(values.seconds);
const runs = Math.max(1, Number(values.runs));
const samples = new Map<string, Sample[]>(SERVERS.map((s) => [s.name, []]));
for (let run = 0; run < runs; run++) {
  for (const s of SERVERS) {
    const sample = await measure(s.script, connections, size, seconds);
    samples.get(s.name)!.push(sample);
    console.error(`${s.name} run ${run + 1}: ${fmt(sample.rss)} B RSS, ${fmt(sample.heap)} B heap, ${fmt(sample.external)} B external per session, ${fmt(sample.rate)} msgs/s, ${sample.errors} errors`);
  }
}
console.log(`\nMemory per compressing session, Node ${process.version}, ${fmt(connections)} sessions echoing ${fmt(size)} B of text with permessage-deflate, median of ${runs} run(s)\n`);
console.log('| server | RSS / session | RSS per run | heap / session | external / session | echo msgs/s | errors |');
console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: |');
for (const s of SERVERS) {
  const xs = samples.get(s.name)!;
  const m = (f: (x: Sample) => number): string => fmt(median(xs.map(f)));
  console.log(
    `| ${s.name} | ${m((x) => x.rss)} B | ${xs.map((x) => fmt(x.rss)).join(', ')} | ${m((x) => x.heap)} B | ${m((x) => x.external)} B | ${m((x) => x.rate)} | ${xs.reduce((a, x) => a + x.errors, 0)} |`,
  );
}
