// Copy buttons: <button data-copy="#field" hidden> copies the field's text (a read-only input or
// textarea, or any element's text) and says "Copied" in the [data-copy-status] beside it. The
// button stays hidden without this script (the field can still be selected by hand). Where the
// Clipboard API is missing or refused (an http:// address other than localhost, an old browser),
// the text is selected and copied the old way, or left selected for the person to copy.

function textOf(target) {
  return "value" in target ? target.value : target.textContent;
}

function selectText(target) {
  if (typeof target.select === "function") {
    target.focus();
    target.select();
    target.setSelectionRange?.(0, textOf(target).length);
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(target);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

async function copy(target) {
  const text = textOf(target);
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // refused (no permission, page not focused): fall back to selecting the text
    }
  }
  selectText(target);
  try {
    return document.execCommand("copy");
  } catch {
    return false;
  }
}

function statusFor(button) {
  return button.parentElement.querySelector("[data-copy-status]");
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  const target = document.querySelector(button.dataset.copy);
  if (!target) continue;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const status = statusFor(button);
    const copied = await copy(target);
    if (status) {
      status.textContent = copied ? "Copied" : "Selected: copy it with your device's Copy command";
      status.classList.toggle("ok", copied);
    }
  });
}
