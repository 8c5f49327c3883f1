/**
 * `npm start` until the chat demo lands: a TCP echo server on lib/io. Try it with `nc 127.0.0.1 8080`.
 * PORT and HOST come from the environment (or --port/--host).
 */
import { parseArgs } from 'node:util';
import { SelectorManager, defaultBufferPool } from '../../lib/index.js';
import { EchoConnectionFactory } from './EchoConnection.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } }, strict: true });
const port = Number(values.port ?? process.env['PORT'] ?? 8080);
const host = values.host ?? process.env['HOST'] ?? '127.0.0.1';

const manager = new SelectorManager({
  connectionFactory: new EchoConnectionFactory(defaultBufferPool()),
  idleTimeoutMs: 60_000,
  onError: (error, endPoint) => console.error(`endpoint #${endPoint?.id ?? '-'}: ${error.message}`),
});
const address = await manager.listen({ host, port });
console.log(`quay echo server listening on ${address.address}:${address.port} (try: nc ${address.address} ${address.port})`);
process.once('SIGINT', () => {
  console.log('\nstopping...');
  void manager.stop(5000).then(() => console.log(manager.dump()));
});
