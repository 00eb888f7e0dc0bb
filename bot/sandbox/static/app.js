/*
 * Careline sandbox page: chat with the bots as simulated Telegram users.
 *
 * Talks to the Bot API emulator's client API under /client/ and, when the sandbox
 * serves them, to /sandbox/people (roles), /sandbox/clock (time travel) and
 * /sandbox/device (a simulated home device posting a reading), all same origin.
 * Up to three chat panes side by side, each one person with one bot.
 * SECURITY: everything a bot sends is put into the page as text (textContent,
 * createTextNode). Telegram's formatting (bold, italic, links, ...) is rebuilt
 * from a whitelist with createElement; no bot content ever reaches innerHTML.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const STORAGE_PANES = "careline.sandbox.panes";
  const STORAGE_USER = "careline.sandbox.user"; // before panes: one person, one bot
  const STORAGE_BOT = "careline.sandbox.bot";
  const STORAGE_LANG = "careline.sandbox.lang";
  const STORAGE_PLAY = "careline.sandbox.play"; // the replay whose people were opened
  const PLAY_POLL_MS = 1000;
  const FLASH_MS = 1000; // style.css: .pane-flash runs 0.9 s
  const POLL_TIMEOUT_S = 25;
  const MAX_PANES = 3;
  const DIRECTORY_REFRESH_MS = 8000;
  const CLOCK_REFRESH_MS = 30000;
  const ROLES = ["patient", "caregiver", "doctor", "admin"];
  // The simulated device (POST /sandbox/device): what to type for each kind of reading.
  const DEVICE_EXAMPLES = { bp: "150/95", pulse: "72", glucose: "6.1", spo2: "97", temperature: "37.2", weight: "70.5" };

  const app = {
    users: [],
    bots: [],
    roles: new Map(), // user id -> role, from /sandbox/people
    rolesKnown: false, // the sandbox answered /sandbox/people
    panes: [],
    active: null,
    nextPaneId: 1,
    lang: "en",
    directoryKey: "",
    clockBusy: false,
  };

  // ---------------------------------------------------------------- page texts

  const DICT = window.SANDBOX_I18N || { en: {} };
  const LANGS = ["en", "zh_Hans", "ru"];
  const HTML_LANG = { en: "en", zh_Hans: "zh-Hans", ru: "ru" };

  /** The page text `key` in the page language, with {named} placeholders filled. */
  function t(key, params) {
    const table = DICT[app.lang] || {};
    let text = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : (DICT.en || {})[key];
    if (typeof text !== "string") text = key;
    if (!params) return text;
    return text.replace(/\{([a-z_]+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  }

  /** Fill [data-i18n] texts and [data-i18n-attr="attr:key;..."] attributes under root. */
  function applyI18n(root) {
    const scope = root || document;
    for (const el of scope.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of scope.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of el.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":");
        if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
      }
    }
  }

  function initialLang() {
    try {
      const saved = localStorage.getItem(STORAGE_LANG);
      if (LANGS.includes(saved)) return saved;
    } catch (_err) { /* private mode */ }
    const nav = (navigator.language || "en").toLowerCase();
    if (nav.startsWith("zh")) return "zh_Hans";
    if (nav.startsWith("ru")) return "ru";
    return "en";
  }

  function setLang(lang) {
    app.lang = LANGS.includes(lang) ? lang : "en";
    try {
      localStorage.setItem(STORAGE_LANG, app.lang);
    } catch (_err) { /* private mode */ }
    document.documentElement.lang = HTML_LANG[app.lang];
    $("page-lang").value = app.lang;
    applyI18n(document);
    renderPeople();
    for (const pane of app.panes) pane.relabel();
    renderTabs();
    renderClock(lastClock);
  }

  // ---------------------------------------------------------------- client API

  class ApiError extends Error {}

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_err) {
      throw new ApiError(t("error.unreachable"));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_err) {
      data = null;
    }
    if (!response.ok || (data && data.ok === false)) {
      const reason = data && (data.error || data.description);
      throw new ApiError(reason ? String(reason) : `${response.status} ${response.statusText}`);
    }
    return data || {};
  }

  function query(params) {
    return new URLSearchParams(
      Object.entries(params).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, String(v)]),
    ).toString();
  }

  // ------------------------------------------------------ banner, toasts, status

  function showError(what, err) {
    const reason = err instanceof Error ? err.message : String(err);
    $("error-text").textContent = `${what}: ${reason}`;
    $("error-banner").hidden = false;
  }

  function clearError() {
    $("error-banner").hidden = true;
    $("error-text").textContent = "";
  }

  function toast(text, { alert = false, timeoutMs = 3500 } = {}) {
    const el = document.createElement("div");
    el.className = alert ? "toast toast-alert" : "toast";
    el.dataset.testid = alert ? "toast-alert" : "toast";
    if (alert) el.setAttribute("role", "alert");
    const body = document.createElement("span");
    body.textContent = text;
    el.append(body);
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ghost";
    close.textContent = alert ? t("toast.ok") : "×";
    close.setAttribute("aria-label", t("toast.dismiss"));
    close.addEventListener("click", () => el.remove());
    el.append(close);
    $("toasts").append(el);
    if (alert) {
      close.focus();
    } else {
      setTimeout(() => el.remove(), timeoutMs);
    }
  }

  // ------------------------------------------------------------ safe rendering

  const SAFE_PROTOCOLS = new Set(["http:", "https:", "tg:", "mailto:"]);

  /** The URL if it is safe to link to (no javascript:, data:, ...), else null. */
  function safeHref(raw) {
    if (typeof raw !== "string" || raw.trim() === "") return null;
    try {
      const url = new URL(raw.trim(), window.location.href);
      return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
    } catch (_err) {
      return null;
    }
  }

  /** A same-origin (or http/https) URL for media the emulator serves, else null. */
  function safeMediaUrl(raw) {
    if (typeof raw !== "string" || raw === "") return null;
    try {
      const url = new URL(raw, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_err) {
      return null;
    }
  }

  function makeLink(href, label) {
    const safe = safeHref(href);
    if (!safe) {
      const span = document.createElement("span");
      span.className = "bad-link";
      if (label !== undefined) span.textContent = label;
      return span;
    }
    const a = document.createElement("a");
    a.href = safe;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    if (label !== undefined) a.textContent = label;
    return a;
  }

  function makeSpoiler() {
    const span = document.createElement("span");
    span.className = "spoiler";
    span.tabIndex = 0;
    span.title = t("msg.spoiler");
    const reveal = () => span.classList.add("revealed");
    span.addEventListener("click", reveal);
    span.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") reveal();
    });
    return span;
  }

  /** Element for a Telegram message entity (types from the Bot API). */
  function entityElement(entity, coveredText) {
    switch (entity.type) {
      case "bold": return document.createElement("b");
      case "italic": return document.createElement("i");
      case "underline": return document.createElement("u");
      case "strikethrough": return document.createElement("s");
      case "code": return document.createElement("code");
      case "pre": return document.createElement("pre");
      case "spoiler": return makeSpoiler();
      case "blockquote":
      case "expandable_blockquote": return document.createElement("blockquote");
      case "text_link": return makeLink(entity.url);
      case "url": return makeLink(/^[a-z][a-z0-9+.-]*:/i.test(coveredText) ? coveredText : `http://${coveredText}`);
      default: {
        const span = document.createElement("span");
        span.className = `entity-${String(entity.type).replace(/[^a-z_]/g, "")}`;
        return span;
      }
    }
  }

  /** Render text with Telegram entities (offsets in UTF-16 units, like JS strings). */
  function renderEntities(parent, text, entities) {
    const ents = entities
      .filter((e) => e && Number.isInteger(e.offset) && Number.isInteger(e.length) && e.length > 0)
      .map((e) => ({ ...e, end: e.offset + e.length }))
      .sort((a, b) => a.offset - b.offset || b.end - a.end);

    function build(into, start, end, list) {
      let pos = start;
      let i = 0;
      while (i < list.length) {
        const e = list[i];
        const eStart = Math.max(e.offset, pos);
        const eEnd = Math.min(e.end, end);
        if (eStart >= eEnd) {
          i += 1;
          continue;
        }
        if (eStart > pos) into.append(document.createTextNode(text.slice(pos, eStart)));
        const inner = [];
        let j = i + 1;
        while (j < list.length && list[j].offset < eEnd) {
          inner.push(list[j]);
          j += 1;
        }
        const el = entityElement(e, text.slice(eStart, eEnd));
        build(el, eStart, eEnd, inner);
        into.append(el);
        pos = eEnd;
        i = j;
      }
      if (pos < end) into.append(document.createTextNode(text.slice(pos, end)));
    }

    build(parent, 0, text.length, ents);
  }

  const HTML_TAGS = new Set([
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
    "code", "pre", "a", "span", "tg-spoiler", "blockquote", "tg-emoji",
  ]);
  const NAMED_ENTITIES = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

  function decodeEntity(body) {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X" ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      if (Number.isFinite(code) && code > 0 && code <= 0x10ffff) {
        try {
          return String.fromCodePoint(code);
        } catch (_err) {
          return null;
        }
      }
      return null;
    }
    return Object.prototype.hasOwnProperty.call(NAMED_ENTITIES, body) ? NAMED_ENTITIES[body] : null;
  }

  function attribute(attrs, name) {
    const match = new RegExp(`\\b${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s"'>]+))`, "i").exec(attrs);
    if (!match) return null;
    const raw = match[1] ?? match[2] ?? match[3] ?? "";
    return raw.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, body) => decodeEntity(body) ?? m);
  }

  function htmlTagElement(tag, attrs) {
    switch (tag) {
      case "b": case "strong": return document.createElement("b");
      case "i": case "em": return document.createElement("i");
      case "u": case "ins": return document.createElement("u");
      case "s": case "strike": case "del": return document.createElement("s");
      case "code": return document.createElement("code");
      case "pre": return document.createElement("pre");
      case "blockquote": return document.createElement("blockquote");
      case "a": return makeLink(attribute(attrs, "href"));
      case "tg-spoiler": return makeSpoiler();
      case "span":
        return /tg-spoiler/.test(attribute(attrs, "class") || "") ? makeSpoiler() : document.createElement("span");
      default: return document.createElement("span"); // tg-emoji: show the fallback emoji
    }
  }

  /**
   * Render text a bot sent with parse_mode=HTML. Only Telegram's tags become
   * elements (built with createElement); any other markup, <script> included,
   * stays literal text, and character references are decoded as text.
   */
  function renderTelegramHtml(parent, source) {
    const token = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)\/?>|&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g;
    const stack = [{ tag: null, el: parent }];
    const top = () => stack[stack.length - 1].el;
    let last = 0;
    let text = "";
    const flush = () => {
      if (text) top().append(document.createTextNode(text));
      text = "";
    };
    let m;
    while ((m = token.exec(source)) !== null) {
      text += source.slice(last, m.index);
      last = token.lastIndex;
      if (m[4] !== undefined) {
        const decoded = decodeEntity(m[4]);
        text += decoded ?? m[0];
        continue;
      }
      const closing = m[1] === "/";
      const tag = m[2].toLowerCase();
      if (!HTML_TAGS.has(tag)) {
        text += m[0];
        continue;
      }
      if (closing) {
        const at = stack.map((f) => f.tag).lastIndexOf(tag);
        if (at <= 0) {
          text += m[0];
          continue;
        }
        flush();
        stack.length = at;
      } else {
        flush();
        const el = htmlTagElement(tag, m[3] || "");
        top().append(el);
        stack.push({ tag, el });
      }
    }
    text += source.slice(last);
    flush();
  }

  /** Put a message's text or caption into parent, as text plus safe formatting. */
  function renderFormatted(parent, text, entities, parseMode) {
    if (typeof text !== "string" || text === "") return;
    if (Array.isArray(entities) && entities.length > 0) {
      renderEntities(parent, text, entities);
    } else if (typeof parseMode === "string" && parseMode.toLowerCase() === "html") {
      renderTelegramHtml(parent, text);
    } else {
      parent.append(document.createTextNode(text));
    }
  }

  // ---------------------------------------------------------------- deep links

  /**
   * {bot, payload} when url is a Telegram deep link that starts a bot
   * (https://t.me/<bot>?start=<payload> or tg://resolve?domain=<bot>&start=<payload>), else null.
   */
  function parseDeepLink(raw) {
    if (typeof raw !== "string") return null;
    let url;
    try {
      url = new URL(raw.trim());
    } catch (_err) {
      return null;
    }
    let bot = null;
    if ((url.protocol === "https:" || url.protocol === "http:") &&
        /^(www\.)?(t\.me|telegram\.me)$/i.test(url.hostname)) {
      const m = /^\/([A-Za-z0-9_]{3,64})\/?$/.exec(url.pathname);
      bot = m ? m[1] : null;
    } else if (url.protocol === "tg:" && /^\/{0,2}resolve$/i.test(url.hostname + url.pathname)) {
      bot = url.searchParams.get("domain");
    }
    if (!bot || !url.searchParams.has("start")) return null;
    const payload = url.searchParams.get("start") || "";
    if (!/^[A-Za-z0-9_-]{0,64}$/.test(payload)) return null;
    return { bot, payload };
  }

  const URL_IN_TEXT = /\b(?:https?:\/\/|tg:\/\/)[^\s<>"']+/g;

  /** Turn bare URLs in body's text (outside links) into links, as Telegram clients do. */
  function linkify(body) {
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    const nodes = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.parentElement.closest("a, code, pre, .bad-link")) nodes.push(n);
    }
    for (const node of nodes) {
      const text = node.nodeValue;
      URL_IN_TEXT.lastIndex = 0;
      if (!URL_IN_TEXT.test(text)) continue;
      URL_IN_TEXT.lastIndex = 0;
      const frag = document.createDocumentFragment();
      let pos = 0;
      let m;
      while ((m = URL_IN_TEXT.exec(text)) !== null) {
        const url = m[0].replace(/[.,;:!?)\]}»”'"]+$/, "");
        if (!url) continue;
        frag.append(document.createTextNode(text.slice(pos, m.index)));
        frag.append(makeLink(url, url));
        pos = m.index + url.length;
        URL_IN_TEXT.lastIndex = pos;
      }
      frag.append(document.createTextNode(text.slice(pos)));
      node.replaceWith(frag);
    }
    markDeepLinks(body);
  }

  /** Deep links open for a simulated person (a chooser), not in a new browser tab. */
  function markDeepLinks(root) {
    for (const a of root.querySelectorAll("a[href]")) {
      if (!parseDeepLink(a.href)) continue;
      a.classList.add("deep-link");
      a.removeAttribute("target");
      a.title = t("deeplink.hint");
      if (!a.dataset.testid) a.dataset.testid = "deep-link";
    }
  }

  const chooser = { link: null, returnFocus: null };

  function openDeepLink(link, returnFocus) {
    const bot = app.bots.find((b) => b.username.toLowerCase() === link.bot.toLowerCase());
    if (!bot) {
      showError(t("deeplink.failed"), new Error(t("deeplink.unknown_bot", { bot: link.bot })));
      return;
    }
    chooser.link = { bot: bot.username, payload: link.payload };
    chooser.returnFocus = returnFocus || document.activeElement;
    $("deeplink-intro").textContent = t("deeplink.intro", { bot: bot.username });
    $("deeplink-url").textContent = `https://t.me/${bot.username}?start=${link.payload}`;
    const list = $("deeplink-people");
    list.replaceChildren();
    if (app.users.length === 0) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = t("deeplink.none");
      list.append(li);
    }
    for (const user of app.users) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "person";
      button.dataset.testid = "deeplink-person";
      button.dataset.userId = String(user.id);
      const name = document.createElement("span");
      name.className = "person-name";
      name.textContent = userLabel(user);
      button.append(name, roleBadge(user));
      button.addEventListener("click", () => chooseDeepLinkPerson(user.id));
      li.append(button);
      list.append(li);
    }
    const dialog = $("deeplink-dialog");
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    const first = list.querySelector("button");
    if (first) first.focus();
  }

  async function chooseDeepLinkPerson(userId) {
    const link = chooser.link;
    $("deeplink-dialog").close();
    if (!link) return;
    chooser.link = null;
    let pane = app.panes.find((p) => p.userId === userId && p.bot === link.bot)
      || app.panes.find((p) => p.userId === userId)
      || app.panes.find((p) => p.userId === null);
    if (!pane) pane = app.panes.length < MAX_PANES ? addPane() : app.active;
    pane.open(userId, link.bot);
    setActive(pane);
    pane.focusComposer();
    await pane.sendStart(link.payload);
  }

  // ------------------------------------------------------------------ messages

  function formatTime(date) {
    if (!Number.isFinite(date)) return "";
    const d = new Date(date * 1000);
    return d.toLocaleTimeString(HTML_LANG[app.lang], { hour: "2-digit", minute: "2-digit" });
  }

  /** A message's full date and time (its time's tooltip). In the sandbox message dates are
   * sandbox time, like everything else the clock moves. */
  function formatStamp(date) {
    return new Date(date * 1000).toLocaleString(HTML_LANG[app.lang], {
      weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  /** The local calendar day of a message date, as a comparable key. */
  function dayKey(date) {
    const d = new Date(date * 1000);
    return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
  }

  /** The line above a day's first message, as Telegram draws it. */
  function dayDivider(date) {
    const li = document.createElement("li");
    li.className = "day-divider";
    li.dataset.testid = "day-divider";
    li.dataset.day = dayKey(date);
    const label = document.createElement("span");
    label.textContent = new Date(date * 1000).toLocaleDateString(HTML_LANG[app.lang], {
      weekday: "long", year: "numeric", month: "long", day: "numeric",
    });
    li.append(label);
    return li;
  }

  function fileName(file, fallback) {
    return (file && (file.file_name || file.name)) || fallback;
  }

  function mediaLabel(text) {
    const span = document.createElement("span");
    span.className = "media-label";
    span.textContent = `[${text}]`;
    return span;
  }

  function renderMedia(msg) {
    const frag = document.createDocumentFragment();
    const photo = Array.isArray(msg.photo) ? msg.photo[msg.photo.length - 1] : msg.photo;
    if (photo) {
      const url = safeMediaUrl(photo.download_url || msg.download_url);
      if (url) {
        const img = document.createElement("img");
        img.className = "media-photo";
        img.src = url;
        img.alt = msg.caption ? t("msg.photo_alt", { caption: msg.caption }) : t("msg.photo");
        img.loading = "lazy";
        img.draggable = !msg.protect_content;
        img.dataset.testid = "message-photo";
        frag.append(img);
      } else {
        frag.append(mediaLabel(t("msg.photo")));
      }
    }
    if (msg.document) {
      const name = fileName(msg.document, "document");
      const url = safeMediaUrl(msg.document.download_url || msg.download_url);
      const box = document.createElement("div");
      box.className = "media-document";
      box.dataset.testid = "message-document";
      const icon = document.createElement("span");
      icon.className = "doc-icon";
      icon.setAttribute("aria-hidden", "true");
      icon.textContent = /\.pdf$/i.test(name) ? "PDF" : /\.json$/i.test(name) ? "JSON" : "FILE";
      box.append(icon);
      if (url && !msg.protect_content) {
        const a = document.createElement("a");
        a.href = url;
        a.download = name;
        a.textContent = t("msg.document", { name });
        a.setAttribute("aria-label", t("msg.download", { name }));
        a.dataset.testid = "document-download";
        box.append(a);
      } else if (url) {
        // Protected (a referral slip): Telegram lets the person open it, not save or forward it.
        const a = document.createElement("a");
        a.href = url;
        a.target = "_blank";
        a.rel = "noopener";
        a.textContent = t("msg.document", { name });
        a.setAttribute("aria-label", t("msg.view", { name }));
        a.dataset.testid = "document-view";
        box.append(a);
      } else {
        const label = document.createElement("span");
        label.textContent = t("msg.document", { name });
        box.append(label);
      }
      frag.append(box);
    }
    if (msg.voice) {
      const url = safeMediaUrl(msg.voice.download_url || msg.download_url);
      if (url) {
        const audio = document.createElement("audio");
        audio.controls = true;
        audio.preload = "none";
        audio.src = url;
        audio.setAttribute("aria-label", t("msg.voice"));
        audio.dataset.testid = "message-voice";
        frag.append(audio);
      } else {
        frag.append(mediaLabel(t("msg.voice")));
      }
    }
    return frag;
  }

  // ------------------------------------------------------------------ payments

  /** An amount in the currency's smallest unit, as people read it ("⭐ 150" for Stars). */
  function formatAmount(currency, amount) {
    if (!Number.isFinite(amount)) return "";
    if (currency === "XTR") return `⭐ ${amount}`;
    try {
      const fmt = new Intl.NumberFormat(HTML_LANG[app.lang], { style: "currency", currency });
      return fmt.format(amount / 10 ** fmt.resolvedOptions().maximumFractionDigits);
    } catch (_err) {
      return `${amount} ${currency}`; // a code Intl does not know
    }
  }

  function invoiceAmount(invoice) {
    return formatAmount(String(invoice.currency ?? ""), Number(invoice.total_amount));
  }

  function hasPayButton(msg) {
    const rows = msg.reply_markup && msg.reply_markup.inline_keyboard;
    return Array.isArray(rows) && rows.some((row) => Array.isArray(row) && row.some((b) => b && b.pay));
  }

  /** What the person sees after pressing Pay (the client API's payment outcome). */
  function outcomeText(invoice, outcome) {
    const status = String(outcome.status || "");
    const reason = outcome.error_message ? String(outcome.error_message) : "—";
    if (status === "paid") {
      return t("pay.outcome.paid", {
        amount: formatAmount(String(outcome.currency ?? invoice.currency), Number(outcome.total_amount)),
      });
    }
    if (["declined", "rejected", "timeout", "expired", "already_paid"].includes(status)) {
      return t(`pay.outcome.${status}`, { reason });
    }
    return reason;
  }

  /** The invoice card: title, description, amount, its payment status and a Pay button
   * (unless the bot's own keyboard has one); card payments ask for a test card number. */
  function renderInvoice(pane, msg) {
    const invoice = msg.invoice;
    const card = document.createElement("div");
    card.className = "invoice-card";
    card.dataset.testid = "message-invoice";
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", t("pay.invoice_aria", { title: String(invoice.title ?? "") }));
    const title = document.createElement("div");
    title.className = "invoice-title";
    title.textContent = String(invoice.title ?? "");
    const desc = document.createElement("div");
    desc.className = "invoice-desc";
    desc.textContent = String(invoice.description ?? "");
    const amount = document.createElement("div");
    amount.className = "invoice-amount";
    amount.dataset.testid = "invoice-amount";
    amount.textContent = invoiceAmount(invoice);
    card.append(title, desc, amount);

    const status = document.createElement("div");
    status.className = "invoice-status";
    status.dataset.testid = "invoice-status";
    status.setAttribute("role", "status");
    const outcome = pane.payOutcomes.get(String(msg.message_id));
    const settled = invoice.status === "paid" || invoice.status === "refunded";
    if (settled) {
      status.textContent = t(`pay.status.${invoice.status}`);
      status.dataset.status = invoice.status;
    } else if (outcome) {
      status.textContent = outcome.pending ? t("pay.paying") : outcomeText(invoice, outcome);
      status.dataset.status = outcome.pending ? "paying" : String(outcome.status);
    }
    status.hidden = status.textContent === "";
    card.append(status);
    if (settled) return card;

    if (!hasPayButton(msg)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "primary invoice-pay";
      button.dataset.testid = "invoice-pay";
      button.textContent = t("pay.button", { amount: invoiceAmount(invoice) });
      button.disabled = Boolean(outcome && outcome.pending);
      button.addEventListener("click", () => pane.startPay(msg, button));
      card.append(button);
    }
    if (invoice.currency !== "XTR") card.append(cardForm(pane, msg));
    return card;
  }

  /** The test card form of a provider payment (Stars need no card). */
  function cardForm(pane, msg) {
    const form = document.createElement("form");
    form.className = "invoice-card-form";
    form.dataset.testid = "invoice-card-form";
    form.hidden = true;
    const label = document.createElement("label");
    label.textContent = t("pay.card_label");
    const input = document.createElement("input");
    input.type = "text";
    input.inputMode = "numeric";
    input.autocomplete = "off";
    input.value = "4242 4242 4242 4242";
    input.dataset.testid = "invoice-card-number";
    label.append(input);
    const hint = document.createElement("p");
    hint.className = "muted invoice-hint";
    hint.textContent = t("pay.card_hint");
    const actions = document.createElement("div");
    actions.className = "contact-actions";
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.className = "primary";
    submit.dataset.testid = "invoice-card-submit";
    submit.textContent = t("pay.button", { amount: invoiceAmount(msg.invoice) });
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "ghost";
    cancel.textContent = t("pay.cancel");
    cancel.addEventListener("click", () => {
      form.hidden = true;
    });
    actions.append(submit, cancel);
    form.append(label, hint, actions);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      form.hidden = true;
      pane.pay(msg, input.value.trim());
    });
    return form;
  }

  /** A payment service message (successful_payment, refunded_payment), centred like Telegram's. */
  function renderPaymentService(msg) {
    const li = document.createElement("li");
    li.className = "msg msg-service";
    li.dataset.testid = msg.successful_payment ? "message-payment" : "message-refund";
    li.dataset.messageId = String(msg.message_id);
    const span = document.createElement("span");
    const payment = msg.successful_payment || msg.refunded_payment;
    const amount = formatAmount(String(payment.currency ?? ""), Number(payment.total_amount));
    span.textContent = t(msg.successful_payment ? "pay.service.paid" : "pay.service.refunded", { amount });
    span.title = String(payment.telegram_payment_charge_id ?? "");
    li.append(span);
    return li;
  }

  function renderInlineKeyboard(pane, msg) {
    const rows = msg.reply_markup && msg.reply_markup.inline_keyboard;
    if (!Array.isArray(rows) || rows.length === 0) return null;
    const box = document.createElement("div");
    box.className = "inline-kb";
    box.dataset.testid = "inline-keyboard";
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", t("kb.inline_aria"));
    for (const row of rows) {
      if (!Array.isArray(row)) continue;
      const rowEl = document.createElement("div");
      rowEl.className = "kb-row";
      for (const button of row) {
        if (!button || typeof button !== "object") continue;
        rowEl.append(inlineButton(pane, msg, button));
      }
      box.append(rowEl);
    }
    markDeepLinks(box);
    return box;
  }

  function inlineButton(pane, msg, button) {
    const label = String(button.text ?? "");
    if (typeof button.url === "string" || (button.login_url && button.login_url.url)) {
      const a = makeLink(button.url || button.login_url.url, `${label} ↗`);
      a.classList.add("kb-btn", "kb-link");
      a.dataset.testid = "inline-button";
      return a;
    }
    const el = document.createElement("button");
    el.type = "button";
    el.className = "kb-btn";
    el.textContent = label;
    el.dataset.testid = "inline-button";
    if (button.pay && msg.invoice) {
      el.dataset.testid = "invoice-pay";
      const settled = msg.invoice.status === "paid" || msg.invoice.status === "refunded";
      const outcome = pane.payOutcomes.get(String(msg.message_id));
      el.disabled = settled || Boolean(outcome && outcome.pending);
      el.addEventListener("click", () => pane.startPay(msg, el));
    } else if (typeof button.callback_data === "string") {
      el.addEventListener("click", () => pane.pressInline(msg.message_id, button.callback_data, el));
    } else if (button.web_app && typeof button.web_app.url === "string") {
      el.classList.add("kb-webapp");
      el.dataset.testid = "inline-webapp";
      el.addEventListener("click", () => pane.openWebApp(msg.message_id, button.web_app.url, label, el));
    } else if (button.copy_text && typeof button.copy_text.text === "string") {
      el.addEventListener("click", () => copyText(button.copy_text.text));
    } else {
      el.disabled = true;
      el.title = t("kb.unsupported");
    }
    return el;
  }

  /** The Mini App over the page: a dialog with a frame, closed by × / Escape or by the app's
   *  own web_app_close event (https://core.telegram.org/api/web-events). */
  function showWebApp(url, label, opener) {
    const old = document.querySelector(".webapp-overlay");
    if (old) old.remove();
    const overlay = document.createElement("div");
    overlay.className = "webapp-overlay";
    overlay.dataset.testid = "webapp-overlay";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", label);
    const bar = document.createElement("div");
    bar.className = "webapp-bar";
    const title = document.createElement("span");
    title.textContent = label;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "webapp-close";
    close.textContent = "×";
    close.setAttribute("aria-label", t("webapp.close"));
    close.dataset.testid = "webapp-close";
    bar.append(title, close);
    const frame = document.createElement("iframe");
    frame.className = "webapp-frame";
    frame.dataset.testid = "webapp-frame";
    frame.title = label;
    frame.src = url;
    overlay.append(bar, frame);
    document.body.append(overlay);
    const done = () => {
      window.removeEventListener("message", onMessage);
      document.removeEventListener("keydown", onKey);
      overlay.remove();
      if (opener && opener.isConnected) opener.focus();
    };
    const onMessage = (ev) => {
      if (ev.source !== frame.contentWindow) return;
      let event = null;
      try { event = typeof ev.data === "string" ? JSON.parse(ev.data) : ev.data; } catch (_e) { return; }
      if (event && event.eventType === "web_app_close") done();
    };
    const onKey = (ev) => { if (ev.key === "Escape") done(); };
    window.addEventListener("message", onMessage);
    document.addEventListener("keydown", onKey);
    close.addEventListener("click", done);
    close.focus();
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      toast(t("toast.copied"));
    } catch (_err) {
      toast(t("toast.copy_this", { text }));
    }
  }

  function renderMessage(pane, msg) {
    if (msg.successful_payment || msg.refunded_payment) return renderPaymentService(msg);
    const fromUser = msg.from === "user";
    const li = document.createElement("li");
    li.className = `msg ${fromUser ? "msg-user" : "msg-bot"}`;
    li.dataset.testid = fromUser ? "message-user" : "message-bot";
    li.dataset.messageId = String(msg.message_id);

    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (msg.protect_content) bubble.classList.add("protected");
    const replied = msg.reply_to_message_id != null && pane.messages.get(String(msg.reply_to_message_id));
    if (replied) {
      const quote = document.createElement("div");
      quote.className = "reply-quote";
      quote.dataset.testid = "message-reply-quote";
      const snippet = replied.text || replied.caption
        || (replied.photo ? t("msg.photo") : replied.document ? fileName(replied.document, "document") : t("msg.message"));
      quote.textContent = snippet.length > 80 ? `${snippet.slice(0, 80)}…` : snippet;
      bubble.append(quote);
    }
    bubble.append(renderMedia(msg));

    if (msg.location && Number.isFinite(msg.location.latitude) && Number.isFinite(msg.location.longitude)) {
      const loc = document.createElement("div");
      loc.className = "contact-card";
      loc.textContent = t("msg.location", {
        lat: msg.location.latitude.toFixed(5), lon: msg.location.longitude.toFixed(5),
      });
      bubble.append(loc);
    }

    if (msg.contact) {
      const c = document.createElement("div");
      c.className = "contact-card";
      c.dataset.testid = "message-contact";
      const name = [msg.contact.first_name, msg.contact.last_name].filter(Boolean).join(" ");
      c.textContent = t("msg.contact", { who: `${name ? `${name}, ` : ""}${msg.contact.phone_number ?? ""}` });
      bubble.append(c);
    }

    if (msg.invoice && typeof msg.invoice === "object") bubble.append(renderInvoice(pane, msg));

    const body = document.createElement("div");
    body.className = "text";
    body.dataset.testid = "message-text";
    if (typeof msg.text === "string" && msg.text !== "") {
      renderFormatted(body, msg.text, msg.entities, msg.parse_mode);
    } else if (typeof msg.caption === "string" && msg.caption !== "") {
      renderFormatted(body, msg.caption, msg.caption_entities, msg.parse_mode);
    }
    if (body.childNodes.length > 0) {
      linkify(body);
      bubble.append(body);
    }

    const meta = document.createElement("div");
    meta.className = "meta";
    if (msg.protect_content) {
      const lock = document.createElement("span");
      lock.className = "badge";
      lock.textContent = t("msg.protected");
      lock.title = t("msg.protected_title");
      meta.append(lock);
    }
    if (msg.edited) {
      const edited = document.createElement("span");
      edited.className = "badge";
      edited.dataset.testid = "message-edited";
      edited.textContent = t("msg.edited");
      meta.append(edited);
    }
    const time = document.createElement("time");
    const stamp = msg.edit_date || msg.date;
    time.dataset.testid = "message-time";
    time.textContent = formatTime(stamp);
    if (Number.isFinite(stamp)) {
      time.dateTime = new Date(stamp * 1000).toISOString();
      time.title = formatStamp(stamp);
    }
    meta.append(time);
    bubble.append(meta);
    li.append(bubble);

    const kb = renderInlineKeyboard(pane, msg);
    if (kb) li.append(kb);
    return li;
  }

  // --------------------------------------------------------------------- panes

  /** One chat: a simulated person with one bot, followed live. */
  class Pane {
    constructor() {
      this.id = app.nextPaneId++;
      this.userId = null;
      this.bot = null;
      this.messages = new Map(); // message_id -> message object
      this.payOutcomes = new Map(); // invoice message_id -> last payment outcome shown
      this.lastSeq = 0;
      this.generation = 0; // bumped on every chat switch; stale async results check it
      this.stream = null;
      this.pollController = null;
      this.replyKeyboard = null; // the reply keyboard markup the person currently sees
      this.contactOneTime = false;
      this.connection = "off";
      this.daysPending = false;
      this.flashTimer = 0;

      const fragment = $("pane-template").content.cloneNode(true);
      this.root = fragment.querySelector(".pane");
      this.root.dataset.paneId = String(this.id);
      const suffix = this.id === 1 ? "" : `-${this.id}`;
      this.root.id = `pane${suffix || "-1"}`;
      const ids = {
        title: `chat-title${suffix}`,
        "composer-text": `composer-text${suffix}`,
        "contact-phone": `contact-phone${suffix}`,
        "contact-name": `contact-name${suffix}`,
        "device-kind": `device-kind${suffix}`,
        "device-value": `device-value${suffix}`,
        "commands-menu": `commands-menu${suffix}`,
        "attach-menu": `attach-menu${suffix}`,
      };
      for (const [part, id] of Object.entries(ids)) this.part(part).id = id;
      this.part("composer-label").htmlFor = ids["composer-text"];
      this.part("contact-phone-label").htmlFor = ids["contact-phone"];
      this.part("contact-name-label").htmlFor = ids["contact-name"];
      this.part("device-kind-label").htmlFor = ids["device-kind"];
      this.part("device-value-label").htmlFor = ids["device-value"];
      this.part("commands-btn").setAttribute("aria-controls", ids["commands-menu"]);
      this.part("attach-btn").setAttribute("aria-controls", ids["attach-menu"]);
      this.root.setAttribute("aria-labelledby", ids.title);
      applyI18n(this.root);
      this.wire();
    }

    part(name) {
      return this.root.querySelector(`[data-part="${name}"]`);
    }

    get user() {
      return app.users.find((u) => u.id === this.userId) || null;
    }

    get botInfo() {
      return app.bots.find((b) => b.username === this.bot) || null;
    }

    // ---------------------------------------------------------------- chrome

    setConnection(kind) {
      this.connection = kind;
      const el = this.part("conn");
      el.textContent = t(`conn.${kind}`);
      el.className = `conn conn-${kind}`;
    }

    renderBots() {
      const box = this.part("bots");
      box.replaceChildren();
      if (app.bots.length === 0) {
        const none = document.createElement("span");
        none.className = "muted";
        none.textContent = t("bots.none");
        box.append(none);
        return;
      }
      for (const bot of app.bots) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "bot-btn";
        button.dataset.testid = "bot-button";
        button.dataset.bot = bot.username;
        button.setAttribute("aria-pressed", String(bot.username === this.bot));
        button.textContent = bot.first_name || `@${bot.username}`;
        button.title = `@${bot.username}`;
        button.addEventListener("click", () => this.selectBot(bot.username));
        box.append(button);
      }
    }

    updateHeader() {
      const user = this.user;
      const bot = this.botInfo;
      const ready = Boolean(user && bot);
      this.part("title").textContent = ready
        ? t("pane.title", { person: userLabel(user), bot: `${bot.first_name || bot.username} (@${bot.username})` })
        : user ? t("pane.pick_bot") : t("pane.pick");
      for (const el of this.part("composer").elements) el.disabled = !ready;
      this.root.classList.toggle("chat-ready", ready);
      this.part("close").hidden = app.panes.length <= 1;
      // Readings belong to patients: the device is offered in the patient bot's chat only,
      // and only when the sandbox (not a bare emulator) serves /sandbox/device.
      const device = ready && app.rolesKnown && !isDoctorBot(this.bot);
      this.part("attach-device").hidden = !device;
      if (!device && !this.part("device-form").hidden) this.closeDeviceForm(false);
    }

    /** Page language changed: redo every text this pane drew itself. */
    relabel() {
      applyI18n(this.root);
      this.setConnection(this.connection);
      this.renderBots();
      this.updateHeader();
      this.updateReplyKeyboard(true);
      for (const msg of this.messages.values()) {
        const el = this.findMessageEl(msg.message_id);
        if (el) el.replaceWith(renderMessage(this, msg));
      }
      this.renderDays();
    }

    focusComposer() {
      this.part("composer-text").focus();
    }

    // -------------------------------------------------------------- messages

    messageList() {
      return this.part("messages");
    }

    findMessageEl(id) {
      for (const el of this.messageList().children) {
        if (el.dataset.messageId === String(id)) return el;
      }
      return null;
    }

    nearBottom() {
      const list = this.messageList();
      return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    }

    scrollToBottom() {
      const list = this.messageList();
      list.scrollTop = list.scrollHeight;
    }

    /** Insert or replace one message, keeping the list ordered by message_id. */
    upsertMessage(msg) {
      if (!msg || msg.message_id === undefined || msg.message_id === null) return;
      if (msg.deleted) {
        this.removeMessage(msg.message_id);
        return;
      }
      const stick = this.nearBottom();
      this.messages.set(String(msg.message_id), msg);
      const el = renderMessage(this, msg);
      const existing = this.findMessageEl(msg.message_id);
      if (existing) {
        existing.replaceWith(el);
      } else {
        let before = null;
        for (const other of this.messageList().children) {
          if (Number(other.dataset.messageId) > Number(msg.message_id)) {
            before = other;
            break;
          }
        }
        this.messageList().insertBefore(el, before);
        if (stick || msg.from === "user") this.scrollToBottom();
      }
      this.scheduleDays();
    }

    removeMessage(id) {
      this.messages.delete(String(id));
      const el = this.findMessageEl(id);
      if (el) el.remove();
      this.scheduleDays();
    }

    clearMessages() {
      this.messages.clear();
      this.payOutcomes.clear();
      this.messageList().replaceChildren();
    }

    /** Day lines once per batch of changes (a whole history arrives in one go). */
    scheduleDays() {
      if (this.daysPending) return;
      this.daysPending = true;
      queueMicrotask(() => {
        this.daysPending = false;
      this.flashTimer = 0;
        this.renderDays();
      });
    }

    /** A date line above the first message of each day (the page's time zone). */
    renderDays() {
      const list = this.messageList();
      const stick = this.nearBottom();
      for (const el of [...list.children]) {
        if (el.classList.contains("day-divider")) el.remove();
      }
      let last = "";
      for (const el of [...list.children]) {
        const msg = this.messages.get(el.dataset.messageId);
        if (!msg || !Number.isFinite(msg.date)) continue;
        const day = dayKey(msg.date);
        if (day !== last) list.insertBefore(dayDivider(msg.date), el);
        last = day;
      }
      if (stick) this.scrollToBottom();
    }

    // --------------------------------------------------------- reply keyboard

    /** Follow the reply keyboard the person sees, as Telegram does: a bot message
     * with a keyboard shows it, one with remove_keyboard hides it, and a one-time
     * keyboard goes away once used. The chat history tells where we start. */
    trackReplyKeyboard(msg) {
      if (!msg || msg.from === "user" || !msg.reply_markup || msg.deleted) return;
      if (Array.isArray(msg.reply_markup.keyboard)) {
        this.setReplyKeyboard(msg.reply_markup);
      } else if (msg.reply_markup.remove_keyboard) {
        this.setReplyKeyboard(null);
      }
    }

    /** A payment or refund message changes how its invoice shows (Paid, Refunded). */
    trackPayment(msg) {
      if (!msg || !(msg.successful_payment || msg.refunded_payment)) return;
      const invoiceMsg = this.messages.get(String(msg.invoice_message_id));
      if (!invoiceMsg || !invoiceMsg.invoice) return;
      const status = msg.successful_payment ? "paid" : "refunded";
      this.upsertMessage({ ...invoiceMsg, invoice: { ...invoiceMsg.invoice, status } });
    }

    setReplyKeyboard(markup) {
      this.replyKeyboard = markup && Array.isArray(markup.keyboard) ? markup : null;
      this.updateReplyKeyboard(false);
    }

    updateReplyKeyboard(force) {
      const box = this.part("reply-keyboard");
      const markup = this.replyKeyboard;
      const input = this.part("composer-text");
      if (!markup) {
        box.hidden = true;
        box.replaceChildren();
        box.dataset.shown = "";
        input.placeholder = t("composer.message");
        return;
      }
      input.placeholder = typeof markup.input_field_placeholder === "string" && markup.input_field_placeholder
        ? markup.input_field_placeholder
        : t("composer.message");
      const key = JSON.stringify(markup);
      if (!force && box.dataset.shown === key && !box.hidden) return;
      box.dataset.shown = key;
      box.replaceChildren();
      for (const row of markup.keyboard) {
        if (!Array.isArray(row)) continue;
        const rowEl = document.createElement("div");
        rowEl.className = "kb-row";
        for (const raw of row) {
          const button = typeof raw === "string" ? { text: raw } : raw;
          if (!button || typeof button !== "object") continue;
          rowEl.append(this.replyButton(markup, button));
        }
        box.append(rowEl);
      }
      box.hidden = false;
    }

    replyButton(markup, button) {
      const el = document.createElement("button");
      el.type = "button";
      el.className = "kb-btn";
      el.textContent = String(button.text ?? "");
      el.dataset.testid = button.request_contact ? "reply-button-contact" : "reply-button";
      const oneTime = Boolean(markup.one_time_keyboard);
      if (button.request_contact) {
        el.title = t("kb.contact_title");
        el.addEventListener("click", () => this.openContactForm(oneTime));
      } else if (
        button.request_location || button.request_poll || button.request_users ||
        button.request_user || button.request_chat || button.web_app
      ) {
        el.disabled = true;
        el.title = t("kb.unsupported");
      } else {
        el.addEventListener("click", () => this.pressReply(String(button.text ?? ""), oneTime));
      }
      return el;
    }

    // ------------------------------------------------------------ live events

    applyEvent(ev) {
      if (!ev || typeof ev !== "object") return;
      if (Number.isFinite(ev.seq)) {
        if (ev.seq <= this.lastSeq) return;
        this.lastSeq = ev.seq;
      }
      switch (ev.kind) {
        case "message":
          this.upsertMessage(ev.message);
          this.trackReplyKeyboard(ev.message);
          this.trackPayment(ev.message);
          break;
        case "edit":
          this.upsertMessage(ev.message);
          break;
        case "delete": {
          const id = ev.message ? ev.message.message_id : ev.message_id;
          if (id !== undefined) this.removeMessage(id);
          break;
        }
        case "callback_answer": {
          const answer = ev.answer || {};
          if (typeof answer.text === "string" && answer.text !== "") {
            toast(answer.text, { alert: Boolean(answer.show_alert) });
          }
          break;
        }
        default:
          if (ev.message) this.upsertMessage(ev.message);
      }
    }

    /** Load the whole chat; later changes arrive as events newer than its seq. */
    async syncHistory(gen) {
      const data = await api("GET", `/client/messages?${query({ user_id: this.userId, bot: this.bot, since: 0 })}`);
      if (gen !== this.generation) return false;
      this.clearMessages();
      for (const msg of data.messages || []) this.upsertMessage(msg);
      if ("reply_keyboard" in data) {
        this.setReplyKeyboard(data.reply_keyboard);
      } else {
        for (const msg of data.messages || []) this.trackReplyKeyboard(msg);
      }
      if (Number.isFinite(data.seq)) this.lastSeq = Math.max(this.lastSeq, data.seq);
      this.scrollToBottom();
      return true;
    }

    stopLive() {
      if (this.stream) {
        this.stream.close();
        this.stream = null;
      }
      if (this.pollController) {
        this.pollController.abort();
        this.pollController = null;
      }
    }

    /** Load the chat, then follow it: server-sent events, or long polling without them. */
    async startLive() {
      this.stopLive();
      const gen = this.generation;
      if (this.userId === null || !this.bot) {
        this.setConnection("off");
        return;
      }
      try {
        await this.syncHistory(gen);
      } catch (err) {
        if (gen !== this.generation) return;
        showError(t("error.load_chat"), err);
        this.startPolling(gen, false);
        return;
      }
      if (gen !== this.generation) return;
      if (typeof window.EventSource !== "function") {
        this.startPolling(gen, true);
        return;
      }
      // The stream resumes after `since` (and after Last-Event-ID when it reconnects).
      const url = `/client/stream?${query({ user_id: this.userId, bot: this.bot, since: this.lastSeq })}`;
      const stream = new EventSource(url);
      this.stream = stream;
      let opened = false;
      const onEvent = (e) => {
        if (gen !== this.generation) return;
        let ev;
        try {
          ev = JSON.parse(e.data);
        } catch (_err) {
          return;
        }
        this.applyEvent(ev);
      };
      // Events may come unnamed ("message") or named after their kind; seq dedupes.
      for (const name of ["message", "edit", "delete", "callback_answer"]) {
        stream.addEventListener(name, onEvent);
      }
      stream.addEventListener("open", () => {
        if (gen !== this.generation) return;
        opened = true;
        this.setConnection("live");
      });
      stream.addEventListener("error", () => {
        if (gen !== this.generation) return;
        // Never opened, or the browser gave up: use the long-poll endpoint instead.
        if (!opened || stream.readyState === EventSource.CLOSED) {
          stream.close();
          if (this.stream === stream) this.stream = null;
          this.startPolling(gen, true);
        } else {
          this.setConnection("reconnecting");
        }
      });
    }

    async startPolling(gen, synced) {
      if (this.pollController) return;
      const controller = new AbortController();
      this.pollController = controller;
      this.setConnection("polling");
      let delayMs = 0;
      while (gen === this.generation && !controller.signal.aborted) {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        if (gen !== this.generation || controller.signal.aborted) return;
        try {
          if (!synced) {
            await this.syncHistory(gen);
            synced = true;
          }
          const params = query({ user_id: this.userId, bot: this.bot, since: this.lastSeq, timeout: POLL_TIMEOUT_S });
          const response = await fetch(`/client/events?${params}`, { signal: controller.signal });
          const data = await response.json();
          if (!response.ok || data.ok === false) throw new ApiError(data.error || `${response.status}`);
          if (gen !== this.generation) return;
          const events = Array.isArray(data) ? data : data.events || [];
          for (const ev of events) this.applyEvent(ev);
          if (Number.isFinite(data.seq)) this.lastSeq = Math.max(this.lastSeq, data.seq);
          this.setConnection("polling");
          delayMs = 0;
        } catch (_err) {
          if (controller.signal.aborted || gen !== this.generation) return;
          this.setConnection("reconnecting");
          delayMs = Math.min(delayMs ? delayMs * 2 : 1000, 10000);
        }
      }
    }

    // ---------------------------------------------------------------- actions

    /** POST a user action; show the person's own message at once (its event is a repeat). */
    async post(path, body) {
      const gen = this.generation;
      const data = await api("POST", path, body);
      if (gen === this.generation && data.message && typeof data.message === "object") {
        this.upsertMessage(data.message);
      }
      return data;
    }

    requireChat() {
      if (this.userId === null || !this.bot) {
        showError(t("error.not_ready"), new Error(t("error.pick_first")));
        return false;
      }
      return true;
    }

    async sendText(text) {
      if (!this.requireChat()) return false;
      const trimmed = text.trim();
      try {
        if (/^\/start(@\S+)?(\s|$)/.test(trimmed)) {
          const payload = trimmed.replace(/^\/start(@\S+)?\s*/, "");
          await this.post("/client/start", { user_id: this.userId, bot: this.bot, ...(payload ? { payload } : {}) });
        } else {
          await this.post("/client/send", { user_id: this.userId, bot: this.bot, text });
        }
        clearError();
        return true;
      } catch (err) {
        showError(t("error.send"), err);
        return false;
      }
    }

    async sendStart(payload) {
      return this.sendText(payload ? `/start ${payload}` : "/start");
    }

    async pressInline(messageId, data, el) {
      if (!this.requireChat()) return;
      el.disabled = true;
      el.setAttribute("aria-busy", "true");
      try {
        await api("POST", "/client/click", { user_id: this.userId, bot: this.bot, message_id: messageId, data });
        clearError();
      } catch (err) {
        showError(t("error.press"), err);
      } finally {
        el.disabled = false;
        el.removeAttribute("aria-busy");
      }
    }

    /** A web_app button: the emulator signs the launch data with the bot's token, as
     *  Telegram does, and the Mini App opens over the page in a frame (it closes itself with
     *  Telegram's own "web_app_close" event, or with the × button). */
    async openWebApp(messageId, url, label, el) {
      if (!this.requireChat()) return;
      el.disabled = true;
      try {
        const opened = await api("POST", "/client/web_app", {
          user_id: this.userId, bot: this.bot, message_id: messageId, url,
        });
        clearError();
        showWebApp(opened.url, label, el);
      } catch (err) {
        showError(t("error.press"), err);
      } finally {
        el.disabled = false;
      }
    }

    /** Pay pressed: Stars are paid at once, a card payment asks for a test card first. */
    startPay(msg, el) {
      if (!this.requireChat() || !msg.invoice) return;
      if (msg.invoice.currency === "XTR") {
        this.pay(msg, null);
        return;
      }
      const li = this.findMessageEl(msg.message_id);
      const form = li && li.querySelector(".invoice-card-form");
      if (!form) return;
      form.hidden = false;
      const input = form.querySelector("input");
      input.focus();
      input.select();
      if (el) el.setAttribute("aria-expanded", "true");
    }

    /** POST /client/pay and show the outcome on the invoice (the bot's answer may take up to
     * the emulator's pre-checkout deadline). */
    async pay(msg, card) {
      const gen = this.generation;
      const key = String(msg.message_id);
      this.payOutcomes.set(key, { pending: true });
      this.rerender(msg.message_id);
      const body = { user_id: this.userId, bot: this.bot, message_id: msg.message_id };
      if (card) body.card = card;
      let outcome;
      try {
        outcome = await api("POST", "/client/pay", body);
        clearError();
      } catch (err) {
        if (gen !== this.generation) return;
        this.payOutcomes.delete(key);
        this.rerender(msg.message_id);
        showError(t("pay.failed"), err);
        return;
      }
      if (gen !== this.generation) return;
      this.payOutcomes.set(key, outcome);
      const current = this.messages.get(key) || msg;
      if (outcome.status === "paid" && current.invoice) {
        this.upsertMessage({ ...current, invoice: { ...current.invoice, status: "paid" } });
      } else {
        this.rerender(msg.message_id);
      }
      toast(outcomeText(current.invoice || msg.invoice, outcome), { alert: outcome.status !== "paid" });
    }

    /** Draw a message again from what the pane knows (payment state changed). */
    rerender(id) {
      const msg = this.messages.get(String(id));
      const el = this.findMessageEl(id);
      if (msg && el) el.replaceWith(renderMessage(this, msg));
    }

    async pressReply(text, oneTime) {
      if (!this.requireChat()) return;
      try {
        await this.post("/client/reply_button", { user_id: this.userId, bot: this.bot, text });
        clearError();
        if (oneTime) this.setReplyKeyboard(null);
      } catch (err) {
        showError(t("error.press"), err);
      }
    }

    openContactForm(oneTime) {
      this.contactOneTime = oneTime;
      const user = this.user;
      this.part("contact-name").value = (user && user.first_name) || "";
      this.part("contact-phone").value = (user && user.phone_number) || "";
      this.part("contact-form").hidden = false;
      this.part("contact-phone").focus();
    }

    closeContactForm() {
      this.part("contact-form").hidden = true;
      this.part("contact-phone").value = "";
      this.contactOneTime = false;
    }

    async shareContact(e) {
      e.preventDefault();
      if (!this.requireChat()) return;
      const phone = this.part("contact-phone").value.trim();
      if (!/^\+?[0-9][0-9 ()-]{2,30}$/.test(phone)) {
        showError(t("error.phone"), new Error(t("error.phone_hint")));
        this.part("contact-phone").focus();
        return;
      }
      const body = { user_id: this.userId, bot: this.bot, phone_number: phone, own: true };
      const firstName = this.part("contact-name").value.trim();
      if (firstName) body.first_name = firstName;
      try {
        await this.post("/client/contact", body);
        clearError();
        if (this.contactOneTime) this.setReplyKeyboard(null);
        this.closeContactForm();
        this.focusComposer();
      } catch (err) {
        showError(t("error.contact"), err);
      }
    }

    openDeviceForm() {
      this.part("device-form").hidden = false;
      this.showDeviceExample();
      this.part("device-kind").focus();
    }

    /** Close the simulated device's form; `refocus`: back to the "+" button that opened it. */
    closeDeviceForm(refocus) {
      this.part("device-form").hidden = true;
      this.part("device-value").value = "";
      if (refocus) this.part("attach-btn").focus();
    }

    showDeviceExample() {
      const kind = this.part("device-kind").value;
      const input = this.part("device-value");
      input.placeholder = DEVICE_EXAMPLES[kind] || "";
      input.inputMode = kind === "bp" ? "text" : "decimal"; // a phone's number pad has no "/"
    }

    /** The patient's simulated device posts the reading (through the real device API). */
    async sendReading(e) {
      e.preventDefault();
      if (!this.requireChat()) return;
      const submit = this.part("device-submit");
      const input = this.part("device-value");
      const body = { user_id: this.userId, kind: this.part("device-kind").value, value: input.value.trim() };
      const gen = this.generation;
      submit.disabled = true;
      try {
        const data = await api("POST", "/sandbox/device", body);
        clearError();
        if (gen !== this.generation) return;
        this.closeDeviceForm(false);
        this.focusComposer();
        const result = data.result || {};
        toast(t(result.stored ? "device.stored" : "device.duplicate"));
      } catch (err) {
        showError(t("device.failed"), err);
        if (gen === this.generation) input.focus();
      } finally {
        submit.disabled = false;
      }
    }

    async sendFile(kind, file) {
      if (!this.requireChat() || !file) return;
      const form = new FormData();
      form.append("user_id", String(this.userId));
      form.append("bot", this.bot);
      form.append("file", file, file.name);
      const input = this.part("composer-text");
      const caption = input.value.trim();
      if (caption && kind !== "voice") form.append("caption", caption);
      try {
        await this.post(`/client/${kind}`, form);
        clearError();
        if (caption && kind !== "voice") input.value = "";
        this.autoGrow();
      } catch (err) {
        showError(t(`error.file.${kind}`), err);
      }
    }

    // ------------------------------------------------------ person and bot

    /** Show `userId` with `bot` here (either may stay as it is when undefined). */
    open(userId, bot) {
      if (userId !== undefined) this.userId = userId;
      if (bot !== undefined) this.bot = bot;
      this.generation += 1;
      this.lastSeq = 0;
      this.replyKeyboard = null;
      this.closeContactForm();
      this.closeDeviceForm(false);
      this.clearMessages();
      this.updateReplyKeyboard(false);
      this.renderBots();
      this.updateHeader();
      renderPeople();
      renderTabs();
      savePanes();
      this.startLive();
    }

    selectBot(username) {
      this.open(undefined, username);
    }

    close() {
      this.generation += 1;
      this.stopLive();
      this.root.remove();
    }

    // ------------------------------------------------------- composer bits

    autoGrow() {
      const input = this.part("composer-text");
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
    }

    popovers() {
      return [
        { button: this.part("attach-btn"), menu: this.part("attach-menu") },
        { button: this.part("commands-btn"), menu: this.part("commands-menu") },
      ];
    }

    setPopover(menu, open) {
      for (const p of this.popovers()) {
        const show = open && p.menu === menu;
        p.menu.hidden = !show;
        p.button.setAttribute("aria-expanded", String(show));
      }
      if (open) {
        const first = menu.querySelector("button");
        if (first) first.focus();
      }
    }

    openPopover() {
      return this.popovers().find((p) => !p.menu.hidden) || null;
    }

    async openCommands() {
      try {
        const data = await api("GET", "/client/bots"); // commands may have changed since load
        app.bots = data.bots || app.bots;
      } catch (_err) {
        /* keep what we had */
      }
      const menu = this.part("commands-menu");
      menu.replaceChildren();
      const commands = commandsFor(this.botInfo, this.user);
      if (commands.length === 0) {
        const none = document.createElement("p");
        none.className = "muted";
        none.textContent = t("commands.none");
        menu.append(none);
      }
      for (const cmd of commands) {
        if (!cmd || typeof cmd.command !== "string") continue;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "command";
        button.dataset.testid = "command";
        const name = document.createElement("span");
        name.className = "command-name";
        name.textContent = `/${cmd.command}`;
        const desc = document.createElement("span");
        desc.className = "command-desc";
        desc.textContent = String(cmd.description ?? "");
        button.append(name, desc);
        button.addEventListener("click", async () => {
          this.setPopover(null, false);
          this.focusComposer();
          await this.sendText(`/${cmd.command}`);
        });
        menu.append(button);
      }
      this.setPopover(menu, true);
    }

    wire() {
      const input = this.part("composer-text");
      const composer = this.part("composer");
      composer.addEventListener("submit", async (e) => {
        e.preventDefault();
        const text = input.value;
        if (text.trim() === "") return;
        input.value = "";
        this.autoGrow();
        if (!(await this.sendText(text))) input.value = text;
        input.focus();
      });
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          composer.requestSubmit();
        }
      });
      input.addEventListener("input", () => this.autoGrow());
      this.part("contact-form").addEventListener("submit", (e) => this.shareContact(e));
      this.part("contact-cancel").addEventListener("click", () => this.closeContactForm());
      this.part("device-form").addEventListener("submit", (e) => this.sendReading(e));
      this.part("device-cancel").addEventListener("click", () => this.closeDeviceForm(true));
      this.part("device-kind").addEventListener("change", () => this.showDeviceExample());
      this.part("attach-device").addEventListener("click", () => {
        this.setPopover(null, false);
        this.openDeviceForm();
      });
      this.part("close").addEventListener("click", () => closePane(this));

      const attachMenu = this.part("attach-menu");
      this.part("attach-btn").addEventListener("click", () => this.setPopover(attachMenu, attachMenu.hidden));
      this.part("commands-btn").addEventListener("click", () => {
        if (this.part("commands-menu").hidden) this.openCommands();
        else this.setPopover(null, false);
      });
      for (const button of attachMenu.querySelectorAll("button[data-kind]")) {
        button.addEventListener("click", () => {
          this.setPopover(null, false);
          this.part(`file-${button.dataset.kind}`).click();
        });
      }
      for (const kind of ["photo", "document", "voice"]) {
        const fileInput = this.part(`file-${kind}`);
        fileInput.addEventListener("change", async () => {
          const file = fileInput.files && fileInput.files[0];
          fileInput.value = "";
          await this.sendFile(kind, file);
        });
      }
      this.root.addEventListener("focusin", () => setActive(this));
      this.root.addEventListener("pointerdown", () => setActive(this));
    }
  }

  /** The bot's commands for this person's language, as setMyCommands left them. */
  function commandsFor(bot, user) {
    const byLang = (bot && bot.commands) || {};
    const code = ((user && user.language_code) || "").toLowerCase();
    const candidates = [code, code.split(/[-_]/)[0], "default"];
    for (const key of candidates) {
      if (key && Array.isArray(byLang[key]) && byLang[key].length > 0) return byLang[key];
    }
    return [];
  }

  function addPane() {
    const pane = new Pane();
    app.panes.push(pane);
    $("panes").append(pane.root);
    pane.setConnection("off");
    pane.renderBots();
    for (const p of app.panes) p.updateHeader();
    document.body.dataset.panes = String(app.panes.length);
    if (!app.active) setActive(pane);
    renderTabs();
    return pane;
  }

  function closePane(pane) {
    if (app.panes.length <= 1) return;
    const at = app.panes.indexOf(pane);
    pane.close();
    app.panes.splice(at, 1);
    document.body.dataset.panes = String(app.panes.length);
    for (const p of app.panes) p.updateHeader();
    if (app.active === pane) {
      app.active = null;
      setActive(app.panes[Math.max(0, at - 1)]);
    }
    renderTabs();
    renderPeople();
    savePanes();
    app.active.focusComposer();
  }

  function setActive(pane) {
    if (!pane || app.active === pane) return;
    app.active = pane;
    for (const p of app.panes) p.root.classList.toggle("pane-active", p === pane);
    renderTabs();
    renderPeople();
  }

  /** Phone width shows one pane at a time; these tabs switch between them. */
  function renderTabs() {
    const box = $("pane-tabs");
    box.replaceChildren();
    box.hidden = app.panes.length < 2;
    for (const pane of app.panes) {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.className = "pane-tab";
      tab.dataset.testid = "pane-tab";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(pane === app.active));
      tab.setAttribute("aria-controls", pane.root.id);
      const user = pane.user;
      const bot = pane.botInfo;
      tab.textContent = user ? `${userLabel(user)}${bot ? ` · ${bot.first_name || bot.username}` : ""}` : t("pane.empty_tab");
      tab.addEventListener("click", () => {
        setActive(pane);
        pane.focusComposer();
      });
      box.append(tab);
    }
  }

  function savePanes() {
    try {
      const panes = app.panes.map((p) => ({ user: p.userId, bot: p.bot }));
      localStorage.setItem(STORAGE_PANES, JSON.stringify(panes));
    } catch (_err) { /* private mode */ }
  }

  function savedPanes() {
    try {
      const panes = JSON.parse(localStorage.getItem(STORAGE_PANES) || "null");
      if (Array.isArray(panes) && panes.length > 0) return panes.slice(0, MAX_PANES);
      const user = localStorage.getItem(STORAGE_USER);
      const bot = localStorage.getItem(STORAGE_BOT);
      return [{ user: user === null ? null : Number(user), bot }];
    } catch (_err) {
      return [{ user: null, bot: null }];
    }
  }

  // --------------------------------------------------------- people and bots

  function userLabel(user) {
    return [user.first_name, user.last_name].filter(Boolean).join(" ") || `user ${user.id}`;
  }

  function roleOf(user) {
    const role = app.roles.get(user.id);
    return ROLES.includes(role) ? role : "patient";
  }

  function roleBadge(user) {
    const role = roleOf(user);
    const badge = document.createElement("span");
    badge.className = `role role-${role}`;
    badge.dataset.testid = "role-badge";
    badge.dataset.role = role;
    badge.textContent = t(`role.${role}`);
    return badge;
  }

  /** Is `username` the doctors' bot (the sandbox names it so)? */
  function isDoctorBot(username) {
    return /doctor/i.test(username || "");
  }

  /** Doctors and the admin talk to the doctor bot, everybody else to the patient bot. */
  function preferredBot(user, current) {
    if (app.bots.length === 0) return null;
    const doctorBot = app.bots.find((b) => isDoctorBot(b.username));
    const patientBot = app.bots.find((b) => b !== doctorBot);
    if (!app.rolesKnown || !user) return current || app.bots[0].username;
    const role = roleOf(user);
    const want = role === "doctor" || role === "admin" ? doctorBot : patientBot;
    return (want || app.bots[0]).username;
  }

  function renderPeople() {
    const list = $("people-list");
    list.replaceChildren();
    $("people-empty").hidden = app.users.length > 0;
    const active = app.active;
    for (const user of app.users) {
      const li = document.createElement("li");
      li.className = "person-row";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "person";
      button.dataset.testid = "person";
      button.dataset.userId = String(user.id);
      button.setAttribute("aria-pressed", String(Boolean(active && active.userId === user.id)));
      const top = document.createElement("span");
      top.className = "person-top";
      const name = document.createElement("span");
      name.className = "person-name";
      name.textContent = userLabel(user);
      top.append(name, roleBadge(user));
      const detail = document.createElement("span");
      detail.className = "person-detail";
      detail.textContent = `${t("people.detail", { lang: user.language_code || "?", id: user.id })}`
        + `${user.username ? ` · @${user.username}` : ""}`;
      button.append(top, detail);
      if (app.panes.some((p) => p !== active && p.userId === user.id)) button.classList.add("person-open");
      button.addEventListener("click", () => selectUser(user.id));
      const beside = document.createElement("button");
      beside.type = "button";
      beside.className = "ghost beside-btn";
      beside.dataset.testid = "open-beside";
      beside.textContent = t("people.open_beside");
      beside.setAttribute("aria-label", t("people.open_beside_aria", { name: userLabel(user) }));
      beside.addEventListener("click", () => openBeside(user.id));
      li.append(button, beside);
      list.append(li);
    }
  }

  function selectUser(id) {
    const pane = app.active || app.panes[0];
    const user = app.users.find((u) => u.id === id);
    showPeoplePanel(false);
    pane.open(id, preferredBot(user, pane.bot));
    pane.focusComposer();
  }

  /** "Open beside": a new pane for the person with their bot, or, when that chat is
   * already open, that pane brought forward (never a second copy of one chat). */
  function openBeside(id) {
    const user = app.users.find((u) => u.id === id);
    const bot = preferredBot(user, app.active && app.active.bot);
    const open = app.panes.find((p) => p.userId === id && p.bot === bot);
    if (open) {
      focusPane(open);
      return;
    }
    if (app.panes.length >= MAX_PANES) {
      toast(t("pane.limit"));
      return;
    }
    const pane = addPane();
    pane.open(id, bot);
    focusPane(pane);
  }

  /** Make a pane the active one (its tab at phone width), scroll to it and put the cursor in
   * its message box; a short flash shows where it is. */
  function focusPane(pane) {
    setActive(pane);
    showPeoplePanel(false);
    pane.root.scrollIntoView({ block: "nearest", inline: "nearest" });
    pane.root.classList.remove("pane-flash");
    void pane.root.offsetWidth; // restart the animation when it is flashed twice in a row
    pane.root.classList.add("pane-flash");
    // A timer, not animationend: a pane hidden behind a tab never ends its animation.
    clearTimeout(pane.flashTimer);
    pane.flashTimer = setTimeout(() => pane.root.classList.remove("pane-flash"), FLASH_MS);
    pane.focusComposer();
  }

  async function createPerson(e) {
    e.preventDefault();
    const first = $("np-first").value.trim();
    if (!first) {
      showError(t("np.failed"), new Error(t("np.first_needed")));
      $("np-first").focus();
      return;
    }
    const body = { first_name: first, language_code: $("np-lang").value };
    const last = $("np-last").value.trim();
    if (last) body.last_name = last;
    try {
      const data = await api("POST", "/client/users", body);
      const user = data.user || data;
      clearError();
      $("np-first").value = "";
      $("np-last").value = "";
      if (!app.users.some((u) => u.id === user.id)) app.users.push(user);
      await loadRoles();
      selectUser(user.id);
    } catch (err) {
      showError(t("np.failed"), err);
    }
  }

  /** Roles come from the sandbox (database + demo seed); without it everybody is a patient. */
  async function loadRoles() {
    let data;
    try {
      data = await api("GET", "/sandbox/people");
    } catch (_err) {
      return;
    }
    const people = Array.isArray(data) ? data : data.people || data.users || [];
    const roles = new Map();
    for (const person of people) {
      if (!person || typeof person !== "object") continue;
      const id = Number(person.id ?? person.user_id);
      if (Number.isFinite(id) && typeof person.role === "string") roles.set(id, person.role.toLowerCase());
    }
    app.roles = roles;
    app.rolesKnown = true;
  }

  /** People, roles and bots change under the page (scenarios, other tabs): keep up. */
  async function refreshDirectory() {
    try {
      const [bots, users] = await Promise.all([api("GET", "/client/bots"), api("GET", "/client/users")]);
      await loadRoles();
      app.bots = bots.bots || [];
      app.users = users.users || [];
    } catch (_err) {
      return false;
    }
    const key = JSON.stringify([
      app.bots.map((b) => b.username), app.users.map((u) => [u.id, userLabel(u), u.language_code]), [...app.roles],
    ]);
    if (key !== app.directoryKey) {
      app.directoryKey = key;
      renderPeople();
      for (const pane of app.panes) {
        pane.renderBots();
        pane.updateHeader();
      }
      renderTabs();
    }
    return true;
  }

  async function loadDirectory() {
    try {
      const [bots, users] = await Promise.all([api("GET", "/client/bots"), api("GET", "/client/users")]);
      app.bots = bots.bots || [];
      app.users = users.users || [];
      clearError();
    } catch (err) {
      showError(t("error.load"), err);
      return;
    }
    await loadRoles();
    const restore = savedPanes();
    const first = app.panes[0];
    restore.forEach((saved, i) => {
      const pane = i === 0 ? first : addPane();
      const user = app.users.find((u) => u.id === saved.user);
      const bot = app.bots.find((b) => b.username === saved.bot) || app.bots[0];
      pane.open(user ? user.id : null, bot ? bot.username : null);
    });
    for (const pane of [...app.panes]) {
      if (pane.userId === null && app.panes.length > 1) closePane(pane);
    }
    setActive(app.panes[0]);
    if (app.panes[0].userId === null) showPeoplePanel(true);
    if (app.bots.length === 0) setTimeout(waitForBots, 2000);
    setInterval(refreshDirectory, DIRECTORY_REFRESH_MS);
  }

  /** Bots register with the emulator when they start: keep looking until one has. */
  async function waitForBots() {
    try {
      const data = await api("GET", "/client/bots");
      app.bots = data.bots || [];
    } catch (_err) {
      app.bots = [];
    }
    if (app.bots.length === 0) {
      setTimeout(waitForBots, 2000);
      return;
    }
    for (const pane of app.panes) pane.open(undefined, pane.bot || app.bots[0].username);
  }

  // --------------------------------------------------------------------- --play

  /** Handles of the replay `run`'s people this page has opened already. */
  function playOpened(run) {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_PLAY) || "null");
      if (saved && saved.run === run && Array.isArray(saved.handles)) return saved.handles;
    } catch (_err) { /* private mode, or not JSON */ }
    return [];
  }

  function savePlayOpened(run, handles) {
    try {
      localStorage.setItem(STORAGE_PLAY, JSON.stringify({ run, handles }));
    } catch (_err) { /* private mode */ }
  }

  /** Open the chats of a replay's people side by side: a pane already showing one is kept,
   * the others take the panes that show nobody of the scenario, or new panes. */
  function openPlayPeople(play, fresh) {
    const wanted = play.people.slice(0, MAX_PANES);
    const showsWanted = (p) => wanted.some((w) => w.id === p.userId);
    const free = app.panes.filter((p) => !showsWanted(p));
    let first = null;
    for (const person of wanted) {
      const bot = app.bots.some((b) => b.username === person.bot)
        ? person.bot
        : preferredBot(app.users.find((u) => u.id === person.id), null);
      let pane = app.panes.find((p) => p.userId === person.id && p.bot === bot);
      if (!pane && fresh.includes(person)) {
        pane = free.shift() || (app.panes.length < MAX_PANES ? addPane() : null);
        if (pane) pane.open(person.id, bot);
      }
      if (pane && !first) first = pane;
    }
    if (first) {
      setActive(first);
      showPeoplePanel(false);
    }
    renderPeople();
    savePanes();
  }

  /** `bot.py sandbox --play`: as the replay creates the scenario's people, open their chats,
   * once per replay (afterwards the panes are the visitor's to arrange). */
  async function followPlay() {
    let play;
    try {
      play = await api("GET", "/sandbox/play");
    } catch (_err) {
      return; // no replay to follow here (not the sandbox, or it stopped)
    }
    if (!play || !play.playing || typeof play.run !== "string") return;
    const people = (Array.isArray(play.people) ? play.people : [])
      .filter((p) => p && Number.isFinite(p.id) && typeof p.handle === "string");
    play.people = people;
    const opened = playOpened(play.run);
    const fresh = people.filter((p) => !opened.includes(p.handle));
    if (fresh.length > 0) {
      if (fresh.some((p) => !app.users.some((u) => u.id === p.id))) await refreshDirectory();
      openPlayPeople(play, fresh);
      savePlayOpened(play.run, [...opened, ...fresh.map((p) => p.handle)]);
      toast(t("play.opened", {
        title: String(play.title || ""),
        names: fresh.map((p) => String(p.name || p.handle)).join(", "),
      }));
    }
    const waiting = play.status === "waiting" || play.status === "running";
    if (waiting && people.length < Number(play.total)) setTimeout(followPlay, PLAY_POLL_MS);
  }

  // --------------------------------------------------------------------- clock

  let lastClock = null;

  function formatClock(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toLocaleString(HTML_LANG[app.lang], {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function renderClock(clock) {
    if (!clock || typeof clock.now !== "string") return;
    lastClock = clock;
    const now = $("clock-now");
    now.textContent = formatClock(clock.now);
    now.dataset.iso = clock.now;
    now.title = clock.now;
    $("clock-next").textContent = typeof clock.next_due === "string" && clock.next_due
      ? t("clock.next_due", { time: formatClock(clock.next_due) })
      : t("clock.nothing_due");
    $("clock").hidden = false;
  }

  /** The clock control shows only when the server has one (the sandbox, never the real bot). */
  async function loadClock() {
    try {
      renderClock(await api("GET", "/sandbox/clock"));
    } catch (_err) {
      if (!lastClock) $("clock").hidden = true;
    }
  }

  async function advanceClock(button) {
    if (app.clockBusy) return;
    app.clockBusy = true;
    const buttons = $("clock").querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const clock = await api("POST", "/sandbox/clock", { advance: button.dataset.advance });
      renderClock(clock);
      clearError();
      toast(t("clock.moved", { time: formatClock(clock.now) }));
    } catch (err) {
      showError(t("clock.failed"), err);
    } finally {
      for (const b of buttons) b.disabled = false;
      button.removeAttribute("aria-busy");
      app.clockBusy = false;
      button.focus();
    }
  }

  // ------------------------------------------------------------------ plumbing

  function showPeoplePanel(show) {
    document.body.classList.toggle("people-open", show);
    $("people-toggle").setAttribute("aria-expanded", String(show));
  }

  function wire() {
    $("error-close").addEventListener("click", clearError);
    $("people-toggle").addEventListener("click", () => {
      showPeoplePanel(!document.body.classList.contains("people-open"));
    });
    $("new-person").addEventListener("submit", createPerson);
    $("page-lang").addEventListener("change", (e) => setLang(e.target.value));
    for (const button of $("clock").querySelectorAll("button[data-advance]")) {
      button.addEventListener("click", () => advanceClock(button));
    }
    $("deeplink-dialog").addEventListener("close", () => {
      chooser.link = null;
      const back = chooser.returnFocus;
      chooser.returnFocus = null;
      if (back && document.contains(back) && document.activeElement === document.body) back.focus();
    });

    document.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      if ($("deeplink-dialog").open) return; // the dialog closes itself
      const withPopover = app.panes.find((p) => p.openPopover());
      if (withPopover) {
        const popover = withPopover.openPopover();
        withPopover.setPopover(null, false);
        popover.button.focus();
        return;
      }
      const withDevice = app.panes.find((p) => !p.part("device-form").hidden);
      const withContact = app.panes.find((p) => !p.part("contact-form").hidden);
      if (withDevice) {
        withDevice.closeDeviceForm(true);
      } else if (withContact) {
        withContact.closeContactForm();
      } else if (document.body.classList.contains("people-open")) {
        showPeoplePanel(false);
      }
    });
    document.addEventListener("click", (e) => {
      for (const pane of app.panes) {
        const open = pane.openPopover();
        if (open && !(e.target.closest(".popover-host") && pane.root.contains(e.target))) {
          pane.setPopover(null, false);
        }
      }
      // Deep links open for a simulated person, not in a browser tab.
      const a = e.target.closest("a[href]");
      if (!a || !a.closest(".messages")) return;
      const link = parseDeepLink(a.href);
      if (!link) return;
      e.preventDefault();
      openDeepLink(link, a);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    app.lang = initialLang();
    addPane();
    wire();
    setLang(app.lang);
    loadDirectory().then(followPlay);
    loadClock();
    setInterval(loadClock, CLOCK_REFRESH_MS);
  });
})();
