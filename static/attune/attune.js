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

  // The breathing pacer: the server sends the seconds since the step opened, so phones and the
  // projector breathe together. The circle's size is set through the CSSOM (no inline styles);
  // with reduced motion it stays still and only the words and the count change.
  var reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  function startPacers(root) {
    var elements = root.querySelectorAll ? root.querySelectorAll("[data-pacer]") : [];
    Array.prototype.forEach.call(elements, function (element) {
      if (element.dataset.pacerStartedAt) return;
      element.dataset.pacerStartedAt = String(Date.now() - 1000 * Number(element.dataset.elapsed || 0));
    });
  }

  function breathe() {
    document.querySelectorAll("[data-pacer-started-at]").forEach(function (element) {
      var inhale = Number(element.dataset.inhale);
      var exhale = Number(element.dataset.exhale);
      var t = ((Date.now() - Number(element.dataset.pacerStartedAt)) / 1000) % (inhale + exhale);
      var breathingIn = t < inhale;
      var left = Math.ceil(breathingIn ? inhale - t : inhale + exhale - t);
      var size = breathingIn ? t / inhale : 1 - (t - inhale) / exhale;
      var circle = element.querySelector(".pacer-circle");
      var phase = element.querySelector(".pacer-phase");
      var words = (breathingIn ? "Breathe in" : "Breathe out") + " · " + left;
      if (phase.textContent !== words) phase.textContent = words;
      element.classList.toggle("is-inhaling", breathingIn);
      circle.style.transform = reducedMotion.matches ? "" : "scale(" + (0.45 + 0.55 * size).toFixed(3) + ")";
    });
    window.requestAnimationFrame(breathe);
  }

  function startAll(root) {
    startCountdowns(root);
    startPacers(root);
  }

  document.addEventListener("DOMContentLoaded", function () { startAll(document); });
  document.addEventListener("htmx:load", function (event) { startAll(event.target); });
  // Out-of-band swaps from the socket do not always fire htmx:load on the new element.
  document.addEventListener("htmx:wsAfterMessage", function () { startAll(document); });
  setInterval(tick, 250);
  window.requestAnimationFrame(breathe);

  // Connection state and reconnects. htmx's ws extension reconnects by itself only after close
  // codes 1006, 1011, 1012 and 1013; a server that restarts or shuts down may close with 1000
  // or 1001, so those are retried here. 4000 and up mean "not allowed here": stay closed.
  // Both wait a little longer after each failed try, with jitter, so a room of phones does not
  // reconnect all in the same instant.
  var RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];
  function reconnectDelay(retryCount) {
    var ceiling = Math.min(10000, 500 * Math.pow(2, retryCount));
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }
  if (window.htmx) window.htmx.config.wsReconnectDelay = reconnectDelay;

  var retries = 0;
  var closedSocket = null;
  function setStatus(text) {
    document.querySelectorAll("[data-connection-status]").forEach(function (element) {
      element.hidden = !text;
      element.textContent = text || "";
    });
  }
  document.addEventListener("htmx:wsOpen", function (event) {
    retries = 0;
    closedSocket = null;
    setStatus("");
    // An answer sent just before the connection dropped may never have arrived: send it again.
    // The server knows it by its id and stores it once.
    if (pending) event.detail.socketWrapper.send(pending.message);
  });
  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    if (code >= 4000) {
      setStatus("Disconnected.");
      return;
    }
    setStatus("Reconnecting…");
    closedSocket = event.detail.socketWrapper;
    if (RETRIED_BY_HTMX.indexOf(code) === -1 && document.body.contains(event.target)) {
      setTimeout(function () { closedSocket && closedSocket.reconnect(); }, reconnectDelay(retries++));
    }
  });
  // A phone whose screen was locked: try again at once when it is looked at.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && closedSocket) closedSocket.reconnect();
  });

  // Exactly once: each answer carries an id made here. Until the server acknowledges that id
  // (it does so only once the answer is stored), the answer is kept to be sent again.
  var pending = null;
  function newClientId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (byte) {
      return (byte < 16 ? "0" : "") + byte.toString(16);
    }).join("");
  }
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var action = event.detail.parameters.action;
    if (action === "answer" || action === "pass") event.detail.parameters.client_id = newClientId();
  });
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var body;
    try { body = JSON.parse(event.detail.message); } catch (error) { return; }
    if (body && body.client_id) pending = { id: body.client_id, message: event.detail.message };
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var message = event.detail.message;
    // Stored, or refused with a reason the person now sees: either way, not to be resent.
    if (pending && typeof message === "string" &&
        (message.indexOf('data-ack="' + pending.id + '"') !== -1 ||
         message.indexOf('class="notice error"') !== -1)) {
      pending = null;
    }
  });
})();
