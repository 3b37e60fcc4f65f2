// The list of a consult's annotations and key images: what each row says, in which order.
import assert from "node:assert/strict";
import { test } from "node:test";

import { listEntries } from "../annotationlist.js";

const A = [
  { id: "l1", sop_instance_uid: "s2", frame: 1, tool: "length", values: { length: 13.24, unit: "mm" }, label: "", author: { id: 1, name: "Dr Reader" } },
  { id: "k1", sop_instance_uid: "s5", frame: 1, tool: "key_image", values: {}, label: "", author: { id: 1, name: "Dr Reader" } },
  { id: "t1", sop_instance_uid: "s1", frame: 1, tool: "text", values: {}, label: "bleed?" },
  { id: "k0", sop_instance_uid: "zz", frame: 1, tool: "key_image", values: {}, label: "" },
];

const PLACES = { s1: 0, s2: 1, s5: 4 };
const locate = (a) => (a.sop_instance_uid in PLACES ? { series: "CT #2", seriesOrder: 0, index: PLACES[a.sop_instance_uid], total: 5 } : null);

test("key images come first, then the rest in image order; unplaced ones last", () => {
  const rows = listEntries(A, locate);
  assert.deepEqual(
    rows.map((r) => r.id),
    ["k1", "k0", "t1", "l1"],
  );
  assert.deepEqual(
    rows.map((r) => r.kind),
    ["key", "key", "mark", "mark"],
  );
});

test("each row names the tool, its value, the image and who drew it", () => {
  const rows = Object.fromEntries(listEntries(A, locate).map((r) => [r.id, r]));
  assert.match(rows.l1.title, /^Length 13\.2 mm$/);
  assert.equal(rows.l1.where, "CT #2 Im 2 / 5");
  assert.equal(rows.l1.detail, "Dr Reader");
  assert.equal(rows.t1.title, "Text");
  assert.equal(rows.t1.detail, "bleed?");
  assert.equal(rows.k1.title, "Key image");
  assert.equal(rows.k0.where, "");
});

test("an empty list and no locator are fine", () => {
  assert.deepEqual(listEntries([]), []);
  assert.equal(listEntries(A)[0].where, "");
});
