// Upload page: files, whole folders (picker or drag and drop) and zip archives go to the upload
// API one file per request, so each file shows its own progress and then its result. The results
// are gathered by study: each study the files went to (new, added to, or already stored), its
// counts, the files refused under it, and the buttons to open it or take it further.

const CONCURRENCY = 3;

const root = document.getElementById("upload");
const drop = document.getElementById("upload-drop");
const list = document.getElementById("upload-list");
const summary = document.getElementById("upload-summary");
const studiesBox = document.getElementById("upload-studies");
const nextBox = document.getElementById("upload-next");
const filesDetail = document.getElementById("upload-files-detail");
const apiUrl = root.dataset.apiUrl;
const summaryUrl = root.dataset.summaryUrl;
const openedAt = root.dataset.openedAt;
const then = root.dataset.then;
const maxRequestSize = Number(root.dataset.maxRequestSize);
const csrfToken = root.querySelector("input[name=csrfmiddlewaretoken]").value;

const counts = { stored: 0, already_stored: 0, refused: 0, pending: 0 };
const queue = [];
let active = 0;
let files = 0;

// Study instance UID -> { uid, stored, already_stored, refused: [{name, reason}], info, node }.
// Refused files that name no study are kept under NO_STUDY.
const NO_STUDY = "";
const groups = new Map();
let summaryRequest = 0;

function human(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} ${units[unit]}` : `${value.toFixed(1)} ${units[unit]}`;
}

function showCounts() {
  summary.hidden = false;
  for (const [key, value] of Object.entries(counts)) {
    const node = summary.querySelector(`[data-count="${key}"]`);
    if (node) node.textContent = String(value);
  }
  const done = summary.querySelector(".upload-done");
  done.hidden = counts.pending > 0 || counts.stored + counts.already_stored === 0;
  filesDetail.hidden = false;
  filesDetail.querySelector('[data-count="files"]').textContent = String(files);
  if (counts.pending === 0) refreshStudies();
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function groupFor(uid) {
  let group = groups.get(uid);
  if (!group) {
    group = { uid, stored: 0, already_stored: 0, refused: [], info: null, node: null };
    groups.set(uid, group);
  }
  return group;
}

// One file's result, counted under its study.
function record(entry) {
  const { status } = describe(entry);
  const group = groupFor(entry.study_instance_uid || NO_STUDY);
  if (status === "stored") group.stored += 1;
  else if (status === "already_stored") group.already_stored += 1;
  else group.refused.push({ name: entry.filename, reason: status === "skipped" ? `skipped: ${entry.reason}` : entry.reason });
  renderGroup(group);
}

function kept(group) {
  return group.stored + group.already_stored;
}

// What happened to the study in words: "New study", "Added to an existing study", "Already stored".
function headline(group) {
  if (group.uid === NO_STUDY) return "No study could be read from them";
  if (!kept(group)) return "Not stored";
  if (!group.stored) return "Already stored";
  if (!group.info) return "Stored";
  return group.info.is_new ? "New study" : "Added to an existing study";
}

const STATES = {
  "No study could be read from them": "refused",
  "Not stored": "refused",
  "Already stored": "already_stored",
  Stored: "stored",
  "New study": "new",
  "Added to an existing study": "added",
};

function countsLine(group) {
  const parts = [];
  if (group.stored) parts.push(`${plural(group.stored, "image", "images")} stored`);
  if (group.already_stored) parts.push(`${plural(group.already_stored, "image", "images")} already stored`);
  if (group.refused.length) parts.push(`${plural(group.refused.length, "file", "files")} refused`);
  if (group.info && kept(group)) parts.push(`${plural(group.info.num_instances, "image", "images")} in the study`);
  return parts.join(" · ");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function actionLink(action, extraClass = "") {
  const link = element("a", `button${action.primary ? "" : " secondary"}${extraClass}`, action.label);
  link.href = action.url;
  link.dataset.studyAction = action.name;
  return link;
}

function renderGroup(group) {
  if (!group.node) {
    group.node = element("section", "upload-study");
    group.node.dataset.studyUid = group.uid;
    // Refused files naming no study come last, under every study.
    const loose = groups.get(NO_STUDY);
    if (group.uid !== NO_STUDY && loose && loose.node) studiesBox.insertBefore(group.node, loose.node);
    else studiesBox.append(group.node);
  }
  const node = group.node;
  node.replaceChildren();
  node.dataset.state = STATES[headline(group)];

  const head = element("div", "upload-study-head");
  const title = element("h3", "upload-study-title");
  if (group.uid === NO_STUDY) title.textContent = "Files not stored";
  else title.textContent = group.info ? group.info.description || "Study without description" : "Study";
  head.append(title);
  for (const modality of (group.info && group.info.modalities) || []) head.append(element("span", "badge", modality));
  node.append(head);

  const state = element("p", "upload-study-state");
  state.append(element("strong", "", headline(group)));
  const line = countsLine(group);
  if (line) state.append(document.createTextNode(` · ${line}`));
  node.append(state);
  if (group.info && group.info.patient) node.append(element("p", "muted upload-study-patient", group.info.patient));

  if (group.refused.length) {
    const refused = element("ul", "upload-refused");
    refused.setAttribute("aria-label", "Refused files");
    for (const file of group.refused) {
      const item = element("li");
      item.append(element("span", "upload-name", file.name), element("span", "upload-reason", file.reason));
      refused.append(item);
    }
    node.append(refused);
  }

  if (group.info) {
    const buttons = element("p", "button-group upload-study-actions");
    const open = element("a", "button secondary", "Open");
    open.href = group.info.url;
    open.dataset.studyAction = "open";
    buttons.append(open);
    for (const action of group.info.actions) buttons.append(actionLink(action));
    node.append(buttons);
  }
}

// Once every file is in: ask the server about the studies they went to, then offer the next step.
async function refreshStudies() {
  const uids = [...groups.values()].filter((g) => g.uid !== NO_STUDY && kept(g)).map((g) => g.uid);
  if (!uids.length) return;
  const request = ++summaryRequest;
  const query = new URLSearchParams({ since: openedAt });
  for (const uid of uids) query.append("study", uid);
  let body;
  try {
    const response = await fetch(`${summaryUrl}?${query}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return;
    body = await response.json();
  } catch {
    return; // The per-file results stand; the studies' details are a convenience.
  }
  if (request !== summaryRequest) return;
  for (const info of body.studies) {
    const group = groups.get(info.study_instance_uid);
    if (!group) continue;
    group.info = info;
    renderGroup(group);
  }
  offerNextStep();
}

// Reached from "Upload and ask for a second opinion" (?then=<action>): with one study in, go on to
// that step at once when nothing was refused, else offer it first, above the results.
function offerNextStep() {
  if (!then || counts.pending > 0) return;
  const studies = [...groups.values()].filter((g) => g.uid !== NO_STUDY && kept(g) && g.info);
  if (studies.length !== 1) {
    nextBox.hidden = true;
    return;
  }
  const [study] = studies;
  const action = study.info.actions.find((a) => a.name === then);
  if (!action) return;
  if (counts.refused === 0) {
    nextBox.replaceChildren(element("p", "", `The study is in. Opening “${action.label}”…`));
    nextBox.hidden = false;
    window.location.assign(action.url);
    return;
  }
  const text = element("p");
  text.append("The study is in: ", element("strong", "", study.info.description || "Study without description"), ". Some files were refused (see below).");
  const link = actionLink({ ...action, primary: true }, " upload-next-button");
  nextBox.replaceChildren(text, link);
  nextBox.hidden = false;
  link.focus();
}

function describe(result) {
  if (result.status === "stored") {
    return { status: "stored", text: result.coerced ? `stored (${result.reason})` : "stored" };
  }
  if (result.status === "already_stored") return { status: "already_stored", text: "already stored" };
  if (result.code === "dicomdir") return { status: "skipped", text: `skipped: ${result.reason}` };
  return { status: "refused", text: `refused: ${result.reason}` };
}

function addRow(name, size) {
  const row = document.createElement("li");
  const label = document.createElement("span");
  label.className = "upload-name";
  label.textContent = name;
  label.title = human(size);
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", `Upload progress of ${name}`);
  const result = document.createElement("span");
  result.className = "upload-result";
  result.dataset.status = "waiting";
  result.textContent = "waiting";
  row.append(label, progress, result);
  list.append(row);
  files += 1;
  return { row, progress, result, name };
}

function settle(ui, results) {
  ui.progress.value = 100;
  if (results.length === 1 && !results[0].filename.includes(".zip/")) {
    const { status, text } = describe(results[0]);
    ui.result.dataset.status = status;
    ui.result.textContent = text;
  } else {
    // A zip archive: one line per entry under the archive's row.
    const tally = { stored: 0, already_stored: 0, refused: 0 };
    const entries = document.createElement("ul");
    for (const entry of results) {
      const { status, text } = describe(entry);
      const line = document.createElement("li");
      const name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = entry.filename;
      const outcome = document.createElement("span");
      outcome.className = "upload-result";
      outcome.dataset.status = status;
      outcome.textContent = text;
      line.append(name, outcome);
      entries.append(line);
      tally[entry.status] = (tally[entry.status] || 0) + 1;
    }
    ui.result.dataset.status = tally.stored || tally.already_stored ? "stored" : "refused";
    ui.result.textContent = `${results.length} file(s): ${tally.stored} stored, ${tally.already_stored} already stored, ${tally.refused} refused`;
    ui.row.append(entries);
  }
  for (const entry of results) {
    counts[entry.status] = (counts[entry.status] || 0) + 1;
    record(entry);
  }
}

function fail(ui, message) {
  ui.result.dataset.status = "error";
  ui.result.textContent = `refused: ${message}`;
  counts.refused += 1;
  const group = groupFor(NO_STUDY);
  group.refused.push({ name: ui.name, reason: message });
  renderGroup(group);
}

function send(item) {
  return new Promise((resolve) => {
    const { file, name, ui } = item;
    const form = new FormData();
    form.append("files", file, name);
    // A refused file is a result to show, not a failed request (no 400 in the console for it).
    form.append("per_file", "1");
    const practice = document.getElementById("upload-practice");
    if (practice) {
      form.append("practice", practice.value);
      form.append("remember_practice", "1");
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl);
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    ui.result.textContent = "uploading";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) ui.progress.value = Math.round((event.loaded / event.total) * 99);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (Array.isArray(body.results) && body.results.length) {
        settle(ui, body.results);
      } else {
        fail(ui, body.detail || `the server answered ${xhr.status}`);
      }
      resolve();
    });
    xhr.addEventListener("error", () => {
      fail(ui, "the connection failed before the file was received; try again");
      resolve();
    });
    xhr.addEventListener("abort", () => {
      fail(ui, "the upload was cancelled");
      resolve();
    });
    xhr.send(form);
  });
}

function pump() {
  while (active < CONCURRENCY && queue.length) {
    const item = queue.shift();
    active += 1;
    send(item).then(() => {
      active -= 1;
      counts.pending -= 1;
      showCounts();
      pump();
    });
  }
}

function enqueue(file, name) {
  const ui = addRow(name, file.size);
  counts.pending += 1;
  if (file.size > maxRequestSize) {
    fail(ui, `the file is ${human(file.size)}, over the limit of ${human(maxRequestSize)} per upload`);
    counts.pending -= 1;
    showCounts();
    return;
  }
  queue.push({ file, name, ui });
  showCounts();
  pump();
}

// Folders dropped on the page: walk them with the File and Directory Entries API.
function readAll(reader) {
  return new Promise((resolve, reject) => {
    const entries = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (!batch.length) {
          resolve(entries);
          return;
        }
        entries.push(...batch);
        next();
      }, reject);
    next();
  });
}

async function walk(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    enqueue(file, entry.fullPath.replace(/^\//, ""));
  } else if (entry.isDirectory) {
    for (const child of await readAll(entry.createReader())) {
      await walk(child);
    }
  }
}

async function takeDrop(dataTransfer) {
  const entries = [...dataTransfer.items]
    .filter((item) => item.kind === "file")
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.length && entries.every(Boolean)) {
    for (const entry of entries) await walk(entry);
  } else {
    for (const file of dataTransfer.files) enqueue(file, file.name);
  }
}

drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  drop.classList.add("is-over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("is-over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("is-over");
  takeDrop(event.dataTransfer);
});
// The drop zone is a button too: Enter or Space opens the file picker (keys pressed on the inputs
// inside it are theirs).
drop.addEventListener("keydown", (event) => {
  if (event.target !== drop) return;
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    document.getElementById("upload-files").click();
  }
});

for (const id of ["upload-files", "upload-folder"]) {
  const input = document.getElementById(id);
  input.addEventListener("change", () => {
    for (const file of input.files) enqueue(file, file.webkitRelativePath || file.name);
    input.value = "";
  });
}

// A file dropped beside the drop zone must not make the browser leave the page to open it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  if (!drop.contains(event.target)) {
    event.preventDefault();
    takeDrop(event.dataTransfer);
  }
});
