export { ByteBufferPool, defaultBufferPool, POISON_BYTE } from './ByteBufferPool.js';
export type { ByteBufferPoolOptions, ByteBufferPoolStats } from './ByteBufferPool.js';
export { RetainableBuffer } from './RetainableBuffer.js';
export { BufferLeakError, BufferReleasedError } from './errors.js';
export type { BufferLeak } from './errors.js';
