#!/usr/bin/env node
/**
 * quay-load: the command line. `quay-load --help` for the options; see options.ts.
 *
 * stdout carries the result only (the summary, or with --json one JSON object); the live progress line and
 * notes go to stderr. Exit status: 0 when the run completed (connection errors are counted, not fatal), 2 for
 * bad options, 130 after Ctrl-C (the figures measured so far are printed first), 1 for a bug.
 */
import { writeFileSync } from 'node:fs';
import { Measurement } from './Measurement.js';
import { HELP, OptionsError, parseOptions } from './options.js';
import { renderPlot } from './plot.js';
import { Progress } from './Progress.js';
import { formatSummary } from './report.js';
import { runLoad } from './run.js';

async function main(argv: readonly string[]): Promise<{ code: number; out: string }> {
  let options;
  try {
    options = parseOptions(argv);
  } catch (error) {
    if (!(error instanceof OptionsError)) throw error;
    process.stderr.write(`quay-load: ${error.message}\nRun quay-load --help for the options.\n`);
    return { code: 2, out: '' };
  }
  if (options === 'help') return { code: 0, out: HELP };

  const m = new Measurement(options.rateIntervalMs);
  const progress = new Progress(m, `[${options.workload}]`);
  if (!options.quiet) progress.start();
  const abort = new AbortController();
  // The first Ctrl-C ends the run and prints what was measured; a second one leaves at once.
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(130);
    process.stderr.write('\nquay-load: interrupted, closing connections (Ctrl-C again to quit now)\n');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  let run;
  try {
    run = await runLoad(options, { signal: abort.signal, measurement: m });
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
  }
  const report = run.report;
  if (options.plot !== undefined) {
    writeFileSync(options.plot, renderPlot(report, options.plot));
    process.stderr.write(`quay-load: plot written to ${options.plot}\n`);
  }
  const out = options.json ? `${JSON.stringify(report)}\n` : formatSummary(report);
  if (abort.signal.aborted) return { code: 130, out };
  if (report.count === 0) {
    // Every connection failed, or nothing was answered: not a measurement. Say so, and fail for scripts and CI.
    const sample = Object.values(report.errorSamples ?? {})[0];
    process.stderr.write(`quay-load: nothing completed${sample === undefined ? '' : ` (${sample})`}\n`);
    return { code: 1, out };
  }
  return { code: 0, out };
}

main(process.argv.slice(2)).then(
  ({ code, out }) => {
    // Exit once stdout is flushed: a server that never answers our close must not keep the process alive.
    if (out === '') process.exit(code);
    process.stdout.write(out, () => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`quay-load: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
