/**
 * Preloaded into a benchmark server (`node --import ./dist/perf/servers/loop-delay.js ...`): samples the event
 * loop's delay (perf_hooks, 1 ms resolution) and, on SIGUSR2, prints `loop-delay {"maxMs":..,"p99Ms":..,"p50Ms":..}`
 * on stdout and starts a new sample. perf/deflate-bomb reads it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();
process.on('SIGUSR2', () => {
  const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
  console.log(`loop-delay ${JSON.stringify({ maxMs: ms(histogram.max), p99Ms: ms(histogram.percentile(99)), p50Ms: ms(histogram.percentile(50)) })}`);
  histogram.reset();
});
