// The annotation tool layer with a fake host: create, move, edit, delete; hit testing; shortcuts.
import assert from "node:assert/strict";
import { test } from "node:test";

import { actionForKey } from "../input.js";
import { createAnnotation, hitTest, ToolLayer } from "../tools.js";

const identity = (p) => [p[0], p[1]];

function host() {
  const annotations = new Map();
  const log = [];
  return {
    annotations,
    log,
    annotationsHere: () => [...annotations.values()],
    currentImage: () => ({ sop: "1.2.3", frame: 1, measure: { spacing: { row: 0.5, col: 0.5 }, pixels: null } }),
    toImage: identity,
    toScreen: identity,
    commit(action, a) {
      if (action === "deleted") annotations.delete(a.id);
      else annotations.set(a.id, a);
      log.push([action, JSON.parse(JSON.stringify(a))]);
    },
    requestRender() {},
    promptLabel: () => "edited",
  };
}

test("annotations are plain JSON with the agreed fields", () => {
  const a = createAnnotation("length", "1.2.3", 2, [[0, 0], [1, 1]]);
  assert.deepEqual(Object.keys(a).sort(), ["frame", "geometry", "id", "label", "sop_instance_uid", "tool", "values"]);
  assert.match(a.id, /^[0-9a-f-]{36}$/);
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
  assert.deepEqual(createAnnotation("key_image", "1.2.3", 1, []).geometry, {});
});

test("a length is drawn by dragging, measured in mm, then moved and deleted", () => {
  const h = host();
  const layer = new ToolLayer(h);
  assert.ok(layer.pointerDown("length", [10, 10], { editable: true }));
  layer.pointerMove([110, 10]);
  layer.pointerUp([110, 10]);
  assert.equal(h.log.length, 1);
  const [action, created] = h.log[0];
  assert.equal(action, "created");
  assert.equal(created.values.length, 50);
  assert.equal(created.values.unit, "mm");
  assert.equal(created.sop_instance_uid, "1.2.3");

  // Grab the middle of the line and move it down by 20 px: same length, new position.
  assert.ok(layer.pointerDown("wl", [60, 11], { editable: true }));
  layer.pointerMove([60, 31]);
  layer.pointerUp([60, 31]);
  const [moved, after] = h.log[1];
  assert.equal(moved, "updated");
  assert.deepEqual(after.geometry.points, [[10, 30], [110, 30]]);
  assert.equal(after.values.length, 50);

  // Drag one handle: the length changes.
  layer.pointerDown("wl", [110, 30], { editable: true });
  layer.pointerMove([210, 30]);
  layer.pointerUp([210, 30]);
  assert.equal(h.log[2][1].values.length, 100);

  layer.editLabel();
  assert.equal(h.log[3][1].label, "edited");
  assert.ok(layer.deleteSelected());
  assert.equal(h.log[4][0], "deleted");
  assert.equal(h.annotations.size, 0);
});

test("a click without a drag draws nothing", () => {
  const h = host();
  const layer = new ToolLayer(h);
  layer.pointerDown("ellipse", [10, 10], { editable: true });
  layer.pointerUp([11, 11]);
  assert.equal(h.log.length, 0);
  assert.equal(layer.busy, false);
});

test("an angle takes a drag for the first arm and a click for the second", () => {
  const h = host();
  const layer = new ToolLayer(h);
  layer.pointerDown("angle", [0, 100], { editable: true });
  layer.pointerMove([100, 100]);
  layer.pointerUp([100, 100]);
  assert.equal(h.log.length, 0);
  layer.hover([100, 0]);
  layer.pointerDown("angle", [100, 0], { editable: true });
  layer.pointerUp([100, 0]);
  assert.equal(h.log.length, 1);
  assert.equal(Math.round(h.log[0][1].values.angle), 90);
  assert.equal(h.log[0][1].geometry.points.length, 3);
});

test("read-only: presses on annotations are not taken and nothing is drawn", () => {
  const h = host();
  const a = createAnnotation("length", "1.2.3", 1, [[0, 0], [100, 0]]);
  h.annotations.set(a.id, a);
  const layer = new ToolLayer(h);
  assert.equal(layer.pointerDown("length", [50, 0], { editable: false }), false);
  assert.equal(layer.pointerDown("wl", [50, 0], { editable: false }), false);
  assert.equal(h.log.length, 0);
});

test("escape during a move puts the annotation back", () => {
  const h = host();
  const a = createAnnotation("arrow", "1.2.3", 1, [[0, 0], [100, 0]]);
  h.annotations.set(a.id, a);
  const layer = new ToolLayer(h);
  layer.pointerDown("select", [50, 0], { editable: true });
  layer.pointerMove([50, 40]);
  layer.cancel();
  assert.deepEqual(a.geometry.points, [[0, 0], [100, 0]]);
  assert.equal(h.log.length, 0);
});

test("hit testing: handles, lines and ellipse interiors", () => {
  const line = createAnnotation("length", "1", 1, [[0, 0], [100, 0]]);
  assert.deepEqual(hitTest(line, [1, 1], identity), { part: "handle", index: 0 });
  assert.deepEqual(hitTest(line, [50, 4], identity), { part: "body" });
  assert.equal(hitTest(line, [50, 30], identity), null);
  const ellipse = createAnnotation("ellipse", "1", 1, [[0, 0], [100, 50]]);
  assert.deepEqual(hitTest(ellipse, [50, 25], identity), { part: "body" });
  assert.equal(hitTest(ellipse, [150, 25], identity), null);
});

test("keyboard shortcuts", () => {
  assert.deepEqual(actionForKey({ key: "ArrowDown" }), { action: "next" });
  assert.deepEqual(actionForKey({ key: "3" }), { action: "preset", index: 2 });
  assert.deepEqual(actionForKey({ key: "L" }), { action: "tool:length" });
  assert.deepEqual(actionForKey({ key: "?" }), { action: "help" });
  assert.equal(actionForKey({ key: "l", ctrlKey: true }), null);
  assert.equal(actionForKey({ key: "q" }), null);
});
