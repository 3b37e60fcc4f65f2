// Live notifications over /ws/notifications/: keeps the unread count in the navigation and on
// the notifications page current, and adds new items to the list. Reconnects with backoff.

const navLink = () => document.querySelector('.nav a[href="/notifications/"]');

function setUnread(count) {
  const link = navLink();
  if (link) {
    let badge = link.querySelector('[data-nav-count="notifications"]');
    if (!badge && count > 0) {
      badge = document.createElement("span");
      badge.className = "count";
      badge.dataset.navCount = "notifications";
      link.append(" ", badge);
    }
    if (badge) {
      badge.textContent = String(count);
      badge.hidden = count === 0;
    }
  }
  document.querySelectorAll("[data-unread-count]").forEach((el) => {
    el.textContent = String(count);
  });
}

function addToList(notification) {
  const list = document.querySelector("[data-notification-list]");
  if (!list) return;
  list.querySelector("[data-empty]")?.remove();
  const item = document.createElement("li");
  item.className = "unread";
  item.dataset.notificationId = String(notification.id);
  const link = document.createElement("a");
  link.href = `/notifications/${notification.id}/open/`;
  link.textContent = notification.title;
  const badge = document.createElement("span");
  badge.className = "badge warn";
  badge.textContent = "new";
  const small = document.createElement("small");
  small.textContent = notification.body ? ` ${notification.body}` : "";
  item.append(link, " ", badge, document.createElement("br"), small);
  // Unread chat messages of a consult are one notification, updated in place by each new message.
  const existing = list.querySelector(`[data-notification-id="${notification.id}"]`);
  if (existing) existing.replaceWith(item);
  else list.prepend(item);
}

function connect(delay = 1000) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/notifications/`);
  socket.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "notification") {
      addToList(frame.notification);
      setUnread(frame.unread);
    } else if (frame.type === "notification.unread") {
      setUnread(frame.unread);
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4403) return; // signed out: do not retry
    window.setTimeout(() => connect(Math.min(delay * 2, 30000)), delay);
  });
}

connect();
