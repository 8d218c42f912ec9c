// Compliance pages: a Print button (the CSP forbids inline onclick handlers).
"use strict";

document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
