// Windowing and pixel unpacking.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyWindow,
  buildLut,
  canRenderRaw,
  defaultWindow,
  isInvertedPhotometric,
  lutOffset,
  pixelArray,
  presetsFor,
  renderGray,
} from "../image.js";

const gray = (packed) => packed & 0xff;

test("raw rendering for 8 and 16 bit grayscale only", () => {
  assert.ok(canRenderRaw({ samplesPerPixel: 1, photometric: "MONOCHROME2", bitsAllocated: 16 }));
  assert.ok(canRenderRaw({ samplesPerPixel: 1, photometric: "MONOCHROME1", bitsAllocated: 8 }));
  assert.ok(!canRenderRaw({ samplesPerPixel: 3, photometric: "RGB", bitsAllocated: 8 }));
  assert.ok(!canRenderRaw({ samplesPerPixel: 1, photometric: "PALETTE COLOR", bitsAllocated: 8 }));
  assert.ok(!canRenderRaw({ samplesPerPixel: 1, photometric: "MONOCHROME2", bitsAllocated: 32 }));
  assert.ok(isInvertedPhotometric("MONOCHROME1"));
  assert.ok(!isInvertedPhotometric("MONOCHROME2"));
});

test("signed 16-bit little-endian pixels from an unaligned buffer", () => {
  const bytes = new Uint8Array(1 + 4);
  const view = new DataView(bytes.buffer);
  view.setInt16(1, -1000, true);
  view.setInt16(3, 3000, true);
  const px = pixelArray(bytes.subarray(1), { rows: 1, columns: 2, bitsAllocated: 16, bitsStored: 16, pixelRepresentation: 1 });
  assert.ok(px instanceof Int16Array);
  assert.deepEqual([...px], [-1000, 3000]);
});

test("bits above BitsStored are masked and 12-bit signed values sign-extended", () => {
  const bytes = new Uint8Array(4);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 0xf000 | 0x0123, true); // overlay bits set above 12 stored bits
  view.setUint16(2, 0x0fff, true); // -1 in 12-bit two's complement
  const unsigned = pixelArray(bytes, { rows: 1, columns: 2, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 0 });
  assert.deepEqual([...unsigned], [0x0123, 0x0fff]);
  const signed = pixelArray(bytes, { rows: 1, columns: 2, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1 });
  assert.deepEqual([...signed], [0x0123, -1]);
});

test("a short frame is refused", () => {
  assert.throws(() => pixelArray(new Uint8Array(3), { rows: 2, columns: 2, bitsAllocated: 8 }));
});

test("DICOM linear window", () => {
  assert.equal(applyWindow(-100, 40, 80), 0);
  assert.equal(applyWindow(200, 40, 80), 255);
  assert.equal(applyWindow(40, 40, 80), 129);
  assert.equal(applyWindow(0, 40, 80), 0);
  assert.equal(applyWindow(80, 40, 80), 255);
});

test("the lookup table applies rescale and window to signed CT values", () => {
  const info = { bitsAllocated: 16, pixelRepresentation: 1, slope: 1, intercept: -1024 };
  const lut = buildLut(info, 40, 80, false);
  const off = lutOffset(info);
  assert.equal(off, 32768);
  // stored 1064 -> 40 HU (centre), 0 -> -1024 HU (black), 2000 -> 976 HU (white)
  for (const [stored, hu] of [[1064, 40], [0, -1024], [2000, 976], [1044, 20]]) {
    assert.equal(gray(lut[stored + off]), applyWindow(hu, 40, 80));
  }
  assert.equal(lut[off] >>> 24, 0xff);
});

test("LINEAR_EXACT and SIGMOID window functions", () => {
  assert.equal(applyWindow(0, 40, 80, "LINEAR_EXACT"), 0);
  assert.equal(applyWindow(40, 40, 80, "LINEAR_EXACT"), 128);
  assert.equal(applyWindow(80, 40, 80, "LINEAR_EXACT"), 255);
  // y = 255 / (1 + exp(-4 (x - c) / w)): mid grey at the centre, never quite black or white
  assert.equal(applyWindow(40, 40, 80, "SIGMOID"), 128);
  assert.equal(applyWindow(0, 40, 80, "SIGMOID"), Math.round(255 / (1 + Math.exp(2))));
  assert.ok(applyWindow(-1000, 40, 80, "SIGMOID") === 0 && applyWindow(80, 40, 80, "SIGMOID") < 255);
});

test("the lookup table follows the file's VOI LUT function", () => {
  const info = { bitsAllocated: 8, pixelRepresentation: 0, voiFunction: "SIGMOID" };
  const lut = buildLut(info, 128, 64, false);
  for (const stored of [0, 96, 128, 160, 255]) {
    assert.equal(gray(lut[stored]), applyWindow(stored, 128, 64, "SIGMOID"));
  }
  assert.notEqual(gray(lut[110]), gray(buildLut({ bitsAllocated: 8, pixelRepresentation: 0 }, 128, 64, false)[110]));
});

test("inverting flips the grey levels", () => {
  const info = { bitsAllocated: 8, pixelRepresentation: 0 };
  const lut = buildLut(info, 128, 256, true);
  assert.equal(gray(lut[0]), 255);
  assert.equal(gray(lut[255]), 0);
});

test("renderGray writes RGBA through the table", () => {
  const info = { bitsAllocated: 8, pixelRepresentation: 0 };
  const lut = buildLut(info, 128, 256, false);
  const imageData = { data: new Uint8ClampedArray(8) };
  renderGray(new Uint8Array([0, 255]), lut, 0, imageData);
  assert.deepEqual([...imageData.data], [0, 0, 0, 255, 255, 255, 255, 255]);
});

test("default window from the header, else from the pixel range", () => {
  assert.deepEqual(defaultWindow({ windowCenter: 40, windowWidth: 400 }, null), { center: 40, width: 400 });
  const w = defaultWindow({ slope: 2, intercept: -100 }, new Uint16Array([100, 300]));
  assert.deepEqual(w, { center: 300, width: 400 });
});

test("CT presets", () => {
  const names = presetsFor("CT").map(([name]) => name);
  assert.deepEqual(names, ["Brain", "Lung", "Bone", "Abdomen"]);
  assert.deepEqual(presetsFor("CT")[1], ["Lung", -600, 1500]);
  assert.deepEqual(presetsFor("MR"), []);
});
