// Measurement maths on image pixel coordinates. Pure functions, no DOM.
//
// Coordinates: (0, 0) is the top-left corner of the first pixel; pixel (i, j) covers
// [i, i + 1) x [j, j + 1), so its centre is (i + 0.5, j + 0.5). x runs along columns, y along rows.
// Spacing follows DICOM PixelSpacing: [row spacing (between rows, along y), column spacing (along x)].

/**
 * Physical spacing of an image: {row, col, unit: "mm", source} or null when unknown. PixelSpacing
 * first, then ImagerPixelSpacing (projection radiographs), then a calibrated ultrasound region.
 */
export function spacingFrom(info) {
  const candidates = [
    ["PixelSpacing", info.pixelSpacing],
    ["ImagerPixelSpacing", info.imagerPixelSpacing],
    ["SequenceOfUltrasoundRegions", info.ultrasoundSpacing],
  ];
  for (const [source, value] of candidates) {
    if (Array.isArray(value) && value.length >= 2) {
      const row = Number(value[0]);
      const col = Number(value[1]);
      if (row > 0 && col > 0 && Number.isFinite(row) && Number.isFinite(col)) {
        return { row, col, unit: "mm", source };
      }
    }
  }
  return null;
}

/** Distance between two points: {value, unit} in mm when spacing is known, else in pixels ("px"). */
export function distance(p1, p2, spacing) {
  const dx = p2[0] - p1[0];
  const dy = p2[1] - p1[1];
  if (spacing) {
    return { value: Math.hypot(dx * spacing.col, dy * spacing.row), unit: "mm" };
  }
  return { value: Math.hypot(dx, dy), unit: "px" };
}

/** Angle at `vertex` between rays to `a` and `b`, in degrees (0..180), in physical space when known. */
export function angle(a, vertex, b, spacing) {
  const sx = spacing ? spacing.col : 1;
  const sy = spacing ? spacing.row : 1;
  const ux = (a[0] - vertex[0]) * sx;
  const uy = (a[1] - vertex[1]) * sy;
  const vx = (b[0] - vertex[0]) * sx;
  const vy = (b[1] - vertex[1]) * sy;
  const nu = Math.hypot(ux, uy);
  const nv = Math.hypot(vx, vy);
  if (nu === 0 || nv === 0) return { value: 0, unit: "°" };
  const cos = Math.min(1, Math.max(-1, (ux * vx + uy * vy) / (nu * nv)));
  return { value: (Math.acos(cos) * 180) / Math.PI, unit: "°" };
}

/** Ellipse given by two opposite corners of its bounding box -> {cx, cy, rx, ry}. */
export function ellipseFromCorners(p1, p2) {
  return {
    cx: (p1[0] + p2[0]) / 2,
    cy: (p1[1] + p2[1]) / 2,
    rx: Math.abs(p2[0] - p1[0]) / 2,
    ry: Math.abs(p2[1] - p1[1]) / 2,
  };
}

/** Area of an ellipse: {value, unit} in mm² with spacing, else px². */
export function ellipseArea(ellipse, spacing) {
  const area = Math.PI * ellipse.rx * ellipse.ry;
  if (spacing) return { value: area * spacing.row * spacing.col, unit: "mm²" };
  return { value: area, unit: "px²" };
}

/**
 * Statistics of the pixels whose centres fall inside the ellipse, in modality units
 * (stored value * slope + intercept, e.g. HU for CT).
 * `pixels` is a typed array of stored values, row-major, `width` x `height`, one sample per pixel.
 * Returns {n, mean, sd, min, max} (sd is the population standard deviation), n = 0 when empty.
 */
export function ellipseStats(pixels, width, height, ellipse, slope = 1, intercept = 0) {
  const { cx, cy, rx, ry } = ellipse;
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  if (rx > 0 && ry > 0) {
    const y0 = Math.max(0, Math.floor(cy - ry));
    const y1 = Math.min(height - 1, Math.ceil(cy + ry));
    const x0 = Math.max(0, Math.floor(cx - rx));
    const x1 = Math.min(width - 1, Math.ceil(cx + rx));
    for (let y = y0; y <= y1; y++) {
      const dy = (y + 0.5 - cy) / ry;
      const row = y * width;
      for (let x = x0; x <= x1; x++) {
        const dx = (x + 0.5 - cx) / rx;
        if (dx * dx + dy * dy > 1) continue;
        const v = pixels[row + x] * slope + intercept;
        n++;
        sum += v;
        sumSq += v * v;
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
  }
  if (n === 0) return { n: 0, mean: null, sd: null, min: null, max: null };
  const mean = sum / n;
  const variance = Math.max(0, sumSq / n - mean * mean);
  return { n, mean, sd: Math.sqrt(variance), min, max };
}

/** Units of modality values: HU for CT, otherwise the RescaleType if given, else none. */
export function modalityUnit(modality, rescaleType) {
  if (modality === "CT") return "HU";
  if (rescaleType && rescaleType !== "US") return rescaleType;
  return "";
}

/** Round to a sensible number of decimals for display. */
export function formatNumber(value, decimals = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toFixed(decimals);
}

/** "12.3 mm", "45 px", "90.0°". */
export function formatMeasure(measure) {
  if (!measure) return "";
  const decimals = measure.unit === "px" || measure.unit === "px²" ? 0 : 1;
  const sep = measure.unit === "°" ? "" : " ";
  return `${formatNumber(measure.value, decimals)}${sep}${measure.unit}`;
}

/**
 * Scale bar for the overlay: the longest "nice" length (1, 2 or 5 x 10^n mm) that fits in
 * `maxScreenPx` at `screenPxPerMm`. Returns {mm, px, label} or null when it cannot be drawn.
 */
export function scaleBar(screenPxPerMm, maxScreenPx) {
  if (!(screenPxPerMm > 0) || !(maxScreenPx > 0)) return null;
  const maxMm = maxScreenPx / screenPxPerMm;
  const exponent = Math.floor(Math.log10(maxMm));
  let best = null;
  for (let e = exponent - 1; e <= exponent; e++) {
    for (const m of [1, 2, 5]) {
      const mm = m * 10 ** e;
      if (mm <= maxMm && (best === null || mm > best)) best = mm;
    }
  }
  if (best === null) return null;
  const label = best >= 10 ? `${best / 10} cm` : `${+best.toPrecision(3)} mm`;
  return { mm: best, px: best * screenPxPerMm, label };
}

/** Values shown for an annotation, computed from its geometry; `image` supplies pixels when known. */
export function computeValues(tool, geometry, image) {
  const spacing = image ? image.spacing : null;
  const pts = geometry.points || [];
  if (tool === "length" && pts.length === 2) {
    const d = distance(pts[0], pts[1], spacing);
    return { length: d.value, unit: d.unit };
  }
  if (tool === "angle" && pts.length === 3) {
    return { angle: angle(pts[0], pts[1], pts[2], spacing).value, unit: "°" };
  }
  if (tool === "ellipse" && pts.length === 2) {
    const ellipse = ellipseFromCorners(pts[0], pts[1]);
    const area = ellipseArea(ellipse, spacing);
    const values = { area: area.value, area_unit: area.unit };
    if (image && image.pixels) {
      const s = ellipseStats(image.pixels, image.width, image.height, ellipse, image.slope, image.intercept);
      Object.assign(values, { mean: s.mean, sd: s.sd, min: s.min, max: s.max, n: s.n, unit: image.unit || "" });
    }
    return values;
  }
  return {};
}

/** Text lines describing an annotation's values. */
export function describeValues(tool, values) {
  if (!values) return [];
  if (tool === "length" && values.length !== undefined) {
    return [formatMeasure({ value: values.length, unit: values.unit })];
  }
  if (tool === "angle" && values.angle !== undefined) return [formatMeasure({ value: values.angle, unit: "°" })];
  if (tool === "ellipse" && values.area !== undefined) {
    const lines = [`Area ${formatMeasure({ value: values.area, unit: values.area_unit })}`];
    if (values.mean !== undefined && values.mean !== null) {
      const u = values.unit ? ` ${values.unit}` : "";
      lines.push(`Mean ${formatNumber(values.mean)}${u}  SD ${formatNumber(values.sd)}`);
      lines.push(`Min ${formatNumber(values.min)}  Max ${formatNumber(values.max)}`);
    }
    return lines;
  }
  return [];
}
