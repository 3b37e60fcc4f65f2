// A link to a part of a page (#viewer) lands just below the sticky header, however tall the header
// is: its menu wraps onto two lines on a narrower desk or with more entries. The header's height is
// kept in --header-height (scroll-margin-top in the CSS reads it), and a page opened at such a link
// is scrolled there again once the height is known.
const header = document.querySelector("header.topbar");

function measure() {
  if (!header) return;
  document.documentElement.style.setProperty("--header-height", `${Math.ceil(header.getBoundingClientRect().height)}px`);
}

measure();
window.addEventListener("resize", measure);
if (header && location.hash.length > 1) {
  const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target) target.scrollIntoView();
}
