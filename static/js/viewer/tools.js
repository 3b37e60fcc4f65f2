// Annotation tools: plain JSON annotations, drawing, hit testing, and the create / move / edit
// interactions. Geometry is in image pixel coordinates so it survives zoom, pan and other screens.
//
// An annotation: {id, sop_instance_uid, frame, tool, geometry: {points: [[x, y], ...]}, values, label}
// Tools: length (2 points), angle (3 points: arm end, vertex, arm end), ellipse (2 opposite corners
// of its bounding box), arrow (tail, head), text (1 point), key_image (no geometry: flags the frame).

import { computeValues, describeValues } from "./measure.js";

const HANDLE_RADIUS = 5;
const HIT_TOLERANCE = 7;
const COLOUR = "#ffd84d";
const SELECTED = "#4dd2ff";
const SHADOW = "rgba(0, 0, 0, 0.85)";

/** Tools that draw on the image, with how many points they need. */
export const DRAWING_TOOLS = {
  length: { points: 2, label: "Length" },
  angle: { points: 3, label: "Angle" },
  ellipse: { points: 2, label: "Ellipse ROI" },
  arrow: { points: 2, label: "Arrow" },
  text: { points: 1, label: "Text" },
};

export function newId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function createAnnotation(tool, sopInstanceUid, frame, points, label = "") {
  return {
    id: newId(),
    sop_instance_uid: sopInstanceUid,
    frame,
    tool,
    geometry: tool === "key_image" ? {} : { points: points.map((p) => [p[0], p[1]]) },
    values: {},
    label,
  };
}

/** A deep copy safe to hand to listeners (they may keep or send it). */
export function cloneAnnotation(a) {
  return JSON.parse(JSON.stringify(a));
}

function pointSegmentDistance(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 === 0 ? 0 : ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

/**
 * What a screen point hits on a drawn annotation: {part: "handle", index} | {part: "body"} | null.
 * `toScreen` maps image to screen coordinates; `labelBox` is the last drawn label box, if any.
 */
export function hitTest(annotation, screenPoint, toScreen, labelBox) {
  const pts = (annotation.geometry.points || []).map(toScreen);
  for (let i = 0; i < pts.length; i++) {
    if (Math.hypot(pts[i][0] - screenPoint[0], pts[i][1] - screenPoint[1]) <= HANDLE_RADIUS + 3) {
      return { part: "handle", index: i };
    }
  }
  if (labelBox && inBox(screenPoint, labelBox)) return { part: "body" };
  const tool = annotation.tool;
  if ((tool === "length" || tool === "arrow") && pts.length === 2) {
    if (pointSegmentDistance(screenPoint, pts[0], pts[1]) <= HIT_TOLERANCE) return { part: "body" };
  } else if (tool === "angle" && pts.length === 3) {
    if (
      pointSegmentDistance(screenPoint, pts[0], pts[1]) <= HIT_TOLERANCE ||
      pointSegmentDistance(screenPoint, pts[1], pts[2]) <= HIT_TOLERANCE
    ) {
      return { part: "body" };
    }
  } else if (tool === "ellipse" && pts.length === 2) {
    const cx = (pts[0][0] + pts[1][0]) / 2;
    const cy = (pts[0][1] + pts[1][1]) / 2;
    const rx = Math.abs(pts[1][0] - pts[0][0]) / 2 + HIT_TOLERANCE;
    const ry = Math.abs(pts[1][1] - pts[0][1]) / 2 + HIT_TOLERANCE;
    const dx = (screenPoint[0] - cx) / rx;
    const dy = (screenPoint[1] - cy) / ry;
    if (dx * dx + dy * dy <= 1) return { part: "body" };
  }
  return null;
}

function inBox(p, box) {
  return p[0] >= box.x && p[0] <= box.x + box.w && p[1] >= box.y && p[1] <= box.y + box.h;
}

function stroke(ctx, colour, draw) {
  ctx.lineWidth = 3;
  ctx.strokeStyle = SHADOW;
  ctx.beginPath();
  draw();
  ctx.stroke();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = colour;
  ctx.beginPath();
  draw();
  ctx.stroke();
}

function drawLabel(ctx, lines, at, colour) {
  if (lines.length === 0) return null;
  ctx.font = "13px system-ui, sans-serif";
  ctx.textBaseline = "top";
  const lineHeight = 16;
  const width = Math.max(...lines.map((l) => ctx.measureText(l).width));
  const x = at[0];
  const y = at[1];
  ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
  ctx.fillRect(x - 3, y - 2, width + 6, lines.length * lineHeight + 4);
  ctx.fillStyle = colour;
  lines.forEach((line, i) => ctx.fillText(line, x, y + i * lineHeight));
  return { x: x - 3, y: y - 2, w: width + 6, h: lines.length * lineHeight + 4 };
}

function arrowHead(ctx, from, to) {
  const size = 12;
  const a = Math.atan2(to[1] - from[1], to[0] - from[0]);
  ctx.moveTo(to[0], to[1]);
  ctx.lineTo(to[0] - size * Math.cos(a - 0.45), to[1] - size * Math.sin(a - 0.45));
  ctx.moveTo(to[0], to[1]);
  ctx.lineTo(to[0] - size * Math.cos(a + 0.45), to[1] - size * Math.sin(a + 0.45));
}

/** Draw one annotation in screen space; returns the label box for hit testing. */
export function drawAnnotation(ctx, annotation, toScreen, selected) {
  const colour = selected ? SELECTED : COLOUR;
  const pts = (annotation.geometry.points || []).map(toScreen);
  const lines = describeValues(annotation.tool, annotation.values);
  if (annotation.label) lines.unshift(annotation.label);
  let labelAt = null;
  switch (annotation.tool) {
    case "length":
      if (pts.length < 2) return null;
      stroke(ctx, colour, () => {
        ctx.moveTo(...pts[0]);
        ctx.lineTo(...pts[1]);
      });
      labelAt = [Math.max(pts[0][0], pts[1][0]) + 8, (pts[0][1] + pts[1][1]) / 2 - 8];
      break;
    case "arrow":
      if (pts.length < 2) return null;
      stroke(ctx, colour, () => {
        ctx.moveTo(...pts[0]);
        ctx.lineTo(...pts[1]);
        arrowHead(ctx, pts[0], pts[1]);
      });
      labelAt = [pts[0][0] + 6, pts[0][1] + 6];
      break;
    case "angle":
      if (pts.length < 2) return null;
      stroke(ctx, colour, () => {
        ctx.moveTo(...pts[0]);
        ctx.lineTo(...pts[1]);
        if (pts.length > 2) ctx.lineTo(...pts[2]);
      });
      labelAt = [pts[1][0] + 10, pts[1][1] + 4];
      break;
    case "ellipse": {
      if (pts.length < 2) return null;
      const cx = (pts[0][0] + pts[1][0]) / 2;
      const cy = (pts[0][1] + pts[1][1]) / 2;
      const rx = Math.abs(pts[1][0] - pts[0][0]) / 2;
      const ry = Math.abs(pts[1][1] - pts[0][1]) / 2;
      stroke(ctx, colour, () => ctx.ellipse(cx, cy, rx, ry, 0, 0, 2 * Math.PI));
      labelAt = [cx + rx + 8, cy - ry];
      break;
    }
    case "text":
      if (pts.length < 1) return null;
      stroke(ctx, colour, () => {
        ctx.moveTo(pts[0][0] - 4, pts[0][1]);
        ctx.lineTo(pts[0][0] + 4, pts[0][1]);
        ctx.moveTo(pts[0][0], pts[0][1] - 4);
        ctx.lineTo(pts[0][0], pts[0][1] + 4);
      });
      labelAt = [pts[0][0] + 8, pts[0][1] - 8];
      break;
    default:
      return null;
  }
  if (selected) {
    for (const p of pts) {
      ctx.beginPath();
      ctx.arc(p[0], p[1], HANDLE_RADIUS, 0, 2 * Math.PI);
      ctx.fillStyle = "rgba(0, 0, 0, 0.5)";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = SELECTED;
      ctx.stroke();
    }
  }
  return drawLabel(ctx, lines, labelAt, colour);
}

/**
 * The interactive layer: which annotation is selected, what is being drawn or dragged.
 * The viewer supplies `host` with: annotationsHere(), currentImage() (sop, frame, measure image),
 * toImage(screen), toScreen(image), commit(action, annotation), requestRender(), promptLabel(text),
 * and optionally mayEdit(annotation) (false: shown, never picked, moved or deleted).
 */
export class ToolLayer {
  constructor(host) {
    this.host = host;
    this.selectedId = null;
    this.drawing = null; // {annotation, pointIndex, phase}
    this.drag = null; // {annotation, part, index, start, original}
    this.labelBoxes = new Map();
  }

  get busy() {
    return this.drawing !== null || this.drag !== null;
  }

  /** Annotations of the shown frame, with the one being drawn. */
  visible() {
    const list = this.host.annotationsHere();
    if (this.drawing && !list.includes(this.drawing.annotation)) list.push(this.drawing.annotation);
    return list;
  }

  draw(ctx) {
    this.labelBoxes.clear();
    for (const a of this.visible()) {
      const box = drawAnnotation(ctx, a, this.host.toScreen, a.id === this.selectedId);
      if (box) this.labelBoxes.set(a.id, box);
    }
  }

  /** The topmost annotation under a screen point. */
  pick(screen) {
    const list = this.host.annotationsHere();
    for (let i = list.length - 1; i >= 0; i--) {
      // Others' annotations are shown, not picked: only their author may change them.
      if (this.host.mayEdit && !this.host.mayEdit(list[i])) continue;
      const hit = hitTest(list[i], screen, this.host.toScreen, this.labelBoxes.get(list[i].id));
      if (hit) return { annotation: list[i], ...hit };
    }
    return null;
  }

  select(id) {
    if (this.selectedId !== id) {
      this.selectedId = id;
      this.host.requestRender();
    }
  }

  /** Pointer pressed with `tool` active. Returns true when the press belongs to the tool layer. */
  pointerDown(tool, screen, { editable }) {
    const image = this.host.toImage(screen);
    if (this.drawing && this.drawing.phase === "place") {
      // Angle: the press places the third point; dragging adjusts it until release.
      this.drawing.annotation.geometry.points[2] = image;
      this.drawing.phase = "drag";
      this.host.requestRender();
      return true;
    }
    if (!editable) return false;
    const hit = this.pick(screen);
    if (hit) {
      this.select(hit.annotation.id);
      this.drag = {
        annotation: hit.annotation,
        part: hit.part,
        index: hit.index,
        start: image,
        original: cloneAnnotation(hit.annotation).geometry.points,
        moved: false,
      };
      return true;
    }
    if (tool === "text") {
      const current = this.host.currentImage();
      if (!current) return true;
      const label = this.host.promptLabel("");
      if (label) {
        const a = createAnnotation("text", current.sop, current.frame, [image], label);
        this.host.commit("created", a);
        this.select(a.id);
      }
      return true;
    }
    if (Object.hasOwn(DRAWING_TOOLS, tool)) {
      const current = this.host.currentImage();
      if (!current) return true;
      const a = createAnnotation(tool, current.sop, current.frame, [image, image]);
      this.drawing = { annotation: a, phase: "drag", start: screen };
      this.selectedId = a.id;
      this.host.requestRender();
      return true;
    }
    if (tool === "select") {
      this.select(null);
      return true;
    }
    if (this.selectedId) this.select(null);
    return false;
  }

  pointerMove(screen) {
    const image = this.host.toImage(screen);
    if (this.drawing) {
      const pts = this.drawing.annotation.geometry.points;
      pts[pts.length - 1] = image;
      this.updateValues(this.drawing.annotation);
      this.host.requestRender();
      return true;
    }
    if (this.drag) {
      const { annotation, part, index, start, original } = this.drag;
      const pts = annotation.geometry.points;
      if (part === "handle") {
        pts[index] = image;
      } else {
        const dx = image[0] - start[0];
        const dy = image[1] - start[1];
        original.forEach((p, i) => {
          pts[i] = [p[0] + dx, p[1] + dy];
        });
      }
      this.drag.moved = true;
      this.updateValues(annotation);
      this.host.requestRender();
      return true;
    }
    return false;
  }

  pointerUp(screen) {
    if (this.drawing) {
      const { annotation, start } = this.drawing;
      const tool = annotation.tool;
      if (tool === "angle" && annotation.geometry.points.length === 2) {
        if (Math.hypot(screen[0] - start[0], screen[1] - start[1]) < 4) {
          this.cancel();
          return true;
        }
        // First arm done: the vertex is the release point; the third point follows the pointer.
        annotation.geometry.points.push(this.host.toImage(screen));
        this.drawing.phase = "place";
        this.host.requestRender();
        return true;
      }
      if (tool !== "angle" && Math.hypot(screen[0] - start[0], screen[1] - start[1]) < 4) {
        this.cancel();
        return true;
      }
      this.drawing = null;
      this.updateValues(annotation);
      this.host.commit("created", annotation);
      return true;
    }
    if (this.drag) {
      const { annotation, moved } = this.drag;
      this.drag = null;
      if (moved) this.host.commit("updated", annotation);
      return true;
    }
    return false;
  }

  /** Pointer moved with no button pressed: the third point of an angle follows it. */
  hover(screen) {
    if (this.drawing && this.drawing.phase === "place") {
      this.drawing.annotation.geometry.points[2] = this.host.toImage(screen);
      this.updateValues(this.drawing.annotation);
      this.host.requestRender();
    }
  }

  cancel() {
    if (this.drag) {
      this.drag.annotation.geometry.points = this.drag.original;
      this.updateValues(this.drag.annotation);
      this.drag = null;
    }
    if (this.drawing) {
      if (this.selectedId === this.drawing.annotation.id) this.selectedId = null;
      this.drawing = null;
    }
    this.host.requestRender();
  }

  updateValues(annotation) {
    const current = this.host.currentImage();
    const same = current && current.sop === annotation.sop_instance_uid && current.frame === annotation.frame;
    annotation.values = computeValues(annotation.tool, annotation.geometry, same ? current.measure : null);
  }

  /** Edit the label of the selected annotation (double-click or Enter). */
  editLabel() {
    const a = this.host.annotationsHere().find((x) => x.id === this.selectedId);
    if (!a) return;
    const label = this.host.promptLabel(a.label || "");
    if (label === null) return;
    if (a.tool === "text" && !label) {
      this.deleteSelected();
      return;
    }
    a.label = label;
    this.host.commit("updated", a);
  }

  deleteSelected() {
    const a = this.host.annotationsHere().find((x) => x.id === this.selectedId);
    if (!a) return false;
    this.selectedId = null;
    this.host.commit("deleted", a);
    return true;
  }
}
