/**
 * What one connection costs on the heap, from two V8 heap snapshots (before and after opening N connections):
 * the per-connection difference by constructor, and for plain Arrays and Objects (which the constructor name
 * does not explain) by the property that holds them. `npm run profile -- heap` uses it; docs/PROFILING.md shows
 * how to read it.
 */
import { readFileSync } from 'node:fs';

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Count and self size (bytes) of a group of heap objects. */
export interface HeapGroup {
  count: number;
  bytes: number;
}

/** A snapshot's objects grouped two ways. */
export interface HeapSummary {
  /** By kind and constructor: `(object) FrameParser`, `(closure) onData`, `(string)`, ... */
  byConstructor: Map<string, HeapGroup>;
  /** Arrays and Objects by their first retainer: `Array <- WriteFlusher.queue`. Shared ones count once. */
  byRetainer: Map<string, HeapGroup>;
}

function add(map: Map<string, HeapGroup>, key: string, bytes: number): void {
  const g = map.get(key);
  if (g === undefined) map.set(key, { count: 1, bytes });
  else {
    g.count++;
    g.bytes += bytes;
  }
}

/** Reads a .heapsnapshot file (JSON) and groups its objects. */
export function summarizeHeapSnapshot(file: string): HeapSummary {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot;
  const meta = snap.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const iType = meta.node_fields.indexOf('type');
  const iName = meta.node_fields.indexOf('name');
  const iSize = meta.node_fields.indexOf('self_size');
  const iEdges = meta.node_fields.indexOf('edge_count');
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const eTo = meta.edge_fields.indexOf('to_node');
  const { nodes, edges, strings } = snap;

  const byConstructor = new Map<string, HeapGroup>();
  for (let i = 0; i < nodes.length; i += nf) {
    const type = nodeTypes[nodes[i + iType]!]!;
    const name = strings[nodes[i + iName]!]!;
    let key: string;
    if (type.includes('string')) key = '(string)';
    else if (type === 'code') key = '(compiled code)';
    else if (type === 'number') key = '(heap number)';
    else key = `(${type}) ${name.slice(0, 60)}`;
    add(byConstructor, key, nodes[i + iSize]!);
  }

  // Arrays and Objects by the first strong edge that reaches them (edges are stored node by node, in order).
  const byRetainer = new Map<string, HeapGroup>();
  const seen = new Set<number>();
  let e = 0;
  for (let i = 0; i < nodes.length; i += nf) {
    const from = strings[nodes[i + iName]!]!;
    const count = nodes[i + iEdges]!;
    for (let k = 0; k < count; k++, e += ef) {
      const to = edges[e + eTo]!;
      if (nodeTypes[nodes[to + iType]!] !== 'object') continue;
      const target = strings[nodes[to + iName]!]!;
      if (target !== 'Array' && target !== 'Object') continue;
      const et = edgeTypes[edges[e + eType]!]!;
      if (et === 'weak' || et === 'shortcut') continue;
      const edgeName = et === 'element' || et === 'hidden' ? `[${et}]` : strings[edges[e + eName]!]!;
      if (edgeName === '__proto__' || seen.has(to)) continue;
      seen.add(to);
      add(byRetainer, `${target} <- ${from.slice(0, 40)}.${edgeName}`, nodes[to + iSize]!);
    }
  }
  return { byConstructor, byRetainer };
}

/** One line of a per-connection difference. */
export interface HeapDiffRow {
  key: string;
  countPerConnection: number;
  bytesPerConnection: number;
}

/** (after - before) / n for every group, the groups of at least `minBytes` per connection, largest first. */
export function diffPerConnection(before: Map<string, HeapGroup>, after: Map<string, HeapGroup>, n: number, minBytes = 8): HeapDiffRow[] {
  const rows: HeapDiffRow[] = [];
  for (const [key, g] of after) {
    const b = before.get(key) ?? { count: 0, bytes: 0 };
    const bytes = (g.bytes - b.bytes) / n;
    if (Math.abs(bytes) >= minBytes) rows.push({ key, countPerConnection: (g.count - b.count) / n, bytesPerConnection: bytes });
  }
  return rows.sort((x, y) => y.bytesPerConnection - x.bytesPerConnection);
}

/** The total self size difference per connection. */
export function totalPerConnection(before: Map<string, HeapGroup>, after: Map<string, HeapGroup>, n: number): number {
  let total = 0;
  for (const g of after.values()) total += g.bytes;
  for (const g of before.values()) total -= g.bytes;
  return total / n;
}
