// Connection to a consult room (/ws/consults/<id>/), with reconnection and an outbox.
//
// Chat messages get a client_id and stay in the outbox (kept in localStorage, so a reload does
// not lose them either) until the server's echo carrying that client_id arrives: that echo is the
// acknowledgement. After a reconnect every unacknowledged message is sent again with the same
// client_id; the server stores a client_id once, so nothing is duplicated and nothing is lost.
//
// Events (room.addEventListener(type, e => e.detail)):
//   "state"    {state: "connecting"|"open"|"reconnecting"|"refused"|"signed-out"|"closed", attempt, delay}
//   "frame"    every server frame, as parsed JSON (chat.message, chat.history, presence, ...)
//   "outbox"   {pending: [{client_id, text}]}

const OPEN = 1;

export function backoffDelay(attempt, { base = 500, max = 15000, random = Math.random } = {}) {
  // Exponential with full jitter on the upper half, so a restarted server is not hit all at once.
  const ceiling = Math.min(max, base * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function newClientId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export class RoomClient extends EventTarget {
  constructor({ url, storageKey, WebSocketImpl = globalThis.WebSocket, storage = globalThis.localStorage } = {}) {
    super();
    this.url = url;
    this.storageKey = storageKey;
    this.WebSocketImpl = WebSocketImpl;
    this.storage = storage;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.state = "closed";
    this.outbox = new Map(this.loadOutbox().map((m) => [m.client_id, m]));
  }

  loadOutbox() {
    try {
      const raw = this.storage && this.storageKey ? this.storage.getItem(this.storageKey) : null;
      const list = raw ? JSON.parse(raw) : [];
      return Array.isArray(list) ? list.filter((m) => m && m.client_id && typeof m.text === "string") : [];
    } catch {
      return [];
    }
  }

  saveOutbox() {
    if (!this.storage || !this.storageKey) return;
    try {
      if (this.outbox.size) this.storage.setItem(this.storageKey, JSON.stringify([...this.outbox.values()]));
      else this.storage.removeItem(this.storageKey);
    } catch {
      // Storage full or disabled: the outbox still lives in memory for this page.
    }
    this.emit("outbox", { pending: [...this.outbox.values()] });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit("state", { state, attempt: this.attempt, ...extra });
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.setState(this.attempt ? "reconnecting" : "connecting");
    const socket = new this.WebSocketImpl(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState("open");
      this.flush();
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      // 4401: the credential was revoked or aged out. If the reconnect is then refused, the
      // person was signed out (not removed from the consult): say so.
      const afterRevoked = this.revoked;
      this.revoked = event.code === 4401;
      if (event.code === 4403) {
        this.setState(afterRevoked ? "signed-out" : "refused");
        return;
      }
      if (this.stopped) {
        this.setState("closed");
        return;
      }
      const delay = backoffDelay(this.attempt);
      this.attempt += 1;
      this.setState("reconnecting", { delay });
      this.timer = setTimeout(() => this.connect(), delay);
    };
    socket.onerror = () => {
      // onclose follows and schedules the reconnect.
    };
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
  }

  receive(data) {
    this.revoked = false; // a frame: this connection was let in
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "chat.message" && frame.client_id && this.outbox.has(frame.client_id)) {
      this.outbox.delete(frame.client_id);
      this.saveOutbox();
    }
    this.emit("frame", frame);
  }

  isOpen() {
    return Boolean(this.socket) && this.socket.readyState === OPEN;
  }

  send(frame) {
    if (!this.isOpen()) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  sendChat(text) {
    const message = { client_id: newClientId(), text };
    this.outbox.set(message.client_id, message);
    this.saveOutbox();
    this.send({ type: "chat.message", ...message });
    return message;
  }

  flush() {
    for (const message of this.outbox.values()) this.send({ type: "chat.message", ...message });
  }
}
