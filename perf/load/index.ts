/**
 * quay-load as a library: run a workload and get its report, parse and format reports, merge histograms.
 *
 *   const { report } = await runLoad(defaultOptions('echo', 'ws://127.0.0.1:8080/echo', { connections: 10 }));
 */
export { runLoad } from './run.js';
export type { RunHooks } from './run.js';
export { HELP, MAX_CONNECTIONS, OptionsError, WORKLOADS, connectionsOf, defaultOptions, parseOptions } from './options.js';
export type { LoadOptions, WorkloadName } from './options.js';
export { Histogram } from './Histogram.js';
export type { HistogramOptions, HistogramSnapshot } from './Histogram.js';
export { ERROR_KINDS, Measurement } from './Measurement.js';
export type { ErrorKind, MeasurementPhase } from './Measurement.js';
export { DISTRIBUTION_PERCENTILES, ReportFormatError, buildReport, formatSummary, latencySummary, parseReport } from './report.js';
export type { LatencySummary, LoadReport, WorkloadRun } from './report.js';
export { renderHtml, renderPlot, renderSvg } from './plot.js';
export { Progress } from './Progress.js';
export { WsLoadClient } from './WsLoadClient.js';
export type { WsLoadClientOptions, WsLoadClientState, WsLoadHandler } from './WsLoadClient.js';
export { HttpLoadClient } from './HttpLoadClient.js';
export { HttpResponseScanner, HttpScanError } from './HttpResponseScanner.js';
export { startRawEchoServer, startRawEchoServerThread } from './RawEchoServer.js';
export type { RawEchoServer } from './RawEchoServer.js';
