import type { Connection, ConnectionFactory, EndPoint } from '../../lib/index.js';
import type { ByteBufferPool, RetainableBuffer } from '../../lib/index.js';

/**
 * The smallest useful quay connection: it writes back what it reads. It shows the contract of a Connection:
 * `onFillable` bytes are only valid during the call, so it copies them into a pooled buffer, releases the buffer
 * when the write completed (or failed), and pauses reading while its writes are above the high watermark, so a
 * peer that sends without reading backs up into its own socket instead of into our memory.
 */
export class EchoConnection implements Connection {
  private closed = false;

  constructor(
    private readonly endPoint: EndPoint,
    private readonly pool: ByteBufferPool,
  ) {}

  onOpen(): void {}

  onFillable(bytes: Buffer): void {
    const copy = this.pool.acquire(bytes.length);
    bytes.copy(copy.buffer);
    const writable = this.endPoint.write(copy.buffer, releaseAfterWrite(copy));
    if (!writable) this.endPoint.pauseReading();
  }

  onWritable(): void {
    this.endPoint.resumeReading();
  }

  onIdleExpired(): boolean {
    return true;
  }

  onClose(): void {
    this.closed = true;
  }

  describe(): string {
    return `EchoConnection ${this.closed ? 'closed' : 'open'}`;
  }
}

function releaseAfterWrite(buffer: RetainableBuffer): () => void {
  return () => buffer.release();
}

/** Makes an {@link EchoConnection} per endpoint. */
export class EchoConnectionFactory implements ConnectionFactory {
  constructor(private readonly pool: ByteBufferPool) {}
  newConnection(endPoint: EndPoint): Connection {
    return new EchoConnection(endPoint, this.pool);
  }
}
