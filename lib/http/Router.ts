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
}

/**
 * Routes by path prefix: the longest matching prefix wins, on a segment boundary (`/ws` matches `/ws` and
 * `/ws/room`, not `/wsx`). A handler that declines (returns false) passes the request to the next shorter
 * match. Nothing matches: 404. A prefix matches but not for this method: 405 with an `Allow` header
 * (RFC 9110 §15.5.6).
 */
export class Router implements Handler {
  private routes: Route[] = [];

  /** Adds a route; returns the router for chaining. */
  route(prefix: string, handler: Handler | HandlerFunction, options: RouteOptions = {}): this {
    if (!prefix.startsWith('/')) throw new TypeError(`route prefix must start with '/': ${prefix}`);
    const normalized = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    this.routes.push({ prefix: normalized, handler: toHandler(handler), methods: options.methods?.map((m) => m.toUpperCase()) });
    // Longest prefix first; stable for equal lengths (registration order).
    this.routes.sort((a, b) => b.prefix.length - a.prefix.length);
    return this;
  }

  async handle(request: Request, response: Response): Promise<boolean> {
    const path = request.path;
    const allowed = new Set<string>();
    for (const route of this.routes) {
      if (!matches(route.prefix, path)) continue;
      if (route.methods !== undefined && !route.methods.includes(request.method)) {
        for (const m of route.methods) allowed.add(m);
        continue;
      }
      response.handledBy = `${route.handler.constructor.name === 'Object' ? 'handler' : route.handler.constructor.name} at route ${route.prefix}`;
      const handled = await route.handler.handle(request, response);
      if (handled !== false) return true;
    }
    if (response.headersSent) return true;
    response.handledBy = 'Router (no route took it)';
    if (allowed.size > 0) {
      response.setHeader('Allow', [...allowed].join(', '));
      await response.send(405, `405 Method Not Allowed: ${request.method} ${path}\n`);
    } else {
      await response.send(404, `404 Not Found: ${path}\n`);
    }
    return true;
  }
}

function matches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* '/' */;
}
