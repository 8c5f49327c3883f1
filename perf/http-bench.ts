/**
 * HTTP hello world, quay against node:http, side by side in one run.
 *
 *   npm run build && node dist/perf/http-bench.js [--pairs 3] [--seconds 5] [--connections 100] [--tools wrk,autocannon]
 *
 * For each load tool and pipelining depth (1 and 10) it alternates quay and node:http A B A B (`--pairs`),
 * each server in a fresh process pinned to core 0 and the load generator to core 1 (taskset), and prints
 * medians and per-pair ratios. A raw node:net responder is measured once per configuration as the ceiling of
 * the load generator on this machine. autocannon is client-bound here (about 40k req/s whatever the server),
 * which is why wrk is the primary tool.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuTicks, fmt, median, runLoad, startServer, PERF_DIR } from './lib.js';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '100' },
    tools: { type: 'string', default: 'wrk,autocannon' },
    json: { type: 'boolean', default: false },
  },
});
const pairs = Number(values.pairs);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const tools = values.tools!.split(',');

const dir = mkdtempSync(join(tmpdir(), 'quay-bench-'));
const pipelineLua = join(dir, 'pipeline.lua');
// wrk pipelines with a script that sends `depth` requests per write.
writeFileSync(
  pipelineLua,
  `local depth = tonumber(os.getenv("DEPTH") or "10")
init = function(args)
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, "/hello") end
  req = table.concat(r)
end
request = function() return req end
`,
);

/** Server CPU per response of the last measurement, in µs: robust when the load generator, not the server, is the limit. */
let lastCpuUsPerRequest = 0;

async function measure(tool: string, target: string, depth: number): Promise<number> {
  const server = await startServer(target);
  const url = `http://127.0.0.1:${server.port}/hello`;
  try {
    const ticks0 = cpuTicks(server.child.pid);
    const rate = await load(tool, url, depth);
    lastCpuUsPerRequest = ((cpuTicks(server.child.pid) - ticks0) * 10_000) / (rate * seconds);
    return rate;
  } finally {
    await server.stop();
  }
}

async function load(tool: string, url: string, depth: number): Promise<number> {
  if (tool === 'wrk') {
    const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency'];
    if (depth > 1) args.push('-s', pipelineLua);
    args.push(url);
    process.env['DEPTH'] = String(depth);
    const out = await runLoad('wrk', args);
    const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
    if (m === null) throw new Error(`cannot parse wrk output: ${out}`);
    // wrk counts responses, so with the pipeline script the figure is still responses per second.
    return Number(m[1]);
  }
  const bin = join(PERF_DIR, '..', '..', 'node_modules', '.bin', 'autocannon');
  const out = await runLoad(bin, ['-j', '-c', String(connections), '-p', String(depth), '-d', String(seconds), url]);
  const result = JSON.parse(out) as { requests: { average: number }; errors: number; non2xx: number };
  return result.requests.average;
}

interface Row {
  tool: string;
  depth: number;
  quay: number[];
  node: number[];
  raw: number;
  /** Server CPU µs per response. */
  quayCpu: number[];
  nodeCpu: number[];
  rawCpu: number;
}
const rows: Row[] = [];
for (const tool of tools) {
  for (const depth of [1, 10]) {
    const row: Row = { tool, depth, quay: [], node: [], raw: 0, quayCpu: [], nodeCpu: [], rawCpu: 0 };
    row.raw = await measure(tool, 'http-hello-raw', depth);
    row.rawCpu = lastCpuUsPerRequest;
    for (let i = 0; i < pairs; i++) {
      row.quay.push(await measure(tool, 'http-hello-quay', depth));
      row.quayCpu.push(lastCpuUsPerRequest);
      row.node.push(await measure(tool, 'http-hello-node', depth));
      row.nodeCpu.push(lastCpuUsPerRequest);
      if (!values.json) {
        console.error(`${tool} -p${depth} pair ${i + 1}: quay ${fmt(row.quay[i]!)} req/s, node:http ${fmt(row.node[i]!)} req/s`);
      }
    }
    rows.push(row);
  }
}

if (values.json) {
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, connections, seconds, pairs, rows }, null, 2));
} else {
  console.log(`\nHTTP hello world, ${connections} connections, ${seconds} s per run, ${pairs} alternating pairs, Node ${process.version}`);
  console.log(
    '| load tool | pipelining | quay req/s | node:http req/s | quay / node:http | per-pair ratios | raw node:net ceiling | server CPU µs/req quay / node:http / raw |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const ratios = r.quay.map((q, i) => (q / r.node[i]!).toFixed(2)).join(', ');
    console.log(
      `| ${r.tool} | ${r.depth} | ${fmt(median(r.quay))} | ${fmt(median(r.node))} | ${(median(r.quay) / median(r.node)).toFixed(2)} | ${ratios} | ${fmt(r.raw)} | ` +
        `${median(r.quayCpu).toFixed(1)} / ${median(r.nodeCpu).toFixed(1)} / ${r.rawCpu.toFixed(1)} |`,
    );
  }
}
