import { checkFieldValueOnce, checkedLowerName } from './fieldValidation.js';

/**
 * Header (or trailer) fields: an ordered multimap with case-insensitive names (RFC 9110 §5.1). Names keep the
 * case they were given or received with, for output; lookups compare lower-cased names. Order is kept, and a
 * name may repeat (RFC 9110 §5.2: field lines of the same name form one list, in order).
 *
 * Backed by one flat array of `[name, lowerName, value]` triples: a single allocation for any number of fields
 * (this object is created for every request), and the parser can hand over a name it already lower-cased (a
 * cached constant for common names).
 *
 * Every name and value is checked when it is added or set ({@link add}, {@link set}, {@link from}): a name must be
 * a token, a value must not hold CR, LF, NUL, other control characters or characters above U+00FF (RFC 9110 §5.1,
 * §5.5); otherwise an `InvalidHeaderError` is thrown at once. So every field held here can be written as is
 * (the parser's fields were checked byte by byte as they were read).
 *
 * Lookup semantics: {@link get} returns the FIRST value only; {@link getCombined} joins every value with ", " as
 * RFC 9110 §5.3 allows for list-valued fields (not for Set-Cookie, which {@link getAll} serves).
 */
export class HttpFields implements Iterable<[string, string]> {
  /** name, lower-cased name, value; name, lower-cased name, value; ... */
  private readonly triples: string[] = [];

  /** Builds fields from a record: a number is written in decimal, an array adds one field per element. */
  static from(record: Readonly<Record<string, string | number | readonly string[]>>): HttpFields {
    const fields = new HttpFields();
    for (const name of Object.keys(record)) {
      const value = record[name]!;
      if (typeof value === 'string') fields.add(name, value);
      else if (typeof value === 'number') fields.add(name, String(value));
      else for (const v of value) fields.add(name, v);
    }
    return fields;
  }

  /** Number of field lines (a repeated name counts each time). */
  get size(): number {
    return this.triples.length / 3;
  }

  /**
   * Adds a field after the existing ones (keeps other fields of the same name). Throws `InvalidHeaderError`
   * for a name that is not a token or an invalid value.
   */
  add(name: string, value: string): this {
    const key = checkedLowerName(name);
    checkFieldValueOnce(name, value);
    this.triples.push(name, key, value);
    return this;
  }

  /**
   * @internal The parser's fast path: `lowered` is `name.toLowerCase()`, computed (or looked up) by the caller.
   * Not checked: the parser has checked every byte of the name and value (RFC 9110 §5.1, §5.5).
   */
  addLowered(name: string, lowered: string, value: string): void {
    this.triples.push(name, lowered, value);
  }

  /**
   * Replaces every field of that name with one, at the position of the first (or at the end if none). Throws
   * `InvalidHeaderError` (and changes nothing) for a name that is not a token or an invalid value.
   */
  set(name: string, value: string): this {
    const key = checkedLowerName(name);
    checkFieldValueOnce(name, value);
    const i = this.indexOf(key, 0);
    if (i < 0) {
      this.triples.push(name, key, value);
      return this;
    }
    this.triples[i] = name;
    this.triples[i + 2] = value;
    this.removeFrom(key, i + 3);
    return this;
  }

  /** The first value of `name` (case-insensitive), or undefined. */
  get(name: string): string | undefined {
    const i = this.indexOf(name.toLowerCase(), 0);
    return i < 0 ? undefined : this.triples[i + 2];
  }

  /** Every value of `name`, joined with ", " (RFC 9110 §5.3), or undefined when there is none. */
  getCombined(name: string): string | undefined {
    const key = name.toLowerCase();
    const t = this.triples;
    let out: string | undefined;
    for (let i = 1; i < t.length; i += 3) {
      if (t[i] === key) out = out === undefined ? t[i + 1]! : `${out}, ${t[i + 1]!}`;
    }
    return out;
  }

  /** Every value of `name`, in order (empty when there is none). */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    const t = this.triples;
    const out: string[] = [];
    for (let i = 1; i < t.length; i += 3) if (t[i] === key) out.push(t[i + 1]!);
    return out;
  }

  /** Whether a field of that name is present. */
  has(name: string): boolean {
    return this.indexOf(name.toLowerCase(), 0) >= 0;
  }

  /** Removes every field. */
  clear(): void {
    this.triples.length = 0;
  }

  /** Removes every field of that name; returns how many were removed. */
  delete(name: string): number {
    return this.removeFrom(name.toLowerCase(), 0);
  }

  /** @internal Index-based access (the generator walks the fields without an iterator). */
  nameAt(i: number): string {
    return this.triples[i * 3]!;
  }
  /** @internal */
  lowerAt(i: number): string {
    return this.triples[i * 3 + 1]!;
  }
  /** @internal */
  valueAt(i: number): string {
    return this.triples[i * 3 + 2]!;
  }

  /** `[name, value]` per field line, in order, names in their original case. */
  *[Symbol.iterator](): Iterator<[string, string]> {
    const t = this.triples;
    for (let i = 0; i < t.length; i += 3) yield [t[i]!, t[i + 2]!];
  }

  /**
   * A plain object with lower-cased names; a repeated name's values are joined with ", " (RFC 9110 §5.3; lossy
   * for Set-Cookie, use {@link getAll} for it). The object has no prototype, so a field named `__proto__` or
   * `constructor` is just a key.
   */
  toObject(): Record<string, string> {
    const out = Object.create(null) as Record<string, string>;
    const t = this.triples;
    for (let i = 0; i < t.length; i += 3) {
      const k = t[i + 1]!;
      const prev = out[k];
      out[k] = prev === undefined ? t[i + 2]! : `${prev}, ${t[i + 2]!}`;
    }
    return out;
  }

  /** The index of the first triple named `key` (lower-cased) at or after triple index `from`, or -1. */
  private indexOf(key: string, from: number): number {
    const t = this.triples;
    for (let i = from; i < t.length; i += 3) if (t[i + 1] === key) return i;
    return -1;
  }

  /** Removes the fields named `key` (lower-cased) at triple index `from` or later, compacting in place. */
  private removeFrom(key: string, from: number): number {
    const t = this.triples;
    let w = from;
    for (let r = from; r < t.length; r += 3) {
      if (t[r + 1] === key) continue;
      if (w !== r) {
        t[w] = t[r]!;
        t[w + 1] = t[r + 1]!;
        t[w + 2] = t[r + 2]!;
      }
      w += 3;
    }
    const removed = (t.length - w) / 3;
    t.length = w;
    return removed;
  }
}
