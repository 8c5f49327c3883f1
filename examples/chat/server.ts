/**
 * The chat room: Jetty's first WebSocket demo, on quay. One path ('/') serves the page to a plain GET and joins the
 * chat on a WebSocket upgrade with the `chat` subprotocol, as the demo's single servlet did.
 *
 * Run it with `npm start` (PORT / HOST from the environment, or --port / --host); Ctrl-C stops it gracefully:
 * every member gets a close with 1001 (going away, RFC 6455 §7.4.1) and the page reconnects when the server is
 * back. `npm start -- --tls` serves the page over https and the chat over wss on the same port, with a
 * self-signed certificate made for the run (examples/certificates.ts, with the openssl command);
 * `--cert FILE --key FILE` serves a certificate of your own instead.
 *
 * The protocol is small JSON text messages (RFC 6455 §5.6: text frames carry UTF-8):
 *
 * | client -> server           | server -> client                                                      |
 * | -------------------------- | --------------------------------------------------------------------- |
 * | `{type:'join', name}`      | to the joiner: `{type:'members', you, names, maxTextLength}`; then to |
 * |                            | everyone: `{type:'joined', name, time}`                               |
 * | `{type:'message', text}`   | to everyone: `{type:'message', name, text, time}`                     |
 * | (the socket closes)        | to everyone: `{type:'left', name, time}`                              |
 * | anything refused           | to the sender: `{type:'error', code, message}` (the session stays)    |
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { OpensslMissingError, selfSignedCertificate } from '../certificates.js';
import {
  ErrorReporter,
  Router,
  Server,
  StaticHandler,
  WebSocketUpgradeHandler,
  broadcast,
  type Request,
  type Response,
  type ServerErrorContext,
  type WebSocketListener,
  type WebSocketSession,
} from '../../lib/index.js';

// ------------------------------------------------------------------------------------------------ protocol

/** What a client sends. */
export type ClientMessage = { type: 'join'; name: string } | { type: 'message'; text: string };

/** Why the server refused something; the page shows `message`, tests match `code`. */
export type ChatErrorCode =
  | 'bad-message' // not JSON, not an object, unknown type, binary
  | 'not-joined' // a message before a join
  | 'already-joined'
  | 'name-invalid' // nothing left after sanitizing
  | 'name-taken' // every numbered variant is taken too
  | 'room-full'
  | 'empty'
  | 'too-long';

/** What the server sends. `time` is ms since the epoch (the server's clock). */
export type ServerMessage =
  | { type: 'members'; you: string; names: string[]; maxTextLength: number }
  | { type: 'joined'; name: string; time: number }
  | { type: 'left'; name: string; time: number }
  | { type: 'message'; name: string; text: string; time: number }
  | { type: 'error'; code: ChatErrorCode; message: string };

/** The subprotocol (RFC 6455 §1.9) the page offers and the server requires. */
export const CHAT_PROTOCOL = 'chat';
/** Longest name, in code points, after sanitizing. */
export const MAX_NAME_LENGTH = 24;
/** Longest message text, in code points: longer ones are refused with a visible error, not a disconnect. */
export const MAX_TEXT_LENGTH = 2000;
/**
 * Largest WebSocket message accepted at all (1009 beyond, RFC 6455 §7.4.1). Well above MAX_TEXT_LENGTH as JSON
 * (4 bytes per code point, or 6 for an escaped control character), so that an over-long chat line gets the
 * friendly refusal; only a client that is not the page can hit this hard limit.
 */
export const MAX_WIRE_BYTES = 64 * 1024;

// ------------------------------------------------------------------------------------------------ sanitizing

/**
 * Characters never kept in a name: C0/C1 controls (\p{Cc}); bidi embeddings, overrides, isolates and marks, which
 * can make a name display as another or reorder the text after it (Unicode TR #9); invisible zero-width
 * characters, which make `alice` and `ali\u200Bce` look the same. ZWJ (U+200D) stays: emoji sequences need it.
 */
const NAME_STRIP = /[\p{Cc}\u061C\u200B\u200E\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/gu;
/** In message text, controls go except tab and line feed (a pasted multi-line message stays multi-line). */
const TEXT_STRIP = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u202A-\u202E\u2066-\u2069\uFEFF]/gu;
/** Any run of white space (line breaks and tabs included) becomes one space in a name. */
const WHITESPACE = /\s+/gu;
/** Input longer than this is cut before any regex runs: bounds the work a hostile name can cause. */
const MAX_RAW_NAME = 256;

/**
 * A name as shown: NFC-normalized, stripped of controls and invisible characters, white space collapsed, trimmed,
 * at most {@link MAX_NAME_LENGTH} code points. Undefined when nothing is left (or it is not a string).
 */
export function sanitizeName(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  // White space first: line breaks and tabs are controls too, and must separate words, not join them.
  const cleaned = raw.slice(0, MAX_RAW_NAME).normalize('NFC').replace(WHITESPACE, ' ').replace(NAME_STRIP, '').trim();
  const name = truncate(cleaned, MAX_NAME_LENGTH).trimEnd();
  return name === '' ? undefined : name;
}

/**
 * The identity of a name, for uniqueness: compatibility-folded (NFKC: a fullwidth `ａlice` is `alice`) and lower
 * case, so that two members cannot pass for each other.
 */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLowerCase();
}

/** Message text as shown: CRLF and CR as LF, controls other than tab and LF removed, trimmed. */
export function sanitizeText(raw: string): string {
  return raw.replace(/\r\n?/g, '\n').replace(TEXT_STRIP, '').trim();
}

/** Counts code points (not UTF-16 units), stopping at `limit + 1`: enough to tell "too long" without a copy. */
export function codePointLength(text: string, limit: number): number {
  let count = 0;
  for (let i = 0; i < text.length && count <= limit; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

function truncate(text: string, max: number): string {
  if (codePointLength(text, max) <= max) return text;
  let out = '';
  let count = 0;
  for (const ch of text) {
    if (count++ === max) break;
    out += ch;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ the room

/** Options of a {@link ChatRoom}. */
export interface ChatRoomOptions {
  /** Members at most; a join past it is refused ('room-full'). Default 1000. */
  maxMembers?: number;
  /** Told of joins and leaves (the CLI prints them). */
  log?: (line: string) => void;
}

/**
 * The room: who is in it, under which name, and the protocol. One listener object serves every session (the
 * member's name lives in `session.attachment`), so no closure is made per connection or per message.
 */
export class ChatRoom implements WebSocketListener {
  /** Joined members and their names: the broadcast list. */
  private readonly members = new Map<WebSocketSession, string>();
  /** Name keys in use ({@link nameKey}), for uniqueness. */
  private readonly taken = new Set<string>();
  /** Every open session, joined or not (for `dropAll`). */
  private readonly sessions = new Set<WebSocketSession>();
  private readonly maxMembers: number;
  private readonly log: ((line: string) => void) | undefined;

  constructor(options: ChatRoomOptions = {}) {
    this.maxMembers = options.maxMembers ?? 1000;
    this.log = options.log;
  }

  /** The names of the members, in order of joining. */
  names(): string[] {
    return [...this.members.values()];
  }

  /** Open sessions, joined or not. */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /**
   * Ends a member's connection at once, without a close handshake (as a network failure would: the page sees
   * 1006 and reconnects). Returns false when no member has that name. For tests and moderation.
   */
  drop(name: string): boolean {
    for (const [session, member] of this.members) {
      if (member === name) {
        session.terminate();
        return true;
      }
    }
    return false;
  }

  /** Ends every connection at once (see {@link drop}). Returns how many. */
  dropAll(): number {
    const all = [...this.sessions];
    for (const session of all) session.terminate();
    return all.length;
  }

  onOpen(session: WebSocketSession): void {
    this.sessions.add(session);
  }

  onText(session: WebSocketSession, raw: string): void {
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      return this.refuse(session, 'bad-message', 'That was not a chat message (not JSON).');
    }
    if (message === null || typeof message !== 'object') {
      return this.refuse(session, 'bad-message', 'That was not a chat message.');
    }
    const { type } = message as { type?: unknown };
    if (type === 'join') return this.join(session, (message as { name?: unknown }).name);
    if (type === 'message') return this.say(session, (message as { text?: unknown }).text);
    this.refuse(session, 'bad-message', `Unknown message type ${JSON.stringify(String(type)).slice(0, 40)}.`);
  }

  onBinary(session: WebSocketSession): void {
    this.refuse(session, 'bad-message', 'This chat speaks text (JSON) messages only.');
  }

  onClose(session: WebSocketSession): void {
    this.sessions.delete(session);
    const name = this.members.get(session);
    if (name === undefined) return;
    this.members.delete(session);
    this.taken.delete(nameKey(name));
    this.log?.(`- ${name} left (${this.members.size} in the room)`);
    this.publish({ type: 'left', name, time: Date.now() });
  }

  private join(session: WebSocketSession, raw: unknown): void {
    if (this.members.has(session)) return this.refuse(session, 'already-joined', 'You are already in the room.');
    if (this.members.size >= this.maxMembers) return this.refuse(session, 'room-full', 'The room is full; try again later.');
    const wanted = sanitizeName(raw);
    if (wanted === undefined) return this.refuse(session, 'name-invalid', 'Please choose a name (letters, digits, emoji...).');
    const name = this.uniqueName(wanted);
    if (name === undefined) return this.refuse(session, 'name-taken', `The name "${wanted}" is taken.`);
    this.members.set(session, name);
    this.taken.add(nameKey(name));
    session.attachment = name;
    this.log?.(`+ ${name} joined from ${session.remoteAddress} (${this.members.size} in the room)`);
    // The joiner learns its (possibly numbered) name and who is here before anyone's notice, its own included.
    this.sendTo(session, { type: 'members', you: name, names: this.names(), maxTextLength: MAX_TEXT_LENGTH });
    this.publish({ type: 'joined', name, time: Date.now() });
  }

  private say(session: WebSocketSession, raw: unknown): void {
    const name = this.members.get(session);
    if (name === undefined) return this.refuse(session, 'not-joined', 'Join the room before sending messages.');
    if (typeof raw !== 'string') return this.refuse(session, 'bad-message', 'A message needs a text.');
    const text = sanitizeText(raw);
    if (text === '') return this.refuse(session, 'empty', 'An empty message was not sent.');
    const length = codePointLength(text, MAX_TEXT_LENGTH);
    if (length > MAX_TEXT_LENGTH) {
      return this.refuse(session, 'too-long', `Message not sent: it is over ${MAX_TEXT_LENGTH} characters (${[...text].length}).`);
    }
    this.publish({ type: 'message', name, text, time: Date.now() });
  }

  /** `wanted`, or `wanted (2)`, `wanted (3)`... (shortened to fit) for the first free one; bounded tries. */
  private uniqueName(wanted: string): string | undefined {
    if (!this.taken.has(nameKey(wanted))) return wanted;
    for (let n = 2; n < 100; n++) {
      const suffix = ` (${n})`;
      const candidate = truncate(wanted, MAX_NAME_LENGTH - suffix.length).trimEnd() + suffix;
      if (!this.taken.has(nameKey(candidate))) return candidate;
    }
    return undefined;
  }

  /** One encoding for every member (quay's broadcast encodes the frame once). */
  private publish(message: ServerMessage): void {
    broadcast(this.members.keys(), JSON.stringify(message));
  }

  private sendTo(session: WebSocketSession, message: ServerMessage): void {
    // Fire and forget: a member that left in the meantime is not an error (the session marks the failure handled).
    void session.sendText(JSON.stringify(message)).catch(() => {});
  }

  /** A refusal is a message, not a disconnect: the page shows it and the member stays. */
  private refuse(session: WebSocketSession, code: ChatErrorCode, message: string): void {
    this.sendTo(session, { type: 'error', code, message });
  }
}

// ------------------------------------------------------------------------------------------------ the server

/** Options of {@link startChatServer}. */
export interface ChatServerOptions {
  /** 0 picks a free port. Default 8080. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** The folder with index.html, chat.js, style.css. Default: examples/chat/public of this repository. */
  publicDir?: string;
  /** Keepalive ping interval in ms (see WebSocketSessionOptions.pingIntervalMs). Default 25 000. */
  pingIntervalMs?: number;
  /** Members at most. Default 1000. */
  maxMembers?: number;
  /** Told of joins, leaves and server errors. Default: silent but for handler errors (console.error, rate-limited). */
  log?: (line: string) => void;
  /**
   * Serve the page over https and the chat over wss, on the same port (the page picks wss: when it was loaded
   * over https:). Default: plain http and ws.
   */
  tls?: ChatTlsOptions;
}

/** A certificate (chain) and its private key, PEM, as node:tls takes them. */
export interface ChatTlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
}

/** A running chat server. */
export interface ChatServer {
  server: Server;
  room: ChatRoom;
  /** The page's URL, e.g. `http://127.0.0.1:8080/` (or `https://...` with {@link ChatServerOptions.tls}). */
  url: string;
  /** Graceful stop: members get a close with 1001; whatever is left is closed after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Keepalive below common proxy and load-balancer idle timeouts (nginx `proxy_read_timeout` and AWS ALB default to
 * 60 s): an idle room stays connected for hours. Browsers answer pings on their own (RFC 6455 §5.5.2).
 */
const DEFAULT_PING_INTERVAL_MS = 25_000;

/** Headers of every page response: defence in depth behind textContent (no inline script may run). */
const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** Starts the chat: the page and the WebSocket endpoint on '/'. */
export async function startChatServer(options: ChatServerOptions = {}): Promise<ChatServer> {
  const publicDir = options.publicDir ?? defaultPublicDir();
  if (!existsSync(publicDir) || !statSync(publicDir).isDirectory() || !existsSync(`${publicDir}/index.html`)) {
    throw new Error(`chat: the page folder ${publicDir} is missing (or has no index.html); pass publicDir`);
  }
  const log = options.log;
  const room = new ChatRoom({ ...(options.maxMembers === undefined ? {} : { maxMembers: options.maxMembers }), ...(log === undefined ? {} : { log }) });

  const chat = new WebSocketUpgradeHandler({
    subprotocols: [CHAT_PROTOCOL],
    pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
    maxMessageBytes: MAX_WIRE_BYTES,
    maxFrameBytes: MAX_WIRE_BYTES,
    // A member that stops reading is disconnected (1008) rather than holding the room's messages in memory; its
    // page reconnects.
    maxBufferedBytes: 1024 * 1024,
    overflow: 'close',
    // Cross-site WebSocket hijacking (RFC 6455 §10.2): a browser always sends Origin; only our own page may join.
    origins: sameOrigin,
    accept: (_request, offered) =>
      offered.includes(CHAT_PROTOCOL)
        ? { listener: room, protocol: CHAT_PROTOCOL }
        : { status: 400, reason: `this endpoint speaks the "${CHAT_PROTOCOL}" subprotocol (Sec-WebSocket-Protocol)` },
  });
  const files = new StaticHandler({ root: publicDir });
  const page = (request: Request, response: Response): Promise<boolean> => {
    for (const name in PAGE_HEADERS) response.setHeader(name, PAGE_HEADERS[name]!);
    return files.handle(request, response);
  };

  // Same path, two handlers: the upgrade handler declines a plain GET (returns false) and the router passes it on
  // to the page, as Jetty's demo servlet answered both on one URL.
  const router = new Router().route('/', chat).route('/', page);
  const reporter = new ErrorReporter(); // in proportion: one line per kind of error per second, with a count
  const server = new Server({
    port: options.port ?? 8080,
    host: options.host ?? '127.0.0.1',
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    idleTimeoutMs: 30_000,
    onError: (error: Error, context: ServerErrorContext) => {
      // Refused upgrades (a foreign origin, no `chat` subprotocol) and dropped peers are routine: told only to `log`.
      if (log !== undefined) log(`! ${context.kind}: ${error.message}`);
      else if (context.kind === 'handler') reporter.report('handler error', error, 'chat: handler error:', error);
    },
  }, router);
  const address = await server.start();
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = options.tls === undefined ? 'http' : 'https';
  return { server, room, url: `${scheme}://${host}:${address.port}/`, stop: (graceMs = 5_000) => server.stop(graceMs) };
}

/**
 * Allows requests without Origin (non-browser clients) and pages served by this host. Over TLS the page must be an
 * https: one too: an http: page of the same host and port is another origin (RFC 6454 §4), e.g. one a network
 * attacker injected. Over plain http an https: origin stays allowed: a proxy may end TLS in front of the chat.
 */
function sameOrigin(origin: string | undefined, request: Request): boolean {
  if (origin === undefined) return true;
  try {
    const url = new URL(origin);
    if (request.secure && url.protocol !== 'https:') return false;
    return url.host === request.header('host');
  } catch {
    return false; // 'null' (a sandboxed frame, a file: page) or garbage
  }
}

/**
 * examples/chat/public of this repository, found from this module. From the sources (tap runs the .ts) it is next
 * to this file; from the build (dist/examples/chat/server.js) tsc copied no HTML, so it is back in the sources.
 */
function defaultPublicDir(): string {
  const candidates = [new URL('./public', import.meta.url), new URL('../../../examples/chat/public', import.meta.url)];
  for (const candidate of candidates) {
    const path = fileURLToPath(candidate);
    if (existsSync(`${path}/index.html`)) return path;
  }
  throw new Error(`chat: cannot find the page folder (tried ${candidates.map((c) => fileURLToPath(c)).join(', ')}); pass publicDir`);
}

// ------------------------------------------------------------------------------------------------ the CLI

/** The command line was wrong: the message says what to change (printed as one line, exit status 2). */
export class ChatUsageError extends Error {
  override readonly name = 'ChatUsageError';
  readonly code = 'CHAT_USAGE';
}

/** How the chat is served, as the command line asked. */
export interface ChatCommand {
  port: number;
  host: string;
  /** `none`: http and ws; `self-signed`: a certificate made for the run; files: the user's own certificate. */
  tls: 'none' | 'self-signed' | { certFile: string; keyFile: string };
}

/** The usual ports: 8080 for http, 8443 for https (both unprivileged). */
const DEFAULT_PORT = 8080;
const DEFAULT_TLS_PORT = 8443;

/**
 * Reads `--port`, `--host`, `--tls`, `--cert FILE`, `--key FILE` (PORT, or npm's npm_config_port, and HOST from `env` when the flags are
 * absent). `--cert` and `--key` come together and imply `--tls`.
 * @throws ChatUsageError on an unknown flag, a bad port, or `--cert` without `--key` (or the reverse).
 */
export function parseChatCommand(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChatCommand {
  let values: { port?: string | undefined; host?: string | undefined; tls?: boolean | undefined; cert?: string | undefined; key?: string | undefined };
  let positionals: string[];
  const usage = '(flags: --port N --host H --tls --cert FILE --key FILE)';
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: { port: { type: 'string' }, host: { type: 'string' }, tls: { type: 'boolean' }, cert: { type: 'string' }, key: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    throw new ChatUsageError(`chat: ${(error as Error).message} ${usage}`, { cause: error });
  }
  // `npm start --port 9001` (without the `--`): npm keeps `--port` for itself (npm_config_port=true) and passes
  // 9001 on as an argument. That one case is read as the port; any other argument is a mistake.
  let npmPort: string | undefined = env['npm_config_port'];
  if (positionals.length === 1 && npmPort === 'true' && /^\d+$/.test(positionals[0]!)) npmPort = positionals[0];
  else if (positionals.length > 0) throw new ChatUsageError(`chat: unexpected argument ${JSON.stringify(positionals[0])} ${usage}`);
  if (npmPort === 'true') npmPort = undefined;
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new ChatUsageError(`chat: ${values.cert === undefined ? '--key' : '--cert'} needs ${values.cert === undefined ? '--cert' : '--key'} too (a certificate and its private key, PEM files)`);
  }
  const tls: ChatCommand['tls'] =
    values.cert !== undefined && values.key !== undefined
      ? { certFile: values.cert, keyFile: values.key }
      : values.tls === true
        ? 'self-signed'
        : 'none';
  // `npm start --port=9001`: npm passes it on as npm_config_port.
  const rawPort = values.port ?? env['PORT'] ?? npmPort;
  const port = rawPort === undefined || rawPort === '' ? (tls === 'none' ? DEFAULT_PORT : DEFAULT_TLS_PORT) : Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ChatUsageError(`chat: bad port ${JSON.stringify(rawPort)} (0 to 65535; 0 picks a free one)`);
  return { port, host: values.host ?? env['HOST'] ?? '127.0.0.1', tls };
}

/** The certificate to serve and what to say about it. */
export interface ChatCertificate {
  tls: ChatTlsOptions;
  /** One line for the console: whose certificate, its names and its SHA-256 fingerprint. */
  description: string;
  /** For a self-signed certificate: what the browser will say, and what to do. */
  warning?: string;
}

/**
 * The certificate `command` asks for: read from the user's files, or made for the run (self-signed, for
 * localhost, 127.0.0.1 and the `--host` name when it is a specific one). Undefined without TLS. The key and the
 * certificate are checked to belong together here, so that a mismatch is a clear message and not a failure at the
 * first connection.
 * @throws OpensslMissingError when a certificate must be made and the openssl command is missing.
 * @throws ChatUsageError when a file cannot be read or the key does not fit the certificate.
 */
export function chatCertificate(command: ChatCommand): ChatCertificate | undefined {
  if (command.tls === 'none') return undefined;
  let tls: ChatTlsOptions;
  let whose: string;
  let warning: string | undefined;
  if (command.tls === 'self-signed') {
    tls = selfSignedCertificate(certificateHosts(command.host));
    whose = 'self-signed, made for this run';
    warning = 'no CA signed it: the browser warns before it opens the page (accept the risk to go on)';
  } else {
    tls = { cert: readPem('--cert', command.tls.certFile), key: readPem('--key', command.tls.keyFile) };
    whose = `from ${command.tls.certFile}`;
  }
  let names: string;
  let fingerprint: string;
  try {
    createSecureContext({ key: tls.key, cert: tls.cert });
    const x509 = new X509Certificate(tls.cert);
    names = x509.subjectAltName ?? x509.subject;
    fingerprint = x509.fingerprint256;
  } catch (error) {
    throw new ChatUsageError(`chat: the certificate and key cannot be used together: ${(error as Error).message}`, { cause: error });
  }
  const description = `certificate: ${whose}, for ${names}, SHA-256 ${fingerprint}`;
  return warning === undefined ? { tls, description } : { tls, description, warning };
}

/** A bound name worth putting in the certificate: a host name or an IPv4 address, not a wildcard or loopback. */
function certificateHosts(host: string): string[] {
  if (host === '' || host === 'localhost' || host === '0.0.0.0' || host === '127.0.0.1' || isIP(host) === 6) return [];
  return [host];
}

function readPem(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ChatUsageError(`chat: cannot read ${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

/** What to print when `--tls` must make a certificate and cannot: one line, with both ways out. */
export const OPENSSL_MISSING_MESSAGE =
  'chat: --tls makes a certificate with the openssl command, which is not installed: install it (Debian: apt-get install openssl) or pass your own with --cert FILE --key FILE';

async function main(): Promise<void> {
  const command = parseChatCommand(process.argv.slice(2), process.env);
  const certificate = chatCertificate(command);
  const chat = await startChatServer({
    port: command.port,
    host: command.host,
    log: (line) => console.log(line),
    ...(certificate === undefined ? {} : { tls: certificate.tls }),
  });
  console.log(`quay chat: ${chat.url} (open it in two browser tabs; Ctrl-C to stop)`);
  if (certificate !== undefined) console.log(`  ${certificate.description}`);
  if (certificate?.warning !== undefined) console.log(`  ${certificate.warning}`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      console.log('stopping now');
      process.exit(1); // a second Ctrl-C does not wait for the grace period
    }
    stopping = true;
    console.log(`\n${signal}: closing the room (members get 1001)...`);
    chat.stop(5_000).then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** True when this file is the program (`node dist/examples/chat/server.js`), not an import (the browser test). */
function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main().catch((error: unknown) => {
    if (error instanceof OpensslMissingError) console.error(OPENSSL_MISSING_MESSAGE);
    else console.error(error instanceof Error ? error.message : error);
    process.exitCode = error instanceof ChatUsageError ? 2 : 1;
  });
}
