// The study viewer: series strip, stack of frames, window/level in the browser, zoom and pan,
// cine, overlay, and the annotation tool layer.
//
// Contract with the pages that embed it (consult room, study page, patient portal, share links):
//   viewer.on(event, fn) -> unsubscribe function. Events:
//     "view:change"        (state)  after a user changes the view (at most once per animation frame)
//     "annotation:change"  ({action: "created"|"updated"|"deleted", annotation})  user edits only
//     "series:open"        ({series_uid, modality, count})
//     "render"             ({index, loaded})  after each paint
//     "error"              ({message})
//   viewer.getViewState() / viewer.applyViewState(state): state is
//     {study_uid, series_uid, instance_uid, frame, window_center, window_width, zoom, pan: [x, y]}
//     frame is 1-based within the instance; zoom is relative to "fit" (1 = whole image fits);
//     pan is in image pixels. applyViewState does not emit "view:change" (no relay echo).
//   viewer.setAnnotations(list), getAnnotations(), upsertAnnotation(a), removeAnnotation(id):
//     changes from elsewhere (saved or live); they do not emit "annotation:change".
//   "pointer" ({x, y, instance_uid, frame}) in image pixels as the mouse moves (once per frame);
//     viewer.showPointer(key, {x, y}, label) / hidePointer(key) draw other participants' pointers.
//   viewer.setSaveState(text, kind) shows "saved" / "saving…" / "not saved" (kind: ok|busy|bad).
//   viewer.setReadOnly(on, note) turns the drawing tools off (or on), `note` saying why;
//   viewer.setEditRule(fn): which annotations the user may move, relabel or delete (fn(a) -> bool).
//   The first setAnnotations() call shows the list of annotations and key images (jump-to:
//   viewer.jumpTo(id)). Where the user was (series, image, window) is kept per study in
//   localStorage (memory.js) and the viewer reopens there unless the page names a series.

import { DicomWebClient, instanceInfo, sortInstances } from "./dicomweb.js";
import {
  buildLut,
  canRenderRaw,
  defaultWindow,
  isInvertedPhotometric,
  lutOffset,
  pixelArray,
  presetsFor,
  renderGray,
} from "./image.js";
import { listEntries } from "./annotationlist.js";
import { bindInput } from "./input.js";
import { modalityUnit, spacingFrom } from "./measure.js";
import { loadView, saveView } from "./memory.js";
import { Overlay } from "./overlay.js";
import { cloneAnnotation, createAnnotation, ToolLayer } from "./tools.js";

const NON_IMAGE_MODALITIES = new Set(["SR", "PR", "KO", "DOC", "RWV", "REG", "SEG"]);
const MAX_IN_FLIGHT = 6;
const PREFETCH_RADIUS = 400;
const RENDERED_PREFETCH_RADIUS = 4;
const MIN_ZOOM = 0.05;
const MAX_ZOOM = 40;
const FAILED_RETRY_MS = 5000;
const SMOOTH_AFTER_MS = 150;
const EDIT_TOOLS = new Set(["select", "length", "angle", "ellipse", "arrow", "text"]);
const REMEMBER_AFTER_MS = 300;
const NARROW = "(max-width: 700px)";

function localStorageOrNull() {
  try {
    return globalThis.localStorage || null;
  } catch {
    return null; // Storage disabled (privacy settings): nothing is remembered.
  }
}

function matches(query) {
  return Boolean(window.matchMedia && window.matchMedia(query).matches);
}

function cacheLimitBytes() {
  const memory = navigator.deviceMemory || 4;
  return Math.min(512, Math.max(128, memory * 64)) * 1024 * 1024;
}

/** Least-recently-used frame cache bounded by bytes. */
class FrameCache {
  constructor(limit) {
    this.limit = limit;
    this.bytes = 0;
    this.map = new Map();
  }

  get(key) {
    const entry = this.map.get(key);
    if (entry) {
      this.map.delete(key);
      this.map.set(key, entry);
    }
    return entry;
  }

  has(key) {
    return this.map.has(key);
  }

  set(key, entry) {
    if (this.map.has(key)) this.bytes -= this.map.get(key).bytes;
    this.map.set(key, entry);
    this.bytes += entry.bytes;
    for (const [k, e] of this.map) {
      if (this.bytes <= this.limit) break;
      if (k === key) continue;
      this.map.delete(k);
      this.bytes -= e.bytes;
      if (e.bitmap) e.bitmap.close();
    }
  }

  clear() {
    for (const e of this.map.values()) if (e.bitmap) e.bitmap.close();
    this.map.clear();
    this.bytes = 0;
  }
}

export class Viewer {
  constructor(root, options = {}) {
    this.root = root;
    this.studyUid = options.studyUid || root.dataset.studyUid;
    this.readOnly = options.readOnly ?? root.dataset.readOnly === "true";
    this.client = new DicomWebClient(options.dicomwebRoot || root.dataset.dicomwebRoot || "/dicomweb");
    this.initialSeries = options.seriesUid || root.dataset.seriesUid || null;
    this.fallback = {
      patientName: root.dataset.patientName || "",
      studyDescription: root.dataset.studyDescription || "",
    };

    this.listeners = new Map();
    this.seriesList = [];
    this.series = null; // {uid, modality, label, stack: [{info, frame}]}
    this.index = 0;
    this.window = null;
    this.invert = false;
    this.zoom = 1;
    this.pan = [0, 0];
    this.tool = window.matchMedia && window.matchMedia("(pointer: coarse)").matches ? "scroll" : "wl";
    this.annotations = new Map();
    this.cache = new FrameCache(cacheLimitBytes());
    this.inFlight = new Map();
    this.queue = [];
    this.failed = new Map(); // frame key -> time of the failure; retried after FAILED_RETRY_MS
    this.lutKey = "";
    this.lut = null;
    this.imageKey = "";
    this.shown = null; // the frame entry on the image canvas
    this.renderPending = false;
    this.viewChanged = false;
    this.firstImage = false;
    this.status = "";
    this.cine = { playing: false, fps: 15, last: 0, waitingSince: 0 };
    this.renderedTimer = null;
    this.openToken = 0;
    this.remotePointers = new Map();
    this.lastStepAt = -Infinity;
    this.smoothTimer = null;
    this.pointerPending = null;
    this.storage = options.storage === undefined ? localStorageOrNull() : options.storage;
    this.remembered = null; // the remembered view being restored while the study opens
    this.rememberTimer = null;
    this.instanceSeries = new Map(); // SOP instance UID -> series UID, for series opened so far
    this.seriesPlaces = new Map(); // series UID -> {positions: Map("sop:frame" -> index), total}
    this.annotationsInUse = false; // a page keeps annotations here (setAnnotations was called)
    this.listOpen = false;
    this.listPending = false;
    this.mayEdit = () => true;

    this.canvas = root.querySelector("[data-canvas]");
    this.ctx = this.canvas.getContext("2d");
    this.imageCanvas = document.createElement("canvas");
    this.imageCtx = this.imageCanvas.getContext("2d", { willReadFrequently: false });
    this.overlay = new Overlay(root);
    this.overlay.setIdentityWarning(root.dataset.identityWarning || "");
    this.tools = new ToolLayer(this.toolHost());
    this.bindControls();
    bindInput(this, this.canvas, root.querySelector("[data-viewport]") || root);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.canvas.parentElement);
    this.resize();
    if (this.readOnly) root.classList.add("viewer-read-only");
    this.setTool(this.tool);
  }

  // ---- events -------------------------------------------------------------------------------

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  emit(event, payload) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(payload);
      } catch (error) {
        console.error(`viewer ${event} listener failed`, error);
      }
    }
  }

  // ---- loading ------------------------------------------------------------------------------

  async open() {
    this.setStatus("Loading series…");
    if (!this.initialSeries) {
      this.remembered = loadView(this.storage, this.studyUid);
      if (this.remembered) {
        this.initialSeries = this.remembered.series_uid;
        this.initialInstance = this.remembered.instance_uid;
        this.initialFrame = this.remembered.frame;
      }
    }
    try {
      // The page may embed the series list (saves a round trip); otherwise ask QIDO-RS.
      this.startEarlyFrame();
      const embedded = this.root.querySelector('script[type="application/json"][data-series-list]');
      const found = embedded ? JSON.parse(embedded.textContent) : await this.client.searchSeries(this.studyUid);
      this.seriesList = found
        .map((ds) => ({
          uid: ds["0020000E"]?.Value?.[0] || "",
          modality: ds["00080060"]?.Value?.[0] || "",
          description: ds["0008103E"]?.Value?.[0] || "",
          number: ds["00200011"]?.Value?.[0] ?? null,
          count: ds["00201209"]?.Value?.[0] ?? null,
        }))
        // A series of non-image objects (an RT plan, a report) is not shown, nor counted as images.
        .filter((s) => s.uid && !NON_IMAGE_MODALITIES.has(s.modality) && s.count !== 0)
        .sort((a, b) => (a.number ?? 0) - (b.number ?? 0));
    } catch (error) {
      this.fail(`Could not load the study: ${error.message}`);
      return;
    }
    this.buildStrip();
    if (this.seriesList.length === 0) {
      this.setStatus("No images in this study.");
      return;
    }
    const first = this.seriesList.find((s) => s.uid === this.initialSeries) || this.seriesList[0];
    await this.openSeries(first.uid, { user: false });
  }

  /**
   * The page may embed the header of the first image to show: its pixels are then fetched at
   * once, alongside the series metadata instead of after it.
   */
  startEarlyFrame() {
    const embedded = this.root.querySelector('script[type="application/json"][data-first-instance]');
    if (!embedded) return;
    let first;
    try {
      first = JSON.parse(embedded.textContent);
    } catch (error) {
      console.warn("unreadable first-instance header", error);
      return;
    }
    if (this.initialSeries && this.initialSeries !== first.series_uid) return;
    this.initialSeries = first.series_uid;
    const info = instanceInfo(first.dataset);
    // Reopening elsewhere in the series (where the user left it): that image comes first instead.
    if (this.initialInstance && this.initialInstance !== info.sopInstanceUid) return;
    this.initialInstance = info.sopInstanceUid;
    if (!canRenderRaw(info)) return;
    const key = `${info.sopInstanceUid}:1`;
    const promise = this.client
      .frame(this.studyUid, first.series_uid, info.sopInstanceUid, 1)
      .then((bytes) => {
        const pixels = pixelArray(bytes, info);
        this.cache.set(key, { pixels, info, frame: 1, bytes: pixels.byteLength });
      })
      .catch((error) => console.warn("first frame unavailable, loading it the usual way", error))
      .finally(() => {
        this.inFlight.delete(key);
        const item = this.current();
        if (item && item.info.sopInstanceUid === info.sopInstanceUid) {
          this.requestRender(true);
          if (!this.seriesReady && this.cache.has(key)) {
            this.seriesReady = true;
            this.schedulePrefetch();
          }
        }
        this.pump();
      });
    this.inFlight.set(key, promise);
  }

  async openSeries(seriesUid, { keepView = false, user = true } = {}) {
    const token = ++this.openToken;
    const entry = this.seriesList.find((s) => s.uid === seriesUid) || { uid: seriesUid, modality: "" };
    this.stopCine();
    this.setStatus("Loading images…");
    let metadata;
    try {
      metadata = await this.client.seriesMetadata(this.studyUid, seriesUid);
    } catch (error) {
      if (token === this.openToken) this.fail(`Could not load the series: ${error.message}`);
      return false;
    }
    if (token !== this.openToken) return false;
    const infos = sortInstances(metadata.map(instanceInfo).filter((i) => i.rows > 0 && i.columns > 0));
    const stack = [];
    for (const info of infos) {
      info.raw = canRenderRaw(info);
      info.spacing = spacingFrom(info);
      info.unit = modalityUnit(info.modality || entry.modality, info.rescaleType);
      for (let f = 1; f <= info.numberOfFrames; f++) stack.push({ info, frame: f });
    }
    const modality = entry.modality || (infos[0] && infos[0].modality) || "";
    this.series = {
      uid: seriesUid,
      modality,
      label: [modality, entry.number !== null && entry.number !== undefined ? `#${entry.number}` : "", entry.description]
        .filter(Boolean)
        .join(" "),
      stack,
    };
    this.queue = [];
    this.index = 0;
    const positions = new Map();
    stack.forEach((it, i) => positions.set(`${it.info.sopInstanceUid}:${it.frame}`, i));
    this.seriesPlaces.set(seriesUid, { positions, total: stack.length, label: this.series.label });
    for (const info of infos) this.instanceSeries.set(info.sopInstanceUid, seriesUid);
    if (this.initialInstance) {
      const frame = this.initialFrame || 1;
      this.index = Math.max(0, positions.get(`${this.initialInstance}:${frame}`) ?? -1);
      this.initialInstance = null;
      this.initialFrame = null;
    }
    this.seriesReady = this.cache.has(stack[this.index] ? this.frameKey(stack[this.index]) : "");
    this.shown = null;
    this.imageKey = "";
    this.lutKey = "";
    if (!keepView) {
      this.zoom = 1;
      this.pan = [0, 0];
      this.invert = false;
      const first = stack[this.index];
      this.window = first && first.info.windowWidth ? defaultWindow(first.info, null) : null;
    }
    const remembered = this.remembered;
    this.remembered = null;
    if (remembered && remembered.series_uid === seriesUid && remembered.window_width > 0) {
      this.window = { center: remembered.window_center, width: remembered.window_width };
    }
    if (stack.length && stack[0].info.frameRate) this.setFrameRate(stack[0].info.frameRate);
    this.updateStripSelection();
    this.updatePresets();
    this.updateSlider();
    this.setStatus(stack.length ? "" : "No images in this series.");
    this.emit("series:open", { series_uid: seriesUid, modality, count: stack.length });
    this.scheduleList();
    this.requestRender(true, user);
    this.schedulePrefetch();
    return true;
  }

  current() {
    return this.series ? this.series.stack[this.index] || null : null;
  }

  frameKey(item) {
    const base = `${item.info.sopInstanceUid}:${item.frame}`;
    if (item.info.raw) return base;
    const gray = !item.info.samplesPerPixel || item.info.samplesPerPixel === 1;
    const w = gray && this.window ? `:${Math.round(this.window.center)},${Math.round(this.window.width)}` : "";
    return `${base}:r${w}`;
  }

  async loadFrame(item, key) {
    const { info, frame } = item;
    const series = this.series.uid;
    if (info.raw) {
      try {
        const bytes = await this.client.frame(this.studyUid, series, info.sopInstanceUid, frame);
        const pixels = pixelArray(bytes, info);
        return { pixels, info, frame, bytes: pixels.byteLength };
      } catch (error) {
        // Raw pixels this browser cannot use: fall back to server-rendered frames for the instance.
        console.warn("raw frame unavailable, using rendered frames", error);
        info.raw = false;
        return this.loadFrame(item, this.frameKey(item));
      }
    }
    const gray = !info.samplesPerPixel || info.samplesPerPixel === 1;
    const windowParam = gray && key.includes(":r:") ? this.windowFromKey(key) : null;
    const bitmap = await this.client.rendered(this.studyUid, series, info.sopInstanceUid, frame, windowParam);
    return { bitmap, info, frame, bytes: bitmap.width * bitmap.height * 4 };
  }

  windowFromKey(key) {
    const [center, width] = key.split(":r:")[1].split(",").map(Number);
    return { center, width };
  }

  /** Start loading the frame at stack index `i` unless cached or loading. */
  request(i) {
    const item = this.series && this.series.stack[i];
    if (!item) return null;
    const key = this.frameKey(item);
    if (this.cache.has(key) || this.recentlyFailed(key)) return null;
    if (this.inFlight.has(key)) return this.inFlight.get(key);
    const seriesUid = this.series.uid;
    const promise = this.loadFrame(item, key)
      .then((entry) => {
        // Raw decoding may have fallen back to rendered: store under the key the frame has now.
        this.cache.set(this.frameKey(item), entry);
        if (key !== this.frameKey(item)) this.cache.set(key, entry);
        if (this.series && this.series.uid === seriesUid && this.current() === item) {
          this.requestRender(true);
          if (!this.seriesReady) {
            // The first image gets the connection to itself; the neighbours follow.
            this.seriesReady = true;
            this.schedulePrefetch();
          }
        }
      })
      .catch((error) => {
        this.failed.set(key, performance.now());
        if (this.current() === item) {
          this.setStatus(`Could not load this image (${error.message}); retrying…`);
          setTimeout(() => this.requestRender(true), FAILED_RETRY_MS + 50);
        }
      })
      .finally(() => {
        this.inFlight.delete(key);
        this.pump();
        this.scheduleOverlay();
      });
    this.inFlight.set(key, promise);
    return promise;
  }

  recentlyFailed(key) {
    const at = this.failed.get(key);
    return at !== undefined && performance.now() - at < FAILED_RETRY_MS;
  }

  pump() {
    while (this.inFlight.size < MAX_IN_FLIGHT && this.queue.length) {
      this.request(this.queue.shift());
    }
  }

  /** Queue the neighbours of the current image, nearest first, in the scroll direction first. */
  schedulePrefetch() {
    if (!this.series || this.series.stack.length === 0) return;
    const n = this.series.stack.length;
    const item = this.current();
    let radius = item && !item.info.raw ? RENDERED_PREFETCH_RADIUS : PREFETCH_RADIUS;
    if (item) {
      // Never prefetch more than the cache holds, or far frames would evict the near ones.
      const bytesPerPixel = item.info.raw ? item.info.bitsAllocated / 8 : 4;
      const frameBytes = Math.max(1, item.info.rows * item.info.columns * bytesPerPixel);
      radius = Math.min(radius, Math.floor((this.cache.limit * 0.8) / frameBytes / 2));
    }
    const order = [this.index];
    for (let d = 1; this.seriesReady && d <= radius && d < n; d++) {
      const ahead = this.index + d * (this.direction || 1);
      const behind = this.index - d * (this.direction || 1);
      if (ahead >= 0 && ahead < n) order.push(ahead);
      if (behind >= 0 && behind < n) order.push(behind);
    }
    this.queue = order.filter((i) => {
      const key = this.frameKey(this.series.stack[i]);
      return !this.cache.has(key) && !this.inFlight.has(key) && !this.recentlyFailed(key);
    });
    this.pump();
  }

  // ---- view state -----------------------------------------------------------------------------

  setIndex(i, { user = true } = {}) {
    if (!this.series || this.series.stack.length === 0) return;
    const n = this.series.stack.length;
    const next = Math.max(0, Math.min(n - 1, Math.round(i)));
    if (next === this.index && this.shown) return;
    this.direction = next >= this.index ? 1 : -1;
    this.index = next;
    this.lastStepAt = performance.now();
    this.tools.cancel();
    this.updateSlider();
    this.requestRender(true, user);
    this.schedulePrefetch();
  }

  step(delta) {
    this.setIndex(this.index + delta);
  }

  setWindow(center, width, { user = true } = {}) {
    if (!Number.isFinite(center) || !Number.isFinite(width)) return;
    this.window = { center, width: Math.max(1, width) };
    const item = this.current();
    if (item && !item.info.raw) {
      // Rendered frames carry the window: fetch again once the drag settles.
      clearTimeout(this.renderedTimer);
      this.renderedTimer = setTimeout(() => {
        this.renderedTimer = null;
        this.schedulePrefetch();
      }, 150);
    }
    this.requestRender(true, user);
  }

  setInvert(on, { user = true } = {}) {
    this.invert = Boolean(on);
    this.root.querySelector('[data-action="invert"]')?.setAttribute("aria-pressed", String(this.invert));
    this.requestRender(true, user);
  }

  setZoom(zoom, { user = true } = {}) {
    this.zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, zoom));
    this.requestRender(false, user);
  }

  setPan(pan, { user = true } = {}) {
    this.pan = [Number(pan[0]) || 0, Number(pan[1]) || 0];
    this.requestRender(false, user);
  }

  /** Zoom to `zoom` keeping the image point under `anchor` (screen) where it is. */
  zoomAround(zoom, anchor, baseZoom = this.zoom, basePan = this.pan) {
    const item = this.current();
    if (!item) return;
    const p = this.toImage(anchor, baseZoom, basePan);
    const z = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, zoom));
    const s = this.fitScale() * z;
    const [cx, cy] = this.viewportCentre();
    this.zoom = z;
    this.pan = [(anchor[0] - cx) / s - p[0] + item.info.columns / 2, (anchor[1] - cy) / s - p[1] + item.info.rows / 2];
    this.requestRender(false, true);
  }

  panByScreen(delta) {
    const s = this.scale();
    if (!s) return;
    this.pan = [this.pan[0] + delta[0] / s, this.pan[1] + delta[1] / s];
    this.requestRender(false, true);
  }

  fit() {
    this.zoom = 1;
    this.pan = [0, 0];
    this.requestRender(false, true);
  }

  reset() {
    this.stopCine();
    this.invert = false;
    const item = this.current();
    this.window = item ? defaultWindow(item.info, this.shown && this.shown.pixels) : null;
    this.fit();
    this.requestRender(true, true);
  }

  getViewState() {
    const item = this.current();
    return {
      study_uid: this.studyUid,
      series_uid: this.series ? this.series.uid : null,
      instance_uid: item ? item.info.sopInstanceUid : null,
      frame: item ? item.frame : 1,
      window_center: this.window ? this.window.center : null,
      window_width: this.window ? this.window.width : null,
      zoom: this.zoom,
      pan: [...this.pan],
    };
  }

  async applyViewState(state) {
    if (!state) return;
    if (state.series_uid && (!this.series || this.series.uid !== state.series_uid)) {
      const opened = await this.openSeries(state.series_uid, { keepView: true, user: false });
      if (!opened) return;
    }
    if (this.series && state.instance_uid) {
      const frame = Number(state.frame) || 1;
      const i = this.series.stack.findIndex((it) => it.info.sopInstanceUid === state.instance_uid && it.frame === frame);
      if (i >= 0) this.setIndex(i, { user: false });
    }
    if (Number.isFinite(state.window_center) && Number.isFinite(state.window_width)) {
      this.setWindow(state.window_center, state.window_width, { user: false });
    }
    if (Number.isFinite(state.zoom)) this.setZoom(state.zoom, { user: false });
    if (Array.isArray(state.pan)) this.setPan(state.pan, { user: false });
  }

  // ---- geometry -------------------------------------------------------------------------------

  /** CSS size of the canvas, kept by resize() so paints never force a layout to read it. */
  viewportSize() {
    return this.viewport || [1, 1];
  }

  viewportCentre() {
    const [w, h] = this.viewportSize();
    return [w / 2, h / 2];
  }

  fitScale() {
    const item = this.current();
    if (!item) return 1;
    const [w, h] = this.viewportSize();
    return Math.min(w / item.info.columns, h / item.info.rows) || 1;
  }

  /** Screen (CSS) pixels per image pixel. */
  scale(zoom = this.zoom) {
    return this.fitScale() * zoom;
  }

  toScreen(p, zoom = this.zoom, pan = this.pan) {
    const item = this.current();
    if (!item) return p;
    const s = this.scale(zoom);
    const [cx, cy] = this.viewportCentre();
    return [cx + (p[0] - item.info.columns / 2 + pan[0]) * s, cy + (p[1] - item.info.rows / 2 + pan[1]) * s];
  }

  toImage(p, zoom = this.zoom, pan = this.pan) {
    const item = this.current();
    if (!item) return p;
    const s = this.scale(zoom);
    const [cx, cy] = this.viewportCentre();
    return [(p[0] - cx) / s + item.info.columns / 2 - pan[0], (p[1] - cy) / s + item.info.rows / 2 - pan[1]];
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    this.viewport = [this.canvas.clientWidth || 1, this.canvas.clientHeight || 1];
    const [w, h] = this.viewport;
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (this.canvas.width !== pw || this.canvas.height !== ph) {
      this.canvas.width = pw;
      this.canvas.height = ph;
    }
    this.requestRender(false);
  }

  // ---- rendering ------------------------------------------------------------------------------

  requestRender(imageChanged = false, user = false) {
    if (imageChanged) this.imageKey = "";
    if (user) this.viewChanged = true;
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame((t) => this.render(t));
  }

  /** Put the current frame, windowed, on the image canvas; false while it is still loading. */
  prepareImage() {
    const item = this.current();
    if (!item) return false;
    const key = this.frameKey(item);
    const entry = this.cache.get(key);
    if (!entry) {
      // Rendered frames carry the window: while it is being dragged, wait for it to settle.
      if (item.info.raw || this.renderedTimer === null) this.request(this.index);
      return false;
    }
    if (entry.pixels && !this.window) this.window = defaultWindow(item.info, entry.pixels);
    const lutKey = entry.pixels
      ? `${item.info.bitsAllocated}:${item.info.pixelRepresentation}:${item.info.slope}:${item.info.intercept}:` +
        `${this.window.center}:${this.window.width}:${this.invert !== isInvertedPhotometric(item.info.photometric)}`
      : "";
    const imageKey = `${key}|${lutKey}`;
    if (this.imageKey === imageKey && this.shown === entry) return true;
    const { columns, rows } = item.info;
    if (this.imageCanvas.width !== columns || this.imageCanvas.height !== rows) {
      this.imageCanvas.width = columns;
      this.imageCanvas.height = rows;
      this.imageData = null;
    }
    if (entry.pixels) {
      if (this.lutKey !== lutKey) {
        const inverted = this.invert !== isInvertedPhotometric(item.info.photometric);
        this.lut = buildLut(item.info, this.window.center, this.window.width, inverted);
        this.lutKey = lutKey;
      }
      if (!this.imageData) this.imageData = this.imageCtx.createImageData(columns, rows);
      renderGray(entry.pixels, this.lut, lutOffset(item.info), this.imageData);
      this.imageCtx.putImageData(this.imageData, 0, 0);
    } else {
      this.imageCtx.clearRect(0, 0, columns, rows);
      this.imageCtx.filter = this.invert ? "invert(1)" : "none";
      this.imageCtx.drawImage(entry.bitmap, 0, 0, columns, rows);
      this.imageCtx.filter = "none";
    }
    this.shown = entry;
    this.imageKey = imageKey;
    return true;
  }

  render(time) {
    this.renderPending = false;
    this.advanceCine(time);
    const item = this.current();
    const loaded = item ? this.prepareImage() : false;
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    // While a frame loads, the previous one stays up if it has the same size (no black flash).
    const showImage =
      item &&
      this.shown &&
      this.imageCanvas.width === item.info.columns &&
      this.imageCanvas.height === item.info.rows;
    if (showImage) {
      const s = this.scale();
      const origin = this.toScreen([0, 0]);
      // While the stack moves, nearest-neighbour scaling (several times cheaper); once it rests,
      // one more paint with interpolation.
      const moving = time - this.lastStepAt < SMOOTH_AFTER_MS;
      ctx.imageSmoothingEnabled = s < 4 && !moving;
      if (moving && !this.smoothTimer) {
        this.smoothTimer = setTimeout(() => {
          this.smoothTimer = null;
          this.requestRender(false);
        }, SMOOTH_AFTER_MS + 20);
      }
      ctx.drawImage(this.imageCanvas, origin[0], origin[1], item.info.columns * s, item.info.rows * s);
    }
    if (item && loaded) {
      this.tools.draw(ctx);
      this.drawRemotePointers(ctx);
    }
    if (this.pointerPending) {
      this.emit("pointer", this.pointerPending);
      this.pointerPending = null;
    }
    if (loaded && !this.firstImage) {
      this.firstImage = true;
      this.root.dataset.state = "ready";
      performance.mark("viewer:first-image");
      this.emit("first-image", { index: this.index });
    }
    if (loaded && (this.status.startsWith("Loading") || this.status.startsWith("Could not load this image"))) {
      this.setStatus("");
    }
    if (this.root.dataset.index !== String(this.index)) this.root.dataset.index = String(this.index);
    this.updateOverlay(item, loaded);
    this.emit("render", { index: this.index, loaded });
    if (this.viewChanged) {
      this.viewChanged = false;
      const state = this.getViewState();
      this.emit("view:change", state);
      this.rememberView(state);
    }
    if (this.listOpen && this.listIndex !== `${this.series && this.series.uid}:${this.index}`) this.scheduleList();
    if (this.cine.playing) this.requestRender(false);
  }

  updateOverlay(item, loaded) {
    const info = item ? item.info : null;
    const keyImage = item ? this.keyImageFor(item) : null;
    const keyButton = this.root.querySelector('[data-action="key-image"]');
    if (keyButton && keyButton.getAttribute("aria-pressed") !== String(Boolean(keyImage))) {
      keyButton.setAttribute("aria-pressed", String(Boolean(keyImage)));
    }
    const gray = info && (!info.samplesPerPixel || info.samplesPerPixel === 1);
    this.overlay.update({
      patientName: (info && info.patientName) || this.fallback.patientName,
      patientId: info ? info.patientId : "",
      patientBirthDate: info ? info.patientBirthDate : "",
      patientSex: info ? info.patientSex : "",
      accessionNumber: info ? info.accessionNumber : "",
      studyDescription: (info && info.studyDescription) || this.fallback.studyDescription,
      studyDate: info ? info.studyDate : "",
      seriesLabel: this.series ? this.series.label : "",
      index: this.index,
      total: this.series ? this.series.stack.length : 0,
      frame: item ? item.frame : 1,
      frames: info ? info.numberOfFrames : 1,
      window: gray ? this.window : null,
      scale: item ? this.scale() : 0,
      spacing: info ? info.spacing : null,
      viewportWidth: this.viewportSize()[0],
      inverted: this.invert,
      keyImage: Boolean(keyImage),
      lossy: info ? info.lossy : null,
      readOnly: this.readOnly,
      status: this.status || (item && !loaded ? "Loading…" : this.prefetchProgress()),
    });
  }

  /** Refresh the overlay text alone (prefetch progress) at most once per frame. */
  scheduleOverlay() {
    if (this.overlayPending) return;
    this.overlayPending = true;
    requestAnimationFrame(() => {
      this.overlayPending = false;
      const item = this.current();
      this.updateOverlay(item, Boolean(item && this.cache.has(this.frameKey(item))));
    });
  }

  /** "Loaded 12 / 50" while neighbours are being fetched, else "". */
  prefetchProgress() {
    if (!this.series || (this.inFlight.size === 0 && this.queue.length === 0)) return "";
    const stack = this.series.stack;
    let cached = 0;
    for (const item of stack) if (this.cache.has(this.frameKey(item))) cached++;
    return cached < stack.length ? `Loaded ${cached} / ${stack.length}` : "";
  }

  setStatus(text) {
    this.status = text;
    const el = this.root.querySelector("[data-status]");
    if (el) {
      el.textContent = text;
      el.hidden = !text;
    }
    this.requestRender(false);
  }

  fail(message) {
    this.setStatus(message);
    this.emit("error", { message });
  }

  // ---- shared pointers and save state -------------------------------------------------------

  pointerMoved(screen) {
    const item = this.current();
    const listeners = this.listeners.get("pointer");
    if (!item || !listeners || listeners.size === 0) return;
    const [x, y] = this.toImage(screen);
    this.pointerPending = { x, y, instance_uid: item.info.sopInstanceUid, frame: item.frame };
    this.requestRender(false);
  }

  showPointer(key, point, label = "") {
    this.remotePointers.set(String(key), { x: Number(point.x), y: Number(point.y), label: String(label || "") });
    this.requestRender(false);
  }

  hidePointer(key) {
    this.remotePointers.delete(String(key));
    this.requestRender(false);
  }

  drawRemotePointers(ctx) {
    for (const { x, y, label } of this.remotePointers.values()) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      const [sx, sy] = this.toScreen([x, y]);
      ctx.beginPath();
      ctx.arc(sx, sy, 6, 0, 2 * Math.PI);
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ff5fa2";
      ctx.stroke();
      if (label) {
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillStyle = "#ff5fa2";
        ctx.textBaseline = "top";
        ctx.fillText(label, sx + 9, sy + 4);
      }
    }
  }

  /** Keep where the user is (after they stop moving) so the viewer reopens there. */
  rememberView(state) {
    clearTimeout(this.rememberTimer);
    this.rememberTimer = setTimeout(() => saveView(this.storage, this.studyUid, state), REMEMBER_AFTER_MS);
  }

  setSaveState(text, kind = "") {
    const el = this.root.querySelector("[data-save-state]");
    if (!el) return;
    el.textContent = text || "";
    el.dataset.kind = kind;
    el.hidden = !text;
  }

  // ---- cine -----------------------------------------------------------------------------------

  setFrameRate(fps) {
    this.cine.fps = Math.max(1, Math.min(120, Number(fps) || 15));
    const input = this.root.querySelector("[data-fps]");
    if (input && Number(input.value) !== this.cine.fps) input.value = String(Math.round(this.cine.fps));
  }

  toggleCine() {
    if (this.cine.playing) this.stopCine();
    else this.startCine();
  }

  startCine() {
    if (!this.series || this.series.stack.length < 2) return;
    this.cine.playing = true;
    this.cine.last = performance.now();
    this.root.querySelector('[data-action="cine"]')?.setAttribute("aria-pressed", "true");
    this.requestRender(false);
  }

  stopCine() {
    this.cine.playing = false;
    this.root.querySelector('[data-action="cine"]')?.setAttribute("aria-pressed", "false");
  }

  advanceCine(time) {
    if (!this.cine.playing || !this.series) return;
    const interval = 1000 / this.cine.fps;
    if (time - this.cine.last < interval) return;
    const n = this.series.stack.length;
    const next = (this.index + 1) % n;
    const ready = this.cache.has(this.frameKey(this.series.stack[next]));
    // Wait for the next frame to arrive, but not forever on a slow link.
    if (!ready && time - this.cine.last < 1000) return;
    this.cine.last = time - ((time - this.cine.last) % interval);
    this.direction = 1;
    this.index = next;
    this.lastStepAt = time;
    this.updateSlider();
    this.imageKey = "";
    this.viewChanged = true;
    this.schedulePrefetch();
  }

  // ---- annotations ----------------------------------------------------------------------------

  toolHost() {
    return {
      annotationsHere: () => {
        const item = this.current();
        if (!item) return [];
        return [...this.annotations.values()].filter(
          (a) => a.tool !== "key_image" && a.sop_instance_uid === item.info.sopInstanceUid && (a.frame || 1) === item.frame,
        );
      },
      currentImage: () => {
        const item = this.current();
        if (!item) return null;
        const shown = this.shown;
        const same = shown && shown.info.sopInstanceUid === item.info.sopInstanceUid && shown.frame === item.frame;
        const entry = same ? shown : null;
        return {
          sop: item.info.sopInstanceUid,
          frame: item.frame,
          measure: {
            pixels: entry ? entry.pixels || null : null,
            width: item.info.columns,
            height: item.info.rows,
            slope: item.info.slope,
            intercept: item.info.intercept,
            spacing: item.info.spacing,
            unit: item.info.unit,
          },
        };
      },
      toImage: (p) => this.toImage(p),
      toScreen: (p) => this.toScreen(p),
      commit: (action, annotation) => this.commitAnnotation(action, annotation),
      requestRender: () => this.requestRender(false),
      promptLabel: (text) => window.prompt("Label", text),
      mayEdit: (annotation) => this.mayEdit(annotation),
    };
  }

  commitAnnotation(action, annotation) {
    if (action === "deleted") this.annotations.delete(annotation.id);
    else this.annotations.set(annotation.id, annotation);
    this.requestRender(false);
    this.scheduleList();
    this.emit("annotation:change", { action, annotation: cloneAnnotation(annotation) });
  }

  setAnnotations(list) {
    this.tools.cancel();
    this.annotations.clear();
    for (const a of list || []) this.annotations.set(a.id, cloneAnnotation(a));
    this.requestRender(false);
    if (!this.annotationsInUse) {
      this.annotationsInUse = true;
      const button = this.root.querySelector('[data-action="list"]:not(.viewer-list-close)');
      if (button) button.hidden = false;
    }
    this.scheduleList();
  }

  getAnnotations() {
    return [...this.annotations.values()].map(cloneAnnotation);
  }

  upsertAnnotation(annotation) {
    if (this.tools.drag && this.tools.drag.annotation.id === annotation.id) return;
    this.annotations.set(annotation.id, cloneAnnotation(annotation));
    this.requestRender(false);
    this.scheduleList();
  }

  removeAnnotation(id) {
    if (this.tools.selectedId === id) this.tools.selectedId = null;
    this.annotations.delete(id);
    this.requestRender(false);
    this.scheduleList();
  }

  /** Which annotations the user may change (others' are shown, not editable): fn(annotation) -> bool. */
  setEditRule(fn) {
    this.mayEdit = typeof fn === "function" ? fn : () => true;
    if (this.tools.selectedId && !this.mayEdit(this.annotations.get(this.tools.selectedId) || {})) this.tools.select(null);
  }

  /** Turn the drawing tools off (or back on); `note` says why, in place of the tools. */
  setReadOnly(on, note = "") {
    this.readOnly = Boolean(on);
    this.root.classList.toggle("viewer-read-only", this.readOnly);
    this.root.dataset.readOnly = String(this.readOnly);
    if (this.readOnly) {
      this.tools.cancel();
      this.tools.select(null);
      if (EDIT_TOOLS.has(this.tool)) this.setTool(this.coarseDefault ? "scroll" : "wl");
    }
    let el = this.root.querySelector("[data-drawing-note]");
    if (!el && note) {
      el = document.createElement("p");
      el.className = "viewer-note";
      el.dataset.drawingNote = "";
      this.root.querySelector(".viewer-toolbar")?.after(el);
    }
    if (el) {
      el.textContent = note;
      el.hidden = !note;
    }
    this.requestRender(false);
  }

  // ---- the list of annotations and key images -------------------------------------------------

  /** Where an annotation's image sits, when its series has been opened: for the list. */
  locate(annotation) {
    const seriesUid = this.instanceSeries.get(annotation.sop_instance_uid);
    const place = seriesUid && this.seriesPlaces.get(seriesUid);
    if (!place) return null;
    const index = place.positions.get(`${annotation.sop_instance_uid}:${annotation.frame || 1}`);
    if (index === undefined) return null;
    const seriesOrder = this.seriesList.findIndex((s) => s.uid === seriesUid);
    return { series: place.label, seriesOrder, index, total: place.total };
  }

  scheduleList() {
    if (!this.annotationsInUse || this.listPending) return;
    this.listPending = true;
    requestAnimationFrame(() => {
      this.listPending = false;
      this.renderList();
    });
  }

  renderList() {
    const count = this.annotations.size;
    const countEl = this.root.querySelector("[data-list-count]");
    if (countEl) countEl.textContent = count ? `(${count})` : "";
    const panel = this.root.querySelector("[data-list]");
    if (!panel || !this.listOpen) return;
    const item = this.current();
    this.listIndex = `${this.series && this.series.uid}:${this.index}`;
    const rows = listEntries([...this.annotations.values()], (a) => this.locate(a));
    const items = rows.map((row) => {
      const li = document.createElement("li");
      li.className = `viewer-list-${row.kind}`;
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.jump = row.id;
      const a = this.annotations.get(row.id);
      const here = item && a && a.sop_instance_uid === item.info.sopInstanceUid && (a.frame || 1) === item.frame;
      if (here) button.setAttribute("aria-current", "true");
      const title = document.createElement("strong");
      title.textContent = row.kind === "key" ? `★ ${row.title}` : row.title;
      button.append(title);
      for (const text of [row.where, row.detail]) {
        if (!text) continue;
        const span = document.createElement("span");
        span.textContent = text;
        button.append(span);
      }
      li.append(button);
      return li;
    });
    panel.querySelector("[data-list-items]")?.replaceChildren(...items);
    const empty = panel.querySelector("[data-list-empty]");
    if (empty) empty.hidden = rows.length > 0;
  }

  toggleList(open = !this.listOpen) {
    if (!this.annotationsInUse) return;
    this.listOpen = Boolean(open);
    const panel = this.root.querySelector("[data-list]");
    if (panel) panel.hidden = !this.listOpen;
    this.root.classList.toggle("viewer-list-open", this.listOpen);
    for (const button of this.root.querySelectorAll('[data-action="list"]')) {
      button.setAttribute("aria-expanded", String(this.listOpen));
    }
    if (this.listOpen) this.renderList();
  }

  /** The series holding an instance: from the series opened so far, else asked of QIDO-RS. */
  async seriesOf(sopInstanceUid) {
    const known = this.instanceSeries.get(sopInstanceUid);
    if (known) return known;
    try {
      const seriesUid = await this.client.seriesOfInstance(this.studyUid, sopInstanceUid);
      if (seriesUid) this.instanceSeries.set(sopInstanceUid, seriesUid);
      return seriesUid;
    } catch (error) {
      console.warn("could not find the series of an annotated image", error);
      return null;
    }
  }

  /** Show the image an annotation (or key image) is on, and select it. True when shown. */
  async jumpTo(id) {
    const annotation = this.annotations.get(id);
    if (!annotation) return false;
    const seriesUid = await this.seriesOf(annotation.sop_instance_uid);
    if (!seriesUid || !this.seriesList.some((s) => s.uid === seriesUid)) {
      this.flashStatus("That image is not in this study's image series.");
      return false;
    }
    if (!this.series || this.series.uid !== seriesUid) {
      if (!(await this.openSeries(seriesUid))) return false;
    }
    const index = this.seriesPlaces.get(seriesUid)?.positions.get(`${annotation.sop_instance_uid}:${annotation.frame || 1}`);
    if (index === undefined) {
      this.flashStatus("That image is not in this series any more.");
      return false;
    }
    this.stopCine();
    this.setIndex(index);
    this.requestRender(false, true);
    if (annotation.tool !== "key_image") this.tools.select(annotation.id);
    if (matches(NARROW)) this.toggleList(false);
    this.scheduleList();
    return true;
  }

  flashStatus(text) {
    this.setStatus(text);
    setTimeout(() => {
      if (this.status === text) this.setStatus("");
    }, 3000);
  }

  // ---- menu (narrow screens) and expanding ----------------------------------------------------

  toggleMenu(open = !this.root.classList.contains("viewer-menu-open")) {
    this.root.classList.toggle("viewer-menu-open", Boolean(open));
    this.root.querySelector('[data-action="menu"]')?.setAttribute("aria-expanded", String(Boolean(open)));
  }

  setExpanded(on) {
    const button = this.root.querySelector('[data-action="expand"]');
    if (!button) return;
    this.expanded = Boolean(on);
    this.root.classList.toggle("viewer-expanded", this.expanded);
    document.documentElement.classList.toggle("viewer-expanded-page", this.expanded);
    button.setAttribute("aria-pressed", String(this.expanded));
    button.textContent = this.expanded ? "Back to page" : "Expand";
  }

  keyImageFor(item) {
    for (const a of this.annotations.values()) {
      if (a.tool === "key_image" && a.sop_instance_uid === item.info.sopInstanceUid && (a.frame || 1) === item.frame) {
        return a;
      }
    }
    return null;
  }

  toggleKeyImage() {
    const item = this.current();
    if (!item || this.readOnly) return;
    const existing = this.keyImageFor(item);
    if (existing && !this.mayEdit(existing)) {
      this.flashStatus("Someone else marked this key image; only they can unmark it.");
      return;
    }
    if (existing) this.commitAnnotation("deleted", existing);
    else this.commitAnnotation("created", createAnnotation("key_image", item.info.sopInstanceUid, item.frame, []));
  }

  // ---- tools and actions ----------------------------------------------------------------------

  activeTool(pointerType) {
    if (pointerType === "touch" && this.tool === "wl" && this.coarseDefault) return "scroll";
    return this.tool;
  }

  setTool(tool) {
    if (this.readOnly && EDIT_TOOLS.has(tool)) return;
    this.tools.cancel();
    this.tool = tool;
    let inMenu = null;
    for (const button of this.root.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
      if (button.dataset.tool === tool && button.closest("[data-more]")) inMenu = button;
    }
    // On a phone the menu is closed most of the time: its button names the tool chosen in it.
    const menu = this.root.querySelector('[data-action="menu"]');
    if (menu) menu.textContent = inMenu ? `Tools: ${inMenu.textContent}` : "Tools";
  }

  applyPreset(index) {
    const presets = presetsFor(this.series ? this.series.modality : "");
    if (presets[index]) this.setWindow(presets[index][1], presets[index][2]);
  }

  /** Run a named action (keyboard shortcut or toolbar button); true when handled. */
  perform(action, options = {}) {
    const handlers = {
      next: () => this.step(1),
      previous: () => this.step(-1),
      next10: () => this.step(10),
      previous10: () => this.step(-10),
      first: () => this.setIndex(0),
      last: () => this.setIndex(Number.MAX_SAFE_INTEGER),
      cine: () => this.toggleCine(),
      preset: () => this.applyPreset(options.index),
      defaultWindow: () => {
        const item = this.current();
        if (item) this.setWindow(...Object.values(defaultWindow(item.info, this.shown && this.shown.pixels)));
      },
      invert: () => this.setInvert(!this.invert),
      fit: () => this.fit(),
      reset: () => this.reset(),
      zoomIn: () => this.zoomAround(this.zoom * 1.25, this.viewportCentre()),
      zoomOut: () => this.zoomAround(this.zoom / 1.25, this.viewportCentre()),
      keyImage: () => this.toggleKeyImage(),
      editLabel: () => !this.readOnly && this.tools.editLabel(),
      delete: () => !this.readOnly && this.tools.deleteSelected(),
      cancel: () => {
        const idle = !this.tools.busy && !this.tools.selectedId;
        this.tools.cancel();
        this.tools.select(null);
        if (idle && this.expanded) this.setExpanded(false);
      },
      help: () => this.toggleHelp(),
      list: () => this.toggleList(),
      menu: () => this.toggleMenu(),
      expand: () => this.setExpanded(!this.expanded),
    };
    if (action.startsWith("tool:")) {
      const tool = action.slice(5);
      if (this.readOnly && EDIT_TOOLS.has(tool)) return false;
      this.setTool(tool);
      return true;
    }
    const handler = handlers[action];
    if (!handler) return false;
    handler();
    return true;
  }

  toggleHelp() {
    const dialog = this.root.querySelector("[data-help]");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  // ---- controls -------------------------------------------------------------------------------

  bindControls() {
    this.coarseDefault = this.tool === "scroll";
    this.root.addEventListener("click", (event) => {
      // After a mouse click on a control, keys go back to the image (a keyboard press keeps focus).
      if (event.detail > 0 && event.target.closest("button")) {
        this.root.querySelector("[data-viewport]")?.focus({ preventScroll: true });
      }
      // A choice made in the menu closes it, so the image is in view again.
      if (event.target.closest("[data-more] button")) this.toggleMenu(false);
      const toolButton = event.target.closest("[data-tool]");
      if (toolButton && this.root.contains(toolButton)) {
        this.setTool(toolButton.dataset.tool);
        this.coarseDefault = false;
        return;
      }
      const actionButton = event.target.closest("[data-action]");
      if (actionButton && this.root.contains(actionButton)) {
        const action = actionButton.dataset.action;
        this.perform(action === "key-image" ? "keyImage" : action);
        return;
      }
      const jump = event.target.closest("[data-jump]");
      if (jump && this.root.contains(jump)) {
        this.jumpTo(jump.dataset.jump);
        return;
      }
      const seriesButton = event.target.closest("[data-series]");
      if (seriesButton) this.openSeries(seriesButton.dataset.series);
    });
    const slider = this.root.querySelector("[data-slider]");
    if (slider) slider.addEventListener("input", () => this.setIndex(Number(slider.value) - 1));
    const fps = this.root.querySelector("[data-fps]");
    if (fps) fps.addEventListener("change", () => this.setFrameRate(fps.value));
    const presets = this.root.querySelector("[data-presets]");
    if (presets) {
      presets.addEventListener("change", () => {
        if (presets.value !== "") this.applyPreset(Number(presets.value));
        presets.value = "";
      });
    }
  }

  buildStrip() {
    const strip = this.root.querySelector("[data-series-strip]");
    if (!strip) return;
    strip.replaceChildren();
    for (const s of this.seriesList) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "viewer-series";
      button.dataset.series = s.uid;
      const img = document.createElement("img");
      img.alt = "";
      img.loading = "lazy";
      img.decoding = "async";
      img.dataset.src = this.client.thumbnailUrl(this.studyUid, s.uid);
      img.addEventListener("error", () => img.classList.add("viewer-thumb-missing"), { once: true });
      const label = document.createElement("span");
      label.textContent = [s.modality, s.number !== null ? `#${s.number}` : "", s.description].filter(Boolean).join(" ");
      const count = document.createElement("span");
      count.className = "viewer-series-count";
      count.textContent = s.count !== null ? `${s.count} img` : "";
      button.append(img, label, count);
      strip.append(button);
    }
    strip.hidden = this.seriesList.length === 0;
    // Thumbnails wait for the first image, so they do not compete with it.
    const loadThumbnails = () => {
      for (const img of strip.querySelectorAll("img[data-src]")) {
        img.src = img.dataset.src;
        img.removeAttribute("data-src");
      }
    };
    const off = this.on("first-image", () => {
      off();
      loadThumbnails();
    });
    setTimeout(loadThumbnails, 3000);
  }

  updateStripSelection() {
    for (const button of this.root.querySelectorAll("[data-series]")) {
      button.setAttribute("aria-current", String(Boolean(this.series && button.dataset.series === this.series.uid)));
    }
  }

  updatePresets() {
    const select = this.root.querySelector("[data-presets]");
    if (!select) return;
    const presets = presetsFor(this.series ? this.series.modality : "");
    const options = [new Option("Window presets", "")];
    presets.forEach(([name, c, w], i) => options.push(new Option(`${i + 1} ${name} (${c}/${w})`, String(i))));
    select.replaceChildren(...options);
    select.hidden = presets.length === 0;
  }

  updateSlider() {
    const slider = this.root.querySelector("[data-slider]");
    if (!slider || !this.series) return;
    const n = this.series.stack.length;
    slider.max = String(Math.max(1, n));
    slider.value = String(this.index + 1);
    slider.disabled = n < 2;
    slider.setAttribute("aria-valuetext", `Image ${this.index + 1} of ${n}`);
  }
}
