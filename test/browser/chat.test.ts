/**
 * The chat room (examples/chat), end to end: the protocol through quay's own WebSocket client, then the page in a
 * real Chromium driven by playwright-core. Without Chromium (no /usr/bin/chromium, no CHROME_PATH) the browser
 * part is skipped and says why; .ci/run installs Chromium so CI always runs it.
 *
 * The same room also runs over https and wss (`npm start -- --tls`): its command line, its certificate, and two
 * pages in Chromium, which trusts the test CA's key (trustKeysFlag) and nothing else.
 *
 * QUAY_SCREENSHOT=1 also writes docs/chat.png (a chat with two members) for the README.
 */
import t from 'tap';
import type { Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import WebSocket from 'ws';
import { WebSocketClient } from '../../lib/websocket/WebSocketClient.js';
import { HandshakeError } from '../../lib/websocket/HandshakeResponse.js';
import type { WebSocketSession } from '../../lib/websocket/WebSocketSession.js';
import {
  ChatUsageError,
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
  OPENSSL_MISSING_MESSAGE,
  chatCertificate,
  codePointLength,
  nameKey,
  parseChatCommand,
  sanitizeName,
  sanitizeText,
  startChatServer,
} from '../../examples/chat/server.js';
import type { ChatServer, ChatTlsOptions } from '../../examples/chat/server.js';
import { hasOpenssl, testCertificates } from '../../examples/certificates.js';
import { ensureChatBuilt, runCli } from '../support/chatCli.js';
import { freePort } from '../../perf/services/RedisServerProcess.js';
import { ChatProbe } from './ChatProbe.js';
import type { Received } from './ChatProbe.js';
import { findChromium, launchChromium, trustKeysFlag } from './chromium.js';
import { message, notice, say, stepWithScreenshots } from './chatPage.js';

// Chromium, child processes and TLS on a small shared machine: more than tap's default 120 s when it is loaded.
t.setTimeout(300_000);

/** Playwright's waits: long enough for a loaded CI machine, short enough that a failure is quick. */
const WAIT_MS = 5_000;

async function startRoom(t: Test, tls?: ChatTlsOptions): Promise<ChatServer> {
  const chat = await startChatServer({ port: 0, host: '127.0.0.1', ...(tls === undefined ? {} : { tls }) });
  t.teardown(() => chat.stop(1_000));
  return chat;
}

/** Every TLS part needs certificates, made with the openssl command; .ci/run installs it. */
const OPENSSL_SKIP = hasOpenssl() ? false : 'no openssl command to make the certificates (apt-get install openssl, as .ci/run does)';

/**
 * The test CA's server certificate for localhost and 127.0.0.1, served with the CA after it: the chain a browser
 * that trusts the CA's key (and only that) accepts.
 */
function testServerTls(): ChatTlsOptions {
  const { server, ca } = testCertificates();
  return { key: server.key, cert: server.cert + ca.cert };
}

/** GETs `url` over https trusting `ca`; the status, the body and the certificate the server presented. */
function httpsFetch(url: string, ca: string | undefined): Promise<{ status: number; body: string; certificate: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const request = httpsGet(url, ca === undefined ? { rejectUnauthorized: false } : { ca }, (response) => {
      const certificate = (response.socket as TLSSocket).getPeerX509Certificate();
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => (certificate === undefined ? reject(new Error('no peer certificate')) : resolve({ status: response.statusCode ?? 0, body, certificate })));
      response.on('error', reject);
    });
    request.setTimeout(5_000, () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', reject);
  });
}

// ------------------------------------------------------------------------------------------------ no browser

t.test('names and texts are sanitized', async (t) => {
  t.equal(sanitizeName('  alice  '), 'alice');
  t.equal(sanitizeName('al\u0000i\u0007c\u001be'), 'alice', 'C0 controls removed');
  t.equal(sanitizeName('\u202Eecila\u202C'), 'ecila', 'bidi override removed');
  t.equal(sanitizeName('ali\u200Bce\uFEFF'), 'alice', 'zero-width characters removed');
  t.equal(sanitizeName('bob\n\tthe   builder'), 'bob the builder', 'white space collapsed');
  t.equal(sanitizeName('e\u0301'), '\u00e9', 'NFC');
  t.equal(sanitizeName('x'.repeat(100)), 'x'.repeat(MAX_NAME_LENGTH), 'bounded');
  t.equal(codePointLength(sanitizeName('😀'.repeat(100))!, 1000), MAX_NAME_LENGTH, 'bounded in code points, not halves of pairs');
  t.equal(sanitizeName('  \u0000\u200B '), undefined, 'nothing left');
  t.equal(sanitizeName(42), undefined, 'not a string');
  t.equal(nameKey('ＡLICE'), nameKey('alice'), 'fullwidth and case fold to one identity');
  t.equal(sanitizeText(' a\r\nb\u0000c\td '), 'a\nbc\td', 'CRLF as LF, tab kept, NUL removed');
  t.equal(codePointLength('😀😀😀', 10), 3);
});

t.test('the server: the page on GET, the chat on an upgrade of the same path', async (t) => {
  const chat = await startRoom(t);
  const page = await fetch(chat.url);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/, 'no inline script may run');
  t.match(await page.text(), /<script type="module" src="chat.js">/);
  const script = await fetch(new URL('chat.js', chat.url));
  t.match(script.headers.get('content-type'), /^text\/javascript/);
  await script.arrayBuffer();

  const client = new WebSocketClient();
  t.teardown(() => client.stop(500));
  const ws = chat.url.replace('http:', 'ws:');
  const noProtocol = await client.connect(ws).then(() => undefined, (e: unknown) => e);
  t.ok(noProtocol instanceof HandshakeError && noProtocol.status === 400, 'the chat subprotocol is required');
  const foreign = await client.connect(ws, { protocols: ['chat'], origin: 'http://evil.example' }).then(() => undefined, (e: unknown) => e);
  t.ok(foreign instanceof HandshakeError && foreign.status === 403, 'another origin is refused (RFC 6455 §10.2)');
  const session = await client.connect(ws, { protocols: ['chat'], origin: chat.url.slice(0, -1), listener: new ChatProbe() });
  t.equal(session.protocol, 'chat', 'our own page is allowed');
  session.close(1000);
});

t.test('the protocol: join, unique names, refusals that keep the session, broadcast, leave', async (t) => {
  const chat = await startRoom(t);
  const client = new WebSocketClient();
  t.teardown(() => client.stop(500));
  const ws = chat.url.replace('http:', 'ws:');
  const connect = async (): Promise<[WebSocketSession, ChatProbe]> => {
    const probe = new ChatProbe();
    return [await client.connect(ws, { protocols: ['chat'], listener: probe }), probe];
  };

  const [a, pa] = await connect();
  await a.sendText(JSON.stringify({ type: 'message', text: 'too early' }));
  t.match(await pa.next('error'), { code: 'not-joined' });
  await a.sendText('not json');
  t.match(await pa.next('error'), { code: 'bad-message' });
  await a.sendBinary(Buffer.from([1, 2, 3]));
  t.match(await pa.next('error'), { code: 'bad-message' });
  await a.sendText(JSON.stringify({ type: 'join', name: ' \u0000 ' }));
  t.match(await pa.next('error'), { code: 'name-invalid' });
  await a.sendText(JSON.stringify({ type: 'join', name: ' al\u0007ice ' }));
  t.match(await pa.next('members'), { you: 'alice', names: ['alice'], maxTextLength: MAX_TEXT_LENGTH });
  t.match(await pa.next('joined'), { name: 'alice' });
  await a.sendText(JSON.stringify({ type: 'join', name: 'again' }));
  t.match(await pa.next('error'), { code: 'already-joined' });

  const [b, pb] = await connect();
  await b.sendText(JSON.stringify({ type: 'join', name: 'ALICE' }));
  t.match(await pb.next('members'), { you: 'ALICE (2)', names: ['alice', 'ALICE (2)'] }, 'a taken name is numbered');
  t.match(await pa.next('joined'), { name: 'ALICE (2)' });
  t.same(chat.room.names(), ['alice', 'ALICE (2)']);

  await a.sendText(JSON.stringify({ type: 'message', text: 'x'.repeat(MAX_TEXT_LENGTH + 1) }));
  t.match(await pa.next('error'), { code: 'too-long', message: /over 2000 characters/ }, 'refused with a message');
  await a.sendText(JSON.stringify({ type: 'message', text: '   ' }));
  t.match(await pa.next('error'), { code: 'empty' });
  t.ok(a.isOpen, 'a refusal is not a disconnect');
  const text = `${'é'.repeat(MAX_TEXT_LENGTH - 1)}!`;
  await a.sendText(JSON.stringify({ type: 'message', text: ` ${text}\u0000 ` }));
  const received = await pb.next('message');
  t.match(received, { name: 'alice', text }, 'exactly the limit passes, sanitized');
  t.type(received['time'], 'number');
  t.match(await pa.next('message'), { name: 'alice', text }, 'the sender gets its own message too');
  t.same(pb.pending.filter((m) => m.type === 'error'), [], 'the other member saw no refusal');

  b.close(1000);
  t.match(await pa.next('left'), { name: 'ALICE (2)' });
  t.same(chat.room.names(), ['alice']);
  t.ok(chat.room.drop('alice'), 'drop terminates a member');
  t.equal((await pa.closed)[0], 1006, 'without a close handshake');
  t.equal(chat.room.drop('nobody'), false);
});

// ------------------------------------------------------------------------------------------------ over TLS

t.test('the command line: --tls, --cert/--key, ports', async (t) => {
  t.same(parseChatCommand([]), { port: 8080, host: '127.0.0.1', tls: 'none' }, 'plain `npm start` as before');
  t.same(parseChatCommand([], { PORT: '9000', HOST: '0.0.0.0' }), { port: 9000, host: '0.0.0.0', tls: 'none' });
  t.same(parseChatCommand([], { npm_config_port: '9001' }).port, 9001, '`npm start --port=9001`: npm passes it as npm_config_port');
  t.same(parseChatCommand(['9002'], { npm_config_port: 'true' }).port, 9002, '`npm start --port 9002`: npm passes 9002 as an argument');
  t.throws(() => parseChatCommand(['9002'], {}), { name: 'ChatUsageError' }, 'an argument is a mistake otherwise');
  t.same(parseChatCommand(['--tls']), { port: 8443, host: '127.0.0.1', tls: 'self-signed' }, 'https has its own default port');
  t.same(parseChatCommand(['--tls', '--port', '0']).port, 0);
  t.same(parseChatCommand(['--cert', 'c.pem', '--key', 'k.pem']).tls, { certFile: 'c.pem', keyFile: 'k.pem' }, 'files imply TLS');
  t.throws(() => parseChatCommand(['--cert', 'c.pem']), { code: 'CHAT_USAGE', message: /--cert needs --key/ });
  t.throws(() => parseChatCommand(['--key', 'k.pem', '--tls']), { code: 'CHAT_USAGE', message: /--key needs --cert/ });
  t.throws(() => parseChatCommand(['--port', '70000']), ChatUsageError);
  t.throws(() => parseChatCommand(['--tsl']), { code: 'CHAT_USAGE', message: /--tsl/ });
  t.equal(chatCertificate(parseChatCommand([])), undefined, 'no certificate without TLS');
  t.same(
    parseChatCommand(['--workers', '2', '--redis', 'redis://127.0.0.1:6379', '--instance', 'eu-1', '--presence-interval', '1000']),
    { port: 8080, host: '127.0.0.1', tls: 'none', workers: 2, redis: 'redis://127.0.0.1:6379', instance: 'eu-1', presenceIntervalMs: 1000 },
    'scale-out flags',
  );
  t.throws(() => parseChatCommand(['--workers', '0']), { code: 'CHAT_USAGE', message: /bad --workers "0"/ });
  t.throws(() => parseChatCommand(['--workers', 'two']), { code: 'CHAT_USAGE', message: /bad --workers/ });
  t.throws(() => parseChatCommand(['--redis', 'http://127.0.0.1:6379']), { code: 'CHAT_USAGE', message: /redis:\/\/ or rediss:\/\// });
  t.throws(() => parseChatCommand(['--redis', 'not a url']), { code: 'CHAT_USAGE', message: /bad --redis/ });
  t.throws(() => parseChatCommand(['--instance', 'two words']), { code: 'CHAT_USAGE', message: /bad --instance/ }, 'it goes into a header');
  t.throws(() => parseChatCommand(['--presence-interval', '10']), { code: 'CHAT_USAGE', message: /50 to 600000 ms/ });
});

t.test('certificates for --tls: from files (checked against their key) or made for the run', { skip: OPENSSL_SKIP }, async (t) => {
  const { server, server2, ca } = testCertificates();
  const dir = t.testdir();
  const file = (name: string, pem: string): string => {
    writeFileSync(join(dir, name), pem);
    return join(dir, name);
  };
  const own = chatCertificate({ port: 0, host: '127.0.0.1', tls: { certFile: file('cert.pem', server.cert), keyFile: file('key.pem', server.key) } });
  t.equal(own?.tls.cert, server.cert, 'the file is served as it is');
  t.match(own?.description, new RegExp(`^certificate: from .*cert\\.pem, for DNS:localhost, IP Address:127\\.0\\.0\\.1, SHA-256 ${new X509Certificate(server.cert).fingerprint256}`));
  t.throws(
    () => chatCertificate({ port: 0, host: '127.0.0.1', tls: { certFile: join(dir, 'cert.pem'), keyFile: file('other.pem', server2.key) } }),
    { code: 'CHAT_USAGE', message: /cannot be used together/ },
    'a key of another certificate is refused before serving',
  );
  t.throws(() => chatCertificate({ port: 0, host: '127.0.0.1', tls: { certFile: join(dir, 'missing.pem'), keyFile: join(dir, 'key.pem') } }), {
    code: 'CHAT_USAGE',
    message: /cannot read --cert .*missing\.pem: ENOENT/,
  });
  const made = chatCertificate({ port: 0, host: 'chat.test', tls: 'self-signed' });
  const x509 = new X509Certificate(made!.tls.cert);
  t.equal(x509.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, DNS:chat.test', 'made for localhost, 127.0.0.1 and --host');
  t.ok(x509.checkIssued(x509), 'self-signed');
  t.notOk(x509.checkIssued(new X509Certificate(ca.cert)), 'not the test CA');
  t.match(made!.description, /^certificate: self-signed, made for this run, for DNS:localhost/);
  t.match(made!.warning, /the browser warns/);
  t.equal(own?.warning, undefined, 'no warning for a certificate of your own');
});

t.test('over TLS: the page over https, the chat over wss on the same port', { skip: OPENSSL_SKIP }, async (t) => {
  const { ca } = testCertificates();
  const chat = await startRoom(t, testServerTls());
  t.match(chat.url, /^https:\/\/127\.0\.0\.1:\d+\/$/, 'the URL says https');
  const page = await httpsFetch(chat.url, ca.cert);
  t.equal(page.status, 200, 'the page, verified against the test CA');
  t.match(page.body, /<script type="module" src="chat.js">/);

  // ws (the npm package) as the client: an independent TLS and WebSocket implementation.
  const wss = chat.url.replace('https:', 'wss:');
  const members: WebSocket[] = [];
  t.teardown(() => members.forEach((m) => m.terminate()));
  const join = (name: string, origin?: string): Promise<{ socket: WebSocket; inbox: Received[]; next: (type: string) => Promise<Received> }> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(wss, 'chat', { ca: ca.cert, ...(origin === undefined ? {} : { origin }), handshakeTimeout: 5_000 });
      members.push(socket);
      const inbox: Received[] = [];
      const waiters: Array<() => void> = [];
      socket.on('message', (data) => {
        inbox.push(JSON.parse(String(data)) as Received);
        waiters.splice(0).forEach((w) => w());
      });
      const next = (type: string): Promise<Received> =>
        new Promise((ok, fail) => {
          const timer = setTimeout(() => fail(new Error(`no '${type}' within 3 s: ${JSON.stringify(inbox)}`)), 3_000);
          const look = (): void => {
            const i = inbox.findIndex((m) => m.type === type);
            if (i < 0) return void waiters.push(look);
            clearTimeout(timer);
            ok(inbox.splice(i, 1)[0]!);
          };
          look();
        });
      socket.on('open', () => {
        socket.send(JSON.stringify({ type: 'join', name }));
        resolve({ socket, inbox, next });
      });
      socket.on('unexpected-response', (_request, response) => reject(new Error(`status ${response.statusCode}`)));
      socket.on('error', reject);
    });
  const a = await join('alice', chat.url.slice(0, -1));
  t.match(await a.next('members'), { you: 'alice' }, 'the page\'s own https origin may join');
  const b = await join('bob');
  t.match(await b.next('members'), { you: 'bob', names: ['alice', 'bob'] });
  a.socket.send(JSON.stringify({ type: 'message', text: 'over wss' }));
  t.match(await b.next('message'), { name: 'alice', text: 'over wss' });
  t.match(await a.next('message'), { name: 'alice', text: 'over wss' }, 'the sender gets its own message too');
  b.socket.send(JSON.stringify({ type: 'message', text: 'and back' }));
  t.match(await a.next('message'), { name: 'bob', text: 'and back' });

  const plainOrigin = chat.url.replace('https:', 'http:').slice(0, -1);
  t.match(await join('mallory', plainOrigin).then(() => 'joined', (e: unknown) => String(e)), /status 403/, 'an http: page of the same host and port is another origin (RFC 6454 §4)');
  const plain = await new Promise<string>((resolve) => {
    const socket = new WebSocket(chat.url.replace('https:', 'ws:'), 'chat', { handshakeTimeout: 3_000 });
    members.push(socket);
    socket.on('open', () => resolve('open'));
    socket.on('error', (e) => resolve(e.message));
  });
  t.not(plain, 'open', `a plain ws: connection to the TLS port does not open (${plain})`);
});

t.test('npm start -- --tls: the chat over https on a free port, stopped by its PID', { skip: OPENSSL_SKIP }, async (t) => {
  await ensureChatBuilt(); // the compiled chat, as `npm start` runs it (tap's TypeScript loader is slow to start)
  const cli = runCli(t, ['--tls', '--port', '0'], process.env, 60_000, true);
  const url = (await cli.line(/^quay chat: /)).match(/https:\/\/127\.0\.0\.1:\d+\//)?.[0];
  t.ok(url, `prints the https URL: ${cli.stdout().split('\n')[0]}`);
  const fingerprint = (await cli.line(/^ {2}certificate: /)).match(/SHA-256 ([0-9A-F:]+)/)?.[1];
  const page = await httpsFetch(url!, undefined);
  t.equal(page.status, 200);
  t.match(page.body, /<script type="module" src="chat.js">/);
  t.equal(page.certificate.fingerprint256, fingerprint, 'serves the certificate it printed');
  t.match(page.certificate.subjectAltName, /DNS:localhost, IP Address:127\.0\.0\.1/);
  cli.stop();
  t.equal(await cli.exited, 0, 'SIGTERM closes the room and exits 0');
});

t.test('npm start -- --redis with no Redis there: one line says so, exit 1', async (t) => {
  const port = await freePort();
  await ensureChatBuilt();
  const cli = runCli(t, ['--port', '0', '--redis', `redis://127.0.0.1:${port}`], process.env, 60_000, true);
  t.equal(await cli.exited, 1);
  t.match(cli.stderr(), new RegExp(`^chat: no answer from Redis at redis://127\\.0\\.0\\.1:${port} within 5 s \\(.*ECONNREFUSED.*\\): is redis-server running\\?\\n$`), 'one line, no stack');
  t.equal(cli.stdout().split('\n').filter((l) => l.startsWith('quay chat:')).length, 0, 'nothing served');
});

t.test('npm start -- --tls without openssl: one line says what to do', async (t) => {
  // An empty PATH hides the openssl command (node is started by its absolute path).
  await ensureChatBuilt();
  const cli = runCli(t, ['--tls', '--port', '0'], { ...process.env, PATH: '' }, 60_000, true);
  t.equal(await cli.exited, 1);
  t.equal(cli.stderr(), `${OPENSSL_MISSING_MESSAGE}\n`, 'exactly one line, no stack');
  t.match(OPENSSL_MISSING_MESSAGE, /install it .*openssl.* or pass your own with --cert FILE --key FILE/);
  t.equal(cli.stdout(), '', 'nothing served');
});

// ------------------------------------------------------------------------------------------------ in Chromium

const chromium = findChromium();
if ('missing' in chromium) {
  t.test('in Chromium', { skip: chromium.missing }, () => {});
} else if ('invalid' in chromium) {
  t.fail(chromium.invalid);
} else {
  t.test('in Chromium', (t) => browserTests(t, chromium.path));
}

/** One member's page in its own browser context (own storage, own connection). */
interface Member {
  name: string;
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and console errors: a clean run has none. */
  errors: string[];
  /** The URL of every WebSocket the page opened (ws: or wss:). */
  sockets: string[];
}

async function browserTests(t: Test, executablePath: string): Promise<void> {
  const chat = await startRoom(t);
  // One browser for both rooms: it trusts the test CA's key (the https room's chain), which changes nothing for http.
  const trust = OPENSSL_SKIP === false ? [trustKeysFlag(testCertificates().ca.cert)] : [];
  const browser: Browser = await launchChromium(executablePath, undefined, trust);
  t.teardown(() => browser.close());
  const open = new Set<Member>();

  const openPage = async (name: string, url = chat.url): Promise<Member> => {
    const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    const member: Member = { name, context, page, errors: [], sockets: [] };
    page.on('pageerror', (error) => member.errors.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') member.errors.push(`console: ${message.text()}`);
    });
    page.on('websocket', (socket) => member.sockets.push(socket.url()));
    open.add(member);
    await page.goto(url);
    await page.locator('#status[data-state="connected"]').waitFor();
    return member;
  };
  const joinAs = async (member: Member): Promise<Member> => {
    const { name } = member;
    await member.page.fill('#name', name);
    await member.page.click('#join');
    await member.page.locator('#chat').waitFor({ state: 'visible' });
    await member.page.locator('#status', { hasText: `connected as ${name}` }).waitFor();
    return member;
  };
    const close = async (member: Member): Promise<void> => {
    open.delete(member);
    await member.context.close();
  };

  /** A step that, on failure, leaves a screenshot of every open page in its test folder. */
  const step = (name: string, fn: (t: Test) => Promise<void>) => stepWithScreenshots(t, open, name, fn);

  let alice!: Member;
  let bob!: Member;
  let carol!: Member;

  await step('a third member sees the join notices', async (t) => {
    // Pages load in parallel (a new renderer takes a second on a small machine); they join in a known order.
    [carol, alice, bob] = await Promise.all([openPage('carol'), openPage('alice'), openPage('bob')]);
    await joinAs(carol);
    await joinAs(alice);
    await joinAs(bob);
    await notice(carol, 'joined', 'alice joined.').waitFor();
    await notice(carol, 'joined', 'bob joined.').waitFor();
    await notice(alice, 'joined', 'bob joined.').waitFor();
    await notice(bob, 'joined', 'You joined as bob.').waitFor();
    t.same(await carol.page.locator('#member-list li').allTextContents(), ['carol', 'alice', 'bob']);
    t.equal(await bob.page.locator('#member-count').textContent(), '3');
  });

  await step('two members exchange messages both ways', async (t) => {
    await say(alice, 'hello bob');
    await message(bob, 'alice', 'hello bob').waitFor();
    await message(carol, 'alice', 'hello bob').waitFor();
    await say(bob, 'hi alice!');
    await message(alice, 'bob', 'hi alice!').waitFor();
    t.ok(await message(alice, 'alice', 'hello bob').evaluate((li) => li.classList.contains('mine')), 'own message styled as mine');
    t.equal(await alice.page.inputValue('#text'), '', 'the input is cleared after sending');
  });

  await step('a message with HTML shows as text', async (t) => {
    const html = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b> & &amp;';
    await say(alice, html);
    const li = message(bob, 'alice', '<b>bold</b>');
    await li.waitFor();
    t.equal(await li.locator('.text').textContent(), html, 'the text is literal');
    t.equal(await bob.page.locator('#messages img, #messages script, #messages b').count(), 0, 'no element was injected');
    t.equal(await bob.page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined, 'nothing ran');
  });

  await step('an over-long message is refused with a visible error, the member stays', async (t) => {
    const long = 'y'.repeat(MAX_TEXT_LENGTH + 1);
    await say(alice, long);
    await notice(alice, 'error', `over ${MAX_TEXT_LENGTH} characters`).waitFor();
    t.equal(await alice.page.inputValue('#text'), long, 'the draft is given back');
    t.equal(await alice.page.locator('#status').getAttribute('data-state'), 'connected');
    await say(alice, 'shorter');
    await message(bob, 'alice', 'shorter').waitFor();
    t.equal(await message(bob, 'alice', 'yyyy').count(), 0, 'nobody else saw it');
  });

  await step('closing a page shows its leave notice to the others', async (t) => {
    await close(carol);
    await notice(alice, 'left', 'carol left.').waitFor();
    await notice(bob, 'left', 'carol left.').waitFor();
    t.same(await alice.page.locator('#member-list li').allTextContents(), ['alice', 'bob']);
  });

  await step('a page dropped by the server reconnects, rejoins and says so', async (t) => {
    t.ok(chat.room.drop('bob'), 'the server terminates bob (no close handshake: 1006 in the page)');
    await notice(bob, 'system', 'The connection was lost. Reconnecting').waitFor();
    t.match(await bob.page.locator('#status').textContent(), /reconnecting in \d+ s|connect/, 'the state is shown');
    await notice(alice, 'left', 'bob left.').waitFor();
    // Backoff: the first retry is after about a second.
    await notice(bob, 'system', 'Reconnected: you are back in the room as bob.').waitFor();
    await bob.page.locator('#status', { hasText: 'connected as bob' }).waitFor();
    await notice(alice, 'joined', 'bob joined.').nth(1).waitFor();
    await say(bob, 'back again');
    await message(alice, 'bob', 'back again').waitFor();
    t.same(chat.room.names(), ['alice', 'bob']);
  });

  await step('no page errors', async (t) => {
    for (const member of [alice, bob, carol]) t.same(member.errors, [], `${member.name}: no errors`);
    t.match(alice.sockets, [/^ws:\/\/127\.0\.0\.1:\d+\/$/], 'over http the page connects with ws:');
  });

  if (OPENSSL_SKIP !== false) {
    t.test('over https and wss', { skip: OPENSSL_SKIP }, () => {});
  } else {
    const secure = await startRoom(t, testServerTls());
    let dana!: Member;
    let erin!: Member;

    await step('two pages join the https room', async (t) => {
      [dana, erin] = await Promise.all([openPage('dana', secure.url), openPage('erin', secure.url)]);
      await joinAs(dana);
      await joinAs(erin);
      await notice(dana, 'joined', 'erin joined.').waitFor();
      t.match(secure.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      for (const member of [dana, erin]) {
        t.equal(await member.page.evaluate(() => (globalThis as unknown as { location: { protocol: string } }).location.protocol), 'https:', `${member.name}: the page is on https`);
        t.match(member.sockets, [/^wss:\/\/127\.0\.0\.1:\d+\/$/], `${member.name}: its socket is wss`);
      }
    });

    await step('messages go both ways over wss', async (t) => {
      await say(dana, 'hello over wss');
      await message(erin, 'dana', 'hello over wss').waitFor();
      await say(erin, 'encrypted hello back');
      await message(dana, 'erin', 'encrypted hello back').waitFor();
      t.same(secure.room.names(), ['dana', 'erin']);
      t.same([...dana.errors, ...erin.errors], [], 'no page errors (mixed content, certificate...)');
      await close(dana);
      await close(erin);
    });

    await step('a certificate the browser does not trust is refused', async (t) => {
      // The self-signed certificate `npm start -- --tls` makes: nothing but the CA's key is trusted, so the trust
      // above came from the flag and not from a browser that accepts anything.
      const untrusted = await startRoom(t, testCertificates().selfSigned);
      const context = await browser.newContext();
      t.teardown(() => context.close());
      const page = await context.newPage();
      const error = await page.goto(untrusted.url, { timeout: WAIT_MS }).then(() => undefined, (e: unknown) => e);
      t.match(String(error), /net::ERR_CERT_AUTHORITY_INVALID/);
    });
  }

  if (process.env['QUAY_SCREENSHOT'] === '1') {
    await step('docs/chat.png: a chat with two members', async (t) => {
      await close(alice);
      await close(bob);
      const [ada, linus] = await Promise.all([openPage('Ada'), openPage('Linus')]);
      await joinAs(ada);
      await joinAs(linus);
      await notice(ada, 'joined', 'Linus joined.').waitFor();
      await say(ada, 'Hi Linus! This page came from the same path that this chat is upgraded on.');
      await message(linus, 'Ada', 'Hi Linus!').waitFor();
      await say(linus, 'Neat: one servlet, like the first Jetty WebSocket demo. And <b>tags</b> stay text.');
      await message(ada, 'Linus', 'Neat').waitFor();
      await say(ada, 'Try stopping the server: the page says it is reconnecting, then rejoins.');
      await message(linus, 'Ada', 'Try stopping').waitFor();
      const path = fileURLToPath(new URL('../../docs/chat.png', import.meta.url));
      await linus.page.screenshot({ path });
      t.comment(`wrote ${path}`);
      t.pass('screenshot taken');
    });
  }
}
