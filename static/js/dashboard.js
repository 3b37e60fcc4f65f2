// The dashboard's live part (open consults, overdue and near due) is fetched again every 30
// seconds and swapped in place; a failed fetch leaves the last figures and says so.
const now = document.querySelector("[data-dashboard-now]");
const REFRESH_MS = 30000;

async function refresh() {
  try {
    const response = await fetch("?part=now", { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    now.innerHTML = await response.text();
  } catch (error) {
    const stamp = now.querySelector("[data-dashboard-updated]");
    if (stamp) stamp.textContent = `Could not refresh (${error.message}); showing the last figures.`;
  }
}

if (now) setInterval(refresh, REFRESH_MS);
