/**
 * A WebSocket client in a process of its own, for the reverse ping flood of `npm run bench:hostile`: a hostile
 * server floods it with pings and never reads, and the parent watches this process's RSS.
 *
 *   node dist/perf/hostile/wsclient.js --impl quay|ws --url ws://127.0.0.1:PORT/
 *
 * Prints `open` once connected, `closed CODE` when the session closes, `error MESSAGE` on a failure; exits when
 * stdin ends (or is killed by the parent).
 */
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { WebSocketClient } from '../../lib/index.js';

const { values } = parseArgs({ options: { impl: { type: 'string', default: 'quay' }, url: { type: 'string' } } });
const url = values.url!;

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

if (values.impl === 'ws') {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('open', () => console.log('open'));
  ws.on('close', (code: number) => console.log(`closed ${code}`));
  ws.on('error', (e: Error) => console.log(`error ${e.message}`));
} else {
  try {
    await WebSocketClient.connect(url, {
      listener: {
        onClose: (_session, code) => console.log(`closed ${code}`),
        onError: (_session, error) => console.log(`error ${error.message}`),
      },
    });
    console.log('open');
  } catch (error) {
    console.log(`error ${(error as Error).message}`);
  }
}
