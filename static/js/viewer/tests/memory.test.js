// Where the viewer reopens: the remembered series, image and window per study.
import assert from "node:assert/strict";
import { test } from "node:test";

import { loadView, memoryKey, rememberedPart, saveView } from "../memory.js";

function storage() {
  const map = new Map();
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => map.set(k, String(v)),
    removeItem: (k) => map.delete(k),
  };
}

const STATE = {
  study_uid: "1.2.3",
  series_uid: "1.2.3.4",
  instance_uid: "1.2.3.4.7",
  frame: 2,
  window_center: 40,
  window_width: 400,
  zoom: 3,
  pan: [10, 20],
};

test("series, image, frame and window are kept per study; zoom and pan are not", () => {
  const s = storage();
  assert.equal(saveView(s, "1.2.3", STATE, 1000), true);
  const saved = loadView(s, "1.2.3", 2000);
  assert.deepEqual(saved, { series_uid: "1.2.3.4", instance_uid: "1.2.3.4.7", frame: 2, at: 1000, window_center: 40, window_width: 400 });
  assert.equal(loadView(s, "9.9.9", 2000), null);
  assert.ok(s.map.has(memoryKey("1.2.3")));
});

test("a view without an image, or an unusable window, keeps what it can", () => {
  assert.equal(rememberedPart({ series_uid: "1", instance_uid: null }), null);
  assert.equal(saveView(storage(), "1.2.3", { series_uid: "1" }), false);
  const part = rememberedPart({ series_uid: "1", instance_uid: "2", frame: 0, window_center: null, window_width: 10 }, 5);
  assert.deepEqual(part, { series_uid: "1", instance_uid: "2", frame: 1, at: 5 });
});

test("unreadable, foreign or very old entries are ignored", () => {
  const s = storage();
  s.setItem(memoryKey("a"), "{not json");
  assert.equal(loadView(s, "a"), null);
  s.setItem(memoryKey("b"), JSON.stringify({ series_uid: "1" }));
  assert.equal(loadView(s, "b"), null);
  saveView(s, "c", STATE, 0);
  assert.equal(loadView(s, "c", 91 * 24 * 3600 * 1000), null);
  assert.equal(loadView(null, "c"), null);
});

test("storage that refuses writes (full, disabled) is not an error", () => {
  const s = storage();
  s.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  assert.equal(saveView(s, "1.2.3", STATE), false);
});
