import { randomBytes } from 'node:crypto';

/**
 * A client frame as raw bytes, for the benchmark peers that must not depend on the code they measure (perf/opener,
 * perf/deflate-bomb, perf/hostile): masked (RFC 6455 §5.3) with a random key, any payload length (§5.2).
 * `first` is the first byte: FIN, RSV and opcode (0x82 binary, 0x89 ping, 0xc2 compressed binary, RFC 7692 §6).
 */
export function maskedFrame(first: number, payload: Buffer): Buffer {
  const n = payload.length;
  const header = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + 4 + n);
  frame[0] = first;
  if (n < 126) frame[1] = 0x80 | n;
  else if (n < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  const key = randomBytes(4);
  key.copy(frame, header);
  for (let i = 0; i < n; i++) frame[header + 4 + i] = payload[i]! ^ key[i & 3]!;
  return frame;
}
