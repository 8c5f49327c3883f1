/**
 * Header fields: an ordered multimap with case-insensitive names (RFC 9110 §5). Names keep their original
 * case for output; lookups use the lower-cased name. Backed by three parallel arrays: no object per field.
 */
export class HttpFields implements Iterable<[string, string]> {
  private names: string[] = [];
  private lower: string[] = [];
  private values: string[] = [];

  /** Builds fields from a record (an array value adds one field per element). */
  static from(record: Record<string, string | number | readonly string[]>): HttpFields {
    const fields = new HttpFields();
    for (const [name, value] of Object.entries(record)) {
      if (Array.isArray(value)) for (const v of value as readonly string[]) fields.add(name, v);
      else fields.add(name, String(value));
    }
    return fields;
  }

  /** Number of fields (a repeated name counts each time). */
  get size(): number {
    return this.names.length;
  }

  /** @internal Parser fast path: the name is already lower-cased. */
  addLowered(name: string, lowered: string, value: string): void {
    this.names.push(name);
    this.lower.push(lowered);
    this.values.push(value);
  }

  /** Adds a field (keeps existing ones of the same name). */
  add(name: string, value: string): this {
    this.addLowered(name, name.toLowerCase(), value);
    return this;
  }

  /** Replaces every field of that name with one. */
  set(name: string, value: string): this {
    this.delete(name);
    return this.add(name, value);
  }

  /** The first value of `name`, or undefined. */
  get(name: string): string | undefined {
    const i = this.lower.indexOf(name.toLowerCase());
    return i < 0 ? undefined : this.values[i];
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    const out: string[] = [];
    for (let i = 0; i < this.lower.length; i++) if (this.lower[i] === key) out.push(this.values[i]!);
    return out;
  }

  has(name: string): boolean {
    return this.lower.includes(name.toLowerCase());
  }

  /** Removes every field of that name; returns how many. */
  delete(name: string): number {
    const key = name.toLowerCase();
    let removed = 0;
    for (let i = this.lower.length - 1; i >= 0; i--) {
      if (this.lower[i] === key) {
        this.names.splice(i, 1);
        this.lower.splice(i, 1);
        this.values.splice(i, 1);
        removed++;
      }
    }
    return removed;
  }

  /** @internal Index-based access for the generator. */
  nameAt(i: number): string {
    return this.names[i]!;
  }
  /** @internal */
  lowerAt(i: number): string {
    return this.lower[i]!;
  }
  /** @internal */
  valueAt(i: number): string {
    return this.values[i]!;
  }

  *[Symbol.iterator](): Iterator<[string, string]> {
    for (let i = 0; i < this.names.length; i++) yield [this.names[i]!, this.values[i]!];
  }

  /** A plain object: lower-cased names; repeated names joined with ', ' (RFC 9110 §5.3). */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (let i = 0; i < this.lower.length; i++) {
      const k = this.lower[i]!;
      out[k] = out[k] === undefined ? this.values[i]! : `${out[k]}, ${this.values[i]!}`;
    }
    return out;
  }
}
