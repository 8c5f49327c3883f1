/** Tables and the RESULTS.md section of `npm run bench:hostile`. */
import type { Impl } from './proc.js';
import type { Figures } from './scenarios.js';

const LABEL: Record<Impl, string> = { quay: 'quay', node: 'node:http / ws 8' };

export interface ScenarioReport {
  id: string;
  title: string;
  setup: string;
  figures: Partial<Record<Impl, Figures>>;
  seconds: number;
  /** Column headings that differ from the usual (the TLS scenarios' peer is node:https). */
  labels?: Partial<Record<Impl, string>>;
}

function cell(v: unknown): string {
  if (v === undefined) return '-';
  if (typeof v === 'number') return Number.isFinite(v) ? v.toLocaleString('en-US') : '-';
  return String(v).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** One markdown table: a row per metric, a column per implementation (metrics in first-seen order). */
export function table(report: ScenarioReport, impls: readonly Impl[]): string {
  const metrics: string[] = [];
  for (const impl of impls) for (const k of Object.keys(report.figures[impl] ?? {})) if (!metrics.includes(k)) metrics.push(k);
  const lines = [`| ${report.id} | ${impls.map((i) => report.labels?.[i] ?? LABEL[i]).join(' | ')} |`, `| --- | ${impls.map(() => '---').join(' | ')} |`];
  for (const m of metrics) lines.push(`| ${cell(m)} | ${impls.map((i) => cell(report.figures[i]?.[m])).join(' | ')} |`);
  return lines.join('\n');
}

export const SECTION_START = '<!-- hostile:start -->';
export const SECTION_END = '<!-- hostile:end -->';

/** `text` with the section between the markers replaced by `section` (appended, with the markers, when missing). */
export function replaceSection(text: string, section: string): string {
  const block = `${SECTION_START}\n${section}\n${SECTION_END}`;
  const a = text.indexOf(SECTION_START);
  const b = text.indexOf(SECTION_END);
  return a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + SECTION_END.length) : `${text.trimEnd()}\n\n${block}\n`;
}
