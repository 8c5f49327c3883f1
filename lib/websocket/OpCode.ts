/**
 * WebSocket frame opcodes (RFC 6455 §5.2, §11.8). A `const` object plus a type rather than a TypeScript `enum`,
 * because `isolatedModules` forbids `const enum` across files and a plain `enum` emits a reverse-mapping object.
 */
export const OpCode = {
  /** %x0: a continuation frame of a fragmented message (§5.4). */
  CONTINUATION: 0,
  /** %x1: the first (or only) frame of a text message; the payload is UTF-8 (§5.6). */
  TEXT: 1,
  /** %x2: the first (or only) frame of a binary message (§5.6). */
  BINARY: 2,
  /** %x8: connection close (§5.5.1). */
  CLOSE: 8,
  /** %x9: ping (§5.5.2). */
  PING: 9,
  /** %xA: pong (§5.5.3). */
  PONG: 10,
} as const;

/** One of the opcodes RFC 6455 defines; %x3-7 and %xB-F are reserved (§5.2). */
export type OpCode = (typeof OpCode)[keyof typeof OpCode];

/** The opcodes that start a data message (RFC 6455 §5.6). */
export type DataOpCode = typeof OpCode.TEXT | typeof OpCode.BINARY;

/** Control frames have the most significant opcode bit set: %x8-F (RFC 6455 §5.5). */
export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** The opcode is one RFC 6455 defines (not reserved, §5.2): 0-2 and 8-10, a bit set over the 4-bit range. */
export function isKnownOpCode(opcode: number): opcode is OpCode {
  return opcode === (opcode & 0x0f) && ((1 << opcode) & 0x0707) !== 0;
}
