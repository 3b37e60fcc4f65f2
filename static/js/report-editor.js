// Report draft autosave: PUT the fields to the API a moment after the specialist stops typing.
// The form still posts normally without JavaScript.

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

  form.addEventListener("input", () => {
    dirty = true;
    if (timer) window.clearTimeout(timer);
    timer = window.setTimeout(save, 1200);
  });

  // Signing sends the current text with the password, so nothing typed is lost.
  const signForm = document.querySelector("[data-sign-form]");
  signForm?.addEventListener("submit", () => {
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
