import { FrameEncodeError } from './errors.js';
import { isUtf8 } from 'node:buffer';

/*
 * The DFA (RFC 3629 §4 syntax, in the style of Bjoern Hoehrmann's decoder, without the code point output).
 * States are the bytes still expected and the range the next one must fall in; the narrowed ranges after E0,
 * ED, F0 and F4 are what rejects overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF = U+D800..DFFF) and
 * code points above U+10FFFF (F4 90..BF); C0, C1 and F5..FF can never start a sequence (overlong or too large).
 * The table is built from those rules at load time (so it is correct by construction, not typed in by hand):
 * TRANSITIONS[state << 8 | byte] is the next state, REJECT is absorbing. One 2.3 KiB table, one lookup per
 * non-ASCII byte, and the state is the only thing to keep between chunks.
 */
const ACCEPT = 0;
const REJECT = 1;
const TAIL1 = 2; // one continuation byte expected, 80..BF
const TAIL2 = 3; // two, any 80..BF
const TAIL3 = 4; // three, any 80..BF
const AFTER_E0 = 5; // A0..BF then one more (rejects overlong 3-byte forms)
const AFTER_ED = 6; // 80..9F then one more (rejects UTF-16 surrogates)
const AFTER_F0 = 7; // 90..BF then two more (rejects overlong 4-byte forms)
const AFTER_F4 = 8; // 80..8F then two more (rejects > U+10FFFF)
const STATES = 9;

const TRANSITIONS: Uint8Array = buildTransitions();

function buildTransitions(): Uint8Array {
  const table = new Uint8Array(STATES * 256).fill(REJECT);
  const set = (state: number, from: number, to: number, next: number): void => {
    for (let b = from; b <= to; b++) table[(state << 8) | b] = next;
  };
  set(ACCEPT, 0x00, 0x7f, ACCEPT);
  set(ACCEPT, 0xc2, 0xdf, TAIL1);
  set(ACCEPT, 0xe0, 0xe0, AFTER_E0);
  set(ACCEPT, 0xe1, 0xec, TAIL2);
  set(ACCEPT, 0xed, 0xed, AFTER_ED);
  set(ACCEPT, 0xee, 0xef, TAIL2);
  set(ACCEPT, 0xf0, 0xf0, AFTER_F0);
  set(ACCEPT, 0xf1, 0xf3, TAIL3);
  set(ACCEPT, 0xf4, 0xf4, AFTER_F4);
  set(TAIL1, 0x80, 0xbf, ACCEPT);
  set(TAIL2, 0x80, 0xbf, TAIL1);
  set(TAIL3, 0x80, 0xbf, TAIL2);
  set(AFTER_E0, 0xa0, 0xbf, TAIL1);
  set(AFTER_ED, 0x80, 0x9f, TAIL1);
  set(AFTER_F0, 0x90, 0xbf, TAIL2);
  set(AFTER_F4, 0x80, 0x8f, TAIL2);
  // REJECT stays REJECT for every byte (the fill).
  return table;
}

/**
 * When to hand bytes to Node's native `isUtf8` (simdutf) instead of the JavaScript DFA: a chunk of at least
 * NATIVE_CHUNK bytes starting outside a sequence goes native at once; a shorter one is scanned in JavaScript
 * (ASCII runs in a tight loop), and goes native at its first non-ASCII byte if NATIVE_REST bytes remain.
 * Measured on Node 20.20 x86-64, ns per update() of a whole chunk (a `subarray` plus the native call cost ~70 ns):
 *
 * | chunk            | 16 B | 32 B | 64 B | 96 B | 112 B | 256 B | 64 KiB  |
 * | ---------------- | ---- | ---- | ---- | ---- | ----- | ----- | ------- |
 * | ASCII, DFA       | 15   | 26   | 44   | 65   | 78    | 187   | 40,400  |
 * | ASCII, isUtf8    | 68   | 71   | 72   | 72   | 73    | 78    | 640     |
 * | mixed, DFA       | 24   | 55   | 103  | 160  | 177   | 423   | 105,000 |
 * | mixed, isUtf8    | 77   | 82   | 82   | 84   | 84    | 85    | 2,190   |
 * | ASCII, as shipped| 18   | 26   | 47   | 69   | 74    | 77    | 665     |
 * | mixed, as shipped| 24   | 57   | 86   | 88   | 85    | 82    | 2,060   |
 *
 * (mixed: Latin-1 accents, CJK and an emoji among ASCII.) So short ASCII stays in JavaScript, anything long
 * or non-ASCII with enough left goes native: the best of both at every size, 60x the DFA at 64 KiB ASCII.
 */
const NATIVE_CHUNK = 112;
const NATIVE_REST = 48;

/**
 * Incremental, fail-fast UTF-8 validation (RFC 3629), fed a message chunk by chunk as it arrives off the wire,
 * so a text message with invalid UTF-8 is refused at the first chunk that proves it (RFC 6455 §8.1: "When an
 * endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream is not, in fact, a valid UTF-8
 * stream, that endpoint MUST _Fail the WebSocket Connection_").
 *
 * A sequence may be split across chunks: `update` keeps the partial state, and `isComplete` tells, at the end
 * of the message, whether a sequence is still open (a truncated character is invalid too).
 */
export class Utf8Validator {
  private state = ACCEPT;

  /**
   * Validates `buf[start..end)` as the continuation of the bytes seen so far.
   * @returns false as soon as the bytes so far cannot be the prefix of valid UTF-8 (and from then on until
   *   `reset`); true while they still can be.
   */
  update(buf: Uint8Array, start: number, end: number): boolean {
    let state = this.state;
    if (state === REJECT) return false;
    if (state === ACCEPT && end - start >= NATIVE_CHUNK) return this.updateNative(buf, start, end);
    const table = TRANSITIONS;
    let i = start;
    while (i < end) {
      if (state === ACCEPT) {
        // ASCII run: the common case for chat text and JSON, no table lookup needed.
        while (i < end && buf[i] < 0x80) i++;
        if (i === end) break;
        if (end - i >= NATIVE_REST) return this.updateNative(buf, i, end);
      }
      state = table[(state << 8) | buf[i++]];
      if (state === REJECT) {
        this.state = REJECT;
        return false;
      }
    }
    this.state = state;
    return true;
  }

  /**
   * `update` from a character boundary, natively: the chunk is cut before a trailing incomplete sequence so
   * that `isUtf8` sees whole characters, and that tail (at most 3 bytes) goes through the DFA, whose state
   * carries it into the next chunk.
   */
  private updateNative(buf: Uint8Array, start: number, end: number): boolean {
    const cut = startOfIncompleteTail(buf, start, end);
    let state = isUtf8(buf.subarray(start, cut)) ? ACCEPT : REJECT;
    for (let i = cut; i < end && state !== REJECT; i++) state = TRANSITIONS[(state << 8) | buf[i]];
    this.state = state;
    return state !== REJECT;
  }

  /** No sequence is open: the bytes so far are complete, valid UTF-8. Check at the end of a message. */
  isComplete(): boolean {
    return this.state === ACCEPT;
  }

  /** Forgets the bytes so far, for the next message. */
  reset(): void {
    this.state = ACCEPT;
  }

  /** `bytes[start..end)` is complete, valid UTF-8 (a whole close reason, say): one native call. */
  static isValid(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    return isUtf8(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
  }
}

/**
 * Where a multi-byte sequence that `buf[start..end)` ends in the middle of begins, or `end` if it ends on a
 * character boundary (or on bytes that are invalid anyway, which the native check will then refuse).
 * Looks back over at most 3 continuation bytes to a lead byte and compares what it announces with what is there.
 */
function startOfIncompleteTail(buf: Uint8Array, start: number, end: number): number {
  const limit = Math.max(start, end - 4);
  for (let i = end - 1; i >= limit; i--) {
    const b = buf[i];
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: keep looking for its lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return end - i < need ? i : end;
  }
  return end;
}

/**
 * @internal The text message whose bytes are being handed to an `onTextBytes` listener right now (the parser
 * validated them as they arrived), or undefined. Set by WebSocketConnection around that one call, so that a relay
 * (`session.send(bytes, cb, { text: true })`, `broadcast(sessions, bytes, { text: true })` from inside the
 * listener) does not check the same bytes a second time: for a 64-byte echo that check was 5% of quay's CPU per
 * message (perf/microbench.ts). Identity only: the same Buffer object, during the call.
 */
export const receivedText: { current: Uint8Array | undefined } = { current: undefined };

/**
 * Bytes an application gives as a text message: RFC 6455 §5.6 says a text frame carries UTF-8, so they are
 * checked (node's `isUtf8`, in C++: ~GB/s) before anything is encoded; not the received message being relayed
 * from its own `onTextBytes` call ({@link receivedText}), which was checked on arrival.
 * @throws FrameEncodeError 'WS_INVALID_UTF8'
 */
export function checkTextBytes(bytes: Uint8Array): void {
  if (bytes === receivedText.current) return;
  if (!isUtf8(bytes)) throw new FrameEncodeError('WS_INVALID_UTF8', `the ${bytes.length} bytes given as a text message are not UTF-8 (RFC 6455 §5.6)`);
}
