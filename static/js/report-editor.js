// Report draft autosave: PUT the fields to the API a moment after the specialist stops typing.
// "Insert" puts a measurement's or key image's line into the findings where the caret was (at the
// end if it never was in there). Switching the template over typed text needs "Replace my text".
// Without JavaScript every form still posts (Insert through the save form, which adds the line).

const form = document.querySelector("[data-report-editor]");
if (form) {
  const status = document.querySelector("[data-autosave-status]");
  const fields = ["findings", "impression", "recommendations", "agreement", "patient_summary"];
  let timer = null;
  let dirty = false;

  const values = () => Object.fromEntries(fields.map((name) => [name, form.elements[name]?.value ?? ""]));

  async function save() {
    timer = null;
    dirty = false;
    if (status) status.textContent = "Saving…";
    try {
      const response = await fetch(form.dataset.apiUrl, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf, Accept: "application/json" },
        body: JSON.stringify(values()),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        const at = new Date(body.updated_at || Date.now());
        if (status) status.textContent = `Saved at ${at.toLocaleTimeString()}.`;
      } else if (status) {
        status.textContent = `Not saved: ${body.detail || response.statusText}`;
      }
    } catch {
      dirty = true;
      if (status) status.textContent = "Not saved: offline. Retrying when you type again.";
    }
  }

  const templateSwitch = document.querySelector("[data-template-switch]");
  const replaceChoice = templateSwitch?.querySelector("[data-replace-choice]");
  let edited = templateSwitch?.hasAttribute("data-edited") ?? false;

  form.addEventListener("input", () => {
    dirty = true;
    if (!edited && replaceChoice) {
      edited = true;
      replaceChoice.hidden = false;
      const hint = templateSwitch.querySelector("[data-template-hint]");
      if (hint) {
        hint.textContent =
          "Chosen by the study's modality and body part. The draft was edited: starting over replaces the findings, impression and recommendations.";
      }
    }
    if (timer) window.clearTimeout(timer);
    timer = window.setTimeout(save, 1200);
  });

  templateSwitch?.addEventListener("submit", (event) => {
    const replace = templateSwitch.elements.replace;
    if (edited && !replace?.checked) {
      event.preventDefault();
      if (status) status.textContent = "The draft was edited: tick “Replace my text” to start over from the template.";
      replace?.focus();
      return;
    }
    dirty = false; // the text is replaced on purpose: no "leave the page?" question
  });

  const findings = form.elements.findings;
  let caretPlaced = false;
  for (const type of ["click", "keyup", "focus"]) findings?.addEventListener(type, () => (caretPlaced = true));

  function insertLine(line) {
    const text = findings.value;
    const at = caretPlaced ? findings.selectionEnd : text.length;
    // The line goes on a line of its own: after the line the caret is on.
    const lineEnd = text.indexOf("\n", at);
    const cut = caretPlaced ? (lineEnd === -1 ? text.length : lineEnd) : text.length;
    const before = text.slice(0, cut).replace(/\s+$/, "");
    const after = text.slice(cut);
    findings.value = `${before}${before ? "\n" : ""}${line}${after.startsWith("\n") || !after ? "" : "\n"}${after}`;
    const caret = before.length + (before ? 1 : 0) + line.length;
    findings.setSelectionRange(caret, caret);
    caretPlaced = true;
    findings.dispatchEvent(new Event("input", { bubbles: true }));
  }

  for (const button of document.querySelectorAll("[data-insert-line]")) {
    button.addEventListener("click", (event) => {
      if (!findings) return;
      event.preventDefault();
      insertLine(button.dataset.insertLine);
      if (status) status.textContent = `Added to the findings: ${button.dataset.insertLine}`;
      findings.focus();
    });
  }

  // A form that posts the text itself: no autosave after it (it would reach a signed report) and
  // no "leave the page?" question.
  function settle() {
    if (timer) window.clearTimeout(timer);
    timer = null;
    dirty = false;
  }
  form.addEventListener("submit", settle);

  // Signing sends the current text with the password, so nothing typed is lost.
  const signForm = document.querySelector("[data-sign-form]");
  signForm?.addEventListener("submit", () => {
    settle();
    for (const [name, value] of Object.entries(values())) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      signForm.append(input);
    }
  });

  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });
}
