import { parseArgs } from 'node:util';

/** `--port N` (default 0: a free port). Every benchmark server prints `listening PORT` when ready. */
export function serverPort(): number {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } }, strict: false });
  return Number(values.port);
}

export function announce(port: number): void {
  console.log(`listening ${port}`);
}

/** Exit cleanly on SIGINT/SIGTERM, so that `node --cpu-prof` writes its profile. */
export function exitOnSignal(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
}
