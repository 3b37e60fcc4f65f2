// The worklist and "My consults".
// - Time-left badges: recount every 30 s from data-due / data-submitted and recolour them
//   (ok, warn past 75 % of the window, bad when overdue), so an open page stays true.
// - Live list: `worklist.changed` frames on /ws/notifications/ (docs/realtime.md) make the page ask
//   for its list again (same URL, `X-List-Only: 1`); new rows are highlighted, the frame's message
//   is shown as a toast, and a new STAT offer can beep (off by default, remembered per browser).

const WARNING_FRACTION = 0.75;
const SOUND_KEY = "teleconsult.worklist.statSound";
const TOAST_MS = 12000;

function span(seconds) {
  const minutes = Math.floor(Math.abs(seconds) / 60);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const mins = minutes % 60;
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${mins} min`;
  return `${mins} min`;
}

function refresh() {
  const now = Date.now();
  document.querySelectorAll(".badge[data-due]").forEach((badge) => {
    const due = Date.parse(badge.dataset.due);
    const submitted = Date.parse(badge.dataset.submitted);
    if (Number.isNaN(due)) return;
    const left = (due - now) / 1000;
    badge.textContent = left > 0 ? `${span(left)} left` : `overdue by ${span(left)}`;
    let state = "ok";
    if (left <= 0) state = "bad";
    else if (!Number.isNaN(submitted) && (now - submitted) / (due - submitted) >= WARNING_FRACTION) state = "warn";
    badge.classList.remove("ok", "warn", "bad");
    badge.classList.add(state);
    badge.closest("tr")?.classList.toggle("overdue", left <= 0);
  });
}

refresh();
window.setInterval(refresh, 30000);

// -- the live list ---------------------------------------------------------------------------

const list = document.querySelector("[data-consult-list]");
const toasts = document.querySelector("[data-toasts]");
const liveState = document.querySelector("[data-live-state]");
const soundBox = document.querySelector("[data-stat-sound]");

function rowIds() {
  return new Set([...list.querySelectorAll("tr[data-consult-id]")].map((row) => row.dataset.consultId));
}

let reloading = null;
let reloadAgain = false;

async function reloadList() {
  const before = rowIds();
  const response = await fetch(window.location.href, {
    headers: { "X-List-Only": "1" },
    credentials: "same-origin",
  });
  if (!response.ok || response.redirected) return;
  // The server renders (and escapes) the list with the same template as the page.
  list.innerHTML = await response.text();
  list.querySelectorAll("tr[data-consult-id]").forEach((row) => {
    if (!before.has(row.dataset.consultId)) row.classList.add("arrived");
  });
  list.querySelectorAll("template[data-nav-counts]").forEach((counts) => {
    counts.content.querySelectorAll("[data-key]").forEach(({ dataset }) => setNavCount(dataset));
  });
  refresh();
}

function setNavCount({ key, url, count }) {
  const link = document.querySelector(`.nav a[href="${url}"]`);
  if (!link) return;
  let badge = link.querySelector(`[data-nav-count="${key}"]`);
  if (!badge && count !== "0") {
    badge = document.createElement("span");
    badge.className = "count";
    badge.dataset.navCount = key;
    link.append(" ", badge);
  }
  if (badge) {
    badge.textContent = count;
    badge.hidden = count === "0";
  }
}

// Frames come in bursts (one change, several tabs, chat): one request at a time, and one more
// after it when anything arrived meanwhile.
function scheduleReload() {
  if (reloading) {
    reloadAgain = true;
    return;
  }
  reloading = new Promise((resolve) => window.setTimeout(resolve, 150))
    .then(reloadList)
    .catch(() => {})
    .finally(() => {
      reloading = null;
      if (reloadAgain) {
        reloadAgain = false;
        scheduleReload();
      }
    });
}

function toast(text, { stat = false } = {}) {
  const item = document.createElement("p");
  item.className = stat ? "toast stat" : "toast";
  item.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "link";
  close.textContent = "Dismiss";
  close.addEventListener("click", () => item.remove());
  item.append(" ", close);
  toasts.append(item);
  window.setTimeout(() => item.remove(), TOAST_MS);
}

// -- the STAT tone: made with WebAudio, no sound file ----------------------------------------

let audio = null;

function soundOn() {
  try {
    return window.localStorage.getItem(SOUND_KEY) === "on";
  } catch {
    return false;
  }
}

function audioContext() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return null;
  audio ??= new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
  return audio;
}

function beep() {
  const context = audio; // made on a click or key press: browsers refuse audio before one
  if (!context || context.state !== "running") return;
  const start = context.currentTime;
  [0, 0.22].forEach((offset) => {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.18);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(start + offset);
    oscillator.stop(start + offset + 0.2);
  });
}

if (soundBox) {
  soundBox.checked = soundOn();
  soundBox.addEventListener("change", () => {
    try {
      window.localStorage.setItem(SOUND_KEY, soundBox.checked ? "on" : "off");
    } catch {
      // private mode: the choice lasts for this page only
    }
    if (soundBox.checked && audioContext()) window.setTimeout(beep, 50);
  });
  // With the sound on from an earlier visit, the first click or key press here unlocks audio.
  const unlock = () => {
    if (soundBox.checked) audioContext();
  };
  window.addEventListener("pointerdown", unlock, { once: true });
  window.addEventListener("keydown", unlock, { once: true });
}

// -- the socket --------------------------------------------------------------------------------

const LIVE_TEXT = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", closed: "Not live" };

function setState(state) {
  if (!liveState) return;
  liveState.dataset.state = state;
  liveState.textContent = LIVE_TEXT[state];
}

function onFrame(frame) {
  if (frame.type !== "worklist.changed") return;
  scheduleReload();
  if (!frame.message) return;
  const stat = frame.change === "offered" && frame.consult?.priority === "stat";
  toast(frame.message, { stat });
  if (stat && soundBox?.checked) beep();
}

function connect(delay = 500, reconnecting = false) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/notifications/`);
  socket.addEventListener("open", () => {
    setState("open");
    delay = 500;
    if (reconnecting) scheduleReload(); // changes made while we were away
  });
  socket.addEventListener("message", (event) => {
    try {
      onFrame(JSON.parse(event.data));
    } catch {
      // not a frame for this page
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4403) {
      setState("closed"); // signed out: do not retry
      return;
    }
    setState("reconnecting");
    const wait = delay * (0.75 + Math.random() / 2);
    window.setTimeout(() => connect(Math.min(delay * 2, 15000), true), wait);
  });
}

if (list) {
  // One click accepts once (rows come and go, so listen on the list).
  list.addEventListener("submit", (event) => {
    if (event.target.matches("form.accept-form")) event.target.querySelector("button").disabled = true;
  });
  connect();
}
