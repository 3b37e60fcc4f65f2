// The consult page's panel of the patient's questions ([data-patient-questions],
// templates/consultations/_patient_questions.html): when the room's chat brings a question from the
// patient, or someone's answer to one, the panel is fetched again so its answer forms are current.

const panel = document.querySelector("[data-patient-questions]");

async function refresh() {
  const response = await fetch(panel.dataset.url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("[data-patient-questions]");
  if (!fresh) return;
  // Keep an answer being typed: only replace the panel when no answer box holds text.
  const typing = [...panel.querySelectorAll("textarea")].some((box) => box.value.trim());
  if (typing) {
    const known = new Set([...panel.querySelectorAll("[data-question]")].map((item) => item.dataset.question));
    const list = panel.querySelector("ol");
    for (const item of fresh.querySelectorAll("[data-question]")) {
      if (!known.has(item.dataset.question)) list.append(document.importNode(item, true));
    }
  } else {
    panel.replaceChildren(...[...fresh.childNodes].map((node) => document.importNode(node, true)));
  }
  panel.hidden = false;
}

if (panel) {
  document.addEventListener("room:message", (event) => {
    const message = event.detail;
    if (message.author.role === "patient" || message.text.startsWith(panel.dataset.answerMark)) refresh();
  });
}
