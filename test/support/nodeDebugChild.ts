/**
 * Run by test/http-hardening-crash.test.ts with NODE_DEBUG=quay (util.debuglog reads it at startup, so it needs a
 * process of its own): a client that resets after pipelined requests, then a handler that throws. Exits 0 unless
 * something reached unhandledRejection or threw.
 */
import { connect } from 'node:net';
import { Server } from '../../lib/http/Server.js';

process.on('unhandledRejection', () => process.exit(3));
const BIG = 'x'.repeat(64 * 1024);
let handled = 0;
const server = new Server({ port: 0, host: '127.0.0.1' }, async (req, res) => {
  if (req.path === '/boom') throw new TypeError('boom');
  handled++;
  await res.end(BIG);
});
const { port } = await server.start();
const socket = connect({ host: '127.0.0.1', port });
socket.on('error', () => {});
await new Promise<void>((r) => socket.once('connect', () => r()));
socket.pause();
socket.write('GET /p HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(400));
for (let i = 0; i < 200 && handled < 100; i++) await new Promise((r) => setTimeout(r, 10));
socket.resetAndDestroy();
for (let i = 0; i < 200 && server.stats().closed < 1; i++) await new Promise((r) => setTimeout(r, 10));
await new Promise<void>((resolve) => {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.on('data', () => {});
  s.on('close', () => resolve());
  s.write('GET /boom HTTP/1.1\r\nHost: x\r\n\r\n');
});
await server.stop(500);
process.exit(0);
