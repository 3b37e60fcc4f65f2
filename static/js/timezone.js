// Tells the portal the browser's time zone (the "tz" cookie) so pages show times in it; the
// server checks the name and ignores what it does not know. A specialist's profile zone wins.
// IANA names ("Europe/Berlin") need no cookie escaping, and the server reads them as they are.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const current = document.cookie.split("; ").find((c) => c.startsWith("tz="));
if (zone && /^[A-Za-z0-9_+\-/]+$/.test(zone) && current !== `tz=${zone}`) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `tz=${zone}; Path=/; Max-Age=31536000; SameSite=Lax${secure}`;
}
