// Where the user left a study: series, image (instance and frame) and window, kept per study in
// localStorage so the viewer reopens there. Zoom and pan are left out on purpose: a different
// screen (or the phone) would show a strange crop.

const PREFIX = "teleconsult:viewer:view:";
const MAX_AGE_MS = 90 * 24 * 3600 * 1000;

export function memoryKey(studyUid) {
  return `${PREFIX}${studyUid}`;
}

/** The part of a view state worth remembering, or null when it names no image. */
export function rememberedPart(state, now = Date.now()) {
  if (!state || !state.series_uid || !state.instance_uid) return null;
  const part = { series_uid: String(state.series_uid), instance_uid: String(state.instance_uid), frame: Number(state.frame) || 1, at: now };
  if (Number.isFinite(state.window_center) && Number.isFinite(state.window_width) && state.window_width > 0) {
    part.window_center = state.window_center;
    part.window_width = state.window_width;
  }
  return part;
}

/** The remembered view of a study, or null (nothing kept, unreadable, or too old). */
export function loadView(storage, studyUid, now = Date.now()) {
  if (!storage || !studyUid) return null;
  let saved;
  try {
    saved = JSON.parse(storage.getItem(memoryKey(studyUid)) || "null");
  } catch {
    return null;
  }
  if (!saved || typeof saved !== "object" || !saved.series_uid || !saved.instance_uid) return null;
  if (Number.isFinite(saved.at) && now - saved.at > MAX_AGE_MS) return null;
  return saved;
}

/** Keep `state` for the study; false when there was nothing to keep or storage refused it. */
export function saveView(storage, studyUid, state, now = Date.now()) {
  const part = rememberedPart(state, now);
  if (!storage || !studyUid || !part) return false;
  try {
    storage.setItem(memoryKey(studyUid), JSON.stringify(part));
    return true;
  } catch {
    return false; // Storage full or disabled: the viewer still works, it just opens at the start.
  }
}
