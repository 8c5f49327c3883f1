import type { Handler, HandlerFunction } from './Handler.js';
import { toHandler } from './Handler.js';
import type { Request } from './Request.js';
import type { Response } from './Response.js';

/** Options of a route. */
export interface RouteOptions {
  /** Methods this route serves (upper case); others get 405 with `Allow` when no other route takes them. */
  methods?: readonly string[];
}

interface Route {
  prefix: string;
  handler: Handler;
  methods: readonly string[] | undefined;
  /** `response.handledBy` when this route takes a request: made once, not per request. */
  label: string;
}

/**
 * Routes by path prefix: the longest matching prefix wins, on a segment boundary (`/ws` matches `/ws` and
 * `/ws/room`, not `/wsx`). A handler that declines (returns false) passes the request to the next shorter
 * match. Nothing matches: 404. A prefix matches but not for this method: 405 with an `Allow` header
 * (RFC 9110 §15.5.6).
 *
 * The walk is synchronous until a handler returns a Promise, and allocates nothing per request on the way (the
 * `Allow` set only when a method does not match): a router sits in front of every request.
 */
export class Router implements Handler {
  private routes: Route[] = [];

  /** Adds a route; returns the router for chaining. */
  route(prefix: string, handler: Handler | HandlerFunction, options: RouteOptions = {}): this {
    if (!prefix.startsWith('/')) throw new TypeError(`route prefix must start with '/': ${prefix}`);
    const normalized = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    const h = toHandler(handler);
    const name = h.constructor.name === 'Object' ? 'handler' : h.constructor.name;
    this.routes.push({ prefix: normalized, handler: h, methods: options.methods?.map((m) => m.toUpperCase()), label: `${name} at route ${normalized}` });
    // Longest prefix first; stable for equal lengths (registration order).
    this.routes.sort((a, b) => b.prefix.length - a.prefix.length);
    return this;
  }

  handle(request: Request, response: Response): boolean | Promise<boolean> {
    return this.walk(0, request, response, undefined);
  }

  /** Tries the routes from `start` on; a handler's Promise resumes the walk after it when it declines. */
  private walk(start: number, request: Request, response: Response, allowed: Set<string> | undefined): boolean | Promise<boolean> {
    const path = request.path;
    const routes = this.routes;
    for (let i = start; i < routes.length; i++) {
      const route = routes[i]!;
      if (!matches(route.prefix, path)) continue;
      if (route.methods !== undefined && !route.methods.includes(request.method)) {
        allowed ??= new Set<string>();
        for (const m of route.methods) allowed.add(m);
        continue;
      }
      response.handledBy = route.label;
      const handled = route.handler.handle(request, response);
      if (handled instanceof Promise) {
        const next = i + 1;
        const seen = allowed;
        return handled.then((value) => (value !== false ? true : this.walk(next, request, response, seen)));
      }
      if (handled !== false) return true;
    }
    return this.unmatched(request, response, allowed);
  }

  /** No route took the request: 405 with `Allow` when the path exists for other methods, else 404. */
  private unmatched(request: Request, response: Response, allowed: Set<string> | undefined): boolean | Promise<boolean> {
    if (response.headersSent) return true;
    response.handledBy = 'Router (no route took it)';
    if (allowed !== undefined) {
      response.setHeader('Allow', [...allowed].join(', '));
      return response.send(405, `405 Method Not Allowed: ${request.method} ${request.path}\n`).then(() => true);
    }
    return response.send(404, `404 Not Found: ${request.path}\n`).then(() => true);
  }
}

function matches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* '/' */;
}
