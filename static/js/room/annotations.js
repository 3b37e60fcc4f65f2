// Saving the viewer's annotations on the consult page, and loading them back.
//
// Every change the viewer reports ("annotation:change") is queued, kept in localStorage at once,
// and sent shortly after (POST for new ones, PUT with the version for edits, DELETE). A failed
// save stays queued and is retried with backoff; the status line says saved / saving / not saved.
// After a reload, the annotations come from the server, with anything still queued on this
// device applied on top and sent again. Changes by others arrive live through the consult room
// (static/js/room/room.js calls viewer.upsertAnnotation/removeAnnotation).
//
// Mounted on [data-annotations] (templates/consultations/detail.html) next to the viewer.

const SAVE_DELAY_MS = 400;
const MAX_RETRY_MS = 30000;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export class AnnotationSync {
  constructor(root, viewer, { fetchImpl = globalThis.fetch.bind(globalThis), storage = globalThis.localStorage } = {}) {
    this.root = root;
    this.viewer = viewer;
    this.fetch = fetchImpl;
    this.storage = storage;
    this.url = root.dataset.url;
    this.canWrite = root.dataset.canWrite === "true";
    this.storageKey = `teleconsult:annotations:${root.dataset.consultId}:${root.dataset.meId}`;
    this.versions = new Map(); // id -> version stored on the server
    this.pending = new Map(this.loadPending().map((entry) => [entry.annotation.id, entry]));
    this.timer = null;
    this.retryDelay = 1000;
    this.saving = false;
    this.statusEl = root.querySelector("[data-annotations-status]");
    this.meId = Number(root.dataset.meId);
    // The page shows the save state beside the viewer; the toolbar repeats it only when the
    // viewer fills the window (static/css/viewer.css).
    if (this.statusEl && viewer.root) viewer.root.dataset.saveOutside = "";
    // The API lets each member of the care team change only what they drew.
    if (typeof viewer.setEditRule === "function") {
      viewer.setEditRule((a) => !a || !a.author || Number(a.author.id) === this.meId);
    }
    if (!this.canWrite && !viewer.readOnly && typeof viewer.setReadOnly === "function") {
      viewer.setReadOnly(true, "Only the consult's care team measures and annotates; you see what they drew.");
    }
    viewer.on("annotation:change", (change) => this.queue(change));
    window.addEventListener("beforeunload", (event) => {
      if (this.pending.size) event.preventDefault();
    });
  }

  loadPending() {
    try {
      const list = JSON.parse(this.storage.getItem(this.storageKey) || "[]");
      return Array.isArray(list) ? list.filter((e) => e && e.annotation && e.annotation.id && e.action) : [];
    } catch {
      return [];
    }
  }

  persist() {
    try {
      if (this.pending.size) this.storage.setItem(this.storageKey, JSON.stringify([...this.pending.values()]));
      else this.storage.removeItem(this.storageKey);
    } catch {
      // Storage full or disabled: the queue still lives in memory for this page.
    }
  }

  status(state, text) {
    // Also in the viewer's toolbar, where it shows when the viewer fills the window.
    const kinds = { saved: "ok", saving: "busy", loading: "busy", error: "bad" };
    if (this.canWrite && typeof this.viewer.setSaveState === "function") this.viewer.setSaveState(text, kinds[state] || "");
    if (!this.statusEl) return;
    this.root.dataset.saveState = state;
    this.statusEl.textContent = text;
  }

  async load() {
    this.status("loading", "Loading annotations…");
    let list = [];
    try {
      const answer = await this.fetch(this.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      list = await answer.json();
    } catch (error) {
      this.status("error", `Annotations could not be loaded (${error.message}); retrying…`);
      setTimeout(() => this.load(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, MAX_RETRY_MS);
      return;
    }
    this.retryDelay = 1000;
    const byId = new Map(list.map((a) => [a.id, a]));
    for (const a of list) this.versions.set(a.id, a.version);
    // What this device had not sent yet wins over what the server has.
    for (const { action, annotation } of this.pending.values()) {
      if (action === "deleted") byId.delete(annotation.id);
      else byId.set(annotation.id, annotation);
    }
    this.viewer.setAnnotations([...byId.values()]);
    if (this.pending.size) this.schedule(0);
    else this.status("saved", this.canWrite ? "All changes saved" : "");
  }

  queue({ action, annotation }) {
    if (!this.canWrite) return;
    const before = this.pending.get(annotation.id);
    // Drawn and deleted before it was ever saved: nothing to send.
    if (action === "deleted" && before && before.action === "created" && !this.versions.has(annotation.id)) {
      this.pending.delete(annotation.id);
    } else {
      const kept = before && before.action === "created" && action === "updated" ? "created" : action;
      this.pending.set(annotation.id, { action: kept, annotation });
    }
    this.persist();
    this.status("saving", "Saving…");
    this.schedule(SAVE_DELAY_MS);
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), delay);
  }

  async send(entry) {
    const { action, annotation } = entry;
    const id = annotation.id;
    const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() };
    const known = this.versions.has(id);
    if (action === "deleted") {
      if (!known) return { ok: true };
      const answer = await this.fetch(`${this.url}${id}/`, { method: "DELETE", credentials: "same-origin", headers });
      if (answer.ok || answer.status === 404) this.versions.delete(id);
      return answer.status === 404 ? { ok: true } : answer;
    }
    const body = { ...annotation };
    delete body.author;
    if (known) body.version = this.versions.get(id);
    const answer = await this.fetch(known ? `${this.url}${id}/` : this.url, {
      method: known ? "PUT" : "POST",
      credentials: "same-origin",
      headers,
      body: JSON.stringify(body),
    });
    if (answer.ok) {
      const saved = await answer.json();
      this.versions.set(id, saved.version);
    } else if (answer.status === 409 && known) {
      // Changed elsewhere (another tab of ours): take the server's version and send ours again.
      const fresh = await this.fetch(`${this.url}${id}/`, { credentials: "same-origin", headers });
      if (fresh.ok) this.versions.set(id, (await fresh.json()).version);
    }
    return answer;
  }

  async flush() {
    if (this.saving || !this.pending.size) return;
    this.saving = true;
    let failed = null;
    let refused = null;
    for (const [id, entry] of [...this.pending]) {
      let answer;
      try {
        answer = await this.send(entry);
      } catch (error) {
        failed = error.message || "network error";
        break;
      }
      if (answer.ok) {
        if (this.pending.get(id) === entry) this.pending.delete(id);
      } else if (answer.status >= 400 && answer.status < 500 && answer.status !== 409 && answer.status !== 429) {
        // The server will never take this one (e.g. no longer on the case): say so and drop it.
        let detail = `HTTP ${answer.status}`;
        try {
          detail = (await answer.json()).detail || detail;
        } catch {
          // Not JSON: keep the status code.
        }
        refused = detail;
        if (this.pending.get(id) === entry) this.pending.delete(id);
      } else {
        failed = `HTTP ${answer.status}`;
        break;
      }
    }
    this.persist();
    this.saving = false;
    if (failed) {
      this.status("error", `Not saved (${failed}): kept on this device, retrying…`);
      this.schedule(this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, MAX_RETRY_MS);
      return;
    }
    this.retryDelay = 1000;
    if (this.pending.size) {
      this.schedule(0);
    } else if (refused) {
      this.status("error", `A change was refused: ${refused}`);
    } else {
      this.status("saved", "All changes saved");
    }
  }
}

function start(root) {
  const viewerRoot = document.querySelector("[data-viewer]");
  if (!viewerRoot) return;
  const begin = (viewer) => {
    root.sync = new AnnotationSync(root, viewer);
    root.sync.load();
  };
  if (viewerRoot.viewer) begin(viewerRoot.viewer);
  else viewerRoot.addEventListener("viewer:ready", (e) => begin(e.detail.viewer), { once: true });
}

for (const root of document.querySelectorAll("[data-annotations]")) start(root);
