// The body map Mini App (bot/bodymap_web.py): tap or press Enter/Space on a region to mark
// it, set how strong the pain is and what it feels like, send. No framework, no third-party
// script: Telegram's launch data comes from its own object when its script is present, else
// from the URL fragment (#tgWebAppData=...), as https://core.telegram.org/bots/webapps says.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("bm-data").textContent);
  const T = data.texts;
  const marks = new Map(); // region id -> {region, intensity, type}, in marking order
  let current = null;
  let view = "front";
  let sent = false;
  let blocked = false; // no signed launch data: marks can be made, not sent

  const $ = (id) => document.getElementById(id);
  const panel = $("panel");
  const intensity = $("intensity");
  const intensityValue = $("intensity-value");
  const ptype = $("ptype");
  const list = $("marks");
  const none = $("none");
  const status = $("status");
  const send = $("send");

  function fmt(text, params) {
    return text.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  }

  // Launch data: Telegram's object, else the fragment; kept for a reload of the page.
  function launchData() {
    const tg = window.Telegram && window.Telegram.WebApp;
    if (tg && tg.initData) return tg.initData;
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("tgWebAppData");
    try {
      if (fromHash) sessionStorage.setItem("bm-init", fromHash);
      return fromHash || sessionStorage.getItem("bm-init") || "";
    } catch (_e) {
      return fromHash || "";
    }
  }
  const initData = launchData();

  // Telegram's own event channel (https://core.telegram.org/api/web-events): the mobile
  // apps' proxy object, else the parent frame (Telegram Web, the sandbox page).
  function tgEvent(type) {
    try {
      const tg = window.Telegram && window.Telegram.WebApp;
      if (type === "web_app_close" && tg && tg.close) return tg.close();
      if (window.TelegramWebviewProxy) return window.TelegramWebviewProxy.postEvent(type, "{}");
      if (window.parent !== window) {
        window.parent.postMessage(JSON.stringify({ eventType: type, eventData: {} }), "*");
      }
    } catch (_e) { /* not inside Telegram: nothing to tell */ }
  }

  // Intensity 0-10 -> fill, the same ramp as the doctor's picture (flows/bodymap_image.py).
  const RAMP = [[0, [255, 245, 191]], [5, [245, 153, 51]], [10, [178, 13, 13]]];
  function colour(level) {
    for (let i = 1; i < RAMP.length; i++) {
      const [lo, c0] = RAMP[i - 1];
      const [hi, c1] = RAMP[i];
      if (level <= hi) {
        const t = (level - lo) / (hi - lo);
        return `rgb(${c0.map((v, j) => Math.round(v + (c1[j] - v) * t)).join(",")})`;
      }
    }
    return "rgb(178,13,13)";
  }

  function regionsOf(id) {
    return document.querySelectorAll(`.region[data-region="${id}"]`);
  }

  function paint(id) {
    const mark = marks.get(id);
    for (const el of regionsOf(id)) {
      el.setAttribute("aria-pressed", mark ? "true" : "false");
      el.classList.toggle("current", id === current);
      const name = data.regions[id];
      el.setAttribute("aria-label", mark ? fmt(T.region_marked, { region: name, intensity: mark.intensity }) : name);
      // CSSOM, not a style attribute: the page's CSP allows no inline styles
      if (mark) el.style.fill = colour(mark.intensity);
      else el.style.removeProperty("fill");
    }
  }

  function describe(mark) {
    const name = data.regions[mark.region];
    const kind = mark.type ? `, ${data.types[mark.type]}` : "";
    return `${name} — ${mark.intensity}/10${kind}`;
  }

  function renderList() {
    list.textContent = "";
    for (const mark of marks.values()) {
      const li = document.createElement("li");
      const span = document.createElement("span");
      span.textContent = describe(mark);
      const edit = document.createElement("button");
      edit.type = "button";
      edit.textContent = T.edit;
      edit.setAttribute("aria-label", `${T.edit}: ${data.regions[mark.region]}`);
      edit.addEventListener("click", () => select(mark.region, true));
      edit.disabled = sent;
      li.append(span, edit);
      list.append(li);
    }
    none.hidden = marks.size > 0;
    send.disabled = sent || blocked || marks.size === 0;
  }

  function showView(name) {
    view = name;
    for (const b of document.querySelectorAll(".views button")) {
      b.setAttribute("aria-pressed", String(b.dataset.view === name));
    }
    const note = $("view-note");
    note.textContent = note.dataset[name];
    for (const svg of document.querySelectorAll("svg[data-view]")) {
      svg.toggleAttribute("hidden", svg.dataset.view !== name); // SVG has no .hidden property
    }
  }

  function select(id, focusPanel) {
    if (sent) return;
    if (!marks.has(id)) {
      if (marks.size >= data.max_marks) {
        say(data.errors.too_many, "error");
        return;
      }
      marks.set(id, { region: id, intensity: 5, type: "" });
    }
    const previous = current;
    current = id;
    if (previous && previous !== id) paint(previous);
    const views = data.views[id] || [];
    if (!views.includes(view) && views.length) showView(views[0]);
    const mark = marks.get(id);
    $("panel-title").textContent = data.regions[id];
    intensity.value = String(mark.intensity);
    intensityValue.textContent = String(mark.intensity);
    ptype.value = mark.type;
    panel.hidden = false;
    paint(id);
    renderList();
    say("", "");
    if (focusPanel) intensity.focus();
    else panel.scrollIntoView({ block: "nearest" }); // the controls, not below the fold
  }

  function closePanel() {
    const was = current;
    current = null;
    panel.hidden = true;
    if (was) {
      paint(was);
      const el = document.querySelector(`svg:not([hidden]) .region[data-region="${was}"]`);
      if (el) el.focus();
    }
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = kind;
  }

  for (const el of document.querySelectorAll(".region")) {
    el.addEventListener("click", () => select(el.dataset.region, false));
    el.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " " || ev.key === "Spacebar") {
        ev.preventDefault();
        select(el.dataset.region, true);
      }
    });
  }
  for (const b of document.querySelectorAll(".views button")) {
    b.addEventListener("click", () => showView(b.dataset.view));
  }
  intensity.addEventListener("input", () => {
    if (!current) return;
    const mark = marks.get(current);
    mark.intensity = Number(intensity.value);
    intensityValue.textContent = intensity.value;
    paint(current);
    renderList();
  });
  ptype.addEventListener("change", () => {
    if (!current) return;
    marks.get(current).type = ptype.value;
    renderList();
  });
  $("remove").addEventListener("click", () => {
    if (!current) return;
    const id = current;
    marks.delete(id);
    closePanel();
    paint(id);
    renderList();
  });
  $("done").addEventListener("click", closePanel);

  send.addEventListener("click", async () => {
    if (sent || blocked || marks.size === 0) return;
    send.disabled = true;
    say(T.sending, "");
    const body = JSON.stringify({ initData, intake: data.intake, marks: [...marks.values()] });
    let answer = null;
    try {
      const res = await fetch(location.pathname, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        credentials: "omit",
      });
      answer = await res.json().catch(() => ({ ok: false, error: "bad_json" }));
    } catch (_e) {
      answer = { ok: false, error: "network" };
    }
    if (answer && answer.ok) {
      sent = true;
      const was = current;
      current = null;
      if (was) paint(was);
      panel.hidden = true;
      renderList();
      say(T.sent, "ok");
      document.body.classList.add("sent");
      tgEvent("web_app_close");
      return;
    }
    const code = (answer && answer.error) || "bad_json";
    say(data.errors[code] || data.errors.bad_json, "error");
    send.disabled = code === "replayed" || code === "not_in_intake";
  });

  renderList();
  if (!initData) {
    blocked = true;
    say(T.no_telegram, "error");
    renderList();
  }
  tgEvent("web_app_ready");
})();
