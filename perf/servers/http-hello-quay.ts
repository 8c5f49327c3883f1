/** Benchmark target: quay HTTP hello world at /hello (and any path); `--tls`: https (quay's `tls` option). */
import { Server } from '../../lib/index.js';
import { announce, exitOnSignal, serverPort, serverTls } from './args.js';

exitOnSignal();

const body = Buffer.from('hello world\n');
const tls = serverTls();
const server = new Server({ port: serverPort(), host: '127.0.0.1', idleTimeoutMs: 60_000, ...(tls === undefined ? {} : { tls }) }, (_req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  void res.end(body);
});
const { port } = await server.start();
announce(port);
