// Text overlay in the four corners of the viewport, and a scale bar from pixel spacing.
// Plain DOM (text is crisper and selectable); the viewer calls update() after each render.

import { formatNumber, scaleBar } from "./measure.js";

function formatDate(da) {
  if (!da || da.length !== 8) return da || "";
  return `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}`;
}

export class Overlay {
  constructor(root) {
    this.root = root;
    this.corners = {};
    for (const name of ["tl", "tr", "bl", "br"]) {
      this.corners[name] = root.querySelector(`[data-overlay="${name}"]`);
    }
    this.lossyBadge = root.querySelector("[data-lossy-badge]");
    this.identityBadge = root.querySelector("[data-identity-badge]");
    this.bar = root.querySelector("[data-scale-bar]");
    this.barLabel = root.querySelector("[data-scale-label]");
    this.last = {};
    this.lastBar = null;
    this.lastLossy = null;
  }

  /** The LOSSY mark over the image whenever the pixels shown passed through lossy compression. */
  setLossy(lossy) {
    const text = lossy ? lossy.text : "";
    if (!this.lossyBadge || text === this.lastLossy) return;
    this.lastLossy = text;
    this.lossyBadge.hidden = !lossy;
    this.lossyBadge.textContent = text;
    this.root.dataset.lossyPixels = lossy ? "true" : "false";
  }

  /** The mark over the image when the study's images name more than one patient (the page's
   * data-identity-warning, from studies.viewer.viewer_context): shown on every image, never dismissed. */
  setIdentityWarning(text) {
    if (!this.identityBadge) return;
    this.identityBadge.hidden = !text;
    this.identityBadge.textContent = text || "";
    this.root.dataset.mixedIdentity = text ? "true" : "false";
  }

  setLines(name, lines) {
    const el = this.corners[name];
    const text = lines.filter(Boolean).join("\n");
    if (el && this.last[name] !== text) {
      el.textContent = text;
      this.last[name] = text;
    }
  }

  /** `m`: {patient, study, series, index, total, frame, frames, window, zoom, spacing, scale, viewportWidth, keyImage, lossy} */
  update(m) {
    this.setLossy(m.lossy || null);
    // Whose images, which study: name; ID, birth date and sex; accession; description and date.
    const born = [m.patientBirthDate ? `b. ${formatDate(m.patientBirthDate)}` : "", m.patientSex || ""].filter(Boolean).join(" ");
    const idLine = [m.patientId ? `ID ${m.patientId}` : "", born].filter(Boolean).join(" · ");
    this.setLines("tl", [
      m.patientName,
      idLine,
      m.accessionNumber ? `Acc ${m.accessionNumber}` : "",
      m.studyDescription,
      formatDate(m.studyDate),
    ]);
    this.setLines("tr", [m.seriesLabel, m.keyImage ? "★ Key image" : "", m.readOnly ? "Read only" : ""]);
    const slice = m.total ? `Im ${m.index + 1} / ${m.total}` : "";
    const frame = m.frames > 1 ? `Fr ${m.frame} / ${m.frames}` : "";
    const windowText = m.window ? `W ${formatNumber(m.window.width, 0)}  L ${formatNumber(m.window.center, 0)}` : "";
    const zoom = m.scale ? `Zoom ${Math.round(m.scale * 100)}%` : "";
    this.setLines("bl", [slice, frame, windowText, zoom, m.inverted ? "Inverted" : "", m.status || ""]);
    this.setLines("br", [m.spacing ? "" : "No pixel spacing: lengths in px"]);
    this.updateScaleBar(m);
  }

  updateScaleBar(m) {
    if (!this.bar) return;
    const bar = m.spacing && m.scale ? scaleBar(m.scale / m.spacing.col, Math.max(40, m.viewportWidth * 0.25)) : null;
    // Touch the DOM only when the bar changes: this runs on every paint while scrolling.
    const key = bar ? `${Math.round(bar.px)}|${bar.label}` : "";
    if (key === this.lastBar) return;
    this.lastBar = key;
    this.bar.hidden = !bar;
    if (this.barLabel) this.barLabel.hidden = !bar;
    if (!bar) return;
    this.bar.style.width = `${Math.round(bar.px)}px`;
    if (this.barLabel) this.barLabel.textContent = bar.label;
  }
}
