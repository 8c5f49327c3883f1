import { InvalidHeaderError } from './errors.js';

/**
 * The one place that says what a field name and a field value may contain, for everything that writes them:
 * HttpFields (on `add` / `set`, so a bad value fails where it was set), the generator (for plain-object fields)
 * and `Response.upgrade`. One precompiled regex test per name and per value: this runs for every header a
 * handler sets.
 */

/** token (RFC 9110 §5.6.2): a field name, a method. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * What a field value (or reason phrase) must not contain (RFC 9110 §5.5: field-vchar = VCHAR / obs-text, with SP
 * and HTAB inside): NUL, CR, LF and the other control characters except HTAB, DEL, and anything above U+00FF,
 * which a latin1 encoding would truncate onto a byte such as CR or LF (U+560D would become `\r`).
 */
export const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** Throws {@link InvalidHeaderError} (`HTTP_INVALID_FIELD_NAME`) unless `name` is a token. */
export function checkFieldName(name: string): void {
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw new InvalidHeaderError('HTTP_INVALID_FIELD_NAME', `invalid header name ${quote(name)}: not a token (RFC 9110 §5.1)`, clip(name));
  }
}

/** Throws {@link InvalidHeaderError} (`HTTP_INVALID_FIELD_VALUE`) unless `value` is a valid field value. */
export function checkFieldValue(name: string, value: string): void {
  if (typeof value !== 'string' || INVALID_VALUE.test(value)) {
    throw new InvalidHeaderError(
      'HTTP_INVALID_FIELD_VALUE',
      `invalid value for header ${quote(name)}: CR, LF, NUL, another control character or a character above U+00FF (RFC 9110 §5.5)`,
      clip(name),
    );
  }
}

/**
 * Names and short values already found valid, so that a handler setting the same headers on every response
 * (`Content-Type: text/plain`) pays a hash lookup instead of a regex test, and the name's lower case comes with it.
 * Bounded: once {@link KNOWN_MAX} entries are in, new ones are only checked, not remembered (a server that sets
 * ever-new header values must not grow these).
 */
const KNOWN_NAMES = new Map<string, string>();
const KNOWN_VALUES = new Set<string>();
const KNOWN_MAX = 256;
/** Values longer than this are checked every time (cookies, ETags: seldom repeated, costly to hash). */
const KNOWN_VALUE_MAX_LENGTH = 64;

/**
 * `name` lower-cased, after checking it is a token ({@link checkFieldName}); remembered for the next time.
 * @throws InvalidHeaderError
 */
export function checkedLowerName(name: string): string {
  const known = KNOWN_NAMES.get(name);
  if (known !== undefined) return known;
  checkFieldName(name);
  const lower = name.toLowerCase();
  if (KNOWN_NAMES.size < KNOWN_MAX) KNOWN_NAMES.set(name, lower);
  return lower;
}

/** {@link checkFieldValue}, remembering short valid values. @throws InvalidHeaderError */
export function checkFieldValueOnce(name: string, value: string): void {
  if (KNOWN_VALUES.has(value)) return;
  checkFieldValue(name, value);
  if (value.length <= KNOWN_VALUE_MAX_LENGTH && KNOWN_VALUES.size < KNOWN_MAX) KNOWN_VALUES.add(value);
}

function clip(name: unknown): string {
  const s = String(name);
  return s.length > 64 ? s.slice(0, 64) : s;
}

/** The name for a message: JSON-quoted (so CR/LF show as escapes) and clipped, it may come from a peer. */
function quote(name: unknown): string {
  return JSON.stringify(clip(name));
}
