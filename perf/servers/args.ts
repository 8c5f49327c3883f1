import { parseArgs } from 'node:util';
import { testCertificates } from '../../examples/certificates.js';
import type { KeyAndCertificate } from '../../examples/certificates.js';

/** `--port N` (default 0: a free port). Every benchmark server prints `listening PORT` when ready. */
export function serverPort(): number {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } }, strict: false });
  return Number(values.port);
}

/**
 * `--tls`: serve https:// and wss:// with the test server certificate of examples/certificates.ts (made with
 * openssl for this process: ECDSA P-256, for localhost and 127.0.0.1, signed by a test CA no client trusts, so
 * loads run with `--insecure`). Undefined without the flag.
 */
export function serverTls(): KeyAndCertificate | undefined {
  const { values } = parseArgs({ options: { tls: { type: 'boolean', default: false } }, strict: false });
  return values.tls === true ? testCertificates().server : undefined;
}

/** `--redis URL`: the Redis the server links its instances through; undefined without it (this process only). */
export function serverRedisUrl(): string | undefined {
  const { values } = parseArgs({ options: { redis: { type: 'string' } }, strict: false });
  return typeof values.redis === 'string' ? values.redis : undefined;
}

/**
 * With QUAY_FANOUT_EXIT_ON_STDIN_END=1 (set by perf/fanout-cluster-harness.ts, which starts the server with a stdin
 * pipe): exit when the parent goes (the pipe ends), so that a test killed on its timeout leaves no server behind.
 */
export function exitWhenParentGoes(): void {
  if (process.env['QUAY_FANOUT_EXIT_ON_STDIN_END'] !== '1') return;
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

export function announce(port: number): void {
  console.log(`listening ${port}`);
}

/** Exit cleanly on SIGINT/SIGTERM, so that `node --cpu-prof` writes its profile. */
export function exitOnSignal(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
}
