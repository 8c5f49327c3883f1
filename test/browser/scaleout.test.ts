/**
 * The chat scaled out, in a real Chromium (playwright-core, as test/browser/chat.test.ts): two chat instances
 * (child processes, `npm start -- --redis URL`) linked through one real redis-server, behind a real HAProxy. Two
 * pages land on different instances (each page shows which: the `members` message says) and chat both ways;
 * Redis is restarted on the same port and the chat resumes across the instances; the instance of one page is
 * killed (SIGKILL, by PID) and that page reconnects through HAProxy to the other instance, keeps its name, and
 * chats on.
 *
 * Without Chromium, haproxy or redis-server the test skips and says why (.ci/run installs all three). Every
 * process (redis-server, haproxy, the instances, the browser) is stopped by its PID at teardown.
 */
import t from 'tap';
import type { Test } from 'tap';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { HAPROXY_MISSING, HaproxyProcess, findHaproxy } from '../../perf/services/HaproxyProcess.js';
import { RedisServerProcess, findRedisServer } from '../../perf/services/RedisServerProcess.js';
import { ensureChatBuilt, runCli } from '../support/chatCli.js';
import type { CliRun } from '../support/chatCli.js';
import { findChromium, launchChromium } from './chromium.js';
import { message, notice, say, stepWithScreenshots } from './chatPage.js';

// redis-server, two instances, haproxy and Chromium on a small shared machine: more than tap's default 120 s
// when it is loaded.
t.setTimeout(300_000);

/** Playwright's waits: long enough for a loaded CI machine, short enough that a failure is quick. */
const WAIT_MS = 10_000;

const chromium = findChromium();
const missing =
  'missing' in chromium
    ? chromium.missing
    : findHaproxy() === undefined
      ? HAPROXY_MISSING
      : findRedisServer() === undefined
        ? 'redis-server is not installed (Debian: apt-get install redis-server, as .ci/run does; or set REDIS_SERVER)'
        : undefined;
if ('invalid' in chromium) {
  t.fail(chromium.invalid);
} else if (missing !== undefined || !('path' in chromium)) {
  t.test('two instances behind HAProxy, in Chromium', { skip: missing ?? 'no Chromium' }, () => {});
} else {
  t.test('two instances behind HAProxy, in Chromium', (t) => scaleOut(t, chromium.path));
}

/** One member's page in its own browser context (own storage, own connection). */
interface Member {
  name: string;
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors: a clean run has none. */
  errors: string[];
}

/** A chat instance: the child process and its own URL (not through HAProxy). */
interface Instance {
  name: string;
  cli: CliRun;
  url: string;
}

async function scaleOut(t: Test, executablePath: string): Promise<void> {
  await ensureChatBuilt(); // the instances run the compiled chat, as `npm start` does
  const redis = await RedisServerProcess.start();
  t.teardown(() => redis.stop());
  const startInstance = async (name: string): Promise<Instance> => {
    const cli = runCli(t, ['--port', '0', '--redis', redis.url, '--instance', name, '--presence-interval', '1000'], process.env, 120_000, true);
    const url = (await cli.line(/^quay chat: /)).match(/http:\/\/127\.0\.0\.1:\d+\//)![0];
    return { name, cli, url };
  };
  const instances = await Promise.all([startInstance('quay1'), startInstance('quay2')]);
  const byName = new Map(instances.map((i) => [i.name, i]));
  // The demo's HAProxy settings (examples/chat/haproxy.cfg): leastconn, checks of GET /instance, retries and
  // redispatch, a long tunnel timeout (quay's pings keep the sessions alive anyway).
  const haproxy = await HaproxyProcess.start({
    backends: instances.map((i) => ({ name: i.name, port: Number(new URL(i.url).port) })),
    timeoutTunnelMs: 3_600_000,
  });
  t.teardown(() => haproxy.stop());
  await Promise.all(instances.map((i) => haproxy.waitForServer(i.name, 'UP')));

  const browser: Browser = await launchChromium(executablePath);
  t.teardown(() => browser.close());
  const open = new Set<Member>();

  const openPage = async (name: string): Promise<Member> => {
    const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    const member: Member = { name, context, page, errors: [] };
    page.on('pageerror', (error) => member.errors.push(`pageerror: ${error.message}`));
    open.add(member);
    const response = await page.goto(haproxy.url);
    t.match(response?.headers()['x-quay-instance'], /^quay[12]$/, `${name}: the page came from an instance (X-Quay-Instance)`);
    await page.locator('#status[data-state="connected"]').waitFor();
    await page.fill('#name', name);
    await page.click('#join');
    await page.locator('#status', { hasText: `connected as ${name}` }).waitFor();
    return member;
  };
  /** The instance the page's chat connection is on (from its `members` message, shown in the footer). */
  const instanceOf = async (member: Member): Promise<string> => (await member.page.locator('#instance').getAttribute('data-instance')) ?? '';

  /** A step that, on failure, leaves a screenshot of every open page in its test folder. */
  const step = (name: string, fn: (t: Test) => Promise<void>) => stepWithScreenshots(t, open, name, fn, () => `haproxy: ${haproxy.stderr}`);

  let alice!: Member;
  let bob!: Member;

  await step('two pages land on different instances and chat both ways', async (t) => {
    // One after the other: with leastconn the second page goes to the instance without a connection.
    alice = await openPage('alice');
    // Both instances know of alice (through Redis) before bob comes (bounded wait).
    for (let i = 0; i < 50; i++) {
      const names = await Promise.all(instances.map(async (i) => ((await (await fetch(new URL('instance', i.url))).json()) as { names: string[] }).names));
      if (names.every((n) => n.includes('alice'))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    bob = await openPage('bob');
    const [a, b] = [await instanceOf(alice), await instanceOf(bob)];
    t.match(a, /^quay[12]$/, `alice is on ${a}`);
    t.match(b, /^quay[12]$/, `bob is on ${b}`);
    t.not(a, b, 'two instances');
    await notice(alice, 'joined', 'bob joined.').waitFor();
    t.same(await bob.page.locator('#member-list li').allTextContents(), ['bob', 'alice'], 'bob sees alice, who is on the other instance');
    await say(alice, 'hello from alice');
    await message(bob, 'alice', 'hello from alice').waitFor();
    await say(bob, 'hi alice, from the other instance');
    await message(alice, 'bob', 'hi alice, from the other instance').waitFor();
  });

  await step('Redis restarted on the same port: the chat resumes across the instances', async (t) => {
    await redis.stop();
    await redis.restart();
    // While the instances re-subscribe, a message may reach only its own instance: say it again (bounded).
    let delivered = false;
    for (let attempt = 0; attempt < 15 && !delivered; attempt++) {
      await say(alice, `after the restart ${attempt}`);
      delivered = await message(bob, 'alice', `after the restart ${attempt}`).waitFor({ timeout: 1_000 }).then(() => true, () => false);
    }
    t.ok(delivered, 'alice -> bob through the restarted Redis');
    await say(bob, 'bob got it');
    await message(alice, 'bob', 'bob got it').waitFor();
    t.equal(await alice.page.locator('#status').getAttribute('data-state'), 'connected', 'the pages never noticed');
  });

  await step('the instance of one page is killed: it reconnects through HAProxy to the other, keeps its name, chats on', async (t) => {
    const bobs = byName.get(await instanceOf(bob))!;
    const alices = await instanceOf(alice);
    bobs.cli.kill('SIGKILL');
    t.equal(await bobs.cli.exited, 'SIGKILL', `${bobs.name} (PID ${bobs.cli.pid}) killed`);
    await notice(bob, 'system', 'The connection was lost. Reconnecting').waitFor();
    await notice(bob, 'system', 'Reconnected: you are back in the room as bob.').waitFor({ timeout: 20_000 });
    t.equal(await instanceOf(bob), alices, `bob is now on ${alices}, with alice`);
    await bob.page.locator('#status', { hasText: 'connected as bob' }).waitFor();
    await say(bob, 'back, on the other instance');
    await message(alice, 'bob', 'back, on the other instance').waitFor();
    await say(alice, 'welcome back');
    await message(bob, 'alice', 'welcome back').waitFor();
    t.same((await bob.page.locator('#member-list li').allTextContents()).sort(), ['alice', 'bob'], 'the same two names, no "bob (2)"');
    await haproxy.waitForServer(bobs.name, 'DOWN');
    t.pass(`HAProxy's checks marked ${bobs.name} DOWN`);
  });

  await step('no page errors', async (t) => {
    for (const member of [alice, bob]) t.same(member.errors, [], `${member.name}: no errors`);
  });
}
