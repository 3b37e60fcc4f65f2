// Upload page: files, whole folders (picker or drag and drop) and zip archives go to the upload
// API one file per request, so each file shows its own progress and then its result.

const CONCURRENCY = 3;

const root = document.getElementById("upload");
const drop = document.getElementById("upload-drop");
const list = document.getElementById("upload-list");
const summary = document.getElementById("upload-summary");
const apiUrl = root.dataset.apiUrl;
const maxRequestSize = Number(root.dataset.maxRequestSize);
const csrfToken = root.querySelector("input[name=csrfmiddlewaretoken]").value;

const counts = { stored: 0, already_stored: 0, refused: 0, pending: 0 };
const queue = [];
let active = 0;

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
  return { row, progress, result };
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
  }
}

function fail(ui, message) {
  ui.result.dataset.status = "error";
  ui.result.textContent = `refused: ${message}`;
  counts.refused += 1;
}

function send(item) {
  return new Promise((resolve) => {
    const { file, name, ui } = item;
    const form = new FormData();
    form.append("files", file, name);
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
drop.addEventListener("keydown", (event) => {
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
