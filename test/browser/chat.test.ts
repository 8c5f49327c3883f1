/**
 * The chat room (examples/chat), end to end: the protocol through quay's own WebSocket client, then the page in a
 * real Chromium driven by playwright-core. Without Chromium (no /usr/bin/chromium, no CHROME_PATH) the browser
 * part is skipped and says why; .ci/run installs Chromium so CI always runs it.
 *
 * QUAY_SCREENSHOT=1 also writes docs/chat.png (a chat with two members) for the README.
 */
import t from 'tap';
import type { Test } from 'tap';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { WebSocketClient } from '../../lib/websocket/WebSocketClient.js';
import { HandshakeError } from '../../lib/websocket/HandshakeResponse.js';
import type { WebSocketSession } from '../../lib/websocket/WebSocketSession.js';
import {
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
  codePointLength,
  nameKey,
  sanitizeName,
  sanitizeText,
  startChatServer,
} from '../../examples/chat/server.js';
import type { ChatServer } from '../../examples/chat/server.js';
import { ChatProbe } from './ChatProbe.js';
import { findChromium, launchChromium } from './chromium.js';

/** Playwright's waits: long enough for a loaded CI machine, short enough that a failure is quick. */
const WAIT_MS = 5_000;

async function startRoom(t: Test): Promise<ChatServer> {
  const chat = await startChatServer({ port: 0, host: '127.0.0.1' });
  t.teardown(() => chat.stop(1_000));
  return chat;
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
}

async function browserTests(t: Test, executablePath: string): Promise<void> {
  const chat = await startRoom(t);
  const browser: Browser = await launchChromium(executablePath);
  t.teardown(() => browser.close());
  const open = new Set<Member>();

  const openPage = async (name: string): Promise<Member> => {
    const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    const member: Member = { name, context, page, errors: [] };
    page.on('pageerror', (error) => member.errors.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') member.errors.push(`console: ${message.text()}`);
    });
    open.add(member);
    await page.goto(chat.url);
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
  const notice = (member: Member, kind: string, text: string) =>
    member.page.locator(`#messages li[data-kind="${kind}"]`, { hasText: text });
  const message = (member: Member, from: string, text: string) =>
    member.page.locator('#messages li[data-kind="message"]').filter({ has: member.page.locator('.name', { hasText: from }) }).filter({ hasText: text });
  const say = async (member: Member, text: string): Promise<void> => {
    await member.page.fill('#text', text);
    await member.page.press('#text', 'Enter');
  };

  /** A step that, on failure, leaves a screenshot of every open page in its test folder. */
  const step = (name: string, fn: (t: Test) => Promise<void>) =>
    t.test(name, async (t) => {
      let error: unknown;
      try {
        await fn(t);
      } catch (e) {
        error = e;
      }
      if (error !== undefined || !t.passing()) {
        t.saveFixture = true;
        const dir = t.testdir();
        for (const member of open) {
          await member.page.screenshot({ path: join(dir, `${member.name}.png`), fullPage: true }).catch(() => {});
        }
        t.comment(`screenshots of the open pages in ${dir}`);
      }
      if (error !== undefined) throw error;
    });

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
  });

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
