// Whether the pixels shown passed through lossy compression, and how (PS3.3 C.7.6.1.1.5 Lossy
// Image Compression; PS3.5 Annex A transfer syntaxes). The same tables as studies/lossy.py, which
// the PDF and SR exports read (tests/studies/test_lossy.py checks that they agree).

// Transfer syntaxes that are always lossy.
export const LOSSY_SYNTAXES = {
  "1.2.840.10008.1.2.4.50": "JPEG",
  "1.2.840.10008.1.2.4.51": "JPEG",
  "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
  "1.2.840.10008.1.2.4.100": "MPEG-2",
  "1.2.840.10008.1.2.4.100.1": "MPEG-2",
  "1.2.840.10008.1.2.4.101": "MPEG-2",
  "1.2.840.10008.1.2.4.101.1": "MPEG-2",
  "1.2.840.10008.1.2.4.102": "H.264",
  "1.2.840.10008.1.2.4.102.1": "H.264",
  "1.2.840.10008.1.2.4.103": "H.264",
  "1.2.840.10008.1.2.4.103.1": "H.264",
  "1.2.840.10008.1.2.4.104": "H.264",
  "1.2.840.10008.1.2.4.104.1": "H.264",
  "1.2.840.10008.1.2.4.105": "H.264",
  "1.2.840.10008.1.2.4.105.1": "H.264",
  "1.2.840.10008.1.2.4.106": "H.264",
  "1.2.840.10008.1.2.4.106.1": "H.264",
  "1.2.840.10008.1.2.4.107": "HEVC",
  "1.2.840.10008.1.2.4.108": "HEVC",
  "1.2.840.10008.1.2.4.111": "JPEG",
};

// Transfer syntaxes that may be lossy or lossless: lossy unless the header says "00" (never lossy).
export const MAYBE_LOSSY_SYNTAXES = {
  "1.2.840.10008.1.2.4.91": "JPEG 2000",
  "1.2.840.10008.1.2.4.93": "JPEG 2000",
  "1.2.840.10008.1.2.4.203": "HTJ2K",
  "1.2.840.10008.1.2.4.112": "JPEG XL",
};

// LossyImageCompressionMethod (0028,2114) defined terms in words.
export const METHODS = {
  ISO_10918_1: "JPEG",
  ISO_14495_1: "JPEG-LS near-lossless",
  ISO_15444_1: "JPEG 2000",
  ISO_15444_15: "HTJ2K",
  ISO_13818_2: "MPEG-2",
  ISO_14496_10: "H.264",
  ISO_23008_2: "HEVC",
  ISO_18181_1: "JPEG XL",
};

function ratioText(ratios) {
  const numbers = (ratios || []).map(Number).filter((n) => Number.isFinite(n) && n > 0);
  if (!numbers.length) return "";
  // Several values: successive compressions; the overall ratio is their product.
  const overall = numbers.reduce((a, b) => a * b, 1);
  return `${overall >= 10 ? Math.round(overall) : Math.round(overall * 10) / 10}:1`;
}

/**
 * null when the pixels are lossless as far as the header and transfer syntax tell, else
 * {method: "JPEG 2000", ratio: "12:1", text: "LOSSY · JPEG 2000 · 12:1"}.
 * `flag`: LossyImageCompression ("00" or "01"); `methods`, `ratios`: the attributes' values.
 */
export function lossyCompression(transferSyntax, flag, methods = [], ratios = []) {
  const syntax = String(transferSyntax || "").trim();
  const said = String(flag || "").trim();
  const lossy = said === "01" || syntax in LOSSY_SYNTAXES || (syntax in MAYBE_LOSSY_SYNTAXES && said !== "00");
  if (!lossy) return null;
  const named = (methods || []).map((m) => METHODS[String(m).trim()] || String(m).trim()).filter(Boolean);
  const method = named.length ? [...new Set(named)].join(" + ") : LOSSY_SYNTAXES[syntax] || MAYBE_LOSSY_SYNTAXES[syntax] || "";
  const ratio = ratioText(ratios);
  return { method, ratio, text: ["LOSSY", method, ratio].filter(Boolean).join(" · ") };
}
