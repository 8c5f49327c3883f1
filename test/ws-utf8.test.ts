import t from 'tap';
import { isUtf8 } from 'node:buffer';
import { Utf8Validator } from '../lib/websocket/Utf8Validator.js';
import { mulberry32 } from './support/mulberry32.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/**
 * An independent reference, written the slow obvious way from RFC 3629 §4: the index of the first byte at which
 * the input is certainly invalid, or 'valid', or 'truncated' (a valid prefix that ends inside a sequence).
 */
function reference(bytes: Uint8Array): number | 'valid' | 'truncated' {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b === 0xe0) [need, lo] = [2, 0xa0];
    else if (b === 0xed) [need, hi] = [2, 0x9f];
    else if (b >= 0xe1 && b <= 0xef) need = 2;
    else if (b === 0xf0) [need, lo] = [3, 0x90];
    else if (b === 0xf4) [need, hi] = [3, 0x8f];
    else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else return i;
    for (let j = 1; j <= need; j++) {
      if (i + j >= bytes.length) return 'truncated';
      const c = bytes[i + j];
      const [l, h] = j === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c < l || c > h) return i + j;
    }
    i += need + 1;
  }
  return 'valid';
}

/** Feeds `bytes` cut at `cuts`; returns the index of the chunk where update() first said false, or -1. */
function feed(v: Utf8Validator, bytes: Buffer, cuts: number[]): number {
  let start = 0;
  const ends = [...cuts, bytes.length];
  for (let k = 0; k < ends.length; k++) {
    if (!v.update(bytes, start, ends[k])) return k;
    start = ends[k];
  }
  return -1;
}

function validate(bytes: Buffer): boolean {
  const v = new Utf8Validator();
  return v.update(bytes, 0, bytes.length) && v.isComplete();
}

t.test('valid classics', async (t) => {
  const cases: [string, string][] = [
    ['empty', ''],
    ['ASCII', '48656c6c6f'],
    ['NUL and DEL', '007f'],
    ['U+0080 smallest 2-byte', 'c280'],
    ['U+07FF largest 2-byte', 'dfbf'],
    ['U+0800 smallest 3-byte', 'e0a080'],
    ['U+D7FF just below the surrogates', 'ed9fbf'],
    ['U+E000 just above the surrogates', 'ee8080'],
    ['U+FFFD replacement character', 'efbfbd'],
    ['U+FFFF (a noncharacter, still valid UTF-8)', 'efbfbf'],
    ['U+10000 smallest 4-byte', 'f0908080'],
    ['U+10FFFF max code point', 'f48fbfbf'],
    ['κόσμε', 'cebae1bdb9cf83cebcceb5'],
  ];
  for (const [name, h] of cases) {
    t.equal(validate(hex(h)), true, name);
    t.equal(reference(hex(h)), 'valid', `reference agrees: ${name}`);
  }
  const long = Buffer.from('héllo wörld 日本語 🎉 '.repeat(200));
  t.equal(validate(long), true, 'long mixed text (native path)');
  t.equal(validate(Buffer.alloc(100_000, 0x61)), true, 'long ASCII');
});

t.test('invalid classics', async (t) => {
  const cases: [string, string][] = [
    ['lone continuation', '80'],
    ['continuation after ASCII', '41bf'],
    ['overlong NUL C0 80', 'c080'],
    ['overlong C1 BF', 'c1bf'],
    ['overlong 3-byte E0 80 80', 'e08080'],
    ['overlong 3-byte E0 9F BF (U+07FF)', 'e09fbf'],
    ['overlong 4-byte F0 80 80 80', 'f0808080'],
    ['overlong 4-byte F0 8F BF BF (U+FFFF)', 'f08fbfbf'],
    ['high surrogate U+D800', 'eda080'],
    ['low surrogate U+DFFF', 'edbfbf'],
    ['surrogate pair encoded as CESU-8', 'eda0bdedb2a9'],
    ['U+110000 above max', 'f4908080'],
    ['F5 lead', 'f5808080'],
    ['F8 5-byte lead', 'f888808080'],
    ['FC 6-byte lead', 'fc8480808080'],
    ['FE', 'fe'],
    ['FF', 'ff'],
    ['2-byte lead then ASCII', 'c341'],
    ['3-byte lead cut by ASCII', 'e28241'],
    ['4-byte lead cut by a new lead', 'f09f98c3a9'],
  ];
  for (const [name, h] of cases) {
    t.equal(validate(hex(h)), false, name);
    t.equal(isUtf8(hex(h)), false, `node agrees: ${name}`);
    t.type(reference(hex(h)), 'number', `reference agrees: ${name}`);
  }
});

t.test('fail-fast: false at the byte that makes the input certainly invalid', async (t) => {
  const v = new Utf8Validator();
  t.equal(v.update(hex('e0'), 0, 1), true, 'E0 alone could still be valid');
  t.equal(v.isComplete(), false, 'but is not complete');
  t.equal(v.update(hex('80'), 0, 1), false, 'E0 80 is an overlong: certain at the second byte');
  t.equal(v.update(hex('41'), 0, 1), false, 'stays rejected');
  v.reset();
  t.equal(v.update(hex('ed'), 0, 1), true);
  t.equal(v.update(hex('a0'), 0, 1), false, 'ED A0 is a surrogate: certain at the second byte');
  v.reset();
  t.equal(v.update(hex('f4'), 0, 1), true);
  t.equal(v.update(hex('90'), 0, 1), false, 'F4 90 is above U+10FFFF: certain at the second byte');
  v.reset();
  t.equal(v.update(hex('c0'), 0, 1), false, 'C0 can never start a sequence');
  v.reset();
  t.equal(v.update(hex('41 42'), 0, 2), true, 'reset makes it usable again');
  t.equal(v.isComplete(), true);

  // An invalid byte early in a long chunk (the native path) fails that chunk.
  const long = Buffer.alloc(4096, 0x61);
  long[10] = 0xff;
  v.reset();
  t.equal(v.update(long, 0, long.length), false, 'invalid byte in a long chunk');
  // In a long chunk that starts mid-sequence (the DFA path first).
  v.reset();
  t.equal(v.update(hex('e2 82'), 0, 2), true);
  const rest = Buffer.alloc(4096, 0x61);
  rest[0] = 0xac; // completes U+20AC
  rest[4000] = 0xc0;
  t.equal(v.update(rest, 0, rest.length), false, 'invalid byte late in a long chunk after a split sequence');
});

t.test('truncated sequences and sequences split across chunks', async (t) => {
  const v = new Utf8Validator();
  for (const h of ['c3', 'e2 82', 'f0 9f 98']) {
    v.reset();
    t.equal(v.update(hex(h), 0, hex(h).length), true, `${h} is a valid prefix`);
    t.equal(v.isComplete(), false, `${h} is not complete at the end of a message`);
  }
  v.reset();
  const emoji = hex('f0 9f 98 80');
  t.equal(v.update(emoji, 0, 1), true);
  t.equal(v.update(emoji, 1, 2), true);
  t.equal(v.update(emoji, 2, 3), true);
  t.equal(v.isComplete(), false);
  t.equal(v.update(emoji, 3, 4), true);
  t.equal(v.isComplete(), true, 'complete once the 4th byte arrives');
  // A long chunk (native path) that ends inside a sequence, completed by the next chunk.
  v.reset();
  const text = Buffer.from('a'.repeat(300) + '🎉' + 'b'.repeat(300));
  t.equal(v.update(text, 0, 302), true, 'long chunk ending after 2 bytes of a 4-byte sequence');
  t.equal(v.isComplete(), false);
  t.equal(v.update(text, 302, text.length), true);
  t.equal(v.isComplete(), true);
});

t.test('every split point of a valid multi-byte string, in 2 and 3 chunks', async (t) => {
  const bytes = Buffer.from('aé€🎉ü日本\u{10FFFF}z');
  let failures = 0;
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j++) {
      const v = new Utf8Validator();
      if (feed(v, bytes, [i, j]) !== -1 || !v.isComplete()) failures++;
    }
  }
  t.equal(failures, 0, 'every split validates');
  // The same with a prefix long enough for the native path on the first chunk.
  const long = Buffer.concat([Buffer.alloc(200, 0x61), bytes, Buffer.alloc(200, 0x62), bytes]);
  failures = 0;
  for (let i = 150; i <= long.length; i++) {
    const v = new Utf8Validator();
    if (feed(v, long, [i]) !== -1 || !v.isComplete()) failures++;
  }
  t.equal(failures, 0, 'every split of a long string validates');
});

t.test('seeded differential fuzz against the reference, random chunking', async (t) => {
  const rnd = mulberry32(0x0075_7466);
  const pieces = ['a', ' ', '{"k":1}', 'é', '€', '🎉', '日', '\u{10FFFF}', '\u{FFFF}', '\u{D7FF}', '\u{E000}'].map((s) =>
    Buffer.from(s),
  );
  const junk = [0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x90, 0x8f];
  let mismatches = 0;
  let invalid = 0;
  let truncated = 0;
  for (let n = 0; n < 3000; n++) {
    const parts: Buffer[] = [];
    const count = 1 + Math.floor(rnd() * (rnd() < 0.3 ? 400 : 20));
    for (let k = 0; k < count; k++) parts.push(pieces[Math.floor(rnd() * pieces.length)]);
    const bytes = Buffer.concat(parts);
    // Mutate: a junk byte, or a truncation, or nothing.
    const r = rnd();
    let input = bytes;
    if (r < 0.5 && bytes.length > 0) {
      input = Buffer.from(bytes);
      input[Math.floor(rnd() * input.length)] = junk[Math.floor(rnd() * junk.length)];
    } else if (r < 0.7 && bytes.length > 1) {
      input = bytes.subarray(0, Math.floor(rnd() * bytes.length));
    }
    const cuts: number[] = [];
    let at = 0;
    while (at < input.length && cuts.length < 8) {
      at += Math.floor(rnd() * (rnd() < 0.5 ? 8 : 300));
      if (at < input.length) cuts.push(at);
    }
    const expected = reference(input);
    const v = new Utf8Validator();
    const failedAt = feed(v, input, cuts);
    if (typeof expected === 'number') {
      invalid++;
      // Fail-fast: false exactly on the chunk that contains the first certainly-invalid byte.
      const ends = [...cuts, input.length];
      const chunk = ends.findIndex((end) => expected < end);
      if (failedAt !== chunk) mismatches++;
    } else {
      if (expected === 'truncated') truncated++;
      if (failedAt !== -1 || v.isComplete() !== (expected === 'valid')) mismatches++;
    }
    if ((expected === 'valid') !== isUtf8(input)) mismatches++;
  }
  t.equal(mismatches, 0, 'validator, reference and node:buffer isUtf8 agree');
  t.ok(invalid > 500 && truncated > 100, `the fuzz reached invalid (${invalid}) and truncated (${truncated}) inputs`);
});
