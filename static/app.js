/* The app's only script, kept small: copy buttons, arrow-key navigation of bank suggestions,
   focus after page swaps, no stale step on Back and Forward. Everything works without it; it only adds comfort. No eval, no inline
   handlers (the CSP forbids them). */
(function () {
  "use strict";

  function copyText(text, button) {
    function done(ok) {
      var original = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", original);
      button.textContent = ok ? "Copied" : "Press Ctrl+C";
      button.classList.toggle("copied", ok);
      window.setTimeout(function () {
        button.textContent = original;
        button.classList.remove("copied");
      }, 1800);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { fallback(); });
    } else {
      fallback();
    }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "copy-buffer";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      done(ok);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (source) copyText(source.textContent.trim(), button);
  });

  // Suggestions: ArrowDown from the search box enters the list; arrows move; Escape goes back.
  document.addEventListener("keydown", function (event) {
    var input = document.getElementById("institution-search");
    if (!input) return;
    var options = Array.prototype.slice.call(document.querySelectorAll("#institution-results .option"));
    if (!options.length) return;
    var index = options.indexOf(document.activeElement);
    if (event.target === input && event.key === "ArrowDown") {
      event.preventDefault();
      options[0].focus();
    } else if (index >= 0 && event.key === "ArrowDown") {
      event.preventDefault();
      options[Math.min(index + 1, options.length - 1)].focus();
    } else if (index >= 0 && event.key === "ArrowUp") {
      event.preventDefault();
      if (index === 0) input.focus(); else options[index - 1].focus();
    } else if (index >= 0 && event.key === "Escape") {
      event.preventDefault();
      input.focus();
    }
  });

  document.addEventListener("focusin", function (event) {
    if (!event.target.classList || !event.target.classList.contains("option")) return;
    document.querySelectorAll("#institution-results .option").forEach(function (option) {
      option.setAttribute("aria-selected", option === event.target ? "true" : "false");
    });
  });

  // The suggestions are swapped in on their own, under the search box: keep the combobox's
  // aria-expanded in step with whether any are showing.
  document.addEventListener("htmx:afterSettle", function () {
    var input = document.getElementById("institution-search");
    if (!input) return;
    var open = document.querySelectorAll("#institution-results .option").length > 0;
    input.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // After a step replaces <main>, move focus to where the user should start: a failed submit's
  // error summary (it is also announced), a bank the entered portal looks like, else the step's
  // heading, so keyboard and screen-reader users start at the top of the new step.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail && event.detail.target && event.detail.target.id === "main") {
      var start = document.querySelector("#main [data-error-summary], #main [data-offer], #main h1");
      window.scrollTo(0, 0);
      if (start) start.focus({ preventScroll: true });
    }
  });

  // A link in an error summary moves focus to its field (not only the scroll position).
  document.addEventListener("click", function (event) {
    var link = event.target.closest(".error-summary a[href^='#']");
    if (!link) return;
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    field.scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
  });

  // Back and Forward: htmx keeps no snapshots of these pages (they hold bank details), so it
  // loads the step the URL names afresh. Until it arrives, hide the step being left, so it never
  // shows under the new URL.
  window.addEventListener("popstate", function (event) {
    if (event.state && event.state.htmx) document.documentElement.classList.add("history-loading");
  });
  window.addEventListener("pageshow", function () {
    document.documentElement.classList.remove("history-loading");
  });
  // Waycore asked to wait (Retry-After): the step's submit buttons stay off until the time the
  // page names, then come back by themselves. The server refuses an early retry anyway.
  function holdSubmitsUntilRetry(root) {
    var notice = root.querySelector && root.querySelector("[data-retry-at]");
    if (!notice) return;
    var at = parseInt(notice.getAttribute("data-retry-at"), 10);
    var buttons = Array.prototype.slice.call(document.querySelectorAll("#main form button[type=submit]"));
    if (!at || !buttons.length || at <= Date.now()) return;
    buttons.forEach(function (button) {
      button.disabled = true;
      button.setAttribute("aria-disabled", "true");
    });
    window.setTimeout(function () {
      buttons.forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-disabled");
      });
    }, at - Date.now());
  }
  document.addEventListener("DOMContentLoaded", function () { holdSubmitsUntilRetry(document); });
  document.addEventListener("htmx:afterSettle", function (event) {
    holdSubmitsUntilRetry(document);
  });
})();
