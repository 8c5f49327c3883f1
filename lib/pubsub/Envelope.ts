/**
 * The envelope: how one published message travels between processes (over Redis pub/sub, over the cluster's IPC
 * channel). One binary frame, made once per publish, the same bytes for every broker:
 *
 * ```
 * offset  size  field
 *      0     1  version (1)
 *      1     1  opcode: 1 text, 2 binary (the RFC 6455 §5.2 values: the WebSocket message it becomes)
 *      2     1  flags: bit 0 FIRST (the first message of the origin's topic: its sequence starts here); others 0
 *      3     6  origin: the publishing PubSub's id (48-bit unsigned, big-endian)
 *      9     4  sequence: the origin's number of this message on this topic (32-bit unsigned, big-endian, wraps)
 *     13     2  n: the topic name's length in UTF-8 bytes (1..MAX_TOPIC_BYTES)
 *     15     n  the topic name (UTF-8)
 *   15+n     -  the payload: the message's bytes, as they are (binary-safe: no text encoding on the way)
 * ```
 *
 * Why an envelope rather than the bare payload: the opcode keeps text and binary apart across processes (a Redis
 * message is only bytes); the origin lets a process drop its own messages when Redis echoes them back to its
 * subscription (it delivered them locally already); the sequence lets a receiver see a message twice or a gap
 * (counted), and FIRST tells it that a topic made again by its publisher starts a new count; the topic name lets
 * one channel (the cluster's IPC) carry every topic. Decoding is strict: anything
 * else is an {@link BrokerError} 'ENVELOPE_INVALID', counted and dropped by the receiver, never a crash.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { BrokerError } from './errors.js';

/** The envelope format this code writes and reads. */
export const ENVELOPE_VERSION = 1;
/** Bytes before the topic name. */
export const ENVELOPE_HEADER_BYTES = 15;
/** The flag of a topic's first message from its origin (its sequence starts there). */
export const ENVELOPE_FLAG_FIRST = 0x01;
/** Longest topic name, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 1024;
/** Largest origin id (48 bits). */
export const MAX_ORIGIN = 2 ** 48 - 1;

/** The WebSocket message an envelope becomes: 1 text, 2 binary (RFC 6455 §5.2). */
export type EnvelopeOpCode = 1 | 2;

/** A decoded envelope. `payload` is a view of the decoded buffer (not a copy). */
export interface Envelope {
  readonly opcode: EnvelopeOpCode;
  /** The first message of the origin's topic (made again since, or new): the sequence starts here. */
  readonly first: boolean;
  readonly origin: number;
  readonly sequence: number;
  readonly topic: string;
  readonly payload: Buffer;
}

/**
 * Encodes one message. `topicBytes` is the topic name's UTF-8 (the Topic keeps it); `payload` a string (encoded
 * as UTF-8 into the envelope, no intermediate Buffer) or bytes (copied); `first` sets the FIRST flag.
 * @throws RangeError for an origin, sequence or topic out of range.
 */
export function encodeEnvelope(
  opcode: EnvelopeOpCode,
  origin: number,
  sequence: number,
  topicBytes: Uint8Array,
  payload: string | Uint8Array,
  first = false,
): Buffer {
  if (!Number.isInteger(origin) || origin < 0 || origin > MAX_ORIGIN) throw new RangeError(`origin must be a 48-bit unsigned integer (got ${origin})`);
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > 0xffffffff) throw new RangeError(`sequence must be a 32-bit unsigned integer (got ${sequence})`);
  const n = topicBytes.byteLength;
  if (n === 0 || n > MAX_TOPIC_BYTES) throw new RangeError(`a topic name has 1 to ${MAX_TOPIC_BYTES} UTF-8 bytes (got ${n})`);
  const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength;
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + n + payloadBytes);
  out[0] = ENVELOPE_VERSION;
  out[1] = opcode;
  out[2] = first ? ENVELOPE_FLAG_FIRST : 0;
  out.writeUIntBE(origin, 3, 6);
  out.writeUInt32BE(sequence, 9);
  out.writeUInt16BE(n, 13);
  out.set(topicBytes, ENVELOPE_HEADER_BYTES);
  const at = ENVELOPE_HEADER_BYTES + n;
  if (typeof payload === 'string') out.write(payload, at, 'utf8');
  else out.set(payload, at);
  return out;
}

/**
 * Decodes an envelope, strictly: the version, the opcode, the flags, the topic length and its UTF-8, and for a text message
 * the payload's UTF-8 (RFC 6455 §8.1: a text message is UTF-8; a remote process must not make us send one that
 * is not) are checked.
 * @throws BrokerError 'ENVELOPE_INVALID' for anything else (the message says what).
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < ENVELOPE_HEADER_BYTES) throw invalid(`${b.length} bytes, shorter than the ${ENVELOPE_HEADER_BYTES}-byte header`);
  if (b[0] !== ENVELOPE_VERSION) throw invalid(`version ${b[0]}, expected ${ENVELOPE_VERSION}`);
  const opcode = b[1];
  if (opcode !== 1 && opcode !== 2) throw invalid(`opcode ${opcode}, expected 1 (text) or 2 (binary)`);
  const flags = b[2]!;
  if ((flags & ~ENVELOPE_FLAG_FIRST) !== 0) throw invalid(`flags 0x${flags.toString(16)}, only 0x01 (FIRST) is defined`);
  const n = b.readUInt16BE(13);
  if (n === 0 || n > MAX_TOPIC_BYTES) throw invalid(`topic length ${n}, expected 1 to ${MAX_TOPIC_BYTES}`);
  const end = ENVELOPE_HEADER_BYTES + n;
  if (end > b.length) throw invalid(`topic length ${n} runs past the end of the ${b.length} bytes`);
  const topicBytes = b.subarray(ENVELOPE_HEADER_BYTES, end);
  if (!isUtf8(topicBytes)) throw invalid('the topic name is not UTF-8');
  const payload = b.subarray(end);
  if (opcode === 1 && !isUtf8(payload)) throw invalid('a text message whose payload is not UTF-8');
  return {
    opcode,
    first: flags === ENVELOPE_FLAG_FIRST,
    origin: b.readUIntBE(3, 6),
    sequence: b.readUInt32BE(9),
    topic: topicBytes.toString('utf8'),
    payload,
  };
}

function invalid(what: string): BrokerError {
  return new BrokerError('ENVELOPE_INVALID', `invalid envelope: ${what}`);
}
