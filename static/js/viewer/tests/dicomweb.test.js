// Multipart parsing and DICOM JSON reading.
import assert from "node:assert/strict";
import { test } from "node:test";

import { boundaryOf, instanceInfo, parseMultipart, sortInstances, value } from "../dicomweb.js";

function multipart(boundary, bodies) {
  const enc = new TextEncoder();
  const chunks = [];
  for (const body of bodies) {
    chunks.push(enc.encode(`--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\n`), body, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out.buffer;
}

test("boundary from a quoted or bare parameter", () => {
  assert.equal(boundaryOf('multipart/related; type="application/octet-stream"; boundary="abc 1"'), "abc 1");
  assert.equal(boundaryOf("multipart/related; boundary=xyz; type=foo"), "xyz");
  assert.equal(boundaryOf("application/json"), null);
});

test("binary parts keep every byte, including CR LF and dashes inside", () => {
  const first = new Uint8Array([0x0d, 0x0a, 0x2d, 0x2d, 0, 255, 7]);
  const second = new Uint8Array([1, 2, 3]);
  const parts = parseMultipart(multipart("b0und", [first, second]), 'multipart/related; boundary="b0und"');
  assert.equal(parts.length, 2);
  assert.deepEqual([...parts[0].body], [...first]);
  assert.deepEqual([...parts[1].body], [...second]);
  assert.equal(parts[0].headers["content-type"], "application/octet-stream");
});

test("a response without boundary is refused", () => {
  assert.throws(() => parseMultipart(new ArrayBuffer(4), "multipart/related"));
});

test("instance info from DICOM JSON", () => {
  const ds = {
    "00080018": { vr: "UI", Value: ["1.2.3"] },
    "00080060": { vr: "CS", Value: ["CT"] },
    "00100010": { vr: "PN", Value: [{ Alphabetic: "Doe^Jane" }] },
    "00280010": { vr: "US", Value: [512] },
    "00280011": { vr: "US", Value: [256] },
    "00280100": { vr: "US", Value: [16] },
    "00280103": { vr: "US", Value: [1] },
    "00281052": { vr: "DS", Value: ["-1024"] },
    "00281053": { vr: "DS", Value: [1] },
    "00281050": { vr: "DS", Value: [40, 400] },
    "00281051": { vr: "DS", Value: [80, 1500] },
    "00280030": { vr: "DS", Value: [0.5, 0.6] },
    "00280008": { vr: "IS", Value: ["3"] },
  };
  const info = instanceInfo(ds);
  assert.equal(info.sopInstanceUid, "1.2.3");
  assert.equal(info.rows, 512);
  assert.equal(info.columns, 256);
  assert.equal(info.pixelRepresentation, 1);
  assert.equal(info.intercept, -1024);
  assert.equal(info.windowCenter, 40);
  assert.equal(info.windowWidth, 80);
  assert.deepEqual(info.pixelSpacing, [0.5, 0.6]);
  assert.equal(info.imagerPixelSpacing, null);
  assert.equal(info.numberOfFrames, 3);
  assert.equal(info.patientName, "Doe Jane");
  assert.equal(info.photometric, "MONOCHROME2");
  assert.equal(value(ds, "StudyDate", "none"), "none");
  assert.equal(info.voiFunction, "LINEAR");
});

test("the VOI LUT function is read from the header, LINEAR when unknown", () => {
  const info = (text) => instanceInfo({ "00281056": { vr: "CS", Value: [text] } }).voiFunction;
  assert.equal(info("SIGMOID"), "SIGMOID");
  assert.equal(info("linear_exact "), "LINEAR_EXACT");
  assert.equal(info("CUBIC"), "LINEAR");
});

test("instances sort along the slice normal, else by number", () => {
  const orientation = [1, 0, 0, 0, 1, 0];
  const a = { instanceNumber: 1, position: [0, 0, 10], orientation };
  const b = { instanceNumber: 2, position: [0, 0, -5], orientation };
  const c = { instanceNumber: 3, position: [0, 0, 0], orientation };
  // Position order is b (-5), c (0), a (10); InstanceNumber falls along it, so it is reversed.
  assert.deepEqual(sortInstances([a, b, c]).map((i) => i.instanceNumber), [1, 3, 2]);
  const head = [3, 1, 2].map((n) => ({ instanceNumber: n, position: [0, 0, -n], orientation }));
  assert.deepEqual(sortInstances(head).map((i) => i.instanceNumber), [1, 2, 3]);
  const feet = [3, 1, 2].map((n) => ({ instanceNumber: n, position: [0, 0, n], orientation }));
  assert.deepEqual(sortInstances(feet).map((i) => i.instanceNumber), [1, 2, 3]);
  const d = { instanceNumber: 2 };
  const e = { instanceNumber: 1 };
  assert.deepEqual(sortInstances([d, e]).map((i) => i.instanceNumber), [1, 2]);
});

test("ultrasound regions in cm give a spacing in mm", () => {
  const region = {
    "00186024": { vr: "US", Value: [3] },
    "00186026": { vr: "US", Value: [3] },
    "0018602C": { vr: "FD", Value: [0.02] },
    "0018602E": { vr: "FD", Value: [0.03] },
  };
  const info = instanceInfo({ "00186011": { vr: "SQ", Value: [region] } });
  assert.deepEqual(info.ultrasoundSpacing, [0.3, 0.2]);
  const uncalibrated = instanceInfo({ "00186011": { vr: "SQ", Value: [{ "00186024": { vr: "US", Value: [0] } }] } });
  assert.equal(uncalibrated.ultrasoundSpacing, null);
});
