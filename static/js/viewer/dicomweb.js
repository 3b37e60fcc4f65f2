// DICOMweb client for the viewer: QIDO-RS searches, WADO-RS metadata and frames (multipart),
// rendered and thumbnail URLs. Same-origin fetches carry the session cookie.

import { lossyCompression } from "./lossy.js";

const TAGS = {
  PatientName: "00100010",
  PatientID: "00100020",
  PatientBirthDate: "00100030",
  PatientSex: "00100040",
  AccessionNumber: "00080050",
  StudyDate: "00080020",
  StudyDescription: "00081030",
  Modality: "00080060",
  SeriesInstanceUID: "0020000E",
  SeriesNumber: "00200011",
  SeriesDescription: "0008103E",
  SOPInstanceUID: "00080018",
  SOPClassUID: "00080016",
  InstanceNumber: "00200013",
  NumberOfFrames: "00280008",
  Rows: "00280010",
  Columns: "00280011",
  BitsAllocated: "00280100",
  BitsStored: "00280101",
  PixelRepresentation: "00280103",
  PhotometricInterpretation: "00280004",
  SamplesPerPixel: "00280002",
  RescaleSlope: "00281053",
  RescaleIntercept: "00281052",
  RescaleType: "00281054",
  WindowCenter: "00281050",
  WindowWidth: "00281051",
  VOILUTFunction: "00281056",
  PixelSpacing: "00280030",
  ImagerPixelSpacing: "00181164",
  ImagePositionPatient: "00200032",
  ImageOrientationPatient: "00200037",
  TransferSyntaxUID: "00020010",
  AvailableTransferSyntaxUID: "00083002",
  LossyImageCompression: "00282110",
  LossyImageCompressionRatio: "00282112",
  LossyImageCompressionMethod: "00282114",
  RecommendedDisplayFrameRate: "00082144",
  CineRate: "00180040",
  FrameTime: "00181063",
  NumberOfSeriesRelatedInstances: "00201209",
  SequenceOfUltrasoundRegions: "00186011",
  PhysicalUnitsXDirection: "00186024",
  PhysicalUnitsYDirection: "00186026",
  PhysicalDeltaX: "0018602C",
  PhysicalDeltaY: "0018602E",
};

// PhysicalUnits (PS3.3 C.8.5.5.1.15) we can turn into millimetres: 3 = cm.
const REGION_UNIT_TO_MM = { 3: 10 };

/** [row, column] spacing in mm from the first calibrated ultrasound region, else null. */
function ultrasoundSpacing(dataset) {
  for (const region of values(dataset, "SequenceOfUltrasoundRegions")) {
    const ux = REGION_UNIT_TO_MM[numberOr(region, "PhysicalUnitsXDirection", 0)];
    const uy = REGION_UNIT_TO_MM[numberOr(region, "PhysicalUnitsYDirection", 0)];
    const dx = Math.abs(numberOr(region, "PhysicalDeltaX", 0));
    const dy = Math.abs(numberOr(region, "PhysicalDeltaY", 0));
    if (ux && uy && dx > 0 && dy > 0) return [dy * uy, dx * ux];
  }
  return null;
}

/** All values of an attribute in a DICOM JSON dataset (PS3.18 F.2), [] when absent. */
export function values(dataset, keyword) {
  const tag = TAGS[keyword] || keyword;
  const element = dataset ? dataset[tag] || dataset[tag.toLowerCase()] : null;
  if (!element || !Array.isArray(element.Value)) return [];
  return element.Value;
}

/** First value of an attribute, or `fallback`. Person names come back as their alphabetic form. */
export function value(dataset, keyword, fallback = null) {
  const v = values(dataset, keyword);
  if (v.length === 0 || v[0] === null || v[0] === undefined) return fallback;
  const first = v[0];
  if (typeof first === "object" && first !== null && "Alphabetic" in first) return first.Alphabetic;
  return first;
}

const VOI_FUNCTIONS = new Set(["LINEAR", "LINEAR_EXACT", "SIGMOID"]);

/** The file's VOI LUT Function, LINEAR when absent or unknown. */
function voiFunction(text) {
  const name = String(text || "").trim().toUpperCase();
  return VOI_FUNCTIONS.has(name) ? name : "LINEAR";
}

function numberOr(dataset, keyword, fallback) {
  const v = value(dataset, keyword, null);
  const n = v === null || v === "" ? NaN : Number(v);
  return Number.isFinite(n) ? n : fallback;
}

function numbers(dataset, keyword) {
  const v = values(dataset, keyword)
    .map(Number)
    .filter((n) => Number.isFinite(n));
  return v.length ? v : null;
}

/** What the viewer needs of one instance, from its DICOM JSON metadata. */
export function instanceInfo(dataset) {
  const frameTime = numberOr(dataset, "FrameTime", null);
  const rate =
    numberOr(dataset, "RecommendedDisplayFrameRate", null) ||
    numberOr(dataset, "CineRate", null) ||
    (frameTime ? 1000 / frameTime : null);
  return {
    sopInstanceUid: value(dataset, "SOPInstanceUID", ""),
    sopClassUid: value(dataset, "SOPClassUID", ""),
    seriesInstanceUid: value(dataset, "SeriesInstanceUID", ""),
    instanceNumber: numberOr(dataset, "InstanceNumber", null),
    modality: value(dataset, "Modality", ""),
    rows: numberOr(dataset, "Rows", 0),
    columns: numberOr(dataset, "Columns", 0),
    numberOfFrames: Math.max(1, numberOr(dataset, "NumberOfFrames", 1)),
    bitsAllocated: numberOr(dataset, "BitsAllocated", 16),
    bitsStored: numberOr(dataset, "BitsStored", null),
    pixelRepresentation: numberOr(dataset, "PixelRepresentation", 0),
    photometric: value(dataset, "PhotometricInterpretation", "MONOCHROME2"),
    samplesPerPixel: numberOr(dataset, "SamplesPerPixel", 1),
    slope: numberOr(dataset, "RescaleSlope", 1),
    intercept: numberOr(dataset, "RescaleIntercept", 0),
    rescaleType: value(dataset, "RescaleType", ""),
    windowCenter: numberOr(dataset, "WindowCenter", null),
    windowWidth: numberOr(dataset, "WindowWidth", null),
    voiFunction: voiFunction(value(dataset, "VOILUTFunction", "")),
    pixelSpacing: numbers(dataset, "PixelSpacing"),
    imagerPixelSpacing: numbers(dataset, "ImagerPixelSpacing"),
    ultrasoundSpacing: ultrasoundSpacing(dataset),
    position: numbers(dataset, "ImagePositionPatient"),
    orientation: numbers(dataset, "ImageOrientationPatient"),
    // The stored syntax: metadata names it AvailableTransferSyntaxUID (file meta is not part of it).
    transferSyntax: value(dataset, "AvailableTransferSyntaxUID", "") || value(dataset, "TransferSyntaxUID", ""),
    lossy: lossyCompression(
      value(dataset, "AvailableTransferSyntaxUID", "") || value(dataset, "TransferSyntaxUID", ""),
      value(dataset, "LossyImageCompression", ""),
      values(dataset, "LossyImageCompressionMethod"),
      values(dataset, "LossyImageCompressionRatio"),
    ),
    frameRate: rate && rate > 0 ? rate : null,
    patientName: String(value(dataset, "PatientName", "") || "").replaceAll("^", " ").trim(),
    patientId: value(dataset, "PatientID", ""),
    patientBirthDate: value(dataset, "PatientBirthDate", ""),
    patientSex: value(dataset, "PatientSex", ""),
    accessionNumber: value(dataset, "AccessionNumber", ""),
    studyDate: value(dataset, "StudyDate", ""),
    studyDescription: value(dataset, "StudyDescription", ""),
  };
}

/**
 * Instances in display order: along the slice normal when positions are known (in the direction
 * in which InstanceNumber grows, so the scanner's first image comes first), else by InstanceNumber.
 */
export function sortInstances(infos) {
  const withGeometry = infos.every((i) => i.position && i.orientation && i.orientation.length === 6);
  if (withGeometry && infos.length > 1) {
    const [a, b, c, d, e, f] = infos[0].orientation;
    const normal = [b * f - c * e, c * d - a * f, a * e - b * d];
    const along = (i) => i.position[0] * normal[0] + i.position[1] * normal[1] + i.position[2] * normal[2];
    const keys = new Set(infos.map(along));
    if (keys.size === infos.length) {
      const sorted = [...infos].sort((x, y) => along(x) - along(y));
      const first = sorted[0].instanceNumber;
      const last = sorted[sorted.length - 1].instanceNumber;
      if (first !== null && last !== null && first > last) sorted.reverse();
      return sorted;
    }
  }
  return [...infos].sort((x, y) => (x.instanceNumber ?? 0) - (y.instanceNumber ?? 0));
}

function indexOf(haystack, needle, from) {
  const first = needle[0];
  const last = haystack.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    if (haystack[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** Boundary parameter of a multipart Content-Type header, unquoted, or null. */
export function boundaryOf(contentType) {
  const match = /boundary=(?:"([^"]+)"|([^;,\s]+))/i.exec(contentType || "");
  return match ? match[1] || match[2] : null;
}

/**
 * Parts of a multipart/related body (RFC 2046): [{headers: {lower-case name: value}, body: Uint8Array}].
 * Bodies are views into `buffer`, not copies.
 */
export function parseMultipart(buffer, contentType) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  const boundary = boundaryOf(contentType);
  if (!boundary) throw new Error("multipart response without a boundary");
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const delimiter = enc.encode(`--${boundary}`);
  const headerEnd = enc.encode("\r\n\r\n");
  const parts = [];
  let pos = indexOf(bytes, delimiter, 0);
  while (pos !== -1) {
    let start = pos + delimiter.length;
    if (bytes[start] === 0x2d && bytes[start + 1] === 0x2d) break; // closing delimiter "--"
    if (bytes[start] === 0x0d && bytes[start + 1] === 0x0a) start += 2;
    const headersEnd = indexOf(bytes, headerEnd, start);
    if (headersEnd === -1) break;
    const headers = {};
    for (const line of dec.decode(bytes.subarray(start, headersEnd)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const bodyStart = headersEnd + headerEnd.length;
    const next = indexOf(bytes, delimiter, bodyStart);
    // The CRLF before the next delimiter belongs to the delimiter, not the body.
    let bodyEnd = next === -1 ? bytes.length : next;
    if (next !== -1 && bytes[bodyEnd - 2] === 0x0d && bytes[bodyEnd - 1] === 0x0a) bodyEnd -= 2;
    parts.push({ headers, body: bytes.subarray(bodyStart, bodyEnd) });
    pos = next;
  }
  return parts;
}

export class DicomWebError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const enc = encodeURIComponent;

export class DicomWebClient {
  constructor(root = "/dicomweb") {
    this.root = root.replace(/\/$/, "");
  }

  studyUrl(study) {
    return `${this.root}/studies/${enc(study)}`;
  }

  seriesUrl(study, series) {
    return `${this.studyUrl(study)}/series/${enc(series)}`;
  }

  instanceUrl(study, series, instance) {
    return `${this.seriesUrl(study, series)}/instances/${enc(instance)}`;
  }

  async json(url, signal) {
    const response = await fetch(url, {
      headers: { Accept: "application/dicom+json" },
      credentials: "same-origin",
      signal,
    });
    if (response.status === 204) return [];
    if (!response.ok) throw new DicomWebError(`${response.status} for ${url}`, response.status);
    return response.json();
  }

  searchSeries(study, signal) {
    const fields = ["00080060", "0008103E", "00200011", "00201209", "0020000E"].join(",");
    return this.json(`${this.studyUrl(study)}/series?includefield=${fields}`, signal);
  }

  /** The series UID of one instance of the study (QIDO-RS), or null when there is no such instance. */
  async seriesOfInstance(study, instance, signal) {
    const found = await this.json(
      `${this.studyUrl(study)}/instances?SOPInstanceUID=${enc(instance)}&includefield=0020000E`,
      signal,
    );
    return (found.length && value(found[0], "SeriesInstanceUID", null)) || null;
  }

  seriesMetadata(study, series, signal) {
    return this.json(`${this.seriesUrl(study, series)}/metadata`, signal);
  }

  /** Raw little-endian pixel bytes of one frame (1-based) as a Uint8Array. */
  async frame(study, series, instance, frame, signal) {
    const url = `${this.instanceUrl(study, series, instance)}/frames/${frame}`;
    const response = await fetch(url, {
      headers: { Accept: 'multipart/related; type="application/octet-stream"' },
      credentials: "same-origin",
      signal,
    });
    if (!response.ok) throw new DicomWebError(`${response.status} for ${url}`, response.status);
    const buffer = await response.arrayBuffer();
    const contentType = response.headers.get("Content-Type") || "";
    if (contentType.startsWith("multipart/")) {
      const parts = parseMultipart(buffer, contentType);
      if (parts.length === 0) throw new DicomWebError(`empty multipart answer for ${url}`, response.status);
      return parts[0].body;
    }
    return new Uint8Array(buffer);
  }

  renderedUrl(study, series, instance, frame, window) {
    const query = window ? `?window=${window.center},${window.width}` : "";
    return `${this.instanceUrl(study, series, instance)}/frames/${frame}/rendered${query}`;
  }

  /** A decoded rendered frame as an ImageBitmap. */
  async rendered(study, series, instance, frame, window, signal) {
    const url = this.renderedUrl(study, series, instance, frame, window);
    const response = await fetch(url, { headers: { Accept: "image/png, image/jpeg" }, credentials: "same-origin", signal });
    if (!response.ok) throw new DicomWebError(`${response.status} for ${url}`, response.status);
    return createImageBitmap(await response.blob());
  }

  thumbnailUrl(study, series) {
    return `${this.seriesUrl(study, series)}/thumbnail`;
  }
}

export { TAGS };
