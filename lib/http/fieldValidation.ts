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

function clip(name: unknown): string {
  const s = String(name);
  return s.length > 64 ? s.slice(0, 64) : s;
}

/** The name for a message: JSON-quoted (so CR/LF show as escapes) and clipped, it may come from a peer. */
function quote(name: unknown): string {
  return JSON.stringify(clip(name));
}
