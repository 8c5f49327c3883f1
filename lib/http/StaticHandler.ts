import { createReadStream, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { extname, join, posix, resolve, sep } from 'node:path';
import type { Handler } from './Handler.js';
import type { Request } from './Request.js';
import type { Response } from './Response.js';
import { safeToDrop } from '../io/safeToDrop.js';
import { StaticRootError } from './errors.js';

/** Content types of common extensions. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.htm': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.json': 'application/json',
  '.map': 'application/json', '.txt': 'text/plain; charset=utf-8', '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8', '.xml': 'application/xml', '.svg': 'image/svg+xml', '.png': 'image/png',
  '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.avif': 'image/avif',
  '.ico': 'image/x-icon', '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf', '.otf': 'font/otf',
  '.wasm': 'application/wasm', '.pdf': 'application/pdf', '.zip': 'application/zip', '.gz': 'application/gzip',
  '.mp3': 'audio/mpeg', '.mp4': 'video/mp4', '.webm': 'video/webm', '.ogg': 'audio/ogg', '.wav': 'audio/wav',
};

/** Options of a {@link StaticHandler}. */
export interface StaticHandlerOptions {
  /** The folder served. Nothing outside it is ever served (`..`, encoded or not, and symlinks out of it). */
  root: string;
  /** A route prefix to strip from the request path (e.g. '/static'). Default none. */
  prefix?: string;
  /** The file served for a directory. Default 'index.html'. */
  index?: string;
  /** `Cache-Control` value. Default 'no-cache' (revalidate with ETag / Last-Modified). */
  cacheControl?: string;
}

/**
 * Serves files from a folder (Jetty's ResourceHandler): GET and HEAD; content types by extension;
 * `index.html` for directories; conditional requests with ETag / If-None-Match and Last-Modified /
 * If-Modified-Since (304, RFC 9110 §13); a single byte range (206, or 416 when unsatisfiable, RFC 9110 §14);
 * files streamed with backpressure. Other methods, and paths with no file, are declined (Jetty's ResourceHandler
 * does the same): the router then tries shorter routes and answers 404, or 405 when the path is a route for other
 * methods (a catch-all StaticHandler on `/` does not hide a POST-only `/echo` from a GET). A `..` segment is
 * answered 404 at once.
 */
export class StaticHandler implements Handler {
  private readonly root: string;
  private realRoot: Promise<string> | undefined;
  private readonly options: StaticHandlerOptions;

  /**
   * @throws StaticRootError when `root` does not exist or is not a directory (checked now, as Jetty's
   * ResourceHandler checks its base resource at start, so that a typo is one clear error at startup rather than a
   * 404 on every request).
   */
  constructor(options: StaticHandlerOptions) {
    this.options = options;
    this.root = resolve(options.root);
    let isDirectory: boolean;
    try {
      isDirectory = statSync(this.root).isDirectory();
    } catch (e) {
      throw new StaticRootError('STATIC_ROOT_MISSING', `StaticHandler root ${this.root} cannot be read: ${(e as Error).message}`, e);
    }
    if (!isDirectory) throw new StaticRootError('STATIC_ROOT_NOT_A_DIRECTORY', `StaticHandler root ${this.root} is not a directory`);
  }

  /**
   * Serves the file for `request` (false: not a GET/HEAD or outside the prefix). Rejects if the client leaves
   * mid-file (the server counts that as a disconnect); safe to drop, like every Promise quay returns.
   */
  handle(request: Request, response: Response): Promise<boolean> {
    return safeToDrop(this.serve(request, response));
  }

  private async serve(request: Request, response: Response): Promise<boolean> {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    let path = request.path;
    const prefix = this.options.prefix;
    if (prefix !== undefined && prefix !== '/') {
      if (!path.startsWith(prefix)) return false;
      path = path.slice(prefix.length) || '/';
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      await response.send(400, '400 Bad Request: malformed percent-encoding in the path\n');
      return true;
    }
    if (decoded.includes('\0')) {
      await response.send(400, '400 Bad Request: NUL in the path\n');
      return true;
    }
    // Refuse any `..` segment (after decoding, so %2e%2e counts) rather than normalizing it away.
    const segments = decoded.split(/[/\\]/);
    if (segments.includes('..')) {
      await response.send(404, '404 Not Found\n');
      return true;
    }
    const relative = posix.normalize(decoded);
    const file = await this.resolveInsideRoot(join(this.root, relative));
    if (file === undefined) return false;
    let stats = file.stats;
    let target = file.path;
    if (stats.isDirectory()) {
      if (!path.endsWith('/')) {
        response.setHeader('Location', `${request.path}/${request.rawQuery === '' ? '' : `?${request.rawQuery}`}`);
        await response.send(301, '');
        return true;
      }
      const index = await this.resolveInsideRoot(join(target, this.options.index ?? 'index.html'));
      if (index === undefined || !index.stats.isFile()) return false;
      stats = index.stats;
      target = index.path;
    }
    if (!stats.isFile()) return false;
    await this.sendFile(request, response, target, stats);
    return true;
  }

  private async sendFile(request: Request, response: Response, path: string, stats: Stats): Promise<void> {
    const size = stats.size;
    const etag = `W/"${size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
    const lastModified = new Date(Math.floor(stats.mtimeMs / 1000) * 1000);
    response.setHeader('ETag', etag);
    response.setHeader('Last-Modified', lastModified.toUTCString());
    response.setHeader('Cache-Control', this.options.cacheControl ?? 'no-cache');
    response.setHeader('Accept-Ranges', 'bytes');
    response.setHeader('Content-Type', CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream');
    if (notModified(request, etag, lastModified)) {
      response.status = 304;
      await response.end();
      return;
    }
    let start = 0;
    let end = size - 1;
    const range = request.header('range');
    if (range !== undefined && ifRangeMatches(request.header('if-range'), etag, lastModified)) {
      const parsed = parseRange(range, size);
      if (parsed === 'unsatisfiable') {
        response.setHeader('Content-Range', `bytes */${size}`);
        response.removeHeader('Content-Type');
        await response.send(416, '416 Range Not Satisfiable\n', 'text/plain; charset=utf-8');
        return;
      }
      if (parsed !== undefined) {
        [start, end] = parsed;
        response.status = 206;
        response.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
      }
    }
    const length = size === 0 ? 0 : end - start + 1;
    response.setHeader('Content-Length', length);
    if (request.method === 'HEAD' || length === 0) {
      await response.end();
      return;
    }
    // Stream with backpressure: each write's promise waits while the connection is above its high watermark.
    const stream = createReadStream(path, { start, end, highWaterMark: 64 * 1024 });
    try {
      for await (const chunk of stream) await response.write(chunk as Buffer);
    } finally {
      stream.destroy();
    }
    await response.end();
  }

  /** The real path of `candidate` if it exists and lies inside the root (symlinks resolved), else undefined. */
  private async resolveInsideRoot(candidate: string): Promise<{ path: string; stats: Stats } | undefined> {
    let root: string;
    try {
      root = await (this.realRoot ??= realpath(this.root));
    } catch {
      // The root went away after the handler was made (a redeploy): nothing to serve, 404; looked up again next time.
      this.realRoot = undefined;
      return undefined;
    }
    let real: string;
    try {
      real = await realpath(candidate);
    } catch {
      return undefined;
    }
    if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) return undefined;
    try {
      return { path: real, stats: await stat(real) };
    } catch {
      return undefined;
    }
  }
}

/** RFC 9110 §13.1.2 / §13.1.3: If-None-Match wins over If-Modified-Since. */
function notModified(request: Request, etag: string, lastModified: Date): boolean {
  const inm = request.header('if-none-match');
  if (inm !== undefined) {
    if (inm.trim() === '*') return true;
    const weak = (tag: string): string => tag.trim().replace(/^W\//, '');
    return inm.split(',').some((tag) => weak(tag) === weak(etag));
  }
  const ims = request.header('if-modified-since');
  if (ims !== undefined) {
    const since = Date.parse(ims);
    return !Number.isNaN(since) && lastModified.getTime() <= since;
  }
  return false;
}

function ifRangeMatches(ifRange: string | undefined, etag: string, lastModified: Date): boolean {
  if (ifRange === undefined) return true;
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return false; // weak validators never match If-Range
  return Date.parse(ifRange) === lastModified.getTime();
}

/**
 * A single `bytes=` range (RFC 9110 §14.1.2). Returns the inclusive [start, end], 'unsatisfiable', or undefined
 * when the header is to be ignored (another unit, several ranges, or malformed: a server MAY ignore Range).
 */
export function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined;
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}
