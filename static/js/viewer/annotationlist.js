// The list of a consult's annotations and key images beside the viewer: what each row says and
// in which order they come. Pure functions; the viewer draws the rows and jumps on a click.

import { describeValues } from "./measure.js";

const TOOL_NAMES = {
  key_image: "Key image",
  length: "Length",
  angle: "Angle",
  ellipse: "Ellipse",
  arrow: "Arrow",
  text: "Text",
};

/**
 * Rows for the list: [{id, kind: "key"|"mark", title, detail, where}]. `locate(annotation)` gives
 * {series, seriesOrder, index, total} when the image's place is known (series label, its place in
 * the strip, 0-based index in the stack), else null.
 * Key images first, then the rest; each group by series and image, then by when it was drawn.
 */
export function listEntries(annotations, locate = () => null) {
  const rows = (annotations || []).map((a, order) => {
    const place = locate(a);
    const kind = a.tool === "key_image" ? "key" : "mark";
    const values = describeValues(a.tool, a.values).join(", ");
    const title = [TOOL_NAMES[a.tool] || a.tool, values].filter(Boolean).join(" ");
    const detail = [a.label, a.author && a.author.name ? a.author.name : ""].filter(Boolean).join(" · ");
    let where = "";
    if (place) where = [place.series, `Im ${place.index + 1}${place.total ? ` / ${place.total}` : ""}`].filter(Boolean).join(" ");
    return { id: a.id, kind, title, detail, where, sort: [kind === "key" ? 0 : 1, place ? place.seriesOrder ?? 0 : 1e9, place ? place.index : 1e9, order] };
  });
  rows.sort((x, y) => {
    for (let i = 0; i < x.sort.length; i++) if (x.sort[i] !== y.sort[i]) return x.sort[i] - y.sort[i];
    return 0;
  });
  return rows.map(({ sort, ...row }) => row);
}
