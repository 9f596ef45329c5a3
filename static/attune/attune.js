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
      if (left === 0 && !element.classList.contains("is-done")) vibrate([200, 100, 200]);
      element.classList.toggle("is-done", left === 0);
      // Run out: the control view's Pause has nothing left to pause (the server refuses it).
      var pause = left === 0 && document.querySelector('#control-timer[value="pause_timer"]');
      if (pause) pause.hidden = true;
    });
    keepScreenOn();
  }

  // While a breathing pacer or a running countdown is on screen, the screen stays on where the
  // browser allows it: a phone that dims in the middle of a breathing exercise, or a projector
  // laptop that sleeps through a pair round, loses the room. Asked again when the page is
  // looked at again (the browser lets go of it when it is hidden); once refused, not again.
  var wakeLock = null, askedForWakeLock = false;
  function keepScreenOn() {
    var wanted = document.visibilityState === "visible" &&
      Boolean(document.querySelector("[data-pacer], [data-countdown-ends-at]:not(.is-done)"));
    if (wanted && !wakeLock && !askedForWakeLock && navigator.wakeLock) {
      askedForWakeLock = true;
      navigator.wakeLock.request("screen").then(function (lock) {
        if (wakeLock) { lock.release(); return; }  // asked twice (hidden and shown meanwhile)
        wakeLock = lock;
        lock.addEventListener("release", function () {
          if (wakeLock === lock) { wakeLock = null; askedForWakeLock = false; }
        });
      }).catch(function () {});
    } else if (!wanted && wakeLock) {
      var lock = wakeLock;
      wakeLock = null;
      askedForWakeLock = false;
      lock.release();
    }
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && !wakeLock) askedForWakeLock = false;
  });

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
      var words = (breathingIn ? element.dataset.wordsIn || "Breathe in"
                               : element.dataset.wordsOut || "Breathe out") + " · " + left;
      if (phase.textContent !== words) phase.textContent = words;
      if (element.classList.contains("is-inhaling") !== breathingIn) vibrate(breathingIn ? 60 : [30, 80, 30]);
      element.classList.toggle("is-inhaling", breathingIn);
      circle.style.transform = reducedMotion.matches ? "" : "scale(" + (0.45 + 0.55 * size).toFixed(3) + ")";
    });
    window.requestAnimationFrame(breathe);
  }

  // Vibration on phones, for those who turned it on (the checkbox under the stage): the end of
  // a countdown, and each turn of the breathing pacer. Browsers without it show no checkbox.
  var VIBRATION_KEY = "attune-vibrate";
  function vibrate(pattern) {
    if (navigator.vibrate && document.body.classList.contains("phone-page") &&
        window.localStorage.getItem(VIBRATION_KEY) === "on") {
      navigator.vibrate(pattern);
    }
  }
  function setUpVibration(root) {
    var boxes = root.querySelectorAll ? root.querySelectorAll("[data-vibration]") : [];
    Array.prototype.forEach.call(boxes, function (box) {
      if (!navigator.vibrate || box.dataset.ready) return;
      box.dataset.ready = "yes";
      var wrapper = box.closest("[hidden]");
      if (wrapper) wrapper.hidden = false;
      box.checked = window.localStorage.getItem(VIBRATION_KEY) === "on";
      box.addEventListener("change", function () {
        window.localStorage.setItem(VIBRATION_KEY, box.checked ? "on" : "off");
        if (box.checked) navigator.vibrate(60);
      });
    });
  }

  // Light or dark: the system's choice unless the person picked one here (the "D" key on the
  // projector, or the theme button), kept in this browser.
  var THEME_KEY = "attune-theme";
  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
  }
  applyTheme(window.localStorage.getItem(THEME_KEY));
  function toggleTheme() {
    var dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    var theme = dark ? "light" : "dark";
    window.localStorage.setItem(THEME_KEY, theme);
    applyTheme(theme);
  }

  // Keyboard control, as in presentation software. A presenter clicker sends the arrow or page
  // keys. Each key presses the button on the page that does the same, so the keyboard can do
  // nothing the buttons cannot, and a key whose button is not there does nothing.
  var SHORTCUTS = {
    ArrowRight: ["next"], PageDown: ["next"], n: ["next"], " ": ["next"],
    ArrowLeft: ["previous"], PageUp: ["previous"], p: ["previous"],
    r: ["hide_results", "show_results"],
    t: ["pause_timer", "resume_timer", "extend_timer"],
    l: ["lock_answers", "unlock_answers"],
  };
  function typingIn(element) {
    return element && (element.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(element.tagName));
  }
  function press(actions) {
    for (var i = 0; i < actions.length; i++) {
      var button = document.querySelector('.control-live button[name="action"][value="' + actions[i] + '"]:not([disabled]):not([hidden])');
      if (button) { button.click(); return true; }
    }
    return false;
  }
  function toggleFullScreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (document.documentElement.requestFullscreen) document.documentElement.requestFullscreen();
  }
  document.addEventListener("keydown", function (event) {
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    // A clicker's page keys move the session even from the notes box, where nobody pages.
    var clicker = key === "PageDown" || key === "PageUp";
    if (event.ctrlKey || event.metaKey || event.altKey || (typingIn(event.target) && !clicker)) return;
    var dialog = document.getElementById("shortcuts");
    var handled = false;
    if (key === "?" && dialog) {
      if (dialog.open) dialog.close(); else dialog.showModal();
      handled = true;
    } else if (dialog && dialog.open) {
      return;  // Escape closes it; other keys wait until it is closed
    } else if (key === "f") {
      toggleFullScreen();
      handled = true;
    } else if (key === "d" && document.body.classList.contains("projector-page")) {
      toggleTheme();
      handled = true;
    } else if (key === "o") {
      var projector = document.querySelector("a[data-open-projector]");
      if (projector) { projector.click(); handled = true; }
    } else if (SHORTCUTS[key] && !(key === " " && event.target.tagName === "BUTTON")) {
      handled = press(SHORTCUTS[key]);
    }
    if (handled) event.preventDefault();
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-toggle-theme]");
    if (button) toggleTheme();
    var opener = event.target.closest && event.target.closest("[data-show-shortcuts]");
    if (opener) document.getElementById("shortcuts").showModal();
    var closer = event.target.closest && event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // Screen readers: the live regions are replaced whole by each push, which many screen readers
  // do not announce, so a region that stays (#announcer) says what changed: a new activity (its
  // heading) or results that just appeared.
  var HEADINGS = "#phone-stage h1, #phone-stage h2, #projector-stage .projector-prompt, #projector-stage .lobby-title, #control-live .current h2";
  var RESULTS = "#phone-stage .results > :not(.results-hidden), #projector-stage .results > :not(.results-hidden), #control-live .results > :not(.results-hidden)";
  var announced = { heading: null, results: false };
  function announce() {
    var announcer = document.getElementById("announcer");
    if (!announcer) return;
    var heading = document.querySelector(HEADINGS);
    var headingText = heading ? heading.textContent.trim() : "";
    var results = Boolean(document.querySelector(RESULTS));
    var message = "";
    if (announced.heading !== null && headingText && headingText !== announced.heading) message = headingText;
    else if (results && !announced.results && announced.heading !== null) message = announcer.dataset.resultsShown;
    announced = { heading: headingText, results: results };
    if (message) announcer.textContent = message;
  }
  document.addEventListener("htmx:wsAfterMessage", announce);
  document.addEventListener("DOMContentLoaded", announce);

  function startAll(root) {
    startCountdowns(root);
    startPacers(root);
    setUpVibration(root);
  }

  document.addEventListener("DOMContentLoaded", function () { startAll(document); });
  // htmx:load also comes with a page that a boosted form brought in (the phone page after consent).
  document.addEventListener("htmx:load", function (event) { startAll(event.target); });

  // A boosted form's response is a whole page, as without scripts: shown whatever its status
  // (a refused join explains itself), and read from the top, as a new page would be.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.boosted) return;
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.boosted) return;
    // As on a page load, before the new page's socket brings its first frame.
    rememberStage();
    announce();
    // Focus the new page's heading, where a screen reader should start, unless htmx focused a
    // field of it already (autofocus: the code field of a refused join, whose alert is read out).
    var main = document.getElementById("main");
    if (!main || main.contains(document.activeElement)) return;
    focusInPlace(main.querySelector("h1, h2"));
  });
  // Where a screen reader should go on from: a heading, focused without becoming a tab stop.
  function focusInPlace(heading) {
    if (!heading) return;
    heading.setAttribute("tabindex", "-1");
    heading.addEventListener("blur", function () { heading.removeAttribute("tabindex"); }, { once: true });
    heading.focus({ preventScroll: true });
  }
  // A boosted form that cannot reach the server (the room's Wi-Fi) is sent again the usual way,
  // so the browser shows its own progress. On a phone with no network at all, that would only
  // bring the browser's error page and lose this one: the form says so instead, to be tapped
  // again once the phone is back online.
  document.addEventListener("htmx:sendError", function (event) {
    var form = event.detail.boosted && event.detail.elt && event.detail.elt.closest("form");
    var told = form && form.querySelector("[data-send-error]");
    if (told && !navigator.onLine) {
      told.hidden = false;
      told.scrollIntoView({ block: "nearest" });
    } else if (form) {
      HTMLFormElement.prototype.submit.call(form);
    }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var told = event.detail.elt && event.detail.elt.querySelector && event.detail.elt.querySelector("[data-send-error]");
    if (told) told.hidden = true;
  });
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
  // state: "" (connected), "reconnecting" or "disconnected"; the words come from the page, in
  // its language.
  function setStatus(state) {
    document.querySelectorAll("[data-connection-status]").forEach(function (element) {
      element.hidden = !state;
      element.textContent = state ? element.dataset[state] || state : "";
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
      setStatus("disconnected");
      return;
    }
    setStatus("reconnecting");
    closedSocket = event.detail.socketWrapper;
    if (RETRIED_BY_HTMX.indexOf(code) === -1 && document.body.contains(event.target)) {
      setTimeout(function () { closedSocket && closedSocket.reconnect(); }, reconnectDelay(retries++));
    }
  });
  // A phone whose screen was locked: try again at once when it is looked at.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && closedSocket) closedSocket.reconnect();
  });

  // A stage the phone shows already is not swapped in again. The socket's first frame repeats
  // the stage the page was loaded with, and on a slow connection it may come seconds later:
  // swapping it would clear an option just tapped. Compared as the browser serializes each.
  var shownStage = null;
  function rememberStage() {
    var stage = document.getElementById("phone-stage");
    shownStage = stage ? stage.outerHTML : null;
  }
  rememberStage();
  // The element an out-of-band swap brings for its target: the fragment itself, or inside it.
  function incomingFor(event) {
    var fragment = event.detail.fragment, id = event.detail.target.id;
    return fragment.id === id ? fragment : fragment.querySelector("#" + id);
  }
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "phone-stage") return;
    var incoming = incomingFor(event);
    if (!incoming) return;
    if (incoming.outerHTML === shownStage) event.detail.shouldSwap = false;
    else shownStage = incoming.outerHTML;
  });

  // The projector's stage and the control view's live region, pushed by two server processes
  // moments apart, may arrive out of order. Each carries the database time it was read at
  // (data-as-of, in microseconds); one read earlier never replaces one read later, so the
  // screen ends on the last state (sessions/live.py). Crossed pushes are read well under a
  // second apart: a frame more than 10 s older means the clock was set back, and is taken.
  var CLOCK_SET_BACK_US = 10e6;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var shown = target && Number(target.getAttribute("data-as-of"));
    if (!shown) return;
    var incoming = incomingFor(event);
    var read = incoming && Number(incoming.getAttribute("data-as-of"));
    if (read && read < shown && shown - read < CLOCK_SET_BACK_US) event.detail.shouldSwap = false;
  });

  // The projector shows the whole stage, never a scroll bar: a stage taller or wider than the
  // screen (a question with many options, long texts, a small screen) is zoomed out until it
  // fits, and back in when it fits again. The results are zoomed first (a recap's several
  // results together), so that results appearing under a question do not move the question;
  // then the whole stage. The usual steps fit a 720-pixel screen unzoomed.
  var SMALLEST_ZOOM = 0.5;
  function overflow() {
    var page = document.documentElement;
    return Math.max(page.scrollHeight / window.innerHeight, page.scrollWidth / window.innerWidth);
  }
  function zoomToFit(element) {
    // The largest zoom that fits, found by halving the range: a zoomed element reflows (its
    // lines wrap less, its grid takes more columns), so its height does not follow the zoom.
    var fits = SMALLEST_ZOOM, tooBig = 1;
    for (var tries = 0; tries < 6; tries++) {
      var zoom = (fits + tooBig) / 2;
      element.style.zoom = String(zoom);
      if (overflow() > 1) tooBig = zoom; else fits = zoom;
    }
    element.style.zoom = String(fits);
  }
  function fitProjector() {
    var root = document.querySelector(".projector-root");
    if (!root) return;
    var results = root.querySelector(".projector-stage .recap, .projector-stage .results");
    root.style.zoom = "";
    if (results) results.style.zoom = "";
    if (overflow() <= 1.002) return;
    if (results) zoomToFit(results);
    if (overflow() <= 1.002) return;
    // Still too tall: the whole stage instead (never both, which would multiply).
    if (results) results.style.zoom = "";
    zoomToFit(root);
  }
  document.addEventListener("DOMContentLoaded", fitProjector);
  document.addEventListener("htmx:wsAfterMessage", fitProjector);
  window.addEventListener("resize", fitProjector);

  // A push replaces #control-live whole, and the ws extension's out-of-band swap keeps neither
  // the keyboard focus nor a folded <details>: both are put back, so a facilitator who folded
  // the script away or is tabbing through the buttons does not lose their place at each answer.
  // A toggle button keeps its id across its two states (lock / unlock answers, say).
  var folded = {};
  document.addEventListener("toggle", function (event) {
    var key = event.target.dataset && event.target.dataset.keepFolded;
    if (key) folded[key] = !event.target.open;
  }, true);
  var refocus = null;
  // A button without an id (approve this answer, say): the one with the same name and values.
  function sameControl(element) {
    var selector = "";
    ["name", "value", "hx-vals"].forEach(function (name) {
      var value = element.getAttribute(name);
      if (value !== null) selector += "[" + name + '="' + CSS.escape(value) + '"]';
    });
    return selector ? element.tagName.toLowerCase() + selector : null;
  }
  // A script scrolled in its own box (beside a question's results) keeps its place too.
  var scrolled = {};
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var active = document.activeElement;
    if (event.detail.target && active && active !== document.body && event.detail.target.contains(active)) {
      refocus = active.id ? "#" + CSS.escape(active.id) : sameControl(active);
    }
    if (event.detail.target && event.detail.target.querySelectorAll) {
      event.detail.target.querySelectorAll("details[data-keep-folded]").forEach(function (details) {
        scrolled[details.dataset.keepFolded] = details.scrollTop;
      });
    }
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("details[data-keep-folded]").forEach(function (details) {
      var key = details.dataset.keepFolded;
      if (key in folded) details.open = !folded[key];
      if (scrolled[key]) details.scrollTop = scrolled[key];
    });
    scrolled = {};
    var active = document.activeElement;
    var element = refocus && (!active || active === document.body) && document.querySelector(refocus);
    if (element) element.focus({ preventScroll: true });
    refocus = null;
  });

  // A step or an exercise moved to the top or the bottom of the agenda editor: the button that
  // moved it is disabled now, so the keyboard goes to its other one rather than to the top of
  // the page.
  document.addEventListener("htmx:afterSettle", function (event) {
    var pressed = event.detail.requestConfig && event.detail.requestConfig.elt;
    var moved = pressed && /^(move-(?:exercise-)?)(up|down)-(\d+)$/.exec(pressed.id);
    if (!moved || (document.activeElement && document.activeElement !== document.body)) return;
    var other = document.getElementById(moved[1] + (moved[2] === "up" ? "down-" : "up-") + moved[3]);
    if (other && !other.disabled) other.focus({ preventScroll: true });
  });

  // A long agenda scrolls in its own box on the control view: the step open now is kept in
  // sight there, a third of the way down, whenever the agenda comes anew (not at every count
  // pushed, which would pull back a facilitator scrolling ahead).
  var agendaShown = null;
  function showCurrentStep() {
    var list = document.querySelector(".control-agenda .agenda-list");
    if (!list || list === agendaShown) return;
    agendaShown = list;
    var current = list.querySelector(".is-current");
    if (!current || list.scrollHeight <= list.clientHeight) return;
    var top = current.offsetTop;  // from the top of the list, which is positioned
    if (top < list.scrollTop || top + current.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = top - list.clientHeight / 3;
    }
  }
  document.addEventListener("DOMContentLoaded", showCurrentStep);
  document.addEventListener("htmx:wsAfterMessage", showCurrentStep);

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
  // A message that cannot be taken back asks first (htmx's hx-confirm does not cover ws-send).
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var asking = event.target.closest && event.target.closest("[data-confirm]");
    if (asking && !window.confirm(asking.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var action = event.detail.parameters.action;
    if (action === "answer" || action === "pass") event.detail.parameters.client_id = newClientId();
  });
  // A connection that stalls without closing (a weak signal) shows nothing of itself: an answer
  // still not acknowledged after a few seconds says so, rather than seem to be ignored.
  var STILL_SENDING_AFTER_MS = 6000;
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var body;
    try { body = JSON.parse(event.detail.message); } catch (error) { return; }
    if (!body || !body.client_id) return;
    var sent = pending = { id: body.client_id, message: event.detail.message };
    setTimeout(function () { if (pending === sent && !closedSocket) tell("stillSending"); }, STILL_SENDING_AFTER_MS);
  });
  // What a frame from the server says of a message the phone sent: stored (its id acknowledged),
  // or refused with a reason the person now sees.
  function acknowledges(message, id) {
    return typeof message === "string" && message.indexOf('data-ack="' + id + '"') !== -1;
  }
  function refuses(message) {
    return typeof message === "string" && message.indexOf('class="notice error"') !== -1;
  }
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var message = event.detail.message;
    // Either way, not to be resent.
    if (pending && (acknowledges(message, pending.id) || refuses(message))) pending = null;
  });

  // Phones: what a tap did is shown where the person is. On a small phone the question, its
  // options and the buttons are taller than the screen, and whoever just tapped Send or Pass is
  // scrolled down to the buttons, far from the top of the stage. So the answer's state sits just
  // above the buttons (phone_stage.html), the notice and the connection state stick to the
  // bottom of the screen (.phone-feedback in phone.html), and this keeps both in view without
  // covering the buttons. A new activity is read from its heading, as a new page would be.
  // Whole, rather than in part: buttons peeking in at the bottom of the screen are not where
  // the person is, and a page that moved at each frame would be hard to read.
  function wholeOnScreen(element) {
    var box = element.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight;
  }
  // A field the person writes in (not a radio button, which is focused once tapped).
  function writingIn(element) {
    return element && (element.tagName === "TEXTAREA" || (element.tagName === "INPUT" && element.type === "text"));
  }
  // The notice or the connection state stuck over the buttons: the page moves up by as much,
  // which brings the buttons above it (at most to its own place under the stage).
  function uncoverButtons() {
    var actions = document.querySelector("#phone-stage .actions");
    var feedback = document.querySelector(".phone-feedback");
    if (!actions || !feedback || !feedback.offsetHeight || !wholeOnScreen(actions)) return;
    var overlap = actions.getBoundingClientRect().bottom - feedback.getBoundingClientRect().top;
    if (overlap > 0) window.scrollBy(0, overlap);
  }
  // What the phone showed before a frame from the server is swapped in. A step is told by its
  // activity and its heading: two activities may ask the same question (before and after).
  function stepShown(stage) {
    var heading = stage.querySelector("h1"), activity = stage.querySelector("input[name=activity]");
    return (activity ? activity.value : "") + " " + (heading ? heading.textContent.trim() : "");
  }
  var beforeFrame = null;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    var stage = document.getElementById("phone-stage");
    var actions = stage && stage.querySelector(".actions");
    var active = document.activeElement;
    beforeFrame = stage ? {
      heading: stepShown(stage),
      atButtons: Boolean(actions && wholeOnScreen(actions)),
      writingIn: writingIn(active) && stage.contains(active) ? active : null,
    } : null;
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var before = beforeFrame, stage = document.getElementById("phone-stage");
    beforeFrame = null;
    if (!before || !stage) return;
    if (stepShown(stage) !== before.heading) {
      // A new activity: from its heading, unless the person is writing in a field that stays
      // (hx-preserve: the facilitator reworded the question being answered).
      var stillWriting = before.writingIn && stage.contains(before.writingIn);
      if (!stillWriting && stage.getBoundingClientRect().top < 0) stage.scrollIntoView({ block: "start" });
    } else if (before.atButtons) {
      // The same activity, for someone at its buttons: they stay on screen, with the answer's
      // state above them (received, passed, closed) whole, and a notice (a refusal) not over them.
      var actions = stage.querySelector(".actions"), state = stage.querySelector(".state");
      if (actions && !wholeOnScreen(actions)) actions.scrollIntoView({ block: "nearest" });
      if (state && !wholeOnScreen(state)) state.scrollIntoView({ block: "nearest" });
      uncoverButtons();
    }
  });
  // "Reconnecting…" appears at the bottom of the screen, over the buttons of someone at them.
  document.addEventListener("htmx:wsClose", uncoverButtons);

  // An answer changed on the phone and not sent yet must not sit under "Answer received": until
  // the server's next stage for it, the state says it is not sent (data-unsent, in the phone's
  // language). That stage may be the one shown already (an answer changed and changed back),
  // which is not swapped in again: the acknowledgement of the answer sent since the last change
  // then puts "Answer received" back.
  function markUnsent(event) {
    var form = event.target.closest && event.target.closest("#phone-stage .answer-form");
    var state = form && form.querySelector(".state.received");
    if (!state || !state.dataset.unsent) return;
    delete state.dataset.sentAs;
    if (state.classList.contains("unsent")) return;
    state.dataset.receivedText = state.textContent;
    state.textContent = state.dataset.unsent;
    state.classList.add("unsent");
  }
  document.addEventListener("change", markUnsent);
  document.addEventListener("input", markUnsent);
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var state = document.querySelector("#phone-stage .state.unsent");
    var body;
    try { body = JSON.parse(event.detail.message); } catch (error) { return; }
    if (state && body && body.action === "answer" && body.client_id) state.dataset.sentAs = body.client_id;
  });
  // An answer being written or changed and not sent yet stays on this phone (in this page only,
  // never stored) when the facilitator moves on: the person is told, and if the question opens
  // again, what they had is put back, not sent yet. Kept until the server acknowledges it sent
  // (or passed): a send it refused ("Pick an option") leaves it kept.
  var drafts = {}, changed = {};  // by activity id: the fields, and whether they changed
  var sending = {};  // a sent answer's or pass's id: its activity, until acknowledged
  function answerForm(stage) {
    var form = stage && stage.querySelector(".answer-form");
    var activity = form && form.querySelector("input[name=activity]");
    return activity ? { form: form, activity: activity.value } : null;
  }
  function fieldKey(field) {
    return field.type === "radio" || field.type === "checkbox" ? field.name + "=" + field.value : field.id;
  }
  function fieldsOf(form) {
    return form.querySelectorAll("input[type=radio], input[type=checkbox], input[type=text], input:not([type]), textarea");
  }
  function keepDraft(shown) {
    var draft = {}, anything = false;
    fieldsOf(shown.form).forEach(function (field) {
      var value = field.type === "radio" || field.type === "checkbox" ? field.checked : field.value;
      draft[fieldKey(field)] = value;
      anything = anything || (value !== false && String(value).trim() !== "");
    });
    if (anything) drafts[shown.activity] = draft;
    else delete drafts[shown.activity];  // nothing picked or written: nothing to keep
  }
  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("#phone-stage .answer-form");
    var shown = form && answerForm(document.getElementById("phone-stage"));
    if (shown) changed[shown.activity] = true;
  });
  // What is sent, as it was when tapped, is kept until it is acknowledged (a send waiting in the
  // queue while reconnecting may go after more changes, which stay unsent).
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var parameters = event.detail.parameters, activity = String(parameters.activity || "");
    var shown = answerForm(document.getElementById("phone-stage"));
    if (!parameters.client_id || !shown || shown.activity !== activity) return;
    keepDraft(shown);
    changed[activity] = false;
    sending[parameters.client_id] = activity;
  });
  // Deleting one's answers deletes what this phone keeps of them too (asked first: see above).
  document.addEventListener("htmx:wsConfigSend", function (event) {
    if (event.detail.parameters.action === "withdraw" && !event.defaultPrevented) {
      drafts = {};
      changed = {};
    }
  });
  // Words of the phone page's (data-draft-kept, say) in its notice, until the server's next frame.
  // It has a button to close it: stuck to the bottom of a small screen, it covers the options of
  // the question shown. The notice that the last answer was kept goes once the person answers.
  function tell(words) {
    var notice = document.getElementById("notice"), root = document.querySelector(".live-root");
    if (!notice || !root || !root.dataset[words]) return;
    notice.className = "notice info";
    notice.textContent = "";
    notice.dataset.told = words;
    notice.appendChild(document.createElement("span")).textContent = root.dataset[words];
    if (root.dataset.dismiss) {
      var close = notice.appendChild(document.createElement("button"));
      close.type = "button";
      close.className = "dismiss";
      close.textContent = root.dataset.dismiss;
    }
    uncoverButtons();
  }
  function untell() {
    var notice = document.getElementById("notice");
    if (!notice || !notice.dataset.told) return;
    notice.className = "notice";
    notice.textContent = "";
    delete notice.dataset.told;
  }
  document.addEventListener("click", function (event) {
    if (!(event.target.closest && event.target.closest("#notice .dismiss"))) return;
    untell();
    focusInPlace(document.querySelector("#phone-stage h1"));  // not the top of the page
  });
  document.addEventListener("input", function (event) {
    var notice = document.getElementById("notice");
    var answering = event.target.closest && event.target.closest("#phone-stage .answer-form");
    if (answering && notice && notice.dataset.told === "draftKept") untell();
  });
  // An answer or a pass tapped while the connection is down waits in htmx's queue and goes on
  // reconnecting: the phone says so, rather than seem to ignore the tap.
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var action = event.detail.parameters.action;
    if (closedSocket && (action === "answer" || action === "pass")) tell("sentWhenBack");
  });
  // An open answer near its length limit says how much is left (phone_stage.html).
  var LIMIT_SHOWN_FROM = 50;
  function showWhatIsLeft(field, cut) {
    var hint = field.tagName === "TEXTAREA" && field.id && document.getElementById(field.id.replace(/-text$/, "-limit"));
    if (!hint || !hint.dataset.left) return;
    if (!hint.dataset.limitText) hint.dataset.limitText = hint.textContent;
    var left = field.maxLength - field.value.length;
    if (cut && hint.dataset.cut) {
      hint.textContent = hint.dataset.cut;
      var announcer = document.getElementById("announcer");  // the hint is not read out by itself
      if (announcer) announcer.textContent = hint.dataset.cut;
    } else {
      hint.textContent = left <= LIMIT_SHOWN_FROM ? hint.dataset.left.replace("{n}", left) : hint.dataset.limitText;
    }
  }
  // The browser cuts a paste that does not fit without a word: the hint says the end was left out.
  var pastedTooMuch = null;
  document.addEventListener("paste", function (event) {
    var field = event.target;
    if (field.tagName !== "TEXTAREA" || !(field.maxLength > 0) || !event.clipboardData) return;
    var pasted = event.clipboardData.getData("text").replace(/\r\n/g, "\n");
    var room = field.maxLength - field.value.length + (field.selectionEnd - field.selectionStart);
    pastedTooMuch = pasted.length > room ? field : null;
  });
  document.addEventListener("input", function (event) {
    showWhatIsLeft(event.target, event.inputType === "insertFromPaste" && event.target === pastedTooMuch);
    pastedTooMuch = null;
  });
  var draftBefore = null;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    var shown = answerForm(document.getElementById("phone-stage"));
    // A locked form shows what was sent, not the draft: reading it would forget the draft.
    var locked = shown && shown.form.querySelector("fieldset[disabled]");
    if (shown && changed[shown.activity] && !locked) keepDraft(shown);
    draftBefore = shown && drafts[shown.activity] ? shown : null;
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var message = event.detail.message;
    for (var id in sending) {
      if (acknowledges(message, id)) {
        // Stored: nothing of it to keep, unless it was changed again since.
        if (!changed[sending[id]]) delete drafts[sending[id]];
        delete sending[id];
      } else if (refuses(message)) {
        delete sending[id];  // the draft stays
      }
    }
    var before = draftBefore, shown = answerForm(document.getElementById("phone-stage"));
    draftBefore = null;
    if (before && (!shown || shown.activity !== before.activity)) tell("draftKept");
    if (!shown || !drafts[shown.activity] || (before && shown.form === before.form)) return;
    // Answers closed: the phone shows what it sent, which is what counts; the draft waits.
    if (shown.form.querySelector("fieldset[disabled]")) return;
    var draft = drafts[shown.activity];
    fieldsOf(shown.form).forEach(function (field) {
      var key = fieldKey(field);
      if (!(key in draft)) return;
      if (field.type === "radio" || field.type === "checkbox") field.checked = draft[key];
      else field.value = draft[key];
      showWhatIsLeft(field);
    });
    markUnsent({ target: shown.form });
  });

  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var state = document.querySelector("#phone-stage .state.unsent");
    if (state && state.dataset.sentAs && acknowledges(event.detail.message, state.dataset.sentAs)) {
      state.textContent = state.dataset.receivedText;
      state.classList.remove("unsent");
      delete state.dataset.receivedText;
      delete state.dataset.sentAs;
    }
  });
})();
