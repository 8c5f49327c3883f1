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
 *
 * `join` may carry `client`, a random id the page draws once per load; `members` also says `instance`, the
 * instance the joiner is on; `joined`/`left` also say `instance` (and `joined` a hash of the client id, `owner`).
 *
 * ## Several instances
 *
 * `npm start -- --workers 2` runs the chat on 2 worker processes (lib/cluster's runCluster: supervised, the port
 * shared), each with its own room, linked through the cluster's IPC channel (ClusterBroker). `--redis
 * redis://127.0.0.1:6379` links instances through Redis pub/sub instead (RedisBroker with a node-redis client made
 * from the URL): instances on several machines, behind a load balancer (examples/chat/haproxy.cfg for HAProxy).
 * Both together: N workers per machine, every worker on Redis (it reaches the other workers too). Each instance
 * has a name (`--instance NAME`, default `host:port/pid`), in the `X-Quay-Instance` header of every response, the
 * 101 included, in GET /instance (JSON: name, PID, members, PubSub counters) and in the `members` message.
 *
 * Messages: every member joins the PubSub topic `chat`; `message`, `joined` and `left` are published on it, so
 * they reach the members of this instance at once (one frame encoding for all) and the other instances' members
 * through the broker (one envelope per message, each instance encoding the frame once for its own members).
 *
 * Membership across instances, kept simple and eventually coherent:
 * - Each instance knows its own members and keeps a list of the others' (per instance: names, and when it was
 *   last heard of). It learns them from the others' `joined`/`left` on the `chat` topic and from a presence
 *   message each instance publishes on the `chat.presence` topic (no page is in it) every presence interval
 *   (`--presence-interval`, default 5 s) with its full list; a new instance says `hello` and the others answer
 *   with their lists at once; a stopping instance says `bye`. The room reads the others' messages with each
 *   topic's `onRemote` listener (called before the PubSub delivers them to this instance's members).
 * - An instance not heard of for 3 intervals (killed, cut off) is presumed gone: each other instance removes its
 *   members and tells its own pages they left. Names that appear or vanish in a presence list without their
 *   `joined`/`left` having come (lost while Redis was down) are told the same way.
 * - Name uniqueness is checked against every instance's names as this instance knows them: a name taken
 *   elsewhere gets a number, `alice (2)`. Two joins of one name at the same moment on two instances both succeed
 *   (the lists cross in flight); nothing reconciles them but the members leaving.
 * - A page whose instance died reconnects (through the load balancer) to another one before the others have
 *   presumed the old one gone: its join carries the same `client` id as before, so the name held "elsewhere" by
 *   the same page is taken back (not numbered), and an instance that still holds that page's old connection ends
 *   it quietly when it sees the new `joined`.
 */
import cluster from 'node:cluster';
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { OpensslMissingError, selfSignedCertificate } from '../certificates.js';
import {
  ErrorReporter,
  PubSub,
  Router,
  Server,
  StaticHandler,
  WebSocketUpgradeHandler,
  ClusterBroker,
  RedisBroker,
  broadcast,
  runCluster,
  type Broker,
  type Request,
  type Response,
  type ServerErrorContext,
  type Topic,
  type WebSocketListener,
  type WebSocketSession,
} from '../../lib/index.js';

// ------------------------------------------------------------------------------------------------ protocol

/** What a client sends. */
export type ClientMessage = { type: 'join'; name: string; client?: string } | { type: 'message'; text: string };

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
  | { type: 'members'; you: string; names: string[]; maxTextLength: number; instance: string }
  | { type: 'joined'; name: string; time: number; instance?: string; owner?: string }
  | { type: 'left'; name: string; time: number; instance?: string }
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

/** The topic of the room's messages (every instance's members are in it) and the one of the instances' presence. */
export const ROOM_TOPIC = 'chat';
export const PRESENCE_TOPIC = 'chat.presence';

/** How often an instance announces its members to the others (and forgets the silent ones). Default 5 s. */
export const DEFAULT_PRESENCE_INTERVAL_MS = 5_000;

/** Options of a {@link ChatRoom}. */
export interface ChatRoomOptions {
  /** Members at most, in every instance together; a join past it is refused ('room-full'). Default 1000. */
  maxMembers?: number;
  /** Told of joins and leaves (the CLI prints them). */
  log?: (line: string) => void;
  /**
   * The topics' hub. Its broker links this instance to the others (the room reads their notices with its topics'
   * `onRemote`, see {@link ChatRoom.observe}). Default: a PubSub of this process alone.
   */
  pubsub?: PubSub;
  /** This instance's name, told to each joiner (`members.instance`). Default `host/pid`. */
  instance?: string;
  /**
   * How often this instance announces its members on the presence topic ({@link DEFAULT_PRESENCE_INTERVAL_MS}).
   * An instance not heard of for 3 intervals is presumed gone: its members leave the others' lists.
   */
  presenceIntervalMs?: number;
}

/** A member of this instance. */
interface LocalMember {
  name: string;
  /** {@link nameKey} of the name. */
  key: string;
  /** A hash of the page's random id (the join's `client`): the same page rejoining elsewhere keeps its name. */
  owner: string | undefined;
}

/** A member of another instance, as this one knows it. */
interface RemoteMember {
  name: string;
  owner: string | undefined;
}

/** Another instance: its members (by name key) and when it was last heard of. */
interface RemoteInstance {
  members: Map<string, RemoteMember>;
  seen: number;
}

/** How a published chat line begins (JSON.stringify keeps the key order of the object literal in `say`). */
const MESSAGE_PREFIX = Buffer.from('{"type":"message",');

/** Bounds on what other instances announce (they are ours, but a bug there must not grow this one without end). */
const MAX_INSTANCES = 256;

/**
 * The room: who is in it, under which name, and the protocol. One listener object serves every session (the
 * member's name lives in `session.attachment`), so no closure is made per connection or per message.
 *
 * Messages go out through the PubSub topic {@link ROOM_TOPIC}: members of this instance get them at once (one
 * frame encoding for all), the other instances through the broker. Membership across instances: see the file
 * header ("Several instances").
 */
export class ChatRoom implements WebSocketListener {
  /** This instance's name. */
  readonly instance: string;
  readonly pubsub: PubSub;
  /** Joined members of this instance. */
  private readonly members = new Map<WebSocketSession, LocalMember>();
  /** Every open session, joined or not (for `dropAll`). */
  private readonly sessions = new Set<WebSocketSession>();
  /** The other instances and their members. */
  private readonly others = new Map<string, RemoteInstance>();
  private readonly topic: Topic;
  private readonly presence: Topic;
  private readonly maxMembers: number;
  private readonly presenceIntervalMs: number;
  private readonly log: ((line: string) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * Resolves once this room receives the other instances' messages (its broker subscriptions are in place) and
   * has asked them for their members. Rejects only if the PubSub was closed first; safe to ignore.
   */
  readonly ready: Promise<void>;

  constructor(options: ChatRoomOptions = {}) {
    this.maxMembers = options.maxMembers ?? 1000;
    this.log = options.log;
    this.instance = options.instance ?? `${hostname()}/${process.pid}`;
    this.pubsub = options.pubsub ?? new PubSub();
    this.presenceIntervalMs = options.presenceIntervalMs ?? DEFAULT_PRESENCE_INTERVAL_MS;
    this.topic = this.pubsub.topic(ROOM_TOPIC);
    this.presence = this.pubsub.topic(PRESENCE_TOPIC);
    this.topic.onRemote = (payload) => this.observe(ROOM_TOPIC, payload);
    this.presence.onRemote = (payload) => this.observe(PRESENCE_TOPIC, payload);
    if (this.pubsub.broker !== undefined) {
      // One timer per instance (not per member): the periodic announcement and the sweep of silent instances.
      this.timer = setInterval(() => this.tick(), this.presenceIntervalMs);
      this.timer.unref();
    }
    // Ask the others for their members (they answer with their presence), once our subscriptions are in place.
    this.ready = Promise.all([this.topic.ready, this.presence.ready]).then(() => {
      if (this.pubsub.broker === undefined || this.closed) return;
      this.announce('hello');
      this.announce('presence');
    });
    this.ready.catch(() => {});
  }

  /** The names of the members: this instance's in order of joining, then the other instances'. */
  names(): string[] {
    const names: string[] = [];
    const keys = new Set<string>();
    for (const member of this.members.values()) {
      names.push(member.name);
      keys.add(member.key);
    }
    for (const other of this.others.values()) {
      for (const [key, member] of other.members) {
        if (keys.has(key)) continue;
        keys.add(key);
        names.push(member.name);
      }
    }
    return names;
  }

  /** The names of this instance's members. */
  localNames(): string[] {
    return [...this.members.values()].map((m) => m.name);
  }

  /** The other instances this one knows of, with their member counts. */
  instances(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, other] of this.others) out[name] = other.members.size;
    return out;
  }

  /** Open sessions, joined or not. */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /**
   * Ends a member's connection at once, without a close handshake (as a network failure would: the page sees
   * 1006 and reconnects). Returns false when no member of this instance has that name. For tests and moderation.
   */
  drop(name: string): boolean {
    for (const [session, member] of this.members) {
      if (member.name === name) {
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

  /**
   * Stops announcing and tells the others this instance is gone (`bye`: they forget it at once, and tell their
   * pages about any member of it they still had). Call it after the server's stop, whose closes send each member's
   * `left` first.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.pubsub.broker !== undefined) this.announce('bye');
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
    if (type === 'join') return this.join(session, (message as { name?: unknown }).name, (message as { client?: unknown }).client);
    if (type === 'message') return this.say(session, (message as { text?: unknown }).text);
    this.refuse(session, 'bad-message', `Unknown message type ${JSON.stringify(String(type)).slice(0, 40)}.`);
  }

  onBinary(session: WebSocketSession): void {
    this.refuse(session, 'bad-message', 'This chat speaks text (JSON) messages only.');
  }

  onClose(session: WebSocketSession): void {
    this.sessions.delete(session);
    const member = this.members.get(session);
    if (member === undefined) return;
    this.members.delete(session);
    this.log?.(`- ${member.name} left (${this.members.size} here)`);
    this.publish({ type: 'left', name: member.name, time: Date.now(), instance: this.instance });
  }

  private join(session: WebSocketSession, raw: unknown, client: unknown): void {
    if (this.members.has(session)) return this.refuse(session, 'already-joined', 'You are already in the room.');
    if (this.memberCount() >= this.maxMembers) return this.refuse(session, 'room-full', 'The room is full; try again later.');
    const wanted = sanitizeName(raw);
    if (wanted === undefined) return this.refuse(session, 'name-invalid', 'Please choose a name (letters, digits, emoji...).');
    const owner = ownerOf(client);
    const name = this.uniqueName(wanted, owner);
    if (name === undefined) return this.refuse(session, 'name-taken', `The name "${wanted}" is taken.`);
    const key = nameKey(name);
    this.takeOver(key, owner);
    this.members.set(session, { name, key, owner });
    this.topic.join(session);
    session.attachment = name;
    this.log?.(`+ ${name} joined from ${session.remoteAddress} (${this.members.size} here)`);
    // The joiner learns its (possibly numbered) name, who is here and where it is before anyone's notice, its own
    // included.
    this.sendTo(session, { type: 'members', you: name, names: this.names(), maxTextLength: MAX_TEXT_LENGTH, instance: this.instance });
    this.publish({ type: 'joined', name, time: Date.now(), instance: this.instance, ...(owner === undefined ? {} : { owner }) });
  }

  private say(session: WebSocketSession, raw: unknown): void {
    const member = this.members.get(session);
    if (member === undefined) return this.refuse(session, 'not-joined', 'Join the room before sending messages.');
    if (typeof raw !== 'string') return this.refuse(session, 'bad-message', 'A message needs a text.');
    const text = sanitizeText(raw);
    if (text === '') return this.refuse(session, 'empty', 'An empty message was not sent.');
    const length = codePointLength(text, MAX_TEXT_LENGTH);
    if (length > MAX_TEXT_LENGTH) {
      return this.refuse(session, 'too-long', `Message not sent: it is over ${MAX_TEXT_LENGTH} characters (${[...text].length}).`);
    }
    this.publish({ type: 'message', name: member.name, text, time: Date.now() });
  }

  private memberCount(): number {
    let count = this.members.size;
    for (const other of this.others.values()) count += other.members.size;
    return count;
  }

  /**
   * Who holds a name key: 'free', 'mine' (held by the same page, `owner`), or 'taken'. The same page may hold it
   * here (a connection this instance has not seen die yet) or on another instance (the page came back through the
   * load balancer to this one while its old instance is gone or has not noticed).
   */
  private holder(key: string, owner: string | undefined): 'free' | 'mine' | 'taken' {
    let mine = false;
    for (const member of this.members.values()) {
      if (member.key !== key) continue;
      if (owner === undefined || member.owner !== owner) return 'taken';
      mine = true;
    }
    for (const other of this.others.values()) {
      const member = other.members.get(key);
      if (member === undefined) continue;
      if (owner === undefined || member.owner !== owner) return 'taken';
      mine = true;
    }
    return mine ? 'mine' : 'free';
  }

  /** `wanted`, or `wanted (2)`, `wanted (3)`... (shortened to fit) for the first free one; bounded tries. */
  private uniqueName(wanted: string, owner: string | undefined): string | undefined {
    if (this.holder(nameKey(wanted), owner) !== 'taken') return wanted;
    for (let n = 2; n < 100; n++) {
      const suffix = ` (${n})`;
      const candidate = truncate(wanted, MAX_NAME_LENGTH - suffix.length).trimEnd() + suffix;
      if (this.holder(nameKey(candidate), owner) !== 'taken') return candidate;
    }
    return undefined;
  }

  /**
   * The same page takes its name back: a stale local membership is ended quietly (no `left`: the name stays in the
   * room) and other instances' entries are forgotten (they do the same when they see this `joined`).
   */
  private takeOver(key: string, owner: string | undefined): void {
    if (owner === undefined) return;
    for (const [session, member] of this.members) {
      if (member.key === key && member.owner === owner) {
        this.members.delete(session);
        session.terminate();
      }
    }
    for (const other of this.others.values()) {
      if (other.members.get(key)?.owner === owner) other.members.delete(key);
    }
  }

  // -------------------------------------------------------------------------------------- other instances

  /**
   * A message another instance published (a topic's `onRemote` shows it to the room before the PubSub delivers
   * it to the members): keeps the list of the others' members. `joined` and `left` come on the room's topic (the
   * pages get them too); `hello`, `presence` and `bye` on the presence topic (no page is in it).
   */
  observe(topic: string, payload: Buffer): void {
    if (this.closed || (topic !== ROOM_TOPIC && topic !== PRESENCE_TOPIC)) return;
    // Chat lines are most of the traffic and say nothing about membership: not parsed (the room writes the type
    // first, see publish).
    if (MESSAGE_PREFIX.compare(payload, 0, MESSAGE_PREFIX.length) === 0) return;
    let message: PeerMessage;
    try {
      message = JSON.parse(payload.toString('utf8')) as PeerMessage;
    } catch {
      return;
    }
    if (message === null || typeof message !== 'object' || typeof message.instance !== 'string' || message.instance === this.instance) return;
    const from = message.instance;
    switch (message.type) {
      case 'joined': {
        const name = sanitizeName(message.name);
        if (name === undefined) return;
        const key = nameKey(name);
        const owner = typeof message.owner === 'string' ? message.owner : undefined;
        // The name moved there: forget it elsewhere; a stale connection of the same page here is ended quietly.
        this.takeOver(key, owner);
        for (const [instance, other] of this.others) if (instance !== from) other.members.delete(key);
        this.instanceOf(from)?.members.set(key, { name, owner });
        return;
      }
      case 'left': {
        const name = sanitizeName(message.name);
        if (name !== undefined) this.others.get(from)?.members.delete(nameKey(name));
        return;
      }
      case 'hello':
        this.instanceOf(from);
        this.announce('presence');
        return;
      case 'presence':
        if (Array.isArray(message.members)) this.replace(from, message.members);
        return;
      case 'bye': {
        const gone = this.others.get(from);
        this.others.delete(from);
        if (gone !== undefined) this.vanished(gone.members);
        return;
      }
      default:
        return; // a newer instance: ignore what this one does not know
    }
  }

  /** The entry of another instance (made when first heard of), marked as heard of now; undefined past the bound. */
  private instanceOf(name: string): RemoteInstance | undefined {
    let other = this.others.get(name);
    if (other === undefined) {
      if (this.others.size >= MAX_INSTANCES) return undefined;
      other = { members: new Map(), seen: Date.now() };
      this.others.set(name, other);
    }
    other.seen = Date.now();
    return other;
  }

  /**
   * An instance's full list: replaces what this one knew. Names that appear or vanish without their
   * `joined`/`left` having come (lost while the broker was down) are told to this instance's members.
   */
  private replace(from: string, list: readonly unknown[]): void {
    const other = this.instanceOf(from);
    if (other === undefined) return;
    const previous = other.members;
    const next = new Map<string, RemoteMember>();
    for (const entry of list.slice(0, this.maxMembers)) {
      const { name: raw, owner } = (entry ?? {}) as { name?: unknown; owner?: unknown };
      const name = sanitizeName(raw);
      if (name !== undefined) next.set(nameKey(name), { name, owner: typeof owner === 'string' ? owner : undefined });
    }
    other.members = next;
    const now = Date.now();
    for (const [key, member] of next) {
      if (!previous.has(key) && !this.heldOutside(key, from)) this.notify({ type: 'joined', name: member.name, time: now });
    }
    const gone = new Map([...previous].filter(([key]) => !next.has(key)));
    this.vanished(gone);
  }

  /** Members of another instance that are gone: a `left` for each name nobody else holds. */
  private vanished(gone: ReadonlyMap<string, RemoteMember>): void {
    const now = Date.now();
    for (const [key, member] of gone) {
      if (!this.heldOutside(key, undefined)) this.notify({ type: 'left', name: member.name, time: now });
    }
  }

  /** True when a member here, or of an instance other than `except`, has that name key. */
  private heldOutside(key: string, except: string | undefined): boolean {
    for (const member of this.members.values()) if (member.key === key) return true;
    for (const [instance, other] of this.others) if (instance !== except && other.members.has(key)) return true;
    return false;
  }

  /** Every interval: this instance's list to the others, and the others not heard of for 3 intervals are gone. */
  private tick(): void {
    this.announce('presence');
    const limit = Date.now() - 3 * this.presenceIntervalMs;
    for (const [instance, other] of this.others) {
      if (other.seen >= limit) continue;
      this.others.delete(instance);
      this.log?.(`instance ${instance} is silent: its ${other.members.size} member(s) left`);
      this.vanished(other.members);
    }
  }

  private announce(type: 'hello' | 'presence' | 'bye'): void {
    const message: PeerMessage =
      type === 'presence'
        ? { type, instance: this.instance, members: [...this.members.values()].map(({ name, owner }) => (owner === undefined ? { name } : { name, owner })) }
        : { type, instance: this.instance };
    // Safe to ignore: while the broker is down the next announcement repairs what this one would have said.
    void this.presence.publish(JSON.stringify(message)).catch(() => {});
  }

  // -------------------------------------------------------------------------------------- sending

  /** To every member of every instance: one encoding here, one envelope to the others (PubSub). */
  private publish(message: ServerMessage): void {
    // A remote failure (the broker down) is counted by the PubSub; this instance's members got it all the same.
    void this.topic.publish(JSON.stringify(message)).catch(() => {});
  }

  /** To this instance's members only (what each instance concludes by itself about the others). */
  private notify(message: ServerMessage): void {
    broadcast(this.topic.members, JSON.stringify(message));
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

/** What instances tell each other (on the presence topic; `joined`/`left` on the room's topic). */
type PeerMessage = {
  type: string;
  instance: string;
  name?: unknown;
  owner?: unknown;
  members?: unknown;
};

/**
 * The page's random id (the join's `client`, at most 64 characters) as a short hash: what `joined` carries so
 * that other instances recognize the same page, without showing the id itself to everyone.
 */
function ownerOf(client: unknown): string | undefined {
  if (typeof client !== 'string' || client === '' || client.length > 64) return undefined;
  return createHash('sha256').update(client).digest('base64url').slice(0, 16);
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
  /**
   * The idle sweep's period (ServerOptions.idleTickMs): pings go out between `pingIntervalMs` and
   * `pingIntervalMs + idleTickMs` after the last traffic. Default 1000.
   */
  idleTickMs?: number;
  /** Members at most. Default 1000. */
  maxMembers?: number;
  /** Told of joins, leaves and server errors. Default: silent but for handler errors (console.error, rate-limited). */
  log?: (line: string) => void;
  /**
   * Serve the page over https and the chat over wss, on the same port (the page picks wss: when it was loaded
   * over https:). Default: plain http and ws.
   */
  tls?: ChatTlsOptions;
  /**
   * What links this instance's room to the other instances (other workers, other machines): a `ClusterBroker` or
   * a `RedisBroker`, given to the room's PubSub. Default: none (this process only).
   */
  broker?: Broker;
  /**
   * This instance's name: in the `X-Quay-Instance` header of every response, in GET /instance and in the
   * `members` message. Default `host:port/pid`.
   */
  instance?: string;
  /** See {@link ChatRoomOptions.presenceIntervalMs}. */
  presenceIntervalMs?: number;
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
  /** This instance's name (see {@link ChatServerOptions.instance}). */
  instance: string;
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
  // The room is made once the port is known (it is in the instance's default name); nothing is accepted before.
  let room: ChatRoom | undefined;
  let instance = options.instance ?? '';
  /** The 101's extra header (set once the name is known). */
  let identity: Readonly<Record<string, string>> = {};

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
      room === undefined
        ? { status: 503, reason: 'starting' }
        : offered.includes(CHAT_PROTOCOL)
          ? { listener: room, protocol: CHAT_PROTOCOL, headers: identity }
          : { status: 400, reason: `this endpoint speaks the "${CHAT_PROTOCOL}" subprotocol (Sec-WebSocket-Protocol)` },
  });
  const files = new StaticHandler({ root: publicDir });
  const page = (request: Request, response: Response): Promise<boolean> => {
    for (const name in PAGE_HEADERS) response.setHeader(name, PAGE_HEADERS[name]!);
    return files.handle(request, response);
  };
  // Which instance answered (behind a load balancer): on every response, the 101 included (see `identity`).
  const identify = (_request: Request, response: Response): boolean => {
    response.setHeader('X-Quay-Instance', instance);
    return false; // declined: the next route answers
  };
  // GET /instance: who this is and what it knows (HAProxy's health check, and the tests, ask it).
  const about = (_request: Request, response: Response): Promise<boolean> => {
    if (room === undefined) return response.send(503, 'starting\n').then(() => true);
    response.setHeader('Content-Type', 'application/json');
    response.setHeader('Cache-Control', 'no-store');
    const body = {
      instance,
      pid: process.pid,
      members: room.localNames(),
      names: room.names(),
      instances: room.instances(),
      pubsub: room.pubsub.stats(),
    };
    return response.send(200, `${JSON.stringify(body)}\n`).then(() => true);
  };

  // Same path, two handlers: the upgrade handler declines a plain GET (returns false) and the router passes it on
  // to the page, as Jetty's demo servlet answered both on one URL.
  const router = new Router().route('/', identify).route('/instance', about, { methods: ['GET', 'HEAD'] }).route('/', chat).route('/', page);
  const reporter = new ErrorReporter(); // in proportion: one line per kind of error per second, with a count
  const server = new Server({
    port: options.port ?? 8080,
    host: options.host ?? '127.0.0.1',
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    idleTimeoutMs: 30_000,
    ...(options.idleTickMs === undefined ? {} : { idleTickMs: options.idleTickMs }),
    onError: (error: Error, context: ServerErrorContext) => {
      // Refused upgrades (a foreign origin, no `chat` subprotocol) and dropped peers are routine: told only to `log`.
      if (log !== undefined) log(`! ${context.kind}: ${error.message}`);
      else if (context.kind === 'handler') reporter.report('handler error', error, 'chat: handler error:', error);
    },
  }, router);
  const address = await server.start();
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = options.tls === undefined ? 'http' : 'https';
  if (instance === '') instance = `${hostname()}:${address.port}/${process.pid}`;
  identity = { 'X-Quay-Instance': instance };
  const pubsub = new PubSub(options.broker === undefined ? {} : { broker: options.broker });
  const made = new ChatRoom({
    instance,
    pubsub,
    ...(options.maxMembers === undefined ? {} : { maxMembers: options.maxMembers }),
    ...(options.presenceIntervalMs === undefined ? {} : { presenceIntervalMs: options.presenceIntervalMs }),
    ...(log === undefined ? {} : { log }),
  });
  // Serve once the room hears the other instances (bounded: with the broker down at start, serve this instance
  // alone and let the subscriptions come when it is back).
  const subscribed = await Promise.race([made.ready.then(() => true, () => false), new Promise<boolean>((resolve) => setTimeout(resolve, 5_000, false).unref())]);
  if (!subscribed) log?.('! the broker is not ready after 5 s: serving this instance alone until it is');
  room = made;
  const stop = async (graceMs = 5_000): Promise<void> => {
    await server.stop(graceMs); // each member's `left` goes out as its session closes (1001)...
    made.close(); // ...then `bye` (in order after them): the others forget this instance at once
    await pubsub.close();
  };
  return { server, room: made, instance, url: `${scheme}://${host}:${address.port}/`, stop };
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
  /** `--workers N`: the chat on N worker processes (node:cluster), their rooms linked through the IPC broker. */
  workers?: number;
  /** `--redis URL`: the rooms of every instance linked through Redis pub/sub (node-redis, a dev dependency). */
  redis?: string;
  /** `--instance NAME`: this instance's name (default `host:port/pid`; with --workers, `NAME/pid` per worker). */
  instance?: string;
  /** `--presence-interval MS`: see {@link ChatRoomOptions.presenceIntervalMs}. */
  presenceIntervalMs?: number;
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
  let values: {
    port?: string | undefined;
    host?: string | undefined;
    tls?: boolean | undefined;
    cert?: string | undefined;
    key?: string | undefined;
    workers?: string | undefined;
    redis?: string | undefined;
    instance?: string | undefined;
    'presence-interval'?: string | undefined;
  };
  let positionals: string[];
  const usage = '(flags: --port N --host H --tls --cert FILE --key FILE --workers N --redis URL --instance NAME --presence-interval MS)';
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        tls: { type: 'boolean' },
        cert: { type: 'string' },
        key: { type: 'string' },
        workers: { type: 'string' },
        redis: { type: 'string' },
        instance: { type: 'string' },
        'presence-interval': { type: 'string' },
      },
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
  const command: ChatCommand = { port, host: values.host ?? env['HOST'] ?? '127.0.0.1', tls };
  if (values.workers !== undefined) {
    const workers = Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new ChatUsageError(`chat: bad --workers ${JSON.stringify(values.workers)} (1 to 64)`);
    command.workers = workers;
  }
  if (values.redis !== undefined) {
    let url: URL;
    try {
      url = new URL(values.redis);
    } catch {
      throw new ChatUsageError(`chat: bad --redis ${JSON.stringify(values.redis)} (a URL: redis://host:port)`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new ChatUsageError(`chat: bad --redis ${JSON.stringify(values.redis)} (redis:// or rediss://)`);
    command.redis = values.redis;
  }
  if (values.instance !== undefined) {
    // It goes into a response header: printable ASCII without spaces (RFC 9110 §5.5), and short.
    if (!/^[\x21-\x7e]{1,100}$/.test(values.instance)) throw new ChatUsageError(`chat: bad --instance ${JSON.stringify(values.instance)} (1 to 100 printable ASCII characters, no spaces)`);
    command.instance = values.instance;
  }
  if (values['presence-interval'] !== undefined) {
    const ms = Number(values['presence-interval']);
    if (!Number.isInteger(ms) || ms < 50 || ms > 600_000) throw new ChatUsageError(`chat: bad --presence-interval ${JSON.stringify(values['presence-interval'])} (50 to 600000 ms)`);
    command.presenceIntervalMs = ms;
  }
  return command;
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

/** What `--redis` could not do: the message says what to change (one line, exit status 1). */
export class ChatRedisError extends Error {
  override readonly name = 'ChatRedisError';
  readonly code = 'CHAT_REDIS';
}

/** How long `--redis` waits for Redis at start before giving up with a clear message. */
const REDIS_CONNECT_TIMEOUT_MS = 5_000;

/**
 * A RedisBroker on node-redis clients made from `url`: a publisher and its duplicate for the subscriptions. The
 * `redis` package is a dev dependency of quay (quay itself depends on nothing): it is imported only here, when
 * --redis is given. While Redis is down the clients reconnect (every 0.1 s to 2 s) and the room goes on in this
 * instance; the broker fails remote publishes fast and re-subscribes when Redis is back.
 * @throws ChatRedisError when the package is not installed or Redis does not answer within 5 s.
 */
export async function redisBroker(url: string, log: (line: string) => void): Promise<{ broker: Broker; close(): Promise<void> }> {
  let redis: typeof import('redis');
  try {
    redis = await import('redis');
  } catch (error) {
    throw new ChatRedisError(`chat: --redis needs the node-redis package, which is not installed (npm install redis; it is a dev dependency of quay): ${(error as Error).message}`, { cause: error });
  }
  const publisher = redis.createClient({
    url,
    // No offline queue: a command while Redis is down fails at once rather than piling up (the broker counts it).
    disableOfflineQueue: true,
    socket: { connectTimeout: REDIS_CONNECT_TIMEOUT_MS, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2_000) },
  });
  let lastError = '';
  const onError = (error: Error): void => {
    if (error.message !== lastError) log(`! redis: ${error.message}`); // once per kind, not once per retry
    lastError = error.message;
  };
  publisher.on('error', onError);
  const connected = publisher.connect().then(() => true, () => false);
  const timer = new Promise<boolean>((resolve) => setTimeout(resolve, REDIS_CONNECT_TIMEOUT_MS, false).unref());
  if (!(await Promise.race([connected, timer]))) {
    publisher.destroy();
    throw new ChatRedisError(`chat: no answer from Redis at ${url} within ${REDIS_CONNECT_TIMEOUT_MS / 1000} s (${lastError || 'no error'}): is redis-server running?`);
  }
  lastError = '';
  const broker = new RedisBroker({ publisher, subscriber: publisher.duplicate(), onError });
  return {
    broker,
    close: async () => {
      // The broker closes the subscriber (PubSub.close); the publisher is ours. Its last PUBLISHes (the members'
      // `left`, the instance's `bye`) are sent first; bounded, for a Redis that is down.
      const closed = publisher.close().then(() => true, () => false);
      const late = new Promise<boolean>((resolve) => setTimeout(resolve, 2_000, false).unref());
      if (!(await Promise.race([closed, late]))) publisher.destroy();
    },
  };
}

/** The certificate made by the primary, handed to the workers (every worker serves the same one). */
const TLS_ENV_CERT = 'QUAY_CHAT_TLS_CERT';
const TLS_ENV_KEY = 'QUAY_CHAT_TLS_KEY';

/** Starts one instance (the whole chat, or one worker's): its broker, its room, its server. */
async function startInstance(command: ChatCommand, tls: ChatTlsOptions | undefined, inWorker: boolean): Promise<ChatServer & { closeBroker(): Promise<void> }> {
  const log = (line: string): void => console.log(inWorker ? `[${process.pid}] ${line}` : line);
  let broker: Broker | undefined;
  let closeBroker = async (): Promise<void> => {};
  if (command.redis !== undefined) {
    // With --workers too, every worker talks to Redis: it reaches the other workers and the other machines alike.
    ({ broker, close: closeBroker } = await redisBroker(command.redis, log));
  } else if (inWorker) {
    broker = new ClusterBroker();
  }
  const instance = command.instance === undefined ? undefined : inWorker ? `${command.instance}/${process.pid}` : command.instance;
  try {
    const chat = await startChatServer({
      port: command.port,
      host: command.host,
      log,
      ...(tls === undefined ? {} : { tls }),
      ...(broker === undefined ? {} : { broker }),
      ...(instance === undefined ? {} : { instance }),
      ...(command.presenceIntervalMs === undefined ? {} : { presenceIntervalMs: command.presenceIntervalMs }),
    });
    return { ...chat, closeBroker };
  } catch (error) {
    await closeBroker();
    throw error;
  }
}

async function main(): Promise<void> {
  const command = parseChatCommand(process.argv.slice(2), process.env);
  if (command.workers !== undefined) return mainCluster(command, command.workers);
  const certificate = chatCertificate(command);
  const chat = await startInstance(command, certificate?.tls, false);
  const via = command.redis === undefined ? '' : `, linked through Redis at ${command.redis}`;
  console.log(`quay chat: ${chat.url} (open it in two browser tabs; Ctrl-C to stop)`);
  console.log(`  instance ${chat.instance}${via}`);
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
    chat.stop(5_000).then(chat.closeBroker).then(
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

/**
 * `--workers N`: this same file runs in the primary (which supervises: a worker that dies is replaced, Ctrl-C
 * stops them all with 1001 to their members, SIGHUP restarts them one at a time) and in each worker (one chat
 * instance each, on the shared port). The primary makes the certificate, if any, so that every worker serves the
 * same one.
 */
async function mainCluster(command: ChatCommand, workers: number): Promise<void> {
  const inWorker = cluster.isWorker;
  let certificate: ChatCertificate | undefined;
  let tls: ChatTlsOptions | undefined;
  if (!inWorker) {
    certificate = chatCertificate(command);
    tls = certificate?.tls;
  } else if (process.env[TLS_ENV_CERT] !== undefined && process.env[TLS_ENV_KEY] !== undefined) {
    tls = { cert: process.env[TLS_ENV_CERT], key: process.env[TLS_ENV_KEY] };
  }
  const role = await runCluster(
    async () => {
      const chat = await startInstance(command, tls, true);
      console.log(`quay chat worker ${process.pid}: ${chat.url} instance ${chat.instance}`);
      return {
        stop: (graceMs?: number) => chat.stop(graceMs).then(chat.closeBroker),
        stats: () => ({ members: chat.room.localNames().length, connections: chat.room.connectionCount }),
      };
    },
    {
      workers,
      stopGraceMs: 5_000,
      ...(tls === undefined ? {} : { env: { [TLS_ENV_CERT]: String(tls.cert), [TLS_ENV_KEY]: String(tls.key) } }),
    },
  );
  if (role.primary !== undefined) {
    // The workers printed their URL (with --port 0 only they know the port: they share the one the first got).
    const via = command.redis === undefined ? 'the cluster\'s IPC channel' : `Redis at ${command.redis}`;
    console.log(`quay chat: ${workers} workers ready, linked through ${via} (Ctrl-C to stop)`);
    if (certificate !== undefined) console.log(`  ${certificate.description}`);
    if (certificate?.warning !== undefined) console.log(`  ${certificate.warning}`);
  }
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
