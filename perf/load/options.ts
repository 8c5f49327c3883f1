/** quay-load's command line: the options of a run, their defaults and checks, and --help. */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import { isTlsUrl } from './target.js';
import { openFileLimit } from '../../lib/io/OpenFileLimit.js';

export type WorkloadName = 'echo' | 'fanout' | 'idle' | 'http' | 'selftest';
export const WORKLOADS: readonly WorkloadName[] = ['echo', 'fanout', 'idle', 'http', 'selftest'];

/** Descriptors the generator keeps for itself (files, the plot, stdio, DNS) below the open-file limit. */
const DESCRIPTOR_RESERVE = 64;

/** This process's open-file limit (`ulimit -n`, read from /proc/self/limits), or undefined where it cannot be read. */
export const OPEN_FILE_LIMIT = openFileLimit();

/**
 * Connections one quay-load process can hold: its open-file limit less a reserve for its own descriptors (19,000
 * where the limit cannot be read). More connections need several processes (with different --source-addresses).
 */
export const MAX_CONNECTIONS = OPEN_FILE_LIMIT === undefined ? 19_000 : Math.max(1, OPEN_FILE_LIMIT - DESCRIPTOR_RESERVE);

/** Why MAX_CONNECTIONS is what it is, for the messages that refuse more. */
const LIMIT_REASON =
  OPEN_FILE_LIMIT === undefined
    ? 'the assumed open-file limit'
    : `this process's open-file limit, ulimit -n = ${OPEN_FILE_LIMIT}, less ${DESCRIPTOR_RESERVE} for its own files`;

/** A run's settings; {@link parseOptions} fills the defaults. */
export interface LoadOptions {
  workload: WorkloadName;
  /**
   * ws://host:port/path or wss:// (echo, fanout, idle), http://host:port/path or https:// (http); unused by
   * selftest.
   */
  url: string;
  /** wss://, https://: do not verify the server's certificate (self-signed test certificates). */
  insecure: boolean;
  /** wss://, https://: the CA certificates (PEM) to trust instead of Node's default CAs (--ca FILE). */
  ca: string | undefined;
  /** Connections (echo, http, idle; selftest). */
  connections: number;
  /** Messages in flight per connection (echo), or broadcasts in flight (fanout). */
  inflight: number;
  /** Payload bytes of each message (echo, fanout: at least 12, the sequence number). */
  size: number;
  /** Binary messages instead of text. */
  binary: boolean;
  /** Offer permessage-deflate (echo): messages go compressed, echoes are inflated. */
  deflate: boolean;
  /** The measured window (echo, fanout, http); how long the connections stay open (idle). */
  durationSec: number;
  /** Run before the measured window, not counted (echo, fanout, http). */
  warmupSec: number;
  /** Receiving connections (fanout). */
  receivers: number;
  /** Sampling interval of the rate timeline. */
  rateIntervalMs: number;
  /** The target's process ids: their summed memory per connection (idle; several for the workers of a cluster). */
  pid: number[] | undefined;
  /** Local addresses to connect from, round robin (to pass the ephemeral port limit of one address). */
  sourceAddresses: string[];
  /**
   * Processes the connections are split over (--processes K; echo, http, idle): each child opens its share, under
   * its own open-file limit; the parent merges their reports. 1 = this process alone.
   */
  processes: number;
  /**
   * The index of this process's first connection in a run split over processes (set by the parent, 0 otherwise):
   * source addresses continue the one round robin of the whole run.
   */
  firstIndex: number;
  /** Requests in flight per connection (http). */
  pipelining: number;
  /**
   * echo, http: at most this many messages (requests) a second over the whole run (--rate; split over --processes),
   * sent as tokens accrue (workloads/PacedSender.ts); undefined = as fast as the answers come.
   */
  rate: number | undefined;
  /** Connect + handshake timeout, and the time without an answer after which in-flight work counts as lost. */
  timeoutSec: number;
  /** Connections being opened at once. */
  openConcurrency: number;
  /**
   * A URL answering JSON with `heapUsed` (process.memoryUsage()), for the target's heap per connection (idle);
   * http:// or https:// (verified as --ca and --insecure say).
   */
  heapUrl: string | undefined;
  /** selftest: run the raw echo server on a worker thread (own core) or on the main thread (shared). */
  serverThread: 'worker' | 'main';
  json: boolean;
  /** Write a plot: .svg or .html. */
  plot: string | undefined;
  /** No live progress line even on a TTY. */
  quiet: boolean;
}

/** A bad command line: the CLI prints the message and exits with status 2. */
export class OptionsError extends Error {
  readonly code = 'LOAD_BAD_OPTION';
  constructor(message: string) {
    super(message);
    this.name = 'OptionsError';
  }
}

export const HELP = `quay-load: a WebSocket and HTTP load generator

Usage:
  quay-load <workload> --url URL [options]

Workloads:
  echo      C connections, each keeping D messages of S bytes in flight: every echo received sends the next.
            count = messages echoed; latency = send to echo.
  fanout    1 sender and R receivers on a broadcast URL (every message sent goes to every connection); the
            sender keeps D messages in flight; a delivery counts when EVERY receiver has the message (they
            are numbered in the payload). count = deliveries; latency = send to the last receiver.
  idle      Opens N connections (from several source addresses if given), holds them --duration seconds,
            closes them. Reports the time to open and to close them; with --pid, the target's memory per
            connection. count = connections opened; latency = connect to handshake done.
  http      C keep-alive connections sending GET requests, P in flight each (--pipelining).
            count = responses; latency = request to response.
  selftest  Starts a raw node:net WebSocket echo (no quay) in this process and runs echo against it:
            the generator's own ceiling on this machine. Defaults: -c 100 --inflight 10 --size 64.

Options:
  --url URL                 ws://host:port/path (echo, fanout, idle) or http://host:port/path (http); wss://
                            and https:// speak TLS (node:tls), verifying the server's certificate against
                            Node's default CAs and its name (SNI for a host name); a connection counts as
                            opened once the TLS handshake is done, a failed one as a 'tls' error
  --insecure                TLS: do not verify the server's certificate (self-signed test certificates)
  --ca FILE                 TLS: trust the CA certificates in FILE (PEM) instead of Node's default CAs
  -c, --connections N       connections (echo, http: 50; idle: 1000; selftest: 100). At most ${MAX_CONNECTIONS}
                            per process here (ulimit -n less ${DESCRIPTOR_RESERVE}): spread more with --processes.
  --processes K             echo, http, idle: split the connections over K child processes (each under its own
                            open-file limit; default 1); progress and the report are aggregated (counts summed,
                            latency histograms merged, errors by kind). idle: every child opens its share, the
                            connections are held until all are open plus --duration, then all are closed
  --inflight D              messages in flight per connection (echo; default 1, selftest 10) or
                            broadcasts in flight (fanout; default 1)
  --size S                  payload bytes per message (default 64; fanout at least 12)
  --binary                  binary messages (default text)
  --deflate                 echo: offer permessage-deflate (RFC 7692) without context takeover either way;
                            the message is compressed once for the run (the payload, a-z repeated, compresses
                            well) and every echo is inflated and its size checked. A server that does not
                            agree fails the handshake (counted as 'handshake' errors)
  -d, --duration SEC        measured seconds (default 10; idle: seconds to hold the connections, 1)
  -w, --warmup SEC          seconds run before measuring, not counted (default 2; idle: none)
  --receivers R             fanout receivers (default 100)
  --rate-interval MS        sampling interval of the rate timeline (default 1000)
  --pid PID                 idle: the target's PID, for its RSS per connection (/proc/PID/status); a
                            comma-separated list (the workers of a cluster) is summed
  --heap-url URL            idle: a URL answering JSON with "heapUsed" (e.g. process.memoryUsage() after
                            gc()), for the target's heap per connection; omitted otherwise. https:// is
                            verified as --ca and --insecure say
  --source-addresses LIST   comma-separated local addresses or IPv4 ranges to connect from, round robin over
                            the whole run (e.g. 127.0.0.1,127.0.0.2 or 127.0.0.1-127.0.0.8): each has its own
                            ephemeral ports (ip_local_port_range), so more connections than that range holds
                            need more addresses. Opening slows down long before: the kernel scans for a free
                            port of the address at every connect (14,000 from one address: 286/s; from 15:
                            2,063/s here), so give one address per 1,000 to 2,000 connections
  -p, --pipelining P        http: requests in flight per connection (default 1)
  -R, --rate N              echo, http: at most N messages (requests) a second over the whole run, open loop
                            (sends wait for a token, not for capacity; latency still counts from the send).
                            To compare servers' CPU per operation at the same rate: a server slower than the
                            generator pays for waking it after every write, a faster one does not
  --timeout SEC             connect + handshake timeout; work unanswered this long counts as a timeout
                            error (default 10)
  --open-concurrency K      connections opened at once (default 256; with --processes, over all of them)
  --server-thread T         selftest: the echo server runs on a 'worker' thread (default) or on the 'main'
                            thread, sharing the generator's core
  --json                    print one JSON object on stdout instead of the summary
  --plot FILE               write the latency distribution and the rate over time: FILE.svg or FILE.html
  -q, --quiet               no live progress line (there is none when stderr is not a TTY)
  -h, --help                this help

Errors (dns, refused, tls, handshake, closed, protocol, timeout, http) are counted and reported. When no
connection can be opened the run ends at once; a run that completed nothing exits with status 1.
Ctrl-C stops the run and prints what was measured so far. Exit status: 0 when the run completed,
2 for bad options, 130 after Ctrl-C.

idle also measures broadcasts: a message whose payload starts with "SEQ:SENT" (decimal digits: a sequence
number and the sender's wall-clock time in microseconds since the epoch) counts as a delivery of broadcast SEQ,
its latency taken against this machine's clock; the report gives the latency percentiles over every delivery
and, per broadcast, the deliveries and their rate (deliveries / time from the send to the last receipt).

JSON: { workload, url, connections, durationSec, count, rate, bytes, errors: { kind: n },
        latencyMs: { p50, p90, p99, p999, max, mean }, timeline: [[tSec, rate], ...], ...workload extras }
`;

const SPEC = {
  url: { type: 'string' },
  connections: { type: 'string', short: 'c' },
  inflight: { type: 'string' },
  size: { type: 'string' },
  binary: { type: 'boolean' },
  deflate: { type: 'boolean' },
  duration: { type: 'string', short: 'd' },
  warmup: { type: 'string', short: 'w' },
  receivers: { type: 'string' },
  'rate-interval': { type: 'string' },
  pid: { type: 'string' },
  'heap-url': { type: 'string' },
  'source-addresses': { type: 'string' },
  processes: { type: 'string' },
  pipelining: { type: 'string', short: 'p' },
  rate: { type: 'string', short: 'R' },
  timeout: { type: 'string' },
  insecure: { type: 'boolean' },
  ca: { type: 'string' },
  'open-concurrency': { type: 'string' },
  'server-thread': { type: 'string' },
  json: { type: 'boolean' },
  plot: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Parses the arguments after `node cli.js`. Returns 'help' for -h/--help.
 * @throws OptionsError for anything the run could not honour.
 */
export function parseOptions(argv: readonly string[]): LoadOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: SPEC, allowPositionals: true, strict: true });
  } catch (error) {
    throw new OptionsError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';
  if (positionals.length !== 1) {
    throw new OptionsError(positionals.length === 0 ? 'no workload given (echo, fanout, idle, http, selftest)' : `one workload expected, got ${positionals.join(' ')}`);
  }
  const workload = positionals[0] as WorkloadName;
  if (!WORKLOADS.includes(workload)) throw new OptionsError(`unknown workload ${JSON.stringify(workload)}: echo, fanout, idle, http or selftest`);

  const selftest = workload === 'selftest';
  const idle = workload === 'idle';
  const url = values.url ?? '';
  if (!selftest) checkUrl(workload, url);

  const processes = integer('--processes', values.processes, 1, 1, MAX_PROCESSES);
  if (processes > 1 && (workload === 'fanout' || workload === 'selftest')) {
    throw new OptionsError(`--processes is for the echo, http and idle workloads, not ${workload} (one sender, or one in-process server)`);
  }
  const options: LoadOptions = {
    workload,
    url,
    insecure: values.insecure === true,
    ca: values.ca === undefined ? undefined : caCertificates(values.ca),
    connections: integer('--connections', values.connections, selftest ? 100 : idle ? 1000 : 50, 1, MAX_CONNECTIONS * processes),
    inflight: integer('--inflight', values.inflight, selftest ? 10 : 1, 1, 65_536),
    size: integer('--size', values.size, 64, workload === 'fanout' ? 12 : 0, 64 * 1024 * 1024),
    binary: values.binary === true,
    deflate: values.deflate === true,
    durationSec: seconds('--duration', values.duration, idle ? 1 : selftest ? 5 : 10, false),
    warmupSec: idle ? 0 : seconds('--warmup', values.warmup, selftest ? 1 : 2, true),
    receivers: integer('--receivers', values.receivers, 100, 1, MAX_CONNECTIONS - 1),
    rateIntervalMs: integer('--rate-interval', values['rate-interval'], 1000, 10, 3_600_000),
    pid: values.pid === undefined ? undefined : pids(values.pid),
    sourceAddresses: addresses(values['source-addresses']),
    processes,
    firstIndex: 0,
    pipelining: integer('--pipelining', values.pipelining, 1, 1, 1024),
    rate: values.rate === undefined ? undefined : integer('--rate', values.rate, 1, 1, 100_000_000),
    timeoutSec: seconds('--timeout', values.timeout, 10, false),
    openConcurrency: integer('--open-concurrency', values['open-concurrency'], 256, 1, MAX_CONNECTIONS * processes),
    heapUrl: values['heap-url'],
    serverThread: serverThread(values['server-thread']),
    json: values.json === true,
    plot: values.plot,
    quiet: values.quiet === true,
  };
  if ((options.insecure || options.ca !== undefined) && !isTlsUrl(url) && !isTlsUrl(options.heapUrl ?? '')) {
    throw new OptionsError('--insecure and --ca are for wss:// and https:// URLs');
  }
  if (options.rate !== undefined && workload !== 'echo' && workload !== 'http') throw new OptionsError('--rate is an option of the echo and http workloads');
  if (options.deflate && workload !== 'echo') throw new OptionsError('--deflate is an option of the echo workload');
  if (options.heapUrl !== undefined && !/^https?:\/\//.test(options.heapUrl)) throw new OptionsError('--heap-url must be an http:// or https:// URL');
  if (options.plot !== undefined && !/\.(svg|html?)$/i.test(options.plot)) throw new OptionsError('--plot FILE must end in .svg or .html');
  if (processes > options.connections) throw new OptionsError(`--processes ${processes} is more than the ${options.connections} connections`);
  checkCapacity(options);
  return options;
}

function checkUrl(workload: WorkloadName, url: string): void {
  if (url === '') throw new OptionsError(`${workload} needs --url`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OptionsError(`--url ${JSON.stringify(url)} is not a URL`);
  }
  const wanted = workload === 'http' ? ['http:', 'https:'] : ['ws:', 'wss:'];
  if (!wanted.includes(parsed.protocol)) throw new OptionsError(`${workload} needs a ${wanted.map((w) => `${w}//`).join(' or ')} URL, not ${parsed.protocol}//`);
}

/** --ca FILE: its PEM text, checked now (node:tls parses it) rather than failing every connection of the run. */
function caCertificates(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new OptionsError(`--ca ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new OptionsError(`--ca ${file}: no PEM certificate in it`);
  try {
    createSecureContext({ ca: pem });
  } catch (error) {
    throw new OptionsError(`--ca ${file}: ${(error as Error).message}`);
  }
  return pem;
}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value)) throw new OptionsError(`${name} must be an integer, not ${JSON.stringify(text)}`);
  if (value < min || value > max) {
    const hint =
      name === '--connections' || name === '--receivers' || name === '--open-concurrency'
        ? ` (${MAX_CONNECTIONS} per process: ${LIMIT_REASON}; raise it, or spread more connections over several processes with --processes, echo, http and idle)`
        : '';
    throw new OptionsError(`${name} must be between ${min} and ${max}, not ${value}${value > max ? hint : ''}`);
  }
  return value;
}

function seconds(name: string, text: string | undefined, fallback: number, zeroAllowed: boolean): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0) || value > 86_400) {
    throw new OptionsError(`${name} must be a number of seconds${zeroAllowed ? '' : ' above 0'}, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** Addresses a --source-addresses list may expand to (a /22 of IPv4: far more ports than any run needs). */
export const MAX_SOURCE_ADDRESSES = 1024;

/** Child processes a run may be split over. */
export const MAX_PROCESSES = 64;

/** `127.0.0.1,127.0.0.2`, `127.0.0.1-127.0.0.8` (IPv4 ranges, inclusive), or both mixed. */
function addresses(text: string | undefined): string[] {
  if (text === undefined) return [];
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new OptionsError('--source-addresses: no address given');
  const list: string[] = [];
  for (const item of items) {
    const dash = item.indexOf('-');
    if (dash < 0) {
      if (isIP(item) === 0) throw new OptionsError(`--source-addresses: ${JSON.stringify(item)} is not an IP address`);
      list.push(item);
    } else {
      const first = ipv4ToNumber(item.slice(0, dash).trim());
      const last = ipv4ToNumber(item.slice(dash + 1).trim());
      if (first === undefined || last === undefined) throw new OptionsError(`--source-addresses: ${JSON.stringify(item)} is not a range of IPv4 addresses (A.B.C.D-A.B.C.E)`);
      if (last < first) throw new OptionsError(`--source-addresses: the range ${JSON.stringify(item)} ends before it starts`);
      if (last - first + 1 + list.length > MAX_SOURCE_ADDRESSES) throw new OptionsError(`--source-addresses: more than ${MAX_SOURCE_ADDRESSES} addresses`);
      for (let a = first; a <= last; a++) list.push(numberToIpv4(a));
    }
    if (list.length > MAX_SOURCE_ADDRESSES) throw new OptionsError(`--source-addresses: more than ${MAX_SOURCE_ADDRESSES} addresses`);
  }
  return list;
}

function ipv4ToNumber(text: string): number | undefined {
  if (isIP(text) !== 4) return undefined;
  return text.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function numberToIpv4(n: number): string {
  return `${Math.floor(n / 16_777_216) % 256}.${Math.floor(n / 65_536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/** `--pid 1234` or `--pid 1234,1235` (summed). */
function pids(text: string): number[] {
  const list = text.split(',').map((s) => s.trim());
  return list.map((p) => integer('--pid', p, 0, 1, 2 ** 31));
}

/**
 * The local ports one source address can use towards one destination: Linux's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range, "32768 60999" by default: 28,232 ports); undefined where it cannot be
 * read (another OS).
 */
export function ephemeralPortRange(path = '/proc/sys/net/ipv4/ip_local_port_range'): { low: number; high: number } | undefined {
  try {
    const [low, high] = readFileSync(path, 'latin1').trim().split(/\s+/).map(Number);
    if (low === undefined || high === undefined || !Number.isInteger(low) || !Number.isInteger(high) || high < low) return undefined;
    return { low, high };
  } catch {
    return undefined;
  }
}

/**
 * What the machine allows a run: at most {@link MAX_CONNECTIONS} connections per process (the open-file limit),
 * and at most the ephemeral port range per source address (a connection is a local port of its source address;
 * past the range, connect fails with EADDRNOTAVAIL). Called by parseOptions and by runLoad (library callers).
 * @throws OptionsError saying what to change.
 */
export function checkCapacity(options: LoadOptions, range = ephemeralPortRange()): void {
  const n = connectionsOf(options);
  const processes = Math.max(1, options.processes);
  const perProcess = Math.ceil(n / processes);
  if (perProcess > MAX_CONNECTIONS) {
    const need = Math.ceil(n / MAX_CONNECTIONS);
    throw new OptionsError(
      `${n} connections${processes > 1 ? ` over ${processes} processes (${perProcess} each)` : ''}: at most ${MAX_CONNECTIONS} per process ` +
        `(${LIMIT_REASON}); raise it, or use --processes ${need} or more`,
    );
  }
  if (range === undefined) return;
  const ports = range.high - range.low + 1;
  const addressCount = Math.max(1, options.sourceAddresses.length);
  const perAddress = Math.ceil(n / addressCount);
  if (perAddress > ports) {
    const need = Math.ceil(n / ports);
    throw new OptionsError(
      `${n} connections from ${addressCount} source address${addressCount === 1 ? '' : 'es'} (${perAddress} each): the ephemeral port range ` +
        `(/proc/sys/net/ipv4/ip_local_port_range: ${range.low} ${range.high}) gives each address ${ports} ports; ` +
        `give --source-addresses with ${need} addresses or more (e.g. 127.0.0.1-127.0.0.${need})`,
    );
  }
}

function serverThread(text: string | undefined): 'worker' | 'main' {
  if (text === undefined || text === 'worker') return 'worker';
  if (text === 'main') return 'main';
  throw new OptionsError(`--server-thread must be worker or main, not ${JSON.stringify(text)}`);
}

/** The connections a run opens (fanout: the receivers and the sender): what the open-file limit bounds. */
export function connectionsOf(options: LoadOptions): number {
  return options.workload === 'fanout' ? options.receivers + 1 : options.connections;
}

/** Options for a library caller: the CLI's defaults, overridden. */
export function defaultOptions(workload: WorkloadName, url: string, overrides: Partial<LoadOptions> = {}): LoadOptions {
  const base = parseOptions(workload === 'selftest' ? [workload] : [workload, '--url', url]);
  if (base === 'help') throw new Error('unreachable');
  return { ...base, ...overrides };
}
