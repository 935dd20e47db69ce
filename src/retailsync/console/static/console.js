/* Retail Sync Hub console: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";
  // htmx requests carry the session's CSRF token (forms carry it as a hidden field).
  document.addEventListener("htmx:configRequest", function (event) {
    var token = document.body && document.body.getAttribute("data-csrf");
    if (token) { event.detail.headers["X-CSRF-Token"] = token; }
  });
  // A form marked data-once disables its buttons after the first submit. The server does not
  // rely on this: the form's idempotency key already makes a second submit start nothing.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-once")) { return; }
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-disabled", "true");
      });
    }, 0);
  });
})();
