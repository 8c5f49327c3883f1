/** Benchmark peer: node:http hello world, the same response as http-hello-quay; `--tls`: node:https. */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { announce, exitOnSignal, serverPort, serverTls } from './args.js';

exitOnSignal();

const body = Buffer.from('hello world\n');
function hello(_req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', body.length);
  res.end(body);
}
const tls = serverTls();
const server = tls === undefined ? createServer(hello) : createHttpsServer(tls, hello);
server.keepAliveTimeout = 60_000;
server.listen(serverPort(), '127.0.0.1', () => announce((server.address() as AddressInfo).port));
