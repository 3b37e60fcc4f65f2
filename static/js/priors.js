// The priors panel (templates/studies/_priors_panel.html): search a DICOM node, retrieve the
// studies ticked, and show each retrieval's progress, polled from retrievals.json while any runs.
const POLL_MS = 1500;

function text(tag, value, attrs = {}) {
  const node = document.createElement(tag);
  node.textContent = value ?? "";
  for (const [name, v] of Object.entries(attrs)) node.setAttribute(name, v);
  return node;
}

async function send(panel, url, body) {
  const answer = await fetch(url, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": panel.dataset.csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await answer.json(); } catch { data = { detail: `The server answered ${answer.status}.` }; }
  if (!answer.ok) throw new Error(data.detail || `The server answered ${answer.status}.`);
  return data;
}

function say(panel, message, isError = false) {
  const box = panel.querySelector("[data-priors-message]");
  box.textContent = message;
  box.classList.toggle("error", isError);
}

function showRetrievals(panel, rows) {
  const list = panel.querySelector("[data-priors-retrievals]");
  list.replaceChildren();
  if (!rows.length) list.append(text("li", "None yet.", { class: "empty" }));
  for (const r of rows) {
    const item = text("li", `${r.description || r.study_instance_uid} from ${r.node}: ${r.status_text} `, {
      "data-retrieval": r.id, "data-status": r.status,
    });
    const bar = text("progress", `${r.percent}%`, { max: "100", value: String(r.percent) });
    bar.setAttribute("aria-label", `${r.percent}%`);
    item.append(bar);
    const counts = [];
    if (r.completed) counts.push(`${r.completed} received`);
    if (r.remaining) counts.push(`${r.remaining} to come`);
    if (r.failed) counts.push(`${r.failed} failed`);
    if (counts.length) item.append(` ${counts.join(", ")}`);
    if (r.error) item.append(" ", text("span", r.error, { class: "error" }));
    if (r.url) item.append(" ", text("a", "Open", { href: r.url }));
    list.append(item);
  }
  return rows.some((r) => r.active);
}

function poll(panel) {
  if (panel.polling) return;
  panel.polling = true;
  const tick = async () => {
    let active = false;
    try {
      active = showRetrievals(panel, (await send(panel, panel.dataset.retrievalsUrl)).retrievals);
    } catch (error) {
      active = true; // a missed poll (server restarting): try again
    }
    if (active) setTimeout(tick, POLL_MS);
    else panel.polling = false;
  };
  setTimeout(tick, POLL_MS);
}

function showFound(panel, studies) {
  const results = panel.querySelector("[data-priors-results]");
  const body = results.querySelector("tbody");
  body.replaceChildren();
  for (const s of studies) {
    const row = document.createElement("tr");
    const pick = document.createElement("input");
    Object.assign(pick, { type: "checkbox", name: "study_uids", value: s.study_instance_uid, disabled: s.here });
    pick.dataset.description = [s.description || "Study", s.date || ""].join(" ").trim();
    pick.setAttribute("aria-label", `Retrieve ${pick.dataset.description}`);
    const cell = document.createElement("td");
    cell.append(pick);
    row.append(cell, text("td", s.date || "—"), text("td", (s.description || "—") + (s.here ? " (already here)" : "")),
      text("td", (s.modalities || "").replaceAll("\\", ", ")), text("td", s.accession_number || ""),
      text("td", s.instances ?? ""));
    body.append(row);
  }
  results.hidden = !studies.length;
}

function start(panel) {
  const searchForm = panel.querySelector("[data-priors-search]");
  const results = panel.querySelector("[data-priors-results]");
  searchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(searchForm));
    const button = searchForm.querySelector("button[type=submit]");
    button.disabled = true;
    say(panel, "Searching…");
    results.hidden = true;
    try {
      const found = await send(panel, panel.dataset.searchUrl, data);
      showFound(panel, found.studies);
      say(panel, `${found.studies.length} stud${found.studies.length === 1 ? "y" : "ies"} on ${found.node}.`);
    } catch (error) {
      say(panel, error.message, true);
    } finally {
      button.disabled = false;
    }
  });
  results.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = [...results.querySelectorAll("input[name=study_uids]:checked")];
    if (!picked.length) { say(panel, "Tick the studies to retrieve.", true); return; }
    const descriptions = Object.fromEntries(picked.map((p) => [p.value, p.dataset.description]));
    try {
      await send(panel, panel.dataset.retrieveUrl, {
        node: searchForm.elements.node.value, study_uids: picked.map((p) => p.value), descriptions,
      });
      say(panel, `Retrieving ${picked.length} stud${picked.length === 1 ? "y" : "ies"}…`);
      picked.forEach((p) => { p.checked = false; });
      showRetrievals(panel, (await send(panel, panel.dataset.retrievalsUrl)).retrievals);
      poll(panel);
    } catch (error) {
      say(panel, error.message, true);
    }
  });
  if (panel.querySelector("[data-status=queued], [data-status=running]")) poll(panel);
}

document.querySelectorAll("[data-priors]").forEach(start);
