/**
 * Prints the failures of the last `tap` run, read back from `.tap/test-results/`, after everything else.
 *
 * Why: CI keeps only the tail of a run's output, and tap's TAP reporter prints a failure where it happens, in the
 * middle of 6,000 passing assertions; the tail then says `fail: 1` and not which. `npm test` runs this when tap
 * fails, so the last lines name each failed assertion with its subtest path, file and diagnostics, and each file
 * whose output stops before its plan (a timeout or a crash).
 *
 * Usage: `node dist/tools/tapFailures.js [resultsDir]`; exits 0 (the exit status of `npm test` is tap's).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import process from 'node:process';

/** The most diagnostic lines printed for one failure (a long stack or output is cut). */
const MAX_DIAGNOSTIC_LINES = 40;

/** One failed assertion or subtest in a results file. */
export interface TapFailure {
  /** The test file, relative to the results directory (its `.tap` suffix removed). */
  file: string;
  /** The names of the enclosing subtests, outermost first, then the failed point's own name. */
  path: string[];
  /** The YAML diagnostics under the `not ok` line, without their indentation. */
  diagnostics: string[];
}

/** What one results file says. */
export interface TapFileReport {
  file: string;
  failures: TapFailure[];
  /** True when the output ends without the top-level plan: the file timed out, crashed or was killed. */
  incomplete: boolean;
}

function indentOf(line: string): number {
  let i = 0;
  while (i < line.length && line.charCodeAt(i) === 0x20) i++;
  return i;
}

/**
 * Reads the TAP text of one test file. A `not ok` that closes a subtest in which a deeper failure was already
 * reported is an aggregate and is left out: only the failed points themselves are listed.
 */
export function parseTapFile(file: string, text: string): TapFileReport {
  const lines = text.split('\n');
  const failures: TapFailure[] = [];
  // Subtests open at an indentation ("# Subtest: name" at i; their points at i + 4; their result at i).
  const open: { indent: number; name: string; failed: boolean }[] = [];
  let topPlan = false;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    const indent = indentOf(line);
    const body = line.slice(indent);
    if (body.startsWith('# Subtest: ')) {
      open.push({ indent, name: body.slice('# Subtest: '.length), failed: false });
      continue;
    }
    if (indent === 0 && /^1\.\.\d+/.test(body)) topPlan = true;
    const point = /^(not )?ok \d+(?: - (.*?))?(?: # (time=|TODO|SKIP).*)?$/.exec(body);
    if (point === null) continue;
    // The result line of a subtest has the subtest's own indentation: close it.
    let closing: { indent: number; name: string; failed: boolean } | undefined;
    if (open.length > 0 && open[open.length - 1].indent === indent) closing = open.pop();
    // TAP 14: a `not ok` marked TODO or SKIP is not a failure.
    if (point[1] === undefined || point[3] === 'TODO' || point[3] === 'SKIP') continue;
    const aggregate = closing !== undefined && closing.failed;
    for (const s of open) s.failed = true;
    if (aggregate) continue;
    const diagnostics: string[] = [];
    if (lines[n + 1] !== undefined && lines[n + 1].trim() === '---') {
      const yamlIndent = indentOf(lines[n + 1]);
      for (let m = n + 2; m < lines.length; m++) {
        if (lines[m].trim() === '...' && indentOf(lines[m]) === yamlIndent) break;
        diagnostics.push(lines[m].slice(Math.min(yamlIndent, indentOf(lines[m]))));
      }
    }
    failures.push({ file, path: [...open.map((s) => s.name), point[2] ?? '(unnamed)'], diagnostics });
  }
  return { file, failures, incomplete: !topPlan };
}

function tapFiles(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) found.push(...tapFiles(full));
    else if (name.endsWith('.tap')) found.push(full);
  }
  return found.sort();
}

/** The reports of every results file under `dir` that failed or is incomplete. */
export function readFailures(dir: string): TapFileReport[] {
  return tapFiles(dir)
    .map((full) => parseTapFile(relative(dir, full).replace(/\.tap$/, ''), readFileSync(full, 'utf8')))
    .filter((r) => r.failures.length > 0 || r.incomplete);
}

/** The text printed for `reports`. */
export function formatFailures(reports: TapFileReport[]): string {
  if (reports.length === 0) return '# tap failed, but no results file shows a failure (tap itself failed?)\n';
  const out: string[] = ['', '# Failures of this run (from .tap/test-results):'];
  for (const r of reports) {
    if (r.incomplete) out.push(`# INCOMPLETE ${r.file}: its output ends before its plan (a timeout, crash or kill)`);
    for (const f of r.failures) {
      out.push(`# FAILED ${f.file} > ${f.path.join(' > ')}`);
      const shown = f.diagnostics.slice(0, MAX_DIAGNOSTIC_LINES);
      for (const d of shown) out.push(`#     ${d}`);
      if (f.diagnostics.length > shown.length) out.push(`#     (${f.diagnostics.length - shown.length} more lines)`);
    }
  }
  return out.join('\n') + '\n';
}

function main(): void {
  const dir = process.argv[2] ?? join(process.cwd(), '.tap', 'test-results');
  let reports: TapFileReport[];
  try {
    reports = readFailures(dir);
  } catch (err) {
    process.stdout.write(`# no tap results to summarise in ${dir}: ${(err as Error).message}\n`);
    return;
  }
  process.stdout.write(formatFailures(reports));
}

if (process.argv[1] !== undefined && /tapFailures\.[jt]s$/.test(process.argv[1])) main();
