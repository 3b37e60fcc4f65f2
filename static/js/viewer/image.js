// Grayscale pixels to screen: typed arrays, modality rescale, VOI window through a lookup table.
// Pure functions except drawing into a caller-supplied ImageData.

// Grayscale encodings the browser windows itself; everything else (palette, RGB, YBR, 1- or
// 32-bit) comes as rendered frames from the server.
const RAW_PHOTOMETRIC = {
  MONOCHROME1: { inverted: true },
  MONOCHROME2: { inverted: false },
};
const RAW_BITS = new Set([8, 16]);

/** True when frames of this image can be fetched raw and windowed in the browser. */
export function canRenderRaw(info) {
  return (
    (info.samplesPerPixel || 1) === 1 &&
    Object.hasOwn(RAW_PHOTOMETRIC, info.photometric || "MONOCHROME2") &&
    RAW_BITS.has(info.bitsAllocated)
  );
}

/** MONOCHROME1 shows low values bright: the display is inverted relative to MONOCHROME2. */
export function isInvertedPhotometric(photometric) {
  return Boolean(RAW_PHOTOMETRIC[photometric] && RAW_PHOTOMETRIC[photometric].inverted);
}

/**
 * Stored values of one frame from raw little-endian bytes, as a typed array of the right signedness.
 * Bits above BitsStored are masked off (they may carry overlays) and signed values sign-extended.
 */
export function pixelArray(bytes, info) {
  const { rows, columns } = info;
  const count = rows * columns;
  const signed = info.pixelRepresentation === 1;
  const bitsAllocated = info.bitsAllocated;
  const bitsStored = info.bitsStored || bitsAllocated;
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const needed = count * (bitsAllocated / 8);
  if (u8.byteLength < needed) {
    throw new Error(`Frame has ${u8.byteLength} bytes, expected ${needed}`);
  }
  // Copy into a fresh, aligned buffer: multipart parts start at arbitrary offsets.
  const own = u8.slice(0, needed).buffer;
  let arr;
  if (bitsAllocated === 8) arr = signed ? new Int8Array(own) : new Uint8Array(own);
  else arr = signed ? new Int16Array(own) : new Uint16Array(own);
  if (bitsStored < bitsAllocated) {
    const mask = (1 << bitsStored) - 1;
    const shift = 32 - bitsStored;
    if (signed) {
      for (let i = 0; i < count; i++) arr[i] = ((arr[i] & mask) << shift) >> shift;
    } else {
      for (let i = 0; i < count; i++) arr[i] &= mask;
    }
  }
  return arr;
}

/** Smallest and largest stored value. */
export function minMax(pixels) {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/**
 * DICOM VOI functions (PS3.3 C.11.2.1.2 and C.11.2.1.3): modality value -> 0..255.
 * `fn` is the file's VOI LUT Function: LINEAR (the default), LINEAR_EXACT or SIGMOID.
 */
export function applyWindow(x, center, width, fn = "LINEAR") {
  if (fn === "SIGMOID") {
    return Math.round(255 / (1 + Math.exp((-4 * (x - center)) / width)));
  }
  if (fn === "LINEAR_EXACT") {
    if (x <= center - width / 2) return 0;
    if (x > center + width / 2) return 255;
    return Math.round(((x - center) / width + 0.5) * 255);
  }
  const w = Math.max(1, width);
  const lower = center - 0.5 - (w - 1) / 2;
  const upper = center - 0.5 + (w - 1) / 2;
  if (x <= lower) return 0;
  if (x > upper) return 255;
  return Math.round(((x - (center - 0.5)) / (w - 1) + 0.5) * 255);
}

/** Index offset so that every stored value maps into the lookup table: lut[stored + offset]. */
export function lutOffset(info) {
  if (info.pixelRepresentation !== 1) return 0;
  return info.bitsAllocated === 8 ? 128 : 32768;
}

/**
 * Lookup table from stored value (+ lutOffset) to an opaque RGBA pixel packed as Uint32
 * (little-endian byte order: R, G, B, A), rescale and window applied, optionally inverted.
 */
export function buildLut(info, center, width, invert) {
  const size = info.bitsAllocated === 8 ? 256 : 65536;
  const offset = lutOffset(info);
  const slope = info.slope ?? 1;
  const intercept = info.intercept ?? 0;
  const lut = new Uint32Array(size);
  const w = Math.max(1, width);
  const lower = center - 0.5 - (w - 1) / 2;
  const upper = center - 0.5 + (w - 1) / 2;
  const scale = 255 / (w - 1 || 1);
  const base = center - 0.5;
  const fn = info.voiFunction || "LINEAR";
  for (let i = 0; i < size; i++) {
    const x = (i - offset) * slope + intercept;
    let g;
    if (fn !== "LINEAR") g = applyWindow(x, center, width, fn);
    else if (x <= lower) g = 0;
    else if (x > upper) g = 255;
    else g = Math.round((x - base) * scale + 127.5);
    if (g > 255) g = 255;
    else if (g < 0) g = 0;
    if (invert) g = 255 - g;
    lut[i] = 0xff000000 | (g << 16) | (g << 8) | g;
  }
  return lut;
}

/** Fill `imageData` (same size as the frame) from stored values through `lut`. */
export function renderGray(pixels, lut, offset, imageData) {
  const out = new Uint32Array(imageData.data.buffer);
  const n = pixels.length;
  if (offset === 0) {
    for (let i = 0; i < n; i++) out[i] = lut[pixels[i]];
  } else {
    for (let i = 0; i < n; i++) out[i] = lut[pixels[i] + offset];
  }
  return imageData;
}

/** Window from the header, else one spanning the frame's modality values. */
export function defaultWindow(info, pixels) {
  if (Number.isFinite(info.windowCenter) && Number.isFinite(info.windowWidth) && info.windowWidth > 0) {
    return { center: info.windowCenter, width: info.windowWidth };
  }
  if (!pixels) return { center: 128, width: 256 };
  const { min, max } = minMax(pixels);
  const slope = info.slope ?? 1;
  const intercept = info.intercept ?? 0;
  const a = min * slope + intercept;
  const b = max * slope + intercept;
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return { center: (lo + hi) / 2, width: Math.max(1, hi - lo) };
}

// Window presets per modality: [label, center, width].
export const PRESETS = {
  CT: [
    ["Brain", 40, 80],
    ["Lung", -600, 1500],
    ["Bone", 300, 1500],
    ["Abdomen", 40, 400],
  ],
};

export function presetsFor(modality) {
  return PRESETS[modality] || [];
}
