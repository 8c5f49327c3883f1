/**
 * The README against the package a user installs, so that the two cannot drift apart: `npm pack`, install the
 * tarball into a fresh `"type": "module"` project, type-check every TypeScript block of the README there with
 * `tsc --strict` (against the shipped .d.ts files, skipLibCheck off), then run every block: servers for a moment
 * (they listen forever), clients against the README's own servers (the WebSocket example, or a wss server made
 * here for the wss example, a redis-server on a free port for the Redis example). Ports 8080, 8443 and 6379 are
 * replaced by free ones; key.pem, cert.pem, ca.pem and public/ are made in the project, `redis` (the Redis
 * example's client, a user's own dependency) is linked into it.
 */
import t from 'tap';
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { hasOpenssl, testCertificates } from '../examples/certificates.js';
import { freePort } from '../perf/services/RedisServerProcess.js';
import { Router, Server, WebSocketUpgradeHandler } from '../lib/index.js';
import { RedisServerProcess, findRedisServer } from '../perf/services/RedisServerProcess.js';

// npm pack, npm install, tsc over every block and a run of each: ~95 s alone on the shared 2-core machine, past
// tap's 120 s per file when the suite runs beside it.
t.setTimeout(240_000);

const run = promisify(execFile);
const packageRoot = resolve(import.meta.dirname ?? '.', '..');
const { name } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { name: string };
const HOST = '127.0.0.1';

/** The ```ts blocks of the README, dedented (list items indent theirs), with the line each starts at. */
function tsBlocks(readme: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```ts\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(indent));
    blocks.push({ line: i + 1, code: body.join('\n') + '\n' });
    i = j;
  }
  return blocks;
}

/** The `npm run load -- ...` lines of the README's ```sh blocks, without their comments. */
function shCommands(readme: string): string[] {
  const out: string[] = [];
  for (const line of readme.split('\n')) {
    const m = /^npm run load -- (.+?)(\s+#.*)?$/.exec(line.trim());
    if (m !== null) out.push(m[1]!.trim());
  }
  return out;
}

/**
 * A README command made brief and aimed at this test's servers: ports replaced, at most 2 processes, at most 20 connections or
 * receivers, 1 s with no warm-up, JSON out; `--pid` names the server's process.
 */
function briefly(command: string, plainPort: number, tlsPort: number, pid: number | undefined): string[] {
  const args = command.replace(/\b8080\b/g, String(plainPort)).replace(/\b8443\b/g, String(tlsPort)).split(/\s+/);
  for (let i = 0; i < args.length; i++) {
    if ((args[i] === '-c' || args[i] === '--connections' || args[i] === '--receivers') && Number(args[i + 1]) > 20) args[i + 1] = '20';
    if (args[i] === '-d' || args[i] === '--duration') args[i + 1] = '1';
    if (args[i] === '--processes' && Number(args[i + 1]) > 2) args[i + 1] = '2';
    if (args[i] === '--pid') args[i + 1] = String(pid ?? process.pid);
  }
  if (args[0] === 'selftest') return [...args, '--duration', '1', '--json', '--quiet'];
  if (!args.includes('-d') && !args.includes('--duration')) args.push('--duration', '1');
  return [...args, '--warmup', '0', '--json', '--quiet'];
}

/** Resolves once something accepts on the port (bounded). */
async function listening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: HOST, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

interface Outcome {
  code: number | null;
  stderr: string;
}

/** Runs a compiled block; a preload ends it after `runMs` (servers listen forever) with exit code 0. */
function runBlock(project: string, file: string, runMs: number): { child: ChildProcess; done: Promise<Outcome> } {
  const child = spawn(process.execPath, ['--import', './exit-soon.mjs', file], {
    cwd: project,
    env: { ...process.env, README_RUN_MS: String(runMs) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => void (stderr += b.toString()));
  const done = new Promise<Outcome>((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  return { child, done };
}

function stop(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid);
}

t.test('every TypeScript block of the README type-checks and runs against the installed tarball', { timeout: 230_000 }, async (t) => {
  if (!hasOpenssl()) {
    t.fail('the openssl command is missing (the README examples serve TLS): .ci/run installs it');
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'quay-readme-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // The package as published: dist/ is built by pretest; --ignore-scripts so that pack does not build again.
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: packageRoot, stdio: 'ignore' });
  const tarball = join(work, `${name}-${(JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version}.tgz`);
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme-consumer', version: '1.0.0', private: true, type: 'module' }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: project });
  // The compiler and Node's types, from quay's own dev dependencies (what any TypeScript project has).
  symlinkSync(join(packageRoot, 'node_modules', 'typescript'), join(project, 'node_modules', 'typescript'), 'dir');
  // The Redis client of the README's Redis example (a user's own dependency), and a redis-server for it.
  symlinkSync(join(packageRoot, 'node_modules', 'redis'), join(project, 'node_modules', 'redis'), 'dir');
  mkdirSync(join(project, 'node_modules', '@types'));
  symlinkSync(join(packageRoot, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir');

  // What the examples read: a public/ folder, a certificate and its key, the CA that signed it.
  mkdirSync(join(project, 'public'));
  writeFileSync(join(project, 'public', 'index.html'), '<h1>hello</h1>');
  const certs = testCertificates();
  writeFileSync(join(project, 'key.pem'), certs.server.key);
  writeFileSync(join(project, 'cert.pem'), certs.server.cert);
  writeFileSync(join(project, 'ca.pem'), certs.ca.cert);
  writeFileSync(join(project, 'exit-soon.mjs'), 'setTimeout(() => process.exit(0), Number(process.env.README_RUN_MS)).unref();\n');

  const plainPort = await freePort();
  const tlsPort = await freePort();
  const blocks = tsBlocks(readFileSync(join(packageRoot, 'README.md'), 'utf8'));
  t.ok(blocks.length >= 8, `${blocks.length} TypeScript blocks`);
  const usesRedis = (code: string): boolean => code.includes("from 'redis'");
  let redis: RedisServerProcess | undefined;
  if (blocks.some((b) => usesRedis(b.code)) && findRedisServer() !== undefined) {
    redis = await RedisServerProcess.start();
    t.teardown(() => redis?.stop());
  }
  const files = blocks.map((block, i) => {
    const file = `block${i + 1}`;
    const code = block.code
      .replace(/\b8080\b/g, String(plainPort))
      .replace(/\b8443\b/g, String(tlsPort))
      .replace(/\b6379\b/g, String(redis?.port ?? 6379));
    writeFileSync(join(project, `${file}.mts`), `// README.md line ${block.line}\n${code}`);
    return file;
  });
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2023'],
        types: ['node'],
        skipLibCheck: false,
        outDir: 'out',
      },
      include: ['*.mts'],
    }),
  );
  const tsc = await run(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], { cwd: project }).then(
    () => '',
    (e: { stdout?: string }) => e.stdout ?? String(e),
  );
  t.equal(tsc, '', 'tsc --strict: no errors in any block (nor in the shipped .d.ts files)');

  // Which README server a client block needs: the WebSocket server example for ws://, one made here for wss://.
  const wsServerBlock = blocks.findIndex((b) => b.code.includes('new WebSocketUpgradeHandler') && b.code.includes("route('/chat'"));
  t.ok(wsServerBlock >= 0, 'the README has a WebSocket server example with /chat');
  for (let i = 0; i < blocks.length; i++) {
    const code = blocks[i]!.code;
    const what = `README.md line ${blocks[i]!.line}`;
    const file = `out/${files[i]}.mjs`;
    if (usesRedis(code) && redis === undefined) {
      await t.test(what, { skip: 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)' }, async () => {});
    } else if (code.includes('ws://')) {
      const server = runBlock(project, `out/${files[wsServerBlock]}.mjs`, 10_000);
      t.teardown(() => stop(server.child));
      await listening(plainPort);
      const client = await runBlock(project, file, 1500).done;
      stop(server.child);
      t.same(client, { code: 0, stderr: '' }, `${what} runs against the README's WebSocket server`);
      await server.done;
    } else if (code.includes('wss://')) {
      const server = new Server(
        { port: tlsPort, host: HOST, tls: { key: certs.server.key, cert: certs.server.cert } },
        new Router().route('/chat', new WebSocketUpgradeHandler({ accept: () => ({}) })),
      );
      await server.start();
      const client = await runBlock(project, file, 1500).done;
      await server.stop(500);
      t.same(client, { code: 0, stderr: '' }, `${what} runs against a wss server`);
    } else {
      const outcome = await runBlock(project, file, 1000).done;
      t.same(outcome, { code: 0, stderr: '' }, `${what} runs`);
    }
  }

  // Every quay-load command of the README, briefly, against the README server it names (same ports, replaced).
  const commands = shCommands(readFileSync(join(packageRoot, 'README.md'), 'utf8'));
  t.ok(commands.length >= 6, `${commands.length} quay-load commands`);
  const serverFor = (command: string): number | undefined => {
    if (command.includes(':8443')) return blocks.findIndex((b) => b.code.includes('port: 8443'));
    if (command.includes('/hello')) return blocks.findIndex((b) => b.code.includes("route('/hello'"));
    if (command.includes('ws://')) return wsServerBlock;
    return undefined;
  };
  for (const command of commands) {
    const index = serverFor(command);
    const server = index === undefined ? undefined : runBlock(project, `out/${files[index]}.mjs`, 30_000);
    if (server !== undefined) {
      t.teardown(() => stop(server.child));
      await listening(command.includes(':8443') ? tlsPort : plainPort);
    }
    const args = briefly(command, plainPort, tlsPort, server?.child.pid);
    const outcome = await run(process.execPath, [join(project, 'node_modules', name, 'dist', 'perf', 'load', 'cli.js'), ...args], { cwd: project }).then(
      ({ stdout }) => ({ code: 0, report: JSON.parse(stdout) as { count: number; errors: Record<string, number> } }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? -1, report: undefined, stderr: e.stderr }),
    );
    if (server !== undefined) {
      stop(server.child);
      await server.done;
    }
    t.equal(outcome.code, 0, `${command}: exit 0`);
    t.ok((outcome.report?.count ?? 0) > 0, `${command}: measured something`);
  }

  // CommonJS: require() of the installed package (Node 20.19+).
  writeFileSync(join(project, 'consumer.cjs'), "const { Server, WebSocket } = require('quayjs'); console.log(typeof Server, typeof WebSocket);\n");
  const cjs = await run(process.execPath, ['consumer.cjs'], { cwd: project });
  t.equal(cjs.stdout.trim(), 'function function', 'require() works');

  // The shipped source maps point at sources that are shipped.
  const map = JSON.parse(readFileSync(join(project, 'node_modules', name, 'dist', 'lib', 'index.js.map'), 'utf8')) as { sources: string[] };
  const source = resolve(join(project, 'node_modules', name, 'dist', 'lib'), map.sources[0]!);
  t.doesNotThrow(() => readFileSync(source), `the source map's ${map.sources[0]} is in the tarball`);
});
