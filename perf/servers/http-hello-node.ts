/** Benchmark peer: node:http hello world, the same response as http-hello-quay. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce, exitOnSignal, serverPort } from './args.js';

exitOnSignal();

const body = Buffer.from('hello world\n');
const server = createServer((_req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', body.length);
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(serverPort(), '127.0.0.1', () => announce((server.address() as AddressInfo).port));
