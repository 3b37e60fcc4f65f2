// Time-left badges: recount every 30 s from data-due / data-submitted and recolour them
// (ok, warn past 75 % of the window, bad when overdue), so an open page stays true.

const WARNING_FRACTION = 0.75;

function span(seconds) {
  const minutes = Math.floor(Math.abs(seconds) / 60);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const mins = minutes % 60;
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${mins} min`;
  return `${mins} min`;
}

function refresh() {
  const now = Date.now();
  document.querySelectorAll(".badge[data-due]").forEach((badge) => {
    const due = Date.parse(badge.dataset.due);
    const submitted = Date.parse(badge.dataset.submitted);
    if (Number.isNaN(due)) return;
    const left = (due - now) / 1000;
    badge.textContent = left > 0 ? `${span(left)} left` : `overdue by ${span(left)}`;
    let state = "ok";
    if (left <= 0) state = "bad";
    else if (!Number.isNaN(submitted) && (now - submitted) / (due - submitted) >= WARNING_FRACTION) state = "warn";
    badge.classList.remove("ok", "warn", "bad");
    badge.classList.add(state);
    badge.closest("tr")?.classList.toggle("overdue", left <= 0);
  });
}

refresh();
window.setInterval(refresh, 30000);
