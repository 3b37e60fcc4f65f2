// Which pixels are marked LOSSY, and how the mark reads.
import assert from "node:assert/strict";
import { test } from "node:test";

import { instanceInfo } from "../dicomweb.js";
import { lossyCompression } from "../lossy.js";

test("lossy transfer syntaxes are marked with their method", () => {
  assert.equal(lossyCompression("1.2.840.10008.1.2.4.50", "").text, "LOSSY · JPEG");
  assert.equal(lossyCompression("1.2.840.10008.1.2.4.81", "").method, "JPEG-LS near-lossless");
});

test("lossless and uncompressed syntaxes are not marked unless the header says lossy", () => {
  for (const syntax of ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", ""]) {
    assert.equal(lossyCompression(syntax, ""), null, syntax);
    assert.equal(lossyCompression(syntax, "00"), null, syntax);
  }
  // Decompressed from JPEG and stored uncompressed: the header still tells.
  const said = lossyCompression("1.2.840.10008.1.2.1", "01", ["ISO_10918_1"], ["9.53"]);
  assert.equal(said.text, "LOSSY · JPEG · 9.5:1");
});

test("JPEG 2000 counts as lossy unless the header says it never was", () => {
  assert.equal(lossyCompression("1.2.840.10008.1.2.4.91", "").text, "LOSSY · JPEG 2000");
  assert.equal(lossyCompression("1.2.840.10008.1.2.4.91", "00"), null);
  assert.equal(lossyCompression("1.2.840.10008.1.2.4.91", "01", ["ISO_15444_1"], ["12"]).text, "LOSSY · JPEG 2000 · 12:1");
});

test("successive compressions multiply their ratios and name each method once", () => {
  const twice = lossyCompression("1.2.840.10008.1.2.4.91", "01", ["ISO_10918_1", "ISO_15444_1"], ["4", "5"]);
  assert.equal(twice.text, "LOSSY · JPEG + JPEG 2000 · 20:1");
});

test("instanceInfo reads the mark from DICOM JSON metadata", () => {
  const info = instanceInfo({
    "00020010": { vr: "UI", Value: ["1.2.840.10008.1.2.4.50"] },
    "00282110": { vr: "CS", Value: ["01"] },
    "00282112": { vr: "DS", Value: [10] },
    "00282114": { vr: "CS", Value: ["ISO_10918_1"] },
  });
  assert.equal(info.lossy.text, "LOSSY · JPEG · 10:1");
  assert.equal(instanceInfo({ "00020010": { vr: "UI", Value: ["1.2.840.10008.1.2.1"] } }).lossy, null);
});

test("the stored syntax comes from AvailableTransferSyntaxUID in WADO-RS metadata", () => {
  const info = instanceInfo({ "00083002": { vr: "UI", Value: ["1.2.840.10008.1.2.4.50"] } });
  assert.equal(info.transferSyntax, "1.2.840.10008.1.2.4.50");
  assert.equal(info.lossy.text, "LOSSY · JPEG");
});
