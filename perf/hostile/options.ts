/**
 * Command line of `npm run bench:hostile` (perf/hostile/bench.ts): the scenarios, their sizes (full by default,
 * `--quick` for a ~2 minute smoke run, each size also a flag) and the output options.
 */
import { parseArgs } from 'node:util';

export const SCENARIOS = ['crash-rst', 'crash-header', 'pipeline-flood', 'ping-flood', 'slow-body', 'deflate-bomb', 'log-flood', 'emfile', 'tls-stall', 'tls-garbage'] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export const IMPLS = ['quay', 'node'] as const;

export interface HostileOptions {
  only: ScenarioId[];
  impls: ('quay' | 'node')[];
  quick: boolean;
  json: boolean;
  write: boolean;
  results: string | undefined;
  /** crash-rst: pipelined GETs before the reset. */
  rstRequests: number;
  /** pipeline-flood: requests written without reading, and the cap on writing and on reading back (each). */
  pipelineRequests: number;
  pipelineSeconds: number;
  /** ping-flood: bytes of pings sent (each way), cap in seconds. */
  pingBytes: number;
  pingSeconds: number;
  /** slow-body: connections; the request and header deadlines given to both servers; the margin after them. */
  slowConnections: number;
  requestTimeoutMs: number;
  headerTimeoutMs: number;
  slowMarginMs: number;
  /** slow-body: connections of the header slowloris. */
  slowlorisConnections: number;
  /** Passed to quay as minRequestDataRate when set (an option the hardening may add). */
  minRequestDataRate: number | undefined;
  /** deflate-bomb: seconds per part, total attack rate in bytes/s, inflated size of a bomb. */
  deflateSeconds: number;
  deflateRate: number;
  bombBytes: number;
  /** log-flood: pipelined requests on one connection, then connections x requests. */
  logRequests: number;
  logConnections: number;
  logRequestsPerConnection: number;
  /** emfile: the server's open-file limit and the connections opened. */
  emfileLimit: number;
  emfileConnections: number;
  /** tls-stall: peers that stall mid-ClientHello, and how many of them trickle a byte every tlsTrickleMs. */
  tlsStallConnections: number;
  tlsTricklers: number;
  tlsTrickleMs: number;
  /** tls-stall: the cap on the scenario, from the last staller opened (node's default handshakeTimeout is 120 s). */
  tlsStallSeconds: number;
  /** quay's tlsHandshakeTimeoutMs in the TLS scenarios. */
  tlsHandshakeTimeoutMs: number;
  /** node:https's handshakeTimeout when set (node's default, 120 s, otherwise). */
  nodeHandshakeTimeoutMs: number | undefined;
  /** tls-garbage: seconds of attack, peers in flight. */
  tlsGarbageSeconds: number;
  tlsGarbageConcurrency: number;
}

const MiB = 1024 * 1024;

/** A command line that cannot be run: an unknown scenario or server, a size that is not one. */
export class HostileOptionsError extends Error {
  readonly code = 'HOSTILE_OPTIONS';
  constructor(message: string) {
    super(message);
    this.name = 'HostileOptionsError';
  }
}

/** The full-size defaults, and the --quick ones where they differ. */
const FULL = {
  rstRequests: 200,
  pipelineRequests: 1_000_000,
  pipelineSeconds: 60,
  pingBytes: 1536 * MiB,
  pingSeconds: 60,
  slowConnections: 2_000,
  requestTimeoutMs: 20_000,
  headerTimeoutMs: 10_000,
  slowMarginMs: 5_000,
  slowlorisConnections: 100,
  deflateSeconds: 20,
  deflateRate: 160_000,
  bombBytes: 60 * MiB,
  logRequests: 200_000,
  logConnections: 1_000,
  logRequestsPerConnection: 10,
  emfileLimit: 1_024,
  emfileConnections: 1_500,
  tlsStallConnections: 2_000,
  tlsTricklers: 500,
  tlsTrickleMs: 5_000,
  tlsStallSeconds: 130,
  tlsHandshakeTimeoutMs: 10_000,
  tlsGarbageSeconds: 20,
  tlsGarbageConcurrency: 64,
};
const QUICK: Partial<typeof FULL> = {
  pipelineRequests: 100_000,
  pipelineSeconds: 6,
  pingBytes: 64 * MiB,
  pingSeconds: 5,
  slowConnections: 200,
  requestTimeoutMs: 4_000,
  headerTimeoutMs: 2_000,
  slowMarginMs: 2_000,
  slowlorisConnections: 20,
  deflateSeconds: 4,
  logRequests: 20_000,
  logConnections: 200,
  tlsStallConnections: 200,
  tlsTricklers: 50,
  tlsTrickleMs: 1_000,
  tlsStallSeconds: 12,
  tlsHandshakeTimeoutMs: 3_000,
  tlsGarbageSeconds: 5,
  tlsGarbageConcurrency: 32,
};

/** Flag name of each size (kebab-case of the field). */
const FLAG: Record<keyof typeof FULL, string> = {
  rstRequests: 'rst-requests',
  pipelineRequests: 'pipeline-requests',
  pipelineSeconds: 'pipeline-seconds',
  pingBytes: 'ping-bytes',
  pingSeconds: 'ping-seconds',
  slowConnections: 'slow-connections',
  requestTimeoutMs: 'request-timeout-ms',
  headerTimeoutMs: 'header-timeout-ms',
  slowMarginMs: 'slow-margin-ms',
  slowlorisConnections: 'slowloris-connections',
  deflateSeconds: 'deflate-seconds',
  deflateRate: 'deflate-rate',
  bombBytes: 'bomb-bytes',
  logRequests: 'log-requests',
  logConnections: 'log-connections',
  logRequestsPerConnection: 'log-requests-per-connection',
  emfileLimit: 'emfile-limit',
  emfileConnections: 'emfile-connections',
  tlsStallConnections: 'tls-stall-connections',
  tlsTricklers: 'tls-tricklers',
  tlsTrickleMs: 'tls-trickle-ms',
  tlsStallSeconds: 'tls-stall-seconds',
  tlsHandshakeTimeoutMs: 'tls-handshake-timeout-ms',
  tlsGarbageSeconds: 'tls-garbage-seconds',
  tlsGarbageConcurrency: 'tls-garbage-concurrency',
};

/** A size: a number with an optional K/M/G (x1024 for bytes, x1000 otherwise is not worth the confusion: x1024). */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]i?[bB]?)?$/.exec(text.trim().replace(/_/g, ''));
  if (m === null) throw new HostileOptionsError(`--${flag}: not a number: ${text}`);
  const unit = (m[2] ?? '').charAt(0).toLowerCase();
  const scale = unit === 'k' ? 1024 : unit === 'm' ? MiB : unit === 'g' ? 1024 * MiB : 1;
  const n = Math.round(Number(m[1]) * scale);
  if (!Number.isFinite(n) || n < 0) throw new HostileOptionsError(`--${flag}: not a size: ${text}`);
  return n;
}

export function parseOptions(argv: readonly string[]): HostileOptions | 'help' {
  const sizeOptions = Object.fromEntries(Object.values(FLAG).map((f) => [f, { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        ...sizeOptions,
        only: { type: 'string' },
        servers: { type: 'string' },
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        write: { type: 'boolean', default: false },
        results: { type: 'string' },
        'min-request-data-rate': { type: 'string' },
        'node-handshake-timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    // node:util's own errors (an unknown flag, a missing value) in the same typed form as ours.
    throw new HostileOptionsError(error instanceof Error ? error.message : String(error));
  }
  const values = parsed.values;
  if (values.help === true) return 'help';
  const quick = values.quick === true;
  const only = values.only === undefined ? [...SCENARIOS] : (values.only as string).split(',').map((s) => s.trim());
  for (const id of only) if (!(SCENARIOS as readonly string[]).includes(id)) throw new HostileOptionsError(`--only: unknown scenario ${id} (one of ${SCENARIOS.join(', ')})`);
  const impls = values.servers === undefined ? [...IMPLS] : (values.servers as string).split(',').map((s) => s.trim());
  for (const i of impls) if (!(IMPLS as readonly string[]).includes(i)) throw new HostileOptionsError(`--servers: unknown ${i} (quay, node)`);
  const sizes = { ...FULL, ...(quick ? QUICK : {}) };
  for (const key of Object.keys(FLAG) as (keyof typeof FULL)[]) {
    const v = (values as Record<string, unknown>)[FLAG[key]];
    if (typeof v === 'string') sizes[key] = parseSize(v, FLAG[key]);
  }
  if (sizes.headerTimeoutMs <= 0 || sizes.requestTimeoutMs <= 0) throw new HostileOptionsError('--header-timeout-ms and --request-timeout-ms must be > 0');
  if (sizes.tlsTricklers > sizes.tlsStallConnections) throw new HostileOptionsError('--tls-tricklers must be <= --tls-stall-connections');
  if (sizes.tlsTrickleMs <= 0 || sizes.tlsGarbageConcurrency <= 0) throw new HostileOptionsError('--tls-trickle-ms and --tls-garbage-concurrency must be > 0');
  const rate = values['min-request-data-rate'];
  const nodeHandshake = values['node-handshake-timeout-ms'];
  return {
    only: only as ScenarioId[],
    impls: impls as ('quay' | 'node')[],
    quick,
    json: values.json === true,
    write: values.write === true,
    results: values.results as string | undefined,
    minRequestDataRate: typeof rate === 'string' ? parseSize(rate, 'min-request-data-rate') : undefined,
    nodeHandshakeTimeoutMs: typeof nodeHandshake === 'string' ? parseSize(nodeHandshake, 'node-handshake-timeout-ms') : undefined,
    ...sizes,
  };
}
