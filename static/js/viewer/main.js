// Starts a viewer on every element marked data-viewer (templates/viewer/_viewer.html).
// Pages that embed the viewer find it as `element.viewer`, or wait for the "viewer:ready" event
// on the element (detail: {viewer}), then use its on()/applyViewState()/setAnnotations() API.

import { SHORTCUTS } from "./input.js";
import { Viewer } from "./viewer.js";

function fillHelp(root, readOnly) {
  const list = root.querySelector("[data-shortcuts]");
  if (!list || list.childElementCount) return;
  const names = { " ": "Space", ArrowDown: "↓", ArrowUp: "↑", ArrowLeft: "←", ArrowRight: "→" };
  for (const [keys, , description, editing] of SHORTCUTS) {
    if (editing && readOnly) continue;
    const dt = document.createElement("dt");
    keys.forEach((key, i) => {
      if (i) dt.append(" ");
      const kbd = document.createElement("kbd");
      kbd.textContent = names[key] || key;
      dt.append(kbd);
    });
    const dd = document.createElement("dd");
    dd.textContent = description;
    list.append(dt, dd);
  }
}

function start(root) {
  if (root.viewer) return root.viewer;
  const viewer = new Viewer(root);
  root.viewer = viewer;
  fillHelp(root, viewer.readOnly);
  root.dispatchEvent(new CustomEvent("viewer:ready", { detail: { viewer } }));
  viewer.open();
  return viewer;
}

// A study without images shows a sentence in place of the viewer (data-empty): nothing to start.
for (const root of document.querySelectorAll("[data-viewer]:not([data-empty])")) start(root);
