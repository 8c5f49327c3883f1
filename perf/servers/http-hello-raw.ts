/**
 * The ceiling: a raw node:net server that answers every request head with a fixed response, no parsing beyond
 * counting blank lines. No HTTP server can beat it on this machine; a load generator that cannot saturate it is
 * the bottleneck. `--tls`: the same over node:tls (the raw TLS responder, the ceiling of https).
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { announce, exitOnSignal, serverPort, serverTls } from './args.js';

exitOnSignal();

const response = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n', 'latin1');
function onConnection(socket: Socket): void {
  socket.setNoDelay(true);
  let tail = 0; // bytes of "\r\n\r\n" matched so far, across reads
  socket.on('data', (bytes: Buffer) => {
    let n = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if ((tail === 0 || tail === 2) && b === 13) tail++;
      else if ((tail === 1 || tail === 3) && b === 10) {
        tail++;
        if (tail === 4) {
          n++;
          tail = 0;
        }
      } else tail = b === 13 ? 1 : 0;
    }
    if (n === 1) socket.write(response);
    else if (n > 1) socket.write(Buffer.concat(Array.from({ length: n }, () => response)));
  });
  socket.on('error', () => socket.destroy());
}

const tls = serverTls();
const server: Server = tls === undefined ? createServer(onConnection) : createTlsServer(tls, onConnection);
server.listen(serverPort(), '127.0.0.1', () => announce((server.address() as AddressInfo).port));
