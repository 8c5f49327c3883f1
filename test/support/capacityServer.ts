/**
 * A child process for test/io-capacity.test.ts: a SelectorManager with echo connections, started under a low
 * `ulimit -n` by the test. Prints `{"port":N}` once listening; on each `report` line from stdin it runs the
 * once-a-second capacity check now and prints `{"stats":...,"errors":[codes]}`; `exit` stops it.
 * argv[2]: `default` (default maxConnections) or a number (`Infinity` for no bound).
 */
import { createInterface } from 'node:readline';
import { SelectorManager } from '../../lib/io/SelectorManager.js';
import { EchoConnectionFactory } from '../../examples/echo/EchoConnection.js';
import { defaultBufferPool } from '../../lib/buffers/index.js';

const arg = process.argv[2] ?? 'default';
const errors: string[] = [];
const manager = new SelectorManager({
  connectionFactory: new EchoConnectionFactory(defaultBufferPool()),
  ...(arg === 'default' ? {} : { maxConnections: Number(arg) }),
  onError: (e) => errors.push((e as { code?: string }).code ?? e.name),
});
const { port } = await manager.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(JSON.stringify({ port, maxConnections: manager.connectionLimit }) + '\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'report') {
    manager.checkCapacity();
    process.stdout.write(JSON.stringify({ stats: manager.stats(), errors }) + '\n');
  } else if (line === 'exit') {
    break;
  }
}
await manager.stop(100);
process.exit(0);
