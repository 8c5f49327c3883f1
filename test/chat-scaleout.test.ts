/**
 * The chat demo scaled out, without a browser (quay's WebSocketClient as the members): through a real HAProxy
 * (keepalive pings past its `timeout client`), on a cluster of 2 workers (`npm start -- --workers 2`, messages
 * through the IPC broker), and as two instances linked through a real redis-server (`--redis`): an instance that
 * dies leaves the others' lists, Redis restarted and the chat resumes. test/browser/scaleout.test.ts does the same
 * with Chromium pages behind HAProxy.
 *
 * haproxy and redis-server are Debian's (.ci/run installs them); without them these tests skip and say why.
 * Every process is started on 127.0.0.1 free ports and stopped by its PID.
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { WebSocketClient } from '../lib/websocket/WebSocketClient.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { startChatServer } from '../examples/chat/server.js';
import { HAPROXY_MISSING, HaproxyProcess, findHaproxy } from '../perf/services/HaproxyProcess.js';
import { RedisServerProcess, findRedisServer } from '../perf/services/RedisServerProcess.js';
import { ensureChatBuilt, runCli } from './support/chatCli.js';
import { ChatProbe } from './browser/ChatProbe.js';
import type { Received } from './browser/ChatProbe.js';

// redis-server, haproxy and a dozen chat processes on a small shared machine: more than tap's default 120 s when
// it is loaded.
t.setTimeout(300_000);

const HAPROXY_SKIP = findHaproxy() === undefined ? HAPROXY_MISSING : false;
const REDIS_SKIP = findRedisServer() === undefined ? 'redis-server is not installed (Debian: apt-get install redis-server, as .ci/run does; or set REDIS_SERVER)' : false;

/** A member: its session and what it received. */
interface Member {
  session: WebSocketSession;
  probe: ChatProbe;
  /** The instance it is on (from its `members` message). */
  instance: string;
  /** Its `members` message. */
  members: Received;
}

function newClient(t: Test): WebSocketClient {
  const client = new WebSocketClient();
  t.teardown(() => client.stop(500));
  return client;
}

/** Connects to `url` (http:, https:, ws: or wss:) with the chat subprotocol and joins as `name`; `ca` for wss. */
async function join(client: WebSocketClient, url: string, name: string, clientId?: string, ca?: string): Promise<Member> {
  const probe = new ChatProbe();
  const session = await client.connect(url.replace(/^http/, 'ws'), { protocols: ['chat'], listener: probe, handshakeTimeoutMs: 5_000, ...(ca === undefined ? {} : { ca }) });
  await session.sendText(JSON.stringify({ type: 'join', name, ...(clientId === undefined ? {} : { client: clientId }) }));
  const members = await probe.next('members');
  await probe.next('joined'); // its own notice
  return { session, probe, instance: String(members['instance']), members };
}

/**
 * Which worker takes a connection is the kernel's choice (lib/cluster's default scheduling; with round-robin, the
 * primary's, in turn): joins as `name0`, `name1`... until a member lands on an instance `wanted` accepts (the others
 * leave at once), at most 20 tries; undefined if none did.
 */
async function joinWhere(client: WebSocketClient, url: string, name: string, wanted: (instance: string) => boolean, ca?: string): Promise<Member | undefined> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const candidate = await join(client, url, `${name}${attempt}`, undefined, ca);
    if (wanted(candidate.instance)) return candidate;
    candidate.session.close(1000);
  }
  return undefined;
}

/** Says `text` as `from` and waits for it at `to`. */
async function say(from: Member, to: Member, text: string): Promise<Received> {
  await from.session.sendText(JSON.stringify({ type: 'message', text }));
  return to.probe.nextWhere('message', (m) => m['text'] === text, 5_000);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** GET /instance of a chat instance. */
async function about(url: string): Promise<{ instance: string; pid: number; names: string[]; members: string[]; instances: Record<string, number>; pubsub: { broker?: { state: string } } }> {
  const response = await fetch(new URL('instance', url), { signal: AbortSignal.timeout(5_000) });
  return (await response.json()) as never;
}

// ------------------------------------------------------------------------------------------------ identity

t.test('instance identity: X-Quay-Instance on every response (the 101 too), GET /instance, members.instance', async (t) => {
  const chat = await startChatServer({ port: 0, host: '127.0.0.1', instance: 'eu-1' });
  t.teardown(() => chat.stop(500));
  const page = await fetch(chat.url);
  t.equal(page.headers.get('x-quay-instance'), 'eu-1', 'the page');
  await page.arrayBuffer();
  const missing = await fetch(new URL('nothing-here', chat.url));
  t.equal(missing.status, 404);
  t.equal(missing.headers.get('x-quay-instance'), 'eu-1', 'a 404');
  await missing.arrayBuffer();
  const info = await about(chat.url);
  t.match(info, { instance: 'eu-1', pid: process.pid, members: [], names: [], instances: {} }, 'GET /instance');
  // The 101: node:http as an independent client, which shows the upgrade response's headers.
  const upgraded = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = httpRequest(new URL(chat.url), {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'chat' },
      timeout: 5_000,
    });
    request.on('upgrade', (response: IncomingMessage, socket: Socket) => {
      socket.destroy();
      resolve(response);
    });
    request.on('response', (response) => reject(new Error(`status ${response.statusCode}`)));
    request.on('error', reject);
    request.end();
  });
  t.equal(upgraded.statusCode, 101);
  t.equal(upgraded.headers['x-quay-instance'], 'eu-1', 'the 101');
  const member = await join(newClient(t), chat.url, 'alice');
  t.equal(member.instance, 'eu-1', 'the members message');
  const unnamed = await startChatServer({ port: 0, host: '127.0.0.1' });
  t.teardown(() => unnamed.stop(500));
  t.equal(unnamed.instance, `${hostname()}:${new URL(unnamed.url).port}/${process.pid}`, 'default: host:port/pid');
});

// ------------------------------------------------------------------------------------------------ HAProxy

t.test('examples/chat/haproxy.cfg is a valid HAProxy configuration with the WebSocket settings', { skip: HAPROXY_SKIP }, async (t) => {
  const file = fileURLToPath(new URL('../examples/chat/haproxy.cfg', import.meta.url));
  const check = spawnSync(findHaproxy()!, ['-c', '-f', file], { encoding: 'utf8', timeout: 10_000 });
  t.equal(check.status, 0, `haproxy -c accepts it: ${check.stdout}${check.stderr}`);
  const config = readFileSync(file, 'utf8');
  for (const line of [/^ {2}timeout tunnel \S+/m, /^ {2}option redispatch$/m, /^ {2}retries \d+$/m, /^ {2}balance leastconn$/m, /^ {2}option httpchk GET \/instance$/m]) {
    t.match(config, line, `has ${line}`);
  }
  t.ok((config.match(/^ {2}server \S+ \S+ check$/gm) ?? []).length >= 2, 'two or more instances, checked');
});

t.test('pingIntervalMs keeps an idle session open past HAProxy\'s `timeout client` (no `timeout tunnel`)', { skip: HAPROXY_SKIP }, async (t) => {
  // Two rooms behind two HAProxy runs with the same short timeouts (client and server 2 s, no tunnel timeout):
  // one room pings every 800 ms, the other not. (2 s, not 1: a ping late by a loaded machine must not lose.) The
  // ping interval is also the time the pong has to come back in (then the session closes with 1001): 800 ms, not
  // less, so that a test process starved for a moment by the other tests' load (Chromium) still answers in time,
  // while a ping still goes out well within HAProxy's 2 s.
  const start = async (pingIntervalMs: number): Promise<{ haproxy: HaproxyProcess; instance: string }> => {
    // The idle sweep every 100 ms: a ping goes out 800 to 900 ms after the last traffic (the default 1 s sweep
    // would make that 800 to 1800 ms).
    const chat = await startChatServer({ port: 0, host: '127.0.0.1', pingIntervalMs, idleTickMs: 100 });
    t.teardown(() => chat.stop(500));
    const haproxy = await HaproxyProcess.start({ backends: [{ name: 'quay1', port: Number(new URL(chat.url).port) }], timeoutClientMs: 2_000, timeoutServerMs: 2_000 });
    t.teardown(() => haproxy.stop());
    t.notMatch(haproxy.config, /timeout tunnel/, 'no `timeout tunnel`: HAProxy applies `timeout client`/`server` to the WebSocket');
    t.match(haproxy.config, /timeout client 2000ms/);
    await haproxy.waitForServer('quay1', 'UP');
    return { haproxy, instance: chat.instance };
  };
  const pinged = await start(800);
  const silent = await start(0);
  const client = newClient(t);

  const a = await join(client, pinged.haproxy.url, 'alice');
  const b = await join(client, silent.haproxy.url, 'bob');
  t.equal(a.instance, pinged.instance, 'through HAProxy to the instance');
  // Idle for 5 s: two and a half times HAProxy's `timeout client`.
  await sleep(5_000);
  t.ok(a.session.isOpen, 'with pings every 800 ms the idle session is still open after 5 s');
  t.match(await say(a, a, 'still here'), { name: 'alice', text: 'still here' }, 'and still carries messages');
  const [code] = await Promise.race([b.probe.closed, sleep(2_000).then(() => [0, 'not closed'] as const)]);
  t.equal(code, 1006, 'without pings HAProxy closed the idle session (no close frame: 1006)');
  t.notOk(b.session.isOpen);
});

// ------------------------------------------------------------------------------------------------ --workers 2

t.test('npm start -- --workers 2: two workers, two members on different workers chat through the IPC broker', async (t) => {
  // node:cluster forks the workers from the compiled program (as `npm start` runs it).
  await ensureChatBuilt();
  const cli = runCli(t, ['--workers', '2', '--port', '0'], process.env, 60_000, true);
  const workers = await cli.lines(/^quay chat worker \d+: /, 2);
  await cli.line(/^quay chat: 2 workers ready/);
  const urls = new Set(workers.map((line) => line.match(/http:\/\/127\.0\.0\.1:\d+\//)![0]));
  t.equal(urls.size, 1, `the workers share one port: ${[...urls].join(' ')}`);
  const url = [...urls][0]!;
  const pids = workers.map((line) => Number(line.match(/worker (\d+):/)![1]));
  t.not(pids[0], cli.pid, 'the workers are other processes than the primary');

  const client = newClient(t);
  const alice = await join(client, url, 'alice');
  const bob = await joinWhere(client, url, 'bob', (instance) => instance !== alice.instance);
  if (bob === undefined) return t.fail('no connection landed on the second worker in 20 tries');
  t.not(bob.instance, alice.instance, `alice on ${alice.instance}, bob on ${bob.instance}`);
  t.ok(pids.some((pid) => alice.instance.endsWith(`/${pid}`)) && pids.some((pid) => bob.instance.endsWith(`/${pid}`)), 'each instance name ends with its worker\'s PID');

  t.match(await say(alice, bob, 'hello from the first worker'), { name: 'alice', text: 'hello from the first worker' });
  t.match(await say(bob, alice, 'hello back from the second'), { text: 'hello back from the second' });
  // Bob's list was made when he joined, which may be before alice's `joined` reached his worker (it travels
  // through the primary's relay). Once bob has alice's message, his worker has her `joined` too (one origin's
  // messages arrive in order): a member joining there now sees her in the list.
  const carol = await joinWhere(client, url, 'carol', (instance) => instance === bob.instance);
  if (carol === undefined) return t.fail('no connection landed on the second worker again in 20 tries');
  t.ok((carol.members['names'] as string[]).includes('alice'), 'a joiner on the other worker sees alice in its list');

  cli.stop();
  t.equal(await cli.exited, 0, 'SIGTERM to the primary stops the workers and exits 0');
  t.equal((await alice.probe.closed)[0], 1001, 'members got 1001 (going away)');
});

t.test('npm start -- --workers 2 --tls: every worker serves the certificate the primary made; members on both chat over wss', async (t) => {
  await ensureChatBuilt();
  const cli = runCli(t, ['--workers', '2', '--port', '0', '--tls'], process.env, 60_000, true);
  const workers = await cli.lines(/^quay chat worker \d+: /, 2);
  await cli.line(/^quay chat: 2 workers ready/);
  const fingerprint = (await cli.line(/^\s+certificate: self-signed/)).match(/SHA-256 ([0-9A-F:]+)/)?.[1];
  t.ok(fingerprint, 'the primary printed its certificate');
  const urls = new Set(workers.map((line) => line.match(/https:\/\/127\.0\.0\.1:\d+\//)?.[0]));
  t.equal(urls.size, 1, `both workers on one https port: ${[...urls].join(' ')}`);
  const url = [...urls][0]!;
  // The certificate a TLS connection gets, whichever worker the kernel gives it to: 8 connections, each its own.
  const seen = new Set<string>();
  let pem = '';
  for (let i = 0; i < 8; i++) {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), rejectUnauthorized: false });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    const certificate = socket.getPeerX509Certificate()!;
    seen.add(certificate.fingerprint256);
    pem = certificate.toString();
    socket.destroy();
  }
  t.same([...seen], [fingerprint], 'every connection got the certificate of the primary');

  // The members trust that certificate (and nothing else): wss with it as the CA, verified.
  const client = newClient(t);
  const alice = await join(client, url, 'alice', undefined, pem);
  const bob = await joinWhere(client, url, 'bob', (instance) => instance !== alice.instance, pem);
  if (bob === undefined) return t.fail('no connection landed on the second worker in 20 tries');
  t.not(bob.instance, alice.instance, `alice on ${alice.instance}, bob on ${bob.instance}`);
  t.match(await say(alice, bob, 'over wss, worker to worker'), { name: 'alice', text: 'over wss, worker to worker' });
  t.match(await say(bob, alice, 'and back'), { text: 'and back' });
  cli.stop();
  t.equal(await cli.exited, 0, 'SIGTERM to the primary stops the workers and exits 0');
  t.equal((await alice.probe.closed)[0], 1001, 'members got 1001 (going away)');
});

t.test('npm start -- --workers 2 --redis URL: both together, every worker on Redis', { skip: REDIS_SKIP }, async (t) => {
  await ensureChatBuilt();
  const redis = await RedisServerProcess.start();
  t.teardown(() => redis.stop());
  const cli = runCli(t, ['--workers', '2', '--port', '0', '--redis', redis.url, '--instance', 'node1'], process.env, 60_000, true);
  const url = (await cli.line(/^quay chat worker \d+: /)).match(/http:\/\/127\.0\.0\.1:\d+\//)![0];
  t.match(await cli.line(/^quay chat: 2 workers ready/), /linked through Redis at redis:\/\/127\.0\.0\.1:\d+/);
  const client = newClient(t);
  const alice = await join(client, url, 'alice');
  const bob = await joinWhere(client, url, 'bob', (instance) => instance !== alice.instance);
  if (bob === undefined) return t.fail('no connection landed on the second worker in 20 tries');
  t.match(alice.instance, /^node1\/\d+$/, `--instance NAME: NAME/pid per worker (${alice.instance}, ${bob.instance})`);
  t.match(await say(alice, bob, 'through redis'), { name: 'alice', text: 'through redis' });
  t.match(await say(bob, alice, 'and back'), { text: 'and back' });
  cli.stop();
  t.equal(await cli.exited, 0);
});

// ------------------------------------------------------------------------------------------------ --redis

t.test('--redis: instances linked through Redis: one room across them, Redis restarted, a graceful stop, a killed instance', { skip: REDIS_SKIP }, async (t) => {
  await ensureChatBuilt();
  const redis = await RedisServerProcess.start();
  t.teardown(() => redis.stop());
  const start = async (name: string) => {
    const cli = runCli(t, ['--port', '0', '--redis', redis.url, '--instance', name, '--presence-interval', '1000'], process.env, 60_000, true);
    const url = (await cli.line(/^quay chat: /)).match(/http:\/\/127\.0\.0\.1:\d+\//)![0];
    return { cli, url };
  };
  const [one, two] = await Promise.all([start('one'), start('two')]);
  const client = newClient(t);
  const alice = await join(client, one.url, 'alice');
  // Two hears of alice's join through Redis (bounded wait), then bob joins there.
  for (let i = 0; i < 50 && !(await about(two.url)).names.includes('alice'); i++) await sleep(100);
  const bob = await join(client, two.url, 'bob', 'page-of-bob');
  t.equal(alice.instance, 'one');
  t.equal(bob.instance, 'two');
  t.same(bob.members['names'], ['bob', 'alice'], 'bob sees alice, who is on the other instance');
  t.match(await alice.probe.next('joined'), { name: 'bob', instance: 'two' }, 'alice sees bob join over there');
  t.match(await say(alice, bob, 'one to two'), { name: 'alice', text: 'one to two' });
  t.match(await say(bob, alice, 'two to one'), { name: 'bob' });

  const carol = await join(client, two.url, 'ALICE');
  t.equal(carol.members['you'], 'ALICE (2)', 'a name taken on another instance is numbered');
  t.match(await alice.probe.next('joined'), { name: 'ALICE (2)' });

  await t.test('Redis restarted: the chat resumes across the instances', async (t) => {
    await redis.stop();
    await sleep(300);
    await redis.restart();
    // Both instances' brokers back: messages from one reach the other again (bounded tries while they re-subscribe).
    let got: Received | undefined;
    for (let attempt = 0; attempt < 20 && got === undefined; attempt++) {
      await alice.session.sendText(JSON.stringify({ type: 'message', text: `after restart ${attempt}` }));
      got = await bob.probe.nextWhere('message', (m) => /^after restart/.test(String(m['text'])), 500).catch(() => undefined);
    }
    t.match(got, { name: 'alice', text: /^after restart \d+$/ }, 'alice -> bob after the restart');
    t.match(await say(bob, alice, 'and back'), { name: 'bob', text: 'and back' }, 'bob -> alice');
    t.equal((await about(one.url)).pubsub.broker?.state, 'ready');
    t.equal((await about(two.url)).pubsub.broker?.state, 'ready');
  });

  await t.test('an instance stopped (SIGTERM): its members\' `left` and its `bye` reach the others before it exits', async (t) => {
    const three = await start('three');
    for (let i = 0; i < 50 && !('three' in (await about(one.url)).instances); i++) await sleep(100);
    const dave = await join(client, three.url, 'dave');
    t.match(await alice.probe.nextWhere('joined', (m) => m['name'] === 'dave'), { instance: 'three' });
    three.cli.stop();
    t.equal(await three.cli.exited, 0, 'a graceful stop');
    t.equal((await dave.probe.closed)[0], 1001);
    t.match(await alice.probe.nextWhere('left', (m) => m['name'] === 'dave', 1_000), { instance: 'three' }, 'dave left, said by his instance (not 3 intervals later)');
    let instances: Record<string, number> = {};
    for (let i = 0; i < 10 && 'three' in ((instances = (await about(one.url)).instances)); i++) await sleep(100);
    t.notOk('three' in instances, 'instance one forgot three at its `bye`');
    t.same(alice.probe.pending.filter((m) => m.type === 'left'), [], 'one notice of dave leaving, not two');
  });

  await t.test('an instance killed: its page takes its name back elsewhere; the others leave after 3 silent intervals', async (t) => {
    // Whatever the outage told alice (an outage longer than 3 intervals makes the others leave and come back).
    for (let i = 0; i < 50 && (await about(one.url)).names.length !== 3; i++) await sleep(100);
    t.same((await about(one.url)).names.sort(), ['ALICE (2)', 'alice', 'bob'], 'instance one knows the three');
    alice.probe.clear();
    two.cli.kill('SIGKILL');
    t.equal(await two.cli.exited, 'SIGKILL');
    // At once, before instance one presumes two gone: someone else asking for 'bob' gets a number, bob's own page
    // (the same client id) coming back through the load balancer gets its name back.
    const mallory = await join(client, one.url, 'bob', 'page-of-mallory');
    t.equal(mallory.members['you'], 'bob (2)', 'another page: numbered');
    const bobAgain = await join(client, one.url, 'bob', 'page-of-bob');
    t.equal(bobAgain.members['you'], 'bob', 'the same page: its name back');
    const left = await alice.probe.next('left', 6_000);
    t.match(left, { name: 'ALICE (2)' }, 'after 3 silent intervals alice is told ALICE (2) left');
    await sleep(300);
    t.same(alice.probe.pending.filter((m) => m.type === 'left'), [], 'and nothing about bob, who is here now');
    t.same((await about(one.url)).names, ['alice', 'bob (2)', 'bob'], 'instance one: its own three, nobody of two');
    t.same((await about(one.url)).instances, {}, 'and it forgot instance two');
  });
});
