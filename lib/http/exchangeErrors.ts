/** Errors a handler meets while using a Request or Response. */

/** The request body could not be read as asked (too large, malformed JSON, connection gone). */
export class RequestBodyError extends Error {
  readonly code = 'HTTP_REQUEST_BODY';
  constructor(
    /** The status a handler should answer with (413, 400...). */
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RequestBodyError';
  }
}

/** A response operation in a state that does not allow it (a header after the head was sent, a write after end). */
export class ResponseStateError extends Error {
  readonly code = 'HTTP_RESPONSE_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'ResponseStateError';
  }
}

/** The connection closed before the response was sent. `cause` says why. */
export class ResponseAbortedError extends Error {
  readonly code = 'HTTP_RESPONSE_ABORTED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ResponseAbortedError';
  }
}
