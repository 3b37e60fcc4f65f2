// Mouse, wheel, keyboard and touch for the viewer. Pointer Events cover mouse, pen and touch;
// two touching fingers pinch-zoom and pan.
//
// Left drag: the active tool (window/level by default; stack scroll on touch screens).
// Middle drag: pan. Right drag: zoom. Wheel: stack scroll. Ctrl/Cmd + wheel (and trackpad pinch): zoom.

const WHEEL_STEP = 50;

// Key -> viewer action. Shown in the help panel from the same table.
export const SHORTCUTS = [
  [["ArrowDown", "ArrowRight", "j"], "next", "Next image"],
  [["ArrowUp", "ArrowLeft", "k"], "previous", "Previous image"],
  [["PageDown"], "next10", "10 images forward"],
  [["PageUp"], "previous10", "10 images back"],
  [["Home"], "first", "First image"],
  [["End"], "last", "Last image"],
  [[" "], "cine", "Play / stop cine"],
  [["1", "2", "3", "4"], "preset", "Window presets (CT: brain, lung, bone, abdomen)"],
  [["0"], "defaultWindow", "Window from the image"],
  [["i"], "invert", "Invert"],
  [["f"], "fit", "Fit to window"],
  [["r"], "reset", "Reset view"],
  [["+", "="], "zoomIn", "Zoom in"],
  [["-"], "zoomOut", "Zoom out"],
  [["w"], "tool:wl", "Window/level tool"],
  [["p"], "tool:pan", "Pan tool"],
  [["z"], "tool:zoom", "Zoom tool"],
  [["s"], "tool:scroll", "Scroll tool"],
  [["v"], "tool:select", "Select tool", true],
  [["l"], "tool:length", "Length", true],
  [["a"], "tool:angle", "Angle", true],
  [["e"], "tool:ellipse", "Ellipse ROI", true],
  [["o"], "tool:arrow", "Arrow", true],
  [["t"], "tool:text", "Text label", true],
  [["m"], "keyImage", "Flag key image", true],
  [["Enter"], "editLabel", "Edit label of the selected annotation", true],
  [["Delete", "Backspace"], "delete", "Delete the selected annotation", true],
  [["n"], "list", "List of annotations and key images (in a consult)"],
  [["Escape"], "cancel", "Cancel drawing, clear selection, leave the expanded viewer"],
  [["?"], "help", "This help"],
];

const KEYMAP = new Map();
for (const [keys, action] of SHORTCUTS) for (const key of keys) KEYMAP.set(key, action);

/** Action for a keyboard event, or null. Number keys carry their preset index. */
export function actionForKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return null;
  const action = KEYMAP.get(event.key) || KEYMAP.get(event.key.toLowerCase()) || null;
  if (action === "preset") return { action, index: Number(event.key) - 1 };
  return action ? { action } : null;
}

export function bindInput(viewer, canvas, keyTarget) {
  const pointers = new Map();
  let gesture = null; // {kind, ...}
  let wheelAccumulator = 0;

  const local = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  };

  function startPinch() {
    const [a, b] = [...pointers.values()];
    viewer.tools.cancel();
    gesture = {
      kind: "pinch",
      distance: Math.max(1, Math.hypot(a[0] - b[0], a[1] - b[1])),
      mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2],
      zoom: viewer.zoom,
      pan: [...viewer.pan],
    };
  }

  function startDrag(kind, point) {
    gesture = {
      kind,
      start: point,
      last: point,
      window: viewer.window ? { ...viewer.window } : null,
      zoom: viewer.zoom,
      pan: [...viewer.pan],
      index: viewer.index,
    };
  }

  canvas.addEventListener("pointerdown", (event) => {
    keyTarget.focus({ preventScroll: true });
    const point = local(event);
    pointers.set(event.pointerId, point);
    canvas.setPointerCapture(event.pointerId);
    event.preventDefault();
    if (pointers.size === 2) {
      startPinch();
      return;
    }
    if (pointers.size > 2) return;
    if (event.button === 1) return startDrag("pan", point);
    if (event.button === 2) return startDrag("zoom", point);
    const tool = viewer.activeTool(event.pointerType);
    if (viewer.tools.pointerDown(tool, point, { editable: !viewer.readOnly })) {
      gesture = { kind: "tool" };
      return;
    }
    const kind = { wl: "wl", pan: "pan", zoom: "zoom", scroll: "scroll" }[tool] || "wl";
    startDrag(kind, point);
  });

  canvas.addEventListener("pointermove", (event) => {
    const point = local(event);
    viewer.pointerMoved(point);
    if (!pointers.has(event.pointerId)) {
      viewer.tools.hover(point);
      return;
    }
    pointers.set(event.pointerId, point);
    if (!gesture) return;
    if (gesture.kind === "pinch") {
      if (pointers.size < 2) return;
      const [a, b] = [...pointers.values()];
      const distance = Math.max(1, Math.hypot(a[0] - b[0], a[1] - b[1]));
      const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      viewer.zoomAround(gesture.zoom * (distance / gesture.distance), gesture.mid, gesture.zoom, gesture.pan);
      viewer.panByScreen([mid[0] - gesture.mid[0], mid[1] - gesture.mid[1]]);
      return;
    }
    if (gesture.kind === "tool") {
      viewer.tools.pointerMove(point);
      return;
    }
    const dx = point[0] - gesture.start[0];
    const dy = point[1] - gesture.start[1];
    if (gesture.kind === "wl" && gesture.window) {
      // Sensitivity follows the window: a narrow brain window moves finely, a bone window fast.
      const k = Math.max(0.2, gesture.window.width / 300);
      viewer.setWindow(gesture.window.center + dy * k, Math.max(1, gesture.window.width + dx * k));
    } else if (gesture.kind === "pan") {
      viewer.setPan(gesture.pan);
      viewer.panByScreen([dx, dy]);
    } else if (gesture.kind === "zoom") {
      viewer.zoomAround(gesture.zoom * Math.exp(-dy / 150), gesture.start, gesture.zoom, gesture.pan);
    } else if (gesture.kind === "scroll") {
      viewer.setIndex(gesture.index + Math.round(dy / 8));
    }
  });

  function release(event) {
    if (!pointers.has(event.pointerId)) return;
    pointers.delete(event.pointerId);
    if (gesture && gesture.kind === "tool") viewer.tools.pointerUp(local(event));
    if (pointers.size === 0) gesture = null;
    else if (gesture && gesture.kind === "pinch") gesture = null;
  }
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", (event) => {
    if (gesture && gesture.kind === "tool") viewer.tools.cancel();
    gesture = null;
    pointers.delete(event.pointerId);
  });
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("dblclick", (event) => {
    if (viewer.readOnly) return;
    const hit = viewer.tools.pick(local(event));
    if (hit) {
      viewer.tools.select(hit.annotation.id);
      viewer.tools.editLabel();
    }
  });

  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const scale = event.deltaMode === 1 ? 33 : event.deltaMode === 2 ? 400 : 1;
      const delta = event.deltaY * scale;
      if (event.ctrlKey || event.metaKey) {
        viewer.zoomAround(viewer.zoom * Math.exp(-delta * 0.002), local(event));
        return;
      }
      if (Math.abs(delta) >= WHEEL_STEP) {
        wheelAccumulator = 0;
        viewer.step(Math.sign(delta));
        return;
      }
      wheelAccumulator += delta;
      if (Math.abs(wheelAccumulator) >= WHEEL_STEP) {
        viewer.step(Math.sign(wheelAccumulator));
        wheelAccumulator = 0;
      }
    },
    { passive: false },
  );

  // Shortcuts work while focus is in the viewer, or nowhere in particular (the page body), so a
  // chat box or form field elsewhere on the page keeps its keys.
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented) return;
    const target = event.target;
    const inViewer = viewer.root.contains(target);
    const onBody = target === document.body || target === document.documentElement;
    if (!inViewer && !(onBody && document.querySelector("[data-viewer]") === viewer.root)) return;
    if (target !== keyTarget && target.matches && target.matches("input, select, textarea, [contenteditable]")) return;
    if (target.closest && target.closest("dialog")) return;
    // Enter and Space on a toolbar button press that button.
    if ((event.key === "Enter" || event.key === " ") && target.matches && target.matches("button, a, summary")) return;
    const found = actionForKey(event);
    if (!found) return;
    if (viewer.perform(found.action, found)) event.preventDefault();
  });
}
