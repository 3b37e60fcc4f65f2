// Measurement maths against synthetic images with known geometry.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  angle,
  computeValues,
  describeValues,
  distance,
  ellipseArea,
  ellipseFromCorners,
  ellipseStats,
  formatMeasure,
  modalityUnit,
  scaleBar,
  spacingFrom,
} from "../measure.js";

const within = (actual, expected, fraction) =>
  assert.ok(
    Math.abs(actual - expected) <= Math.abs(expected) * fraction,
    `${actual} is not within ${fraction * 100}% of ${expected}`,
  );

test("spacing comes from PixelSpacing, then ImagerPixelSpacing, else null", () => {
  assert.deepEqual(spacingFrom({ pixelSpacing: [0.5, 0.7] }), { row: 0.5, col: 0.7, unit: "mm", source: "PixelSpacing" });
  assert.equal(spacingFrom({ imagerPixelSpacing: [0.2, 0.2] }).source, "ImagerPixelSpacing");
  assert.equal(spacingFrom({ pixelSpacing: [0.3, 0.3], imagerPixelSpacing: [0.2, 0.2] }).row, 0.3);
  assert.equal(spacingFrom({ ultrasoundSpacing: [0.3, 0.2] }).source, "SequenceOfUltrasoundRegions");
  assert.equal(spacingFrom({}), null);
  assert.equal(spacingFrom({ pixelSpacing: [0, 0] }), null);
});

test("a 100 mm bar at 0.5 mm spacing measures 100 mm", () => {
  const spacing = spacingFrom({ pixelSpacing: [0.5, 0.5] });
  const d = distance([10, 20], [210, 20], spacing);
  assert.equal(d.unit, "mm");
  within(d.value, 100, 0.01);
});

test("anisotropic spacing: rows along y, columns along x", () => {
  const spacing = { row: 2, col: 0.5, unit: "mm" };
  assert.equal(distance([0, 0], [10, 0], spacing).value, 5);
  assert.equal(distance([0, 0], [0, 10], spacing).value, 20);
});

test("without spacing a length is in pixels and labelled px", () => {
  const d = distance([0, 0], [3, 4], null);
  assert.deepEqual(d, { value: 5, unit: "px" });
  assert.equal(formatMeasure(d), "5 px");
  assert.equal(describeValues("length", computeValues("length", { points: [[0, 0], [3, 4]] }, null))[0], "5 px");
});

test("angles in degrees", () => {
  within(angle([10, 0], [0, 0], [0, 10]).value, 90, 0.001);
  within(angle([10, 0], [0, 0], [10, 10]).value, 45, 0.001);
  within(angle([10, 0], [0, 0], [-10, 0]).value, 180, 0.001);
  assert.equal(angle([0, 0], [0, 0], [1, 1]).value, 0);
  assert.equal(formatMeasure(angle([10, 0], [0, 0], [0, 10])), "90.0°");
});

test("ellipse area in mm² from pixel spacing", () => {
  const e = ellipseFromCorners([40, 30], [20, 10]);
  assert.deepEqual(e, { cx: 30, cy: 20, rx: 10, ry: 10 });
  const a = ellipseArea(e, { row: 0.5, col: 0.5 });
  assert.equal(a.unit, "mm²");
  within(a.value, Math.PI * 25, 1e-9);
  assert.equal(ellipseArea(e, null).unit, "px²");
});

function discImage(size, radius, inside, outside) {
  const pixels = new Int16Array(size * size);
  const c = size / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.hypot(x + 0.5 - c, y + 0.5 - c);
      pixels[y * size + x] = r <= radius ? inside : outside;
    }
  }
  return pixels;
}

test("a disc of 60 HU inside -1000 HU: ROI stats in HU with rescale applied", () => {
  // Stored values: HU = stored * 1 - 1024.
  const size = 128;
  const pixels = discImage(size, 40, 60 + 1024, -1000 + 1024);
  const ellipse = { cx: 64, cy: 64, rx: 30, ry: 30 };
  const s = ellipseStats(pixels, size, size, ellipse, 1, -1024);
  within(s.mean, 60, 0.01);
  assert.equal(s.sd, 0);
  assert.equal(s.min, 60);
  assert.equal(s.max, 60);
  within(s.n, Math.PI * 900, 0.02);
});

test("ROI straddling two values gives their weighted mean and SD", () => {
  const width = 10;
  const pixels = new Uint16Array(width * width);
  for (let i = 0; i < pixels.length; i++) pixels[i] = i % width < 5 ? 100 : 200;
  const s = ellipseStats(pixels, width, width, { cx: 5, cy: 5, rx: 5, ry: 5 }, 2, 0);
  within(s.mean, 300, 0.001);
  within(s.sd, 100, 0.001);
  assert.equal(s.min, 200);
  assert.equal(s.max, 400);
});

test("an empty or off-image ROI has no statistics", () => {
  const pixels = new Uint8Array(16);
  assert.equal(ellipseStats(pixels, 4, 4, { cx: 2, cy: 2, rx: 0, ry: 3 }).n, 0);
  assert.equal(ellipseStats(pixels, 4, 4, { cx: 100, cy: 100, rx: 3, ry: 3 }).mean, null);
});

test("computeValues for an ellipse on a CT image", () => {
  const size = 64;
  const pixels = discImage(size, 20, 1024 + 50, 0);
  const image = { pixels, width: size, height: size, slope: 1, intercept: -1024, spacing: { row: 0.8, col: 0.8 }, unit: "HU" };
  const v = computeValues("ellipse", { points: [[22, 22], [42, 42]] }, image);
  within(v.area, Math.PI * 100 * 0.64, 1e-9);
  assert.equal(v.area_unit, "mm²");
  within(v.mean, 50, 0.01);
  assert.equal(v.unit, "HU");
  const lines = describeValues("ellipse", v);
  assert.match(lines[0], /Area 201\.1 mm²/);
  assert.match(lines[1], /Mean 50\.0 HU/);
});

test("modality units: HU for CT", () => {
  assert.equal(modalityUnit("CT", ""), "HU");
  assert.equal(modalityUnit("MR", ""), "");
  assert.equal(modalityUnit("PT", "BQML"), "BQML");
});

test("scale bar picks a 1-2-5 length that fits", () => {
  // 2 screen px per mm, at most 150 px: 50 mm (100 px).
  assert.deepEqual(scaleBar(2, 150), { mm: 50, px: 100, label: "5 cm" });
  assert.equal(scaleBar(20, 150).label, "5 mm");
  assert.equal(scaleBar(0, 150), null);
});
