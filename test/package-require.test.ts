/**
 * The package as a CommonJS program sees it: `require()` of the built package (Node 20.19+ loads an ES module
 * without top-level await through require) gives the same exports as `import`, and a server made through it works.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const packageRoot = resolve(import.meta.dirname ?? '.', '..');
const { name } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { name: string };
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];

t.test('require() of the package works and gives what import gives', { skip: major === 20 && minor < 19 ? 'require(esm) needs Node 20.19+' : false }, async (t) => {
  const project = mkdtempSync(join(tmpdir(), 'quay-require-'));
  t.teardown(() => rmSync(project, { recursive: true, force: true }));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'commonjs' }));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(packageRoot, join(project, 'node_modules', name), 'dir');
  writeFileSync(
    join(project, 'main.js'),
    `const quay = require(${JSON.stringify(name)});
const server = new quay.Server({ port: 0, host: '127.0.0.1' }, (request, response) => response.send(200, 'hello from require'));
server.start().then(async ({ port }) => {
  const body = await fetch('http://127.0.0.1:' + port + '/').then((r) => r.text());
  await server.stop(500);
  console.log(JSON.stringify({ body, exports: Object.keys(quay).sort() }));
});
`,
  );
  const out = execFileSync(process.execPath, ['main.js'], { cwd: project, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const result = JSON.parse(out.trim().split('\n').pop()!) as { body: string; exports: string[] };
  t.equal(result.body, 'hello from require');
  const imported = Object.keys(await import(join(packageRoot, 'dist/lib/index.js'))).sort();
  t.same(result.exports, imported, 'the same exports as import');
});
