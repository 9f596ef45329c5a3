// Attune's only script: countdowns and the connection state. htmx does everything else.
(function () {
  "use strict";

  // Countdowns: the server sends the seconds left when it renders; we count from the moment the
  // element arrives, so a phone's wrong clock does not matter.
  function formatClock(seconds) {
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function startCountdowns(root) {
    var elements = root.querySelectorAll ? root.querySelectorAll("[data-countdown]") : [];
    Array.prototype.forEach.call(elements, function (element) {
      // Once started, a countdown keeps going; a new render brings a new element.
      if (element.dataset.countdownEndsAt) return;
      element.dataset.countdownEndsAt = String(Date.now() + 1000 * Number(element.dataset.countdown));
    });
  }

  function tick() {
    document.querySelectorAll("[data-countdown-ends-at]").forEach(function (element) {
      var left = Math.max(0, Math.round((Number(element.dataset.countdownEndsAt) - Date.now()) / 1000));
      var text = formatClock(left);
      if (element.textContent !== text) element.textContent = text;
      element.classList.toggle("is-done", left === 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { startCountdowns(document); });
  document.addEventListener("htmx:load", function (event) { startCountdowns(event.target); });
  // Out-of-band swaps from the socket do not always fire htmx:load on the new element.
  document.addEventListener("htmx:wsAfterMessage", function () { startCountdowns(document); });
  setInterval(tick, 250);

  // Connection state, and reconnects for the close codes htmx's ws extension gives up on
  // (a server restart closes with 1000 or 1001). 4403 means "not allowed": stay closed.
  var RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];
  function setStatus(text) {
    document.querySelectorAll("[data-connection-status]").forEach(function (element) {
      element.hidden = !text;
      element.textContent = text || "";
    });
  }
  document.addEventListener("htmx:wsOpen", function () { setStatus(""); });
  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    if (code >= 4000) {
      setStatus("Disconnected.");
      return;
    }
    setStatus("Reconnecting…");
    if (RETRIED_BY_HTMX.indexOf(code) === -1 && document.body.contains(event.target)) {
      var wrapper = event.detail.socketWrapper;
      setTimeout(function () { wrapper.reconnect(); }, 500 + Math.random() * 1500);
    }
  });
})();
