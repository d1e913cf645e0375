// chirp console: the one script the console loads (no inline scripts;
// the page works without it). It renders the template editor's preview
// as the operator types, through the server's own renderer.
"use strict";

(function () {
  const form = document.getElementById("template-form");
  const target = document.getElementById("preview");
  if (!form || !target) {
    return;
  }
  let timer = null;
  let asked = 0;
  async function refresh() {
    const body = new URLSearchParams(new FormData(form));
    body.delete("action");
    const mine = ++asked;
    try {
      const response = await fetch(form.dataset.preview, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      const html = await response.text();
      // An answer to an older edit must not overwrite a newer one.
      if (mine === asked) {
        const parsed = new DOMParser().parseFromString(html, "text/html");
        target.replaceChildren(...parsed.body.childNodes);
      }
    } catch (e) {
      target.textContent = "The preview could not be fetched: " + e;
    }
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
})();
