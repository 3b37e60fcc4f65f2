// Study page: polls the study's status.json while thumbnails are being made and redraws each
// instance as it becomes ready, fails or turns out to hold no image, without reloading the page.

const POLL_MS = 3000;
const MAX_POLL_MS = 30000;

const panel = document.querySelector("[data-study-status]");

function setCounts(counts, total) {
  for (const [status, count] of Object.entries({ ...counts, total })) {
    const el = panel.querySelector(`[data-count="${status}"]`);
    if (el) el.textContent = String(count);
  }
}

function element(tag, attrs = {}, text = "") {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  if (text) el.textContent = text;
  return el;
}

function badge(kind, text) {
  return element("span", { class: kind ? `badge ${kind}` : "badge" }, text);
}

// What the image box and the state line show for each status.
const VIEWS = {
  ready: (item) => ({
    image: element("img", { src: item.thumbnail_url, alt: "", width: "128", height: "128" }),
    state: [],
  }),
  pending: () => ({
    image: element("span", { class: "thumb-pending", role: "img", "aria-label": "Being processed" }),
    state: [badge("warn", "Processing")],
  }),
  failed: (item) => ({
    image: element("span", { class: "thumb-failed", role: "img", "aria-label": "Could not render" }),
    state: [
      badge("bad", "Failed"),
      document.createTextNode(" "),
      element("span", { class: "failure-reason", title: item.failure_reason }, item.failure_reason || "No reason recorded"),
    ],
  }),
  no_image: () => ({
    image: element("img", {
      src: panel.dataset.noImageSrc,
      alt: "No image: document or structured data",
      width: "128",
      height: "128",
      class: "thumb-icon",
    }),
    state: [badge("", "No image")],
  }),
};

function redraw(li, item) {
  if (item.status === "ready" && !item.thumbnail_url) return;
  const view = (VIEWS[item.status] || VIEWS.pending)(item);
  li.querySelector(".thumb-image").replaceChildren(view.image);
  li.querySelector(".thumb-state").replaceChildren(...view.state);
  li.className = `thumb is-${item.status}`;
  li.dataset.status = item.status;
}

function apply(data) {
  setCounts(data.counts, data.total);
  let unseen = 0;
  for (const item of data.instances) {
    const li = panel.ownerDocument.querySelector(`[data-instance="${CSS.escape(item.sop_instance_uid)}"]`);
    if (!li) {
      unseen += 1;
    } else if (li.dataset.status !== item.status) {
      redraw(li, item);
    }
  }
  panel.querySelector("[data-new-instances]").hidden = unseen === 0;
  const message = panel.querySelector("[data-status-message]");
  if (data.done) {
    const failed = data.counts.failed || 0;
    message.textContent = failed ? `Processing finished; ${failed} could not be rendered.` : "All images are processed.";
  } else {
    message.textContent = `Thumbnails are being made (${data.counts.pending} left); this page updates by itself.`;
  }
}

async function poll(delay) {
  if (document.hidden) {
    document.addEventListener("visibilitychange", () => poll(delay), { once: true });
    return;
  }
  let next = POLL_MS;
  try {
    const response = await fetch(panel.dataset.statusUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const data = await response.json();
    apply(data);
    if (data.done) return;
  } catch {
    // The server may be restarting or the connection dropped: try again, less often.
    next = Math.min(delay * 2, MAX_POLL_MS);
  }
  window.setTimeout(() => poll(next), next);
}

if (panel && Number(panel.dataset.pending) > 0) {
  window.setTimeout(() => poll(POLL_MS), POLL_MS);
}
