// The consult room on the consult page: chat with unread count, typing, read receipts, presence,
// and shared viewing (lead / follow / detach, laser pointer). Mounted on [data-consult-room]
// (templates/consultations/_room.html); works with the viewer when the page has one
// ([data-viewer], static/js/viewer/main.js), else marks the followed series on the thumbnails.

import { RoomClient } from "./client.js";

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/g;
const TYPING_SHOWN_MS = 3000;
const VIEW_SEND_MS = 100;
const POINTER_SEND_MS = 33;

// Message text as DOM nodes: escaped by construction (text nodes), with http(s) links clickable.
export function linkify(text, doc = document) {
  const fragment = doc.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let url = match[0];
    const trailing = url.match(/[.,;:!?)\]]+$/);
    if (trailing) url = url.slice(0, -trailing[0].length);
    if (match.index > last) fragment.append(doc.createTextNode(text.slice(last, match.index)));
    const link = doc.createElement("a");
    link.href = url;
    link.textContent = url;
    link.rel = "noopener noreferrer nofollow";
    link.target = "_blank";
    fragment.append(link);
    last = match.index + url.length;
  }
  if (last < text.length) fragment.append(doc.createTextNode(text.slice(last)));
  return fragment;
}

function throttle(fn, ms) {
  let lastRun = 0;
  let timer = null;
  let pending = null;
  return (...args) => {
    pending = args;
    const wait = lastRun + ms - Date.now();
    if (wait <= 0) {
      lastRun = Date.now();
      fn(...pending);
      pending = null;
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        lastRun = Date.now();
        if (pending) fn(...pending);
        pending = null;
      }, wait);
    }
  };
}

function completeViewState(state) {
  return (
    state &&
    state.series_uid &&
    state.instance_uid &&
    Number.isFinite(state.window_center) &&
    Number.isFinite(state.window_width) &&
    Number.isFinite(state.zoom) &&
    state.window_width > 0 &&
    state.zoom > 0
  );
}

const STATE_LABELS = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  refused: "You are not part of this consult's room",
  "signed-out": "Signed out: sign in again to go on",
  closed: "Offline",
};

export class ConsultRoom {
  constructor(root) {
    this.root = root;
    this.meId = Number(root.dataset.meId);
    this.consultId = root.dataset.consultId;
    this.messages = new Map();
    this.lastReadByMe = 0;
    this.readMarks = new Map();
    this.typing = new Map();
    this.mode = "follow";
    this.leader = null;
    this.viewer = null;
    this.q = (name) => root.querySelector(`[data-room-${name}]`);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.client = new RoomClient({
      url: `${scheme}//${location.host}${root.dataset.wsPath}`,
      storageKey: `teleconsult:room:${this.consultId}:outbox:${this.meId}`,
    });
    this.sendViewState = throttle((state) => this.client.send({ type: "view.state", ...state }), VIEW_SEND_MS);
    this.sendPointer = throttle((x, y) => this.client.send({ type: "view.pointer", x, y }), POINTER_SEND_MS);
    this.sendTyping = throttle(() => this.client.send({ type: "typing" }), 2000);
    this.bind();
    this.client.connect();
    this.renderPending({ pending: [...this.client.outbox.values()] });
  }

  bind() {
    this.client.addEventListener("state", (e) => this.renderState(e.detail));
    this.client.addEventListener("frame", (e) => this.onFrame(e.detail));
    this.client.addEventListener("outbox", (e) => this.renderPending(e.detail));
    const form = this.q("form");
    const input = this.q("input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      this.client.sendChat(text);
      input.value = "";
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    input.addEventListener("input", () => this.sendTyping());
    this.q("older").addEventListener("click", () => {
      const oldest = Math.min(...this.messages.keys());
      if (Number.isFinite(oldest)) this.client.send({ type: "chat.history_before", before_id: oldest });
    });
    this.q("lead").addEventListener("click", () => this.setMode(this.mode === "lead" ? "detached" : "lead"));
    this.q("follow").addEventListener("click", () => this.setMode(this.mode === "follow" ? "detached" : "follow"));
    this.q("laser").addEventListener("click", () => {
      const on = this.q("laser").getAttribute("aria-pressed") !== "true";
      this.q("laser").setAttribute("aria-pressed", String(on));
    });
    document.addEventListener("visibilitychange", () => this.markRead());
    window.addEventListener("focus", () => this.markRead());
    this.q("messages").addEventListener("scroll", () => this.markRead());
    const viewerRoot = document.querySelector("[data-viewer]");
    if (viewerRoot) {
      if (viewerRoot.viewer) this.attachViewer(viewerRoot.viewer, viewerRoot);
      else viewerRoot.addEventListener("viewer:ready", (e) => this.attachViewer(e.detail.viewer, viewerRoot));
    }
    setInterval(() => this.renderTyping(), 1000);
  }

  attachViewer(viewer, viewerRoot) {
    this.viewer = viewer;
    viewer.on("view:change", (state) => {
      if (this.mode === "follow" && this.leader && this.leader.id !== this.meId) this.setMode("detached");
      if (this.mode === "lead" && completeViewState(state)) this.sendViewState(state);
    });
    viewer.on("annotation:change", () => {
      // Saving (and so broadcasting) annotations is the annotation layer's job; nothing to relay here.
    });
    const viewport = viewerRoot.querySelector("[data-viewport]");
    this.pointerDot = document.createElement("div");
    this.pointerDot.className = "room-pointer";
    this.pointerDot.hidden = true;
    viewport.append(this.pointerDot);
    viewport.addEventListener("pointermove", (event) => {
      if (this.mode !== "lead" || this.q("laser").getAttribute("aria-pressed") !== "true") return;
      const box = viewport.getBoundingClientRect();
      const [x, y] = viewer.toImage([event.clientX - box.left, event.clientY - box.top]);
      this.sendPointer(Math.round(x * 10) / 10, Math.round(y * 10) / 10);
    });
  }

  setMode(mode) {
    this.mode = mode;
    this.q("lead").setAttribute("aria-pressed", String(mode === "lead"));
    this.q("follow").setAttribute("aria-pressed", String(mode === "follow"));
    this.q("laser").hidden = mode !== "lead";
    this.root.dataset.mode = mode;
    if (mode === "lead" && this.viewer) {
      const state = this.viewer.getViewState();
      if (completeViewState(state)) this.client.send({ type: "view.state", ...state });
    }
    if (mode === "follow" && this.lastState) this.follow(this.lastState);
    this.renderLeader();
  }

  onFrame(frame) {
    const handler = this.handlers[frame.type];
    if (handler) handler.call(this, frame);
  }

  handlers = {
    "chat.history"(frame) {
      for (const m of frame.messages) this.messages.set(m.id, m);
      this.q("older").hidden = frame.messages.length < 100;
      this.renderMessages(!frame.before_id);
    },
    "chat.message"(frame) {
      this.messages.set(frame.id, frame);
      // For other parts of the page that follow the chat (static/js/patient-questions.js).
      this.root.dispatchEvent(new CustomEvent("room:message", { bubbles: true, detail: frame }));
      if (this.typing.has(frame.author.id)) this.typing.delete(frame.author.id);
      this.renderMessages(true);
      this.renderTyping();
    },
    "chat.read"(frame) {
      this.readMarks.set(frame.user.id, frame);
      if (frame.user.id === this.meId) this.lastReadByMe = Math.max(this.lastReadByMe, frame.up_to_id);
      this.renderUnread();
      this.renderReceipts();
    },
    typing(frame) {
      this.typing.set(frame.user.id, { user: frame.user, at: Date.now() });
      this.renderTyping();
    },
    presence(frame) {
      this.present = frame.users;
      this.renderPresence();
    },
    "view.state"(frame) {
      this.lastState = frame;
      this.leader = frame.sender;
      if (this.mode === "lead" && frame.sender && frame.sender.id !== this.meId) this.setMode("follow");
      if (this.mode === "follow") this.follow(frame);
      this.renderLeader();
    },
    "view.pointer"(frame) {
      if (this.mode !== "follow" || !this.viewer || !this.pointerDot) return;
      const [sx, sy] = this.viewer.toScreen([frame.x, frame.y]);
      this.pointerDot.style.transform = `translate(${sx}px, ${sy}px)`;
      this.pointerDot.hidden = false;
      clearTimeout(this.pointerTimer);
      this.pointerTimer = setTimeout(() => (this.pointerDot.hidden = true), 2000);
    },
    "annotation.created"(frame) {
      if (this.viewer) this.viewer.upsertAnnotation(frame.annotation);
    },
    "annotation.updated"(frame) {
      if (this.viewer) this.viewer.upsertAnnotation(frame.annotation);
    },
    "annotation.deleted"(frame) {
      if (this.viewer) this.viewer.removeAnnotation(frame.annotation.id);
    },
    error(frame) {
      const box = this.q("error");
      box.textContent = frame.message;
      box.hidden = false;
      clearTimeout(this.errorTimer);
      this.errorTimer = setTimeout(() => (box.hidden = true), 6000);
    },
  };

  follow(state) {
    if (this.viewer) this.viewer.applyViewState(state);
    for (const el of document.querySelectorAll(".room-followed")) el.classList.remove("room-followed");
    for (const el of document.querySelectorAll("[data-series-uid], [data-instance-uid]")) {
      const match =
        (el.dataset.instanceUid && el.dataset.instanceUid === state.instance_uid) ||
        (!el.dataset.instanceUid && el.dataset.seriesUid === state.series_uid);
      if (match && !el.hasAttribute("data-viewer")) el.classList.add("room-followed");
    }
  }

  renderState({ state, delay }) {
    const el = this.q("state");
    el.textContent = state === "reconnecting" && delay ? `Reconnecting in ${Math.ceil(delay / 1000)} s…` : STATE_LABELS[state];
    el.dataset.state = state;
    this.q("input").disabled = state === "refused" || state === "signed-out";
  }

  renderMessages(scrollToEnd) {
    const list = this.q("messages");
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.replaceChildren();
    const ids = [...this.messages.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      const m = this.messages.get(id);
      const item = document.createElement("li");
      item.className = m.author.id === this.meId ? "mine" : "theirs";
      item.dataset.messageId = String(id);
      const head = document.createElement("div");
      head.className = "room-meta";
      const who = document.createElement("strong");
      who.textContent = m.author.name;
      const role = document.createElement("span");
      role.className = `role role-${m.author.role}`;
      role.textContent = m.author.role;
      const time = document.createElement("time");
      time.dateTime = m.sent_at;
      time.textContent = new Date(m.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      head.append(who, " ", role, " ", time);
      const body = document.createElement("p");
      body.append(linkify(m.text));
      item.append(head, body);
      list.append(item);
    }
    if (scrollToEnd && (atEnd || ids.length < 3)) list.scrollTop = list.scrollHeight;
    this.q("empty").hidden = ids.length > 0;
    this.renderUnread();
    this.renderReceipts();
    this.markRead();
  }

  renderReceipts() {
    const list = this.q("messages");
    for (const el of list.querySelectorAll(".room-seen")) el.remove();
    for (const mark of this.readMarks.values()) {
      if (mark.user.id === this.meId) continue;
      const item = list.querySelector(`[data-message-id="${mark.up_to_id}"]`);
      if (!item) continue;
      const seen = document.createElement("span");
      seen.className = "room-seen";
      seen.textContent = `Seen by ${mark.user.name}`;
      item.append(seen);
    }
  }

  unread() {
    let count = 0;
    for (const m of this.messages.values()) if (m.author.id !== this.meId && m.id > this.lastReadByMe) count += 1;
    return count;
  }

  renderUnread() {
    const count = this.unread();
    for (const el of document.querySelectorAll("[data-room-unread]")) {
      el.textContent = count ? `${count} unread` : "";
      el.hidden = !count;
    }
  }

  markRead() {
    if (document.visibilityState !== "visible" || !this.client.isOpen()) return;
    const list = this.q("messages");
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (!atEnd) return;
    const newest = Math.max(0, ...[...this.messages.values()].filter((m) => m.author.id !== this.meId).map((m) => m.id));
    if (newest > this.lastReadByMe && this.lastSentRead !== newest) {
      this.lastSentRead = newest;
      this.client.send({ type: "chat.read", up_to_id: newest });
    }
  }

  renderTyping() {
    const now = Date.now();
    const names = [];
    for (const [id, entry] of this.typing) {
      if (now - entry.at > TYPING_SHOWN_MS) this.typing.delete(id);
      else names.push(entry.user.name);
    }
    this.q("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
  }

  renderPresence() {
    const list = this.q("presence");
    list.replaceChildren();
    for (const user of this.present || []) {
      const item = document.createElement("li");
      item.textContent = user.id === this.meId ? `${user.name} (you)` : user.name;
      const role = document.createElement("span");
      role.className = `role role-${user.role}`;
      role.textContent = user.role;
      item.append(" ", role);
      if (this.leader && this.leader.id === user.id) item.classList.add("leading");
      list.append(item);
    }
  }

  renderLeader() {
    const el = this.q("leader");
    if (this.mode === "lead") el.textContent = "You are leading: others who follow see your view.";
    else if (this.mode === "detached") el.textContent = "Detached: your view is your own.";
    else if (this.leader) el.textContent = `Following ${this.leader.name}.`;
    else el.textContent = "Following: nobody is leading yet.";
    this.renderPresence();
  }

  renderPending({ pending }) {
    const el = this.q("pending");
    el.textContent = pending.length ? `${pending.length} message(s) waiting to be delivered…` : "";
    el.hidden = !pending.length;
  }
}

for (const root of document.querySelectorAll("[data-consult-room]")) root.room = new ConsultRoom(root);
