import t from 'tap';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import type { Connection } from '../lib/io/Connection.js';
import { HttpConnection } from '../lib/http/HttpConnection.js';
import type { Handler } from '../lib/http/Handler.js';
import { ConnectionCallbackError } from '../lib/io/errors.js';
import { mulberry32 } from './support/mulberry32.js';

/**
 * Connection-level fuzz: seeded random and mutated byte streams fed to an HttpConnection on a MemoryEndPoint,
 * split at random points, then the peer's FIN. Whatever the input, no exception escapes a connection callback,
 * and every connection ends in a response or a clean close.
 */
const SEEDS = [
  'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n',
  'GET /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nTAIL',
  'GET / HTTP/1.0\r\n\r\n',
  'POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok',
];
const ALPHABET = Buffer.from('\r\n :;,0123456789abcdefHTP/\t\0\x7f\xffchunkedContent-LengthTransfer-EncodingHost', 'latin1');

const handler: Handler = {
  async handle(req, res) {
    if (req.isUpgrade && req.path === '/u') {
      res.upgrade({ Upgrade: 'x', Connection: 'Upgrade' }, (): Connection => ({
        onOpen() {},
        onFillable() {},
        onIdleExpired: () => true,
        onClose() {},
      }));
      return;
    }
    const body = await req.bytes(1024 * 1024);
    if (req.path === '/c') await res.write('chunk ');
    await res.end(`${req.method} ${body.length}`);
  },
};

t.test('seeded connection fuzz', async (t) => {
  const rnd = mulberry32(99);
  let responded = 0;
  let closedClean = 0;
  for (let i = 0; i < 2000; i++) {
    let input: Buffer;
    if (i % 5 === 0) {
      input = Buffer.from(Array.from({ length: Math.floor(rnd() * 150) }, () => ALPHABET[Math.floor(rnd() * ALPHABET.length)]!));
    } else {
      const parts: string[] = [];
      for (let k = 0, n = 1 + Math.floor(rnd() * 3); k < n; k++) parts.push(SEEDS[Math.floor(rnd() * SEEDS.length)]!);
      input = Buffer.from(parts.join(''), 'latin1');
      for (let m = 0, n = Math.floor(rnd() * 4); m < n; m++) {
        const at = Math.floor(rnd() * input.length);
        const r = rnd();
        const byte = ALPHABET[Math.floor(rnd() * ALPHABET.length)]!;
        if (r < 0.4) input = Buffer.concat([input.subarray(0, at), Buffer.from([byte]), input.subarray(at)]);
        else if (r < 0.7) input = Buffer.concat([input.subarray(0, at), input.subarray(at + 1)]);
        else input[at] = byte;
      }
    }
    const ep = new MemoryEndPoint();
    let cause = null as Error | undefined | null;
    const connection = new HttpConnection(ep, () => handler, { reportError() {} }, { headerTimeoutMs: 0 });
    const onClose = connection.onClose.bind(connection);
    connection.onClose = (c) => {
      cause = c;
      onClose(c);
    };
    ep.open(connection);
    const cut = Math.floor(rnd() * input.length);
    ep.feed(input.subarray(0, cut));
    ep.feed(input.subarray(cut));
    await new Promise((r) => setImmediate(r));
    ep.feedEnd();
    for (let k = 0; k < 5 && ep.isOpen; k++) await new Promise((r) => setImmediate(r));
    if (ep.isOpen) ep.close(); // e.g. upgraded to the test protocol, which never closes by itself
    const out = ep.takeOutputString();
    if (cause instanceof ConnectionCallbackError) {
      t.fail(`case ${i}: a callback threw: ${(cause as Error).message} for ${JSON.stringify(input.toString('latin1'))}`);
      return;
    }
    if (out.length > 0) {
      if (!/^HTTP\/1\.[01] \d{3} /.test(out)) {
        t.fail(`case ${i}: output is not a response: ${JSON.stringify(out.slice(0, 80))}`);
        return;
      }
      responded++;
    } else {
      closedClean++;
    }
  }
  t.ok(responded > 500, `${responded} connections answered, ${closedClean} closed without a response (incomplete input)`);
});
