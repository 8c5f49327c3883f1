import type { Request } from './Request.js';
import type { Response } from './Response.js';

/**
 * Handles requests (Jetty 12's Handler). Return (or resolve to) `false` to decline: the request goes to the
 * next candidate (the Router's next matching route, and in the end a 404). Anything else means handled; the
 * handler must then `end()` the response, now or later. A handler that throws or rejects gets a 500 if nothing
 * was sent yet, otherwise the connection is closed; the error is reported through the server's error hook.
 */
export interface Handler {
  handle(request: Request, response: Response): boolean | void | Promise<boolean | void>;
}

/** A handler written as a function. */
export type HandlerFunction = Handler['handle'];

/**
 * Accepts a Handler or a plain function.
 * @throws TypeError for anything else (a JavaScript caller's mistake, seen when the handler is given rather than as
 * a 500 at every request).
 */
export function toHandler(handler: Handler | HandlerFunction): Handler {
  if (typeof handler === 'function') return { handle: handler };
  if (typeof (handler as Partial<Handler> | null)?.handle !== 'function') {
    throw new TypeError('a handler is a function (request, response) => ... or an object with a handle(request, response) method');
  }
  return handler;
}
