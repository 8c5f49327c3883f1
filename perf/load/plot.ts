/**
 * `--plot`: the latency distribution (latency by percentile, on the "nines" scale of HdrHistogram plots) and the
 * rate over time, as one self-contained SVG (no script, no external font or style); `.html` wraps it in a page
 * with the summary.
 */
import type { LoadReport } from './report.js';
import { formatSummary } from './report.js';

const WIDTH = 800;
const PANEL_HEIGHT = 260;
const MARGIN = { left: 70, right: 40, top: 40, bottom: 40 };
/** The right edge of the percentile axis: 99.999% (five nines). */
const MAX_NINES = 5;

export function renderSvg(report: LoadReport): string {
  const height = 2 * PANEL_HEIGHT + 40;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(`quay-load ${report.workload} ${report.url}`)}</text>`,
  );
  parts.push(latencyPanel(report, 30));
  parts.push(ratePanel(report, 30 + PANEL_HEIGHT + 10));
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export function renderHtml(report: LoadReport): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(`quay-load ${report.workload}`)}</title></head>
<body style="font-family: sans-serif">
${renderSvg(report)}<pre>${esc(formatSummary(report))}</pre>
</body>
</html>
`;
}

/** The SVG or the HTML page, from the file name's extension. */
export function renderPlot(report: LoadReport, file: string): string {
  return /\.html?$/i.test(file) ? renderHtml(report) : renderSvg(report);
}

/** x = log10(1 / (1 - p)): 90% -> 1, 99% -> 2, 99.9% -> 3 ... */
function nines(percentile: number): number {
  const rest = 1 - percentile / 100;
  return rest <= 10 ** -MAX_NINES ? MAX_NINES : Math.log10(1 / rest);
}

function latencyPanel(r: LoadReport, top: number): string {
  const points = r.latencyDistribution.filter(([p]) => p < 100);
  const maxMs = r.latencyMs.max;
  const yMax = niceCeil(Math.max(maxMs, ...points.map((p) => p[1])));
  const frame = new Frame(top, 0, MAX_NINES, 0, yMax);
  const out: string[] = [frame.title(`latency by percentile (ms): p50 ${r.latencyMs.p50}, p99 ${r.latencyMs.p99}, p99.9 ${r.latencyMs.p999}, max ${maxMs}`)];
  const xTicks: [number, string][] = [[0, '0%'], [1, '90%'], [2, '99%'], [3, '99.9%'], [4, '99.99%'], [5, '99.999%']];
  out.push(frame.axes(xTicks, ticks(yMax), 'percentile', 'ms'));
  if (points.length === 0) {
    out.push(frame.note('no latencies recorded'));
  } else {
    out.push(frame.polyline(points.map(([p, v]) => [nines(p), v]), '#1f77b4'));
    out.push(
      `<line x1="${frame.x(0)}" x2="${frame.x(MAX_NINES)}" y1="${frame.y(maxMs)}" y2="${frame.y(maxMs)}" stroke="#d62728" stroke-dasharray="4 3"/>`,
      `<text x="${frame.x(0) + 4}" y="${frame.y(maxMs) - 4}" fill="#d62728">max ${maxMs} ms</text>`,
    );
  }
  return out.join('\n');
}

function ratePanel(r: LoadReport, top: number): string {
  const points = r.timeline;
  const tMax = points.length === 0 ? 1 : Math.max(...points.map((p) => p[0]));
  const yMax = niceCeil(Math.max(1, ...points.map((p) => p[1])));
  const frame = new Frame(top, 0, tMax, 0, yMax);
  const out: string[] = [frame.title(`rate over time (per second): mean ${Math.round(r.rate).toLocaleString('en-US')}`)];
  out.push(frame.axes(ticks(tMax), ticks(yMax), 'seconds', '/s'));
  if (points.length === 0) out.push(frame.note('no rate samples'));
  else out.push(frame.polyline([[0, points[0]![1]], ...points], '#2ca02c'));
  return out.join('\n');
}

/** One panel's coordinate system. */
class Frame {
  private readonly left = MARGIN.left;
  private readonly right = WIDTH - MARGIN.right;
  private readonly plotTop: number;
  private readonly bottom: number;

  constructor(
    private readonly top: number,
    private readonly x0: number,
    private readonly x1: number,
    private readonly y0: number,
    private readonly y1: number,
  ) {
    this.plotTop = top + MARGIN.top;
    this.bottom = top + PANEL_HEIGHT - MARGIN.bottom;
  }

  x(v: number): number {
    const span = this.x1 - this.x0 || 1;
    return r1(this.left + ((v - this.x0) / span) * (this.right - this.left));
  }

  y(v: number): number {
    const span = this.y1 - this.y0 || 1;
    return r1(this.bottom - ((v - this.y0) / span) * (this.bottom - this.plotTop));
  }

  title(text: string): string {
    return `<text x="${this.left}" y="${this.top + 24}" font-size="12">${esc(text)}</text>`;
  }

  note(text: string): string {
    return `<text x="${(this.left + this.right) / 2}" y="${(this.plotTop + this.bottom) / 2}" text-anchor="middle" fill="#888">${esc(text)}</text>`;
  }

  axes(xTicks: [number, string][], yTicks: [number, string][], xLabel: string, yLabel: string): string {
    const out = [
      `<rect x="${this.left}" y="${this.plotTop}" width="${this.right - this.left}" height="${this.bottom - this.plotTop}" fill="none" stroke="#999"/>`,
    ];
    for (const [v, text] of xTicks) {
      const x = this.x(v);
      out.push(
        `<line x1="${x}" x2="${x}" y1="${this.plotTop}" y2="${this.bottom}" stroke="#eee"/>`,
        `<text x="${x}" y="${this.bottom + 14}" text-anchor="middle">${esc(text)}</text>`,
      );
    }
    for (const [v, text] of yTicks) {
      const y = this.y(v);
      out.push(
        `<line x1="${this.left}" x2="${this.right}" y1="${y}" y2="${y}" stroke="#eee"/>`,
        `<text x="${this.left - 6}" y="${y + 4}" text-anchor="end">${esc(text)}</text>`,
      );
    }
    out.push(
      `<text x="${(this.left + this.right) / 2}" y="${this.bottom + 30}" text-anchor="middle">${esc(xLabel)}</text>`,
      `<text x="${this.left - 6}" y="${this.plotTop - 6}" text-anchor="end">${esc(yLabel)}</text>`,
    );
    return out.join('\n');
  }

  polyline(points: readonly (readonly [number, number])[], color: string): string {
    const xy = points.map(([x, y]) => `${this.x(x)},${this.y(y)}`).join(' ');
    return `<polyline points="${xy}" fill="none" stroke="${color}" stroke-width="2"/>`;
  }
}

/** A round number at or above `v` (1, 2, 2.5, 5 x 10^k). */
export function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Ticks from 0 to `max` at a nice step (1, 2, 2.5 or 5 times a power of ten, about four of them), labelled with
 * as many decimals as the step has: `0, 0.5, 1, 1.5`, never `0.75025`.
 */
export function ticks(max: number): [number, string][] {
  const step = niceCeil(max / 4);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) + (Number.isInteger(step / 10 ** Math.floor(Math.log10(step) + 1e-9)) ? 0 : 1);
  const out: [number, string][] = [];
  for (let i = 0; i <= 8; i++) {
    const v = Number((step * i).toFixed(decimals));
    if (v > max * (1 + 1e-9)) break;
    out.push([v, v.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: decimals })]);
  }
  return out;
}

function r1(v: number): number {
  return Math.round(v * 10) / 10;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
