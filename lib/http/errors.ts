/** Errors of the HTTP codec. */

/**
 * A request (or response) that breaks RFC 9112 or a configured limit. `status` is what the server answers
 * (400, 408, 413, 414, 431, 501, 505); `code` names the rule, for programs and tests.
 */
export class HttpParseError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpParseError';
  }
}

/** A header name or value that would corrupt the message (response splitting), refused by the generator. */
export class HttpGeneratorError extends Error {
  readonly code = 'HTTP_INVALID_FIELD';
  constructor(message: string) {
    super(message);
    this.name = 'HttpGeneratorError';
  }
}
