import t from 'tap';
import { formatFailures, parseTapFile } from '../tools/tapFailures.js';

// A results file as tap 21 writes it: a passing subtest, a nested failure (whose enclosing subtests report
// `not ok` too, as aggregates), and a failed assertion at the top level.
const FAILED = [
  'TAP version 14',
  '# Subtest: passes',
  '    ok 1 - should be equal',
  '    1..1',
  'ok 1 - passes # time=4.551ms',
  '',
  '# Subtest: outer',
  '    # Subtest: inner',
  '        ok 1 - fine',
  '        not ok 2 - one is two',
  '          ---',
  '          compare: ===',
  '          diff: |',
  '            -2',
  '            +1',
  '          ...',
  '        ',
  '        1..2',
  '    not ok 1 - inner # time=3ms',
  '      ---',
  '      at: somewhere',
  '      ...',
  '    1..1',
  'not ok 2 - outer # time=18.208ms',
  '  ---',
  '  at: elsewhere',
  '  ...',
  'not ok 3 - top-level assertion',
  '',
  '1..3',
  '# time=36.995ms',
].join('\n');

t.test('only the failed points, with their subtest path and diagnostics', async (t) => {
  const r = parseTapFile('test/a.test.ts', FAILED);
  t.equal(r.incomplete, false);
  t.same(
    r.failures.map((f) => f.path),
    [['outer', 'inner', 'one is two'], ['top-level assertion']],
  );
  t.same(r.failures[0].diagnostics, ['compare: ===', 'diff: |', '  -2', '  +1']);
  t.same(r.failures[1].diagnostics, []);
  const text = formatFailures([r]);
  t.match(text, /# FAILED test\/a\.test\.ts > outer > inner > one is two\n#     compare: ===/);
  t.match(text, /# FAILED test\/a\.test\.ts > top-level assertion/);
  t.notMatch(text, /INCOMPLETE/);
});

t.test('a subtest that fails without a failed assertion of its own is listed', async (t) => {
  const text = ['# Subtest: times out', '    ok 1 - started', 'not ok 1 - times out # time=30000ms', '  ---', '  expired: TAP', '  ...', '1..1'].join('\n');
  const r = parseTapFile('f', text);
  t.same(r.failures.map((f) => f.path), [['times out']]);
  t.same(r.failures[0].diagnostics, ['expired: TAP']);
});

t.test('a file whose output stops before its plan is incomplete', async (t) => {
  const r = parseTapFile('test/b.test.ts', ['TAP version 14', '# Subtest: hangs', '    ok 1 - first'].join('\n'));
  t.equal(r.incomplete, true);
  t.same(r.failures, []);
  t.match(formatFailures([r]), /# INCOMPLETE test\/b\.test\.ts/);
});

t.test('a passing file has nothing to report; skips and todos are not failures', async (t) => {
  const r = parseTapFile('p', ['ok 1 - a # SKIP no redis', 'not ok 2 - b # TODO later', '1..2'].join('\n'));
  t.equal(r.incomplete, false);
  t.same(r.failures, []);
});
