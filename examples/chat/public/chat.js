// The chat page: a plain ES module, no build step. Everything a member typed reaches the page as data and is
// inserted with textContent, never as HTML: `<script>` in a message shows as text.
//
// The connection is a small state machine, shown at the top of the page:
//   connecting -> connected -> (the socket drops) -> reconnecting (in N s, exponential backoff) -> connecting ...
//   reconnecting -> disconnected after MAX_ATTEMPTS failures in a row (a button tries again).
// After a drop the page rejoins with the name it had, and says so in the conversation.

/** @typedef {'connecting' | 'connected' | 'reconnecting' | 'disconnected'} ConnectionState */

const PROTOCOL = 'chat';
/** Backoff: 1 s, 2 s, 4 s ... up to 30 s, each with +-20 % jitter so that a restarted server is not stampeded. */
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
const MAX_ATTEMPTS = 12;
/** The server closes a connection over 64 KiB (1009); stay well under it and say why locally. */
const MAX_WIRE_CHARS = 60_000;
/** Messages kept on the page; older ones are removed so that a long session stays light. */
const MAX_ITEMS = 500;
const NAME_KEY = 'quay-chat-name';
/**
 * This page's random id, sent with every join (also after a reconnect): behind a load balancer the page may come
 * back on another instance before the old one noticed it was gone, and the id tells the room it is the same page
 * taking its name back, not somebody else wanting it. In memory only: another tab is another member.
 */
const CLIENT_ID = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
// (not crypto.randomUUID(): it exists only in secure contexts, and the demo may be served over plain http)

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const statusEl = $('status');
const joinForm = /** @type {HTMLFormElement} */ ($('join-form'));
const nameInput = /** @type {HTMLInputElement} */ ($('name'));
const joinButton = /** @type {HTMLButtonElement} */ ($('join'));
const joinError = $('join-error');
const chatSection = $('chat');
const messagesEl = $('messages');
const memberList = $('member-list');
const memberCount = $('member-count');
const instanceEl = $('instance');
const sendForm = /** @type {HTMLFormElement} */ ($('send-form'));
const textInput = /** @type {HTMLInputElement} */ ($('text'));

/** The WebSocket endpoint is the page's own path ('/'), upgraded. */
const endpoint = (() => {
  const url = new URL('./', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  url.search = '';
  return url.href;
})();

/** @type {WebSocket | null} */
let socket = null;
/** @type {ConnectionState} */
let state = 'connecting';
/** The name asked for (kept across reconnects); null until the member joins. */
let wantedName = null;
/** The name the server gave (it may be numbered: "alice (2)"). */
let myName = null;
let joined = false;
/** Failed connection attempts in a row. */
let attempt = 0;
/** True from a drop until the member is back in the room: the rejoin is announced. */
let recovering = false;
/** After "Reconnected", the server's notice of our own rejoin says nothing new: skip it once. */
let quietRejoin = false;
let retryTimer = 0;
let countdownTimer = 0;
/** The last text sent, restored into the input if the server refuses it as too long. */
let lastSent = '';
let leaving = false;
/** name -> <li> of the member list. */
const members = new Map();

// ------------------------------------------------------------------------------------------ connection

function connect() {
  clearTimers();
  setState('connecting');
  const ws = new WebSocket(endpoint, PROTOCOL);
  socket = ws;
  ws.addEventListener('open', () => {
    if (socket !== ws) return;
    setState('connected');
    if (wantedName !== null) send({ type: 'join', name: wantedName, client: CLIENT_ID });
    else attempt = 0; // nothing to rejoin: the connection itself is the success
  });
  ws.addEventListener('message', (event) => {
    if (socket !== ws || typeof event.data !== 'string') return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    receive(message);
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    socket = null;
    joined = false;
    if (leaving) return;
    dropped(event);
  });
}

/** The connection ended (or never opened): announce it once per outage, then retry with backoff. */
function dropped(event) {
  attempt++;
  if (wantedName !== null && !recovering) {
    recovering = true;
    note(`${closeReason(event)} Reconnecting…`, 'system');
  }
  if (attempt > MAX_ATTEMPTS) {
    setState('disconnected');
    note('Could not reconnect. Use the button at the top to try again.', 'error');
    return;
  }
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
  const due = Date.now() + delay;
  setState('reconnecting', due);
  retryTimer = window.setTimeout(connect, delay);
  countdownTimer = window.setInterval(() => setState('reconnecting', due), 1000);
}

/** Close codes in words (RFC 6455 §7.4.1). */
function closeReason(event) {
  switch (event.code) {
    case 1000: return 'The server closed the connection.';
    case 1001: return 'The server went away (restarting?).';
    case 1006: return 'The connection was lost.';
    case 1008: return 'The server disconnected this page (it fell behind).';
    case 1009: return 'The server refused a message that was too big.';
    default: return `The connection closed (${event.code}${event.reason ? `: ${event.reason}` : ''}).`;
  }
}

function clearTimers() {
  window.clearTimeout(retryTimer);
  window.clearInterval(countdownTimer);
  retryTimer = 0;
  countdownTimer = 0;
}

function send(message) {
  if (socket === null || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

/**
 * @param {ConnectionState} next
 * @param {number} [due] when the next attempt starts (reconnecting)
 */
function setState(next, due) {
  state = next;
  statusEl.dataset.state = next;
  chatSection.dataset.state = next; // the member list fades while it may be stale
  statusEl.textContent = '';
  if (next === 'reconnecting') {
    const seconds = Math.max(1, Math.ceil(((due ?? Date.now()) - Date.now()) / 1000));
    statusEl.append(`reconnecting in ${seconds} s `);
    statusEl.append(button('Retry now', () => connect()));
  } else if (next === 'disconnected') {
    statusEl.append('disconnected ');
    statusEl.append(button('Reconnect', () => {
      attempt = 0;
      connect();
    }));
  } else {
    statusEl.append(next === 'connected' && myName !== null && joined ? `connected as ${myName}` : next === 'connecting' ? 'connecting…' : 'connected');
  }
  joinButton.disabled = next !== 'connected';
}

// ------------------------------------------------------------------------------------------ protocol

function receive(message) {
  switch (message.type) {
    case 'members': {
      joined = true;
      myName = String(message.you);
      attempt = 0;
      memberList.textContent = '';
      members.clear();
      for (const name of message.names) addMember(String(name));
      // Which server instance this page is on (several may run behind a load balancer).
      instanceEl.textContent = typeof message.instance === 'string' ? `on ${message.instance}` : '';
      instanceEl.dataset.instance = typeof message.instance === 'string' ? message.instance : '';
      showChat();
      setState('connected');
      if (recovering) {
        recovering = false;
        quietRejoin = true;
        note(`Reconnected: you are back in the room as ${myName}.`, 'system');
      }
      break;
    }
    case 'joined': {
      const name = String(message.name);
      addMember(name);
      if (name !== myName) note(`${name} joined.`, 'joined', message.time);
      else if (quietRejoin) quietRejoin = false;
      else note(`You joined as ${name}.`, 'joined', message.time);
      break;
    }
    case 'left': {
      const name = String(message.name);
      members.get(name)?.remove();
      members.delete(name);
      updateCount();
      note(`${name} left.`, 'left', message.time);
      break;
    }
    case 'message':
      addMessage(String(message.name), String(message.text), message.time);
      break;
    case 'error':
      refused(String(message.code), String(message.message));
      break;
    default:
      break; // a newer server: ignore what this page does not know
  }
}

function refused(code, text) {
  if (!joined) {
    // A refused join: back to the form, with the reason next to it.
    wantedName = null;
    recovering = false;
    chatSection.hidden = true;
    joinForm.hidden = false;
    joinError.textContent = text;
    joinError.hidden = false;
    nameInput.focus();
    return;
  }
  note(text, 'error');
  if (code === 'too-long' && textInput.value === '') textInput.value = lastSent;
}

// ------------------------------------------------------------------------------------------ rendering

function showChat() {
  joinForm.hidden = true;
  joinError.hidden = true;
  chatSection.hidden = false;
  textInput.focus();
}

function addMember(name) {
  if (members.has(name)) return;
  const li = document.createElement('li');
  li.textContent = name;
  li.dir = 'auto';
  if (name === myName) li.classList.add('me');
  members.set(name, li);
  memberList.append(li);
  updateCount();
}

function updateCount() {
  memberCount.textContent = String(members.size);
}

function addMessage(name, text, time) {
  const li = document.createElement('li');
  li.className = name === myName ? 'message mine' : 'message';
  li.dataset.kind = 'message';
  const who = document.createElement('span');
  who.className = 'name';
  who.dir = 'auto';
  who.textContent = name;
  const body = document.createElement('span');
  body.className = 'text';
  body.dir = 'auto';
  body.textContent = text; // never innerHTML
  li.append(who, stamp(time), body);
  append(li);
}

/** A notice: joined / left (from the server), system (this page), error (a refusal). */
function note(text, kind, time) {
  const li = document.createElement('li');
  li.className = `notice ${kind}`;
  li.dataset.kind = kind;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(body, stamp(time ?? Date.now()));
  append(li);
}

function stamp(time) {
  const el = document.createElement('time');
  const date = new Date(typeof time === 'number' ? time : Date.now());
  el.dateTime = date.toISOString();
  el.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return el;
}

function append(li) {
  const atBottom = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40;
  messagesEl.append(li);
  while (messagesEl.childElementCount > MAX_ITEMS) messagesEl.firstElementChild?.remove();
  if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

// ------------------------------------------------------------------------------------------ forms

joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = nameInput.value.trim();
  if (name === '') return;
  joinError.hidden = true;
  wantedName = name;
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // storage disabled: the name is only remembered for this page
  }
  if (!send({ type: 'join', name, client: CLIENT_ID })) {
    joinError.textContent = 'Not connected yet: you will join as soon as the connection is up.';
    joinError.hidden = false;
  }
});

sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = textInput.value;
  if (text.trim() === '') return;
  if (text.length > MAX_WIRE_CHARS) {
    note(`Message not sent: it is far too long (${text.length} characters).`, 'error');
    return;
  }
  if (!joined || !send({ type: 'message', text })) {
    note('Not connected: your message was not sent (it is still in the box).', 'error');
    return;
  }
  lastSent = text;
  textInput.value = '';
});

window.addEventListener('online', () => {
  if (state === 'reconnecting' || state === 'disconnected') connect();
});
window.addEventListener('pagehide', () => {
  leaving = true;
  socket?.close(1000, 'page closed');
});
window.addEventListener('pageshow', (event) => {
  // Back from the back/forward cache: the socket was closed on the way out.
  if (event.persisted) {
    leaving = false;
    connect();
  }
});

try {
  nameInput.value = localStorage.getItem(NAME_KEY) ?? '';
} catch {
  // storage disabled
}
connect();
