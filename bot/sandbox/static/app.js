/*
 * Careline sandbox page: chat with the bots as a simulated Telegram user.
 *
 * Talks to the Bot API emulator's client API under /client/ (same origin).
 * SECURITY: everything a bot sends is put into the page as text (textContent,
 * createTextNode). Telegram's formatting (bold, italic, links, ...) is rebuilt
 * from a whitelist with createElement; no bot content ever reaches innerHTML.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const STORAGE_USER = "careline.sandbox.user";
  const STORAGE_BOT = "careline.sandbox.bot";
  const POLL_TIMEOUT_S = 25;

  const state = {
    users: [],
    bots: [],
    userId: null,
    bot: null,
    messages: new Map(), // message_id -> message object, for the open chat
    lastSeq: 0,
    generation: 0, // bumped on every chat switch; stale async results check it
    stream: null,
    pollController: null,
    replyKeyboard: null, // the reply keyboard markup the person currently sees
  };

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
      throw new ApiError("Could not reach the sandbox server. Is it still running?");
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
    close.textContent = alert ? "OK" : "×";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => el.remove());
    el.append(close);
    $("toasts").append(el);
    if (alert) {
      close.focus();
    } else {
      setTimeout(() => el.remove(), timeoutMs);
    }
  }

  function setConnection(kind) {
    const labels = { live: "live", polling: "polling", reconnecting: "reconnecting…", off: "offline" };
    const el = $("conn");
    el.textContent = labels[kind] || kind;
    el.className = `conn conn-${kind}`;
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
    span.title = "Spoiler: click to reveal";
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

  // ------------------------------------------------------------------ messages

  function formatTime(date) {
    if (!Number.isFinite(date)) return "";
    const d = new Date(date * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function fileName(file, fallback) {
    return (file && (file.file_name || file.name)) || fallback;
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
        img.alt = msg.caption ? `Photo: ${msg.caption}` : "Photo";
        img.loading = "lazy";
        img.draggable = !msg.protect_content;
        img.dataset.testid = "message-photo";
        frag.append(img);
      } else {
        frag.append(mediaLabel("Photo"));
      }
    }
    if (msg.document) {
      const name = fileName(msg.document, "document");
      const url = safeMediaUrl(msg.document.download_url || msg.download_url);
      const box = document.createElement("div");
      box.className = "media-document";
      box.dataset.testid = "message-document";
      if (url && !msg.protect_content) {
        const a = document.createElement("a");
        a.href = url;
        a.download = name;
        a.textContent = `Document: ${name}`;
        box.append(a);
      } else {
        box.textContent = `Document: ${name}`;
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
        audio.setAttribute("aria-label", "Voice message");
        audio.dataset.testid = "message-voice";
        frag.append(audio);
      } else {
        frag.append(mediaLabel("Voice message"));
      }
    }
    return frag;
  }

  function mediaLabel(text) {
    const span = document.createElement("span");
    span.className = "media-label";
    span.textContent = `[${text}]`;
    return span;
  }

  function renderInlineKeyboard(msg) {
    const rows = msg.reply_markup && msg.reply_markup.inline_keyboard;
    if (!Array.isArray(rows) || rows.length === 0) return null;
    const box = document.createElement("div");
    box.className = "inline-kb";
    box.dataset.testid = "inline-keyboard";
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Message buttons");
    for (const row of rows) {
      if (!Array.isArray(row)) continue;
      const rowEl = document.createElement("div");
      rowEl.className = "kb-row";
      for (const button of row) {
        if (!button || typeof button !== "object") continue;
        rowEl.append(inlineButton(msg, button));
      }
      box.append(rowEl);
    }
    return box;
  }

  function inlineButton(msg, button) {
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
    if (typeof button.callback_data === "string") {
      el.addEventListener("click", () => pressInline(msg.message_id, button.callback_data, el));
    } else if (button.copy_text && typeof button.copy_text.text === "string") {
      el.addEventListener("click", () => copyText(button.copy_text.text));
    } else {
      el.disabled = true;
      el.title = "This kind of button does not work in the sandbox";
    }
    return el;
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied to the clipboard");
    } catch (_err) {
      toast(`Copy this: ${text}`);
    }
  }

  function renderMessage(msg) {
    const fromUser = msg.from === "user";
    const li = document.createElement("li");
    li.className = `msg ${fromUser ? "msg-user" : "msg-bot"}`;
    li.dataset.testid = fromUser ? "message-user" : "message-bot";
    li.dataset.messageId = String(msg.message_id);

    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (msg.protect_content) bubble.classList.add("protected");
    const replied = msg.reply_to_message_id != null && state.messages.get(String(msg.reply_to_message_id));
    if (replied) {
      const quote = document.createElement("div");
      quote.className = "reply-quote";
      quote.dataset.testid = "message-reply-quote";
      const snippet = replied.text || replied.caption || (replied.photo ? "Photo" : replied.document ? "Document" : "Message");
      quote.textContent = snippet.length > 80 ? `${snippet.slice(0, 80)}…` : snippet;
      bubble.append(quote);
    }
    bubble.append(renderMedia(msg));

    if (msg.location && Number.isFinite(msg.location.latitude) && Number.isFinite(msg.location.longitude)) {
      const loc = document.createElement("div");
      loc.className = "contact-card";
      loc.textContent = `Location: ${msg.location.latitude.toFixed(5)}, ${msg.location.longitude.toFixed(5)}`;
      bubble.append(loc);
    }

    if (msg.contact) {
      const c = document.createElement("div");
      c.className = "contact-card";
      c.dataset.testid = "message-contact";
      const name = [msg.contact.first_name, msg.contact.last_name].filter(Boolean).join(" ");
      c.textContent = `Contact: ${name ? `${name}, ` : ""}${msg.contact.phone_number ?? ""}`;
      bubble.append(c);
    }

    const body = document.createElement("div");
    body.className = "text";
    body.dataset.testid = "message-text";
    if (typeof msg.text === "string" && msg.text !== "") {
      renderFormatted(body, msg.text, msg.entities, msg.parse_mode);
    } else if (typeof msg.caption === "string" && msg.caption !== "") {
      renderFormatted(body, msg.caption, msg.caption_entities, msg.parse_mode);
    }
    if (body.childNodes.length > 0) bubble.append(body);

    const meta = document.createElement("div");
    meta.className = "meta";
    if (msg.protect_content) {
      const lock = document.createElement("span");
      lock.className = "badge";
      lock.textContent = "protected";
      lock.title = "protect_content: the person cannot forward or save this";
      meta.append(lock);
    }
    if (msg.edited) {
      const edited = document.createElement("span");
      edited.className = "badge";
      edited.dataset.testid = "message-edited";
      edited.textContent = "edited";
      meta.append(edited);
    }
    const time = document.createElement("span");
    time.textContent = formatTime(msg.edit_date || msg.date);
    meta.append(time);
    bubble.append(meta);
    li.append(bubble);

    const kb = renderInlineKeyboard(msg);
    if (kb) li.append(kb);
    return li;
  }

  function messageList() {
    return $("messages");
  }

  function findMessageEl(id) {
    for (const el of messageList().children) {
      if (el.dataset.messageId === String(id)) return el;
    }
    return null;
  }

  function nearBottom() {
    const list = messageList();
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToBottom() {
    const list = messageList();
    list.scrollTop = list.scrollHeight;
  }

  /** Insert or replace one message, keeping the list ordered by message_id. */
  function upsertMessage(msg) {
    if (!msg || msg.message_id === undefined || msg.message_id === null) return;
    if (msg.deleted) {
      removeMessage(msg.message_id);
      return;
    }
    const stick = nearBottom();
    state.messages.set(String(msg.message_id), msg);
    const el = renderMessage(msg);
    const existing = findMessageEl(msg.message_id);
    if (existing) {
      existing.replaceWith(el);
    } else {
      let before = null;
      for (const other of messageList().children) {
        if (Number(other.dataset.messageId) > Number(msg.message_id)) {
          before = other;
          break;
        }
      }
      messageList().insertBefore(el, before);
      if (stick || msg.from === "user") scrollToBottom();
    }
  }

  function removeMessage(id) {
    state.messages.delete(String(id));
    const el = findMessageEl(id);
    if (el) el.remove();
  }

  function clearMessages() {
    state.messages.clear();
    messageList().replaceChildren();
  }

  // ------------------------------------------------------------ reply keyboard

  /** Follow the reply keyboard the person sees, as Telegram does: a bot message
   * with a keyboard shows it, one with remove_keyboard hides it, and a one-time
   * keyboard goes away once used. The chat history tells where we start. */
  function trackReplyKeyboard(msg) {
    if (!msg || msg.from === "user" || !msg.reply_markup || msg.deleted) return;
    if (Array.isArray(msg.reply_markup.keyboard)) {
      setReplyKeyboard(msg.reply_markup);
    } else if (msg.reply_markup.remove_keyboard) {
      setReplyKeyboard(null);
    }
  }

  function setReplyKeyboard(markup) {
    state.replyKeyboard = markup && Array.isArray(markup.keyboard) ? markup : null;
    updateReplyKeyboard();
  }

  function updateReplyKeyboard() {
    const box = $("reply-keyboard");
    const markup = state.replyKeyboard;
    const input = $("composer-text");
    if (!markup) {
      box.hidden = true;
      box.replaceChildren();
      box.dataset.shown = "";
      input.placeholder = "Message";
      return;
    }
    input.placeholder = typeof markup.input_field_placeholder === "string" && markup.input_field_placeholder
      ? markup.input_field_placeholder
      : "Message";
    const key = JSON.stringify(markup);
    if (box.dataset.shown === key && !box.hidden) return;
    box.dataset.shown = key;
    box.replaceChildren();
    for (const row of markup.keyboard) {
      if (!Array.isArray(row)) continue;
      const rowEl = document.createElement("div");
      rowEl.className = "kb-row";
      for (const raw of row) {
        const button = typeof raw === "string" ? { text: raw } : raw;
        if (!button || typeof button !== "object") continue;
        rowEl.append(replyButton(markup, button));
      }
      box.append(rowEl);
    }
    box.hidden = false;
  }

  function replyButton(markup, button) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "kb-btn";
    el.textContent = String(button.text ?? "");
    el.dataset.testid = button.request_contact ? "reply-button-contact" : "reply-button";
    const oneTime = Boolean(markup.one_time_keyboard);
    if (button.request_contact) {
      el.title = "Shares this person's phone number";
      el.addEventListener("click", () => openContactForm(oneTime));
    } else if (
      button.request_location || button.request_poll || button.request_users ||
      button.request_user || button.request_chat || button.web_app
    ) {
      el.disabled = true;
      el.title = "This kind of button does not work in the sandbox";
    } else {
      el.addEventListener("click", () => pressReply(String(button.text ?? ""), oneTime));
    }
    return el;
  }

  // --------------------------------------------------------------- live events

  function applyEvent(ev) {
    if (!ev || typeof ev !== "object") return;
    if (Number.isFinite(ev.seq)) {
      if (ev.seq <= state.lastSeq) return;
      state.lastSeq = ev.seq;
    }
    switch (ev.kind) {
      case "message":
        upsertMessage(ev.message);
        trackReplyKeyboard(ev.message);
        break;
      case "edit":
        upsertMessage(ev.message);
        break;
      case "delete": {
        const id = ev.message ? ev.message.message_id : ev.message_id;
        if (id !== undefined) removeMessage(id);
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
        if (ev.message) upsertMessage(ev.message);
    }
  }

  /** Load the whole chat; later changes arrive as events newer than its seq. */
  async function syncHistory(gen) {
    const data = await api("GET", `/client/messages?${query({ user_id: state.userId, bot: state.bot, since: 0 })}`);
    if (gen !== state.generation) return false;
    clearMessages();
    for (const msg of data.messages || []) upsertMessage(msg);
    if ("reply_keyboard" in data) {
      setReplyKeyboard(data.reply_keyboard);
    } else {
      for (const msg of data.messages || []) trackReplyKeyboard(msg);
    }
    if (Number.isFinite(data.seq)) state.lastSeq = Math.max(state.lastSeq, data.seq);
    scrollToBottom();
    return true;
  }

  function stopLive() {
    if (state.stream) {
      state.stream.close();
      state.stream = null;
    }
    if (state.pollController) {
      state.pollController.abort();
      state.pollController = null;
    }
  }

  /** Load the chat, then follow it: server-sent events, or long polling without them. */
  async function startLive() {
    stopLive();
    const gen = state.generation;
    if (state.userId === null || !state.bot) {
      setConnection("off");
      return;
    }
    try {
      await syncHistory(gen);
    } catch (err) {
      if (gen !== state.generation) return;
      showError("Could not load the chat", err);
      startPolling(gen, false);
      return;
    }
    if (gen !== state.generation) return;
    if (typeof window.EventSource !== "function") {
      startPolling(gen, true);
      return;
    }
    // The stream resumes after `since` (and after Last-Event-ID when it reconnects).
    const url = `/client/stream?${query({ user_id: state.userId, bot: state.bot, since: state.lastSeq })}`;
    const stream = new EventSource(url);
    state.stream = stream;
    let opened = false;
    const onEvent = (e) => {
      if (gen !== state.generation) return;
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch (_err) {
        return;
      }
      applyEvent(ev);
    };
    // Events may come unnamed ("message") or named after their kind; seq dedupes.
    for (const name of ["message", "edit", "delete", "callback_answer"]) {
      stream.addEventListener(name, onEvent);
    }
    stream.addEventListener("open", () => {
      if (gen !== state.generation) return;
      opened = true;
      setConnection("live");
    });
    stream.addEventListener("error", () => {
      if (gen !== state.generation) return;
      // Never opened, or the browser gave up: use the long-poll endpoint instead.
      if (!opened || stream.readyState === EventSource.CLOSED) {
        stream.close();
        if (state.stream === stream) state.stream = null;
        startPolling(gen, true);
      } else {
        setConnection("reconnecting");
      }
    });
  }

  async function startPolling(gen, synced) {
    if (state.pollController) return;
    const controller = new AbortController();
    state.pollController = controller;
    setConnection("polling");
    let delayMs = 0;
    while (gen === state.generation && !controller.signal.aborted) {
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      if (gen !== state.generation || controller.signal.aborted) return;
      try {
        if (!synced) {
          await syncHistory(gen);
          synced = true;
        }
        const params = query({ user_id: state.userId, bot: state.bot, since: state.lastSeq, timeout: POLL_TIMEOUT_S });
        const response = await fetch(`/client/events?${params}`, { signal: controller.signal });
        const data = await response.json();
        if (!response.ok || data.ok === false) throw new ApiError(data.error || `${response.status}`);
        if (gen !== state.generation) return;
        const events = Array.isArray(data) ? data : data.events || [];
        for (const ev of events) applyEvent(ev);
        if (Number.isFinite(data.seq)) state.lastSeq = Math.max(state.lastSeq, data.seq);
        setConnection("polling");
        delayMs = 0;
      } catch (err) {
        if (controller.signal.aborted || gen !== state.generation) return;
        setConnection("reconnecting");
        delayMs = Math.min(delayMs ? delayMs * 2 : 1000, 10000);
      }
    }
  }

  // ------------------------------------------------------------------- actions

  /** POST a user action; show the person's own message at once (its event is a repeat). */
  async function post(path, body) {
    const gen = state.generation;
    const data = await api("POST", path, body);
    if (gen === state.generation && data.message && typeof data.message === "object") {
      upsertMessage(data.message);
    }
    return data;
  }

  function requireChat() {
    if (state.userId === null || !state.bot) {
      showError("Not ready", new Error("pick a person and a bot first"));
      return false;
    }
    return true;
  }

  async function sendText(text) {
    if (!requireChat()) return false;
    const trimmed = text.trim();
    try {
      if (/^\/start(@\S+)?(\s|$)/.test(trimmed)) {
        const payload = trimmed.replace(/^\/start(@\S+)?\s*/, "");
        await post("/client/start", { user_id: state.userId, bot: state.bot, ...(payload ? { payload } : {}) });
      } else {
        await post("/client/send", { user_id: state.userId, bot: state.bot, text });
      }
      clearError();
      return true;
    } catch (err) {
      showError("Could not send the message", err);
      return false;
    }
  }

  async function pressInline(messageId, data, el) {
    if (!requireChat()) return;
    el.disabled = true;
    el.setAttribute("aria-busy", "true");
    try {
      await api("POST", "/client/click", { user_id: state.userId, bot: state.bot, message_id: messageId, data });
      clearError();
    } catch (err) {
      showError("The button press failed", err);
    } finally {
      el.disabled = false;
      el.removeAttribute("aria-busy");
    }
  }

  async function pressReply(text, oneTime) {
    if (!requireChat()) return;
    try {
      await post("/client/reply_button", { user_id: state.userId, bot: state.bot, text });
      clearError();
      if (oneTime) setReplyKeyboard(null);
    } catch (err) {
      showError("The button press failed", err);
    }
  }

  let contactOneTime = false;

  function openContactForm(oneTime) {
    contactOneTime = oneTime;
    const user = state.users.find((u) => u.id === state.userId);
    $("contact-name").value = (user && user.first_name) || "";
    $("contact-phone").value = (user && user.phone_number) || "";
    $("contact-form").hidden = false;
    $("contact-phone").focus();
  }

  function closeContactForm() {
    $("contact-form").hidden = true;
    $("contact-phone").value = "";
    contactOneTime = false;
  }

  async function shareContact(e) {
    e.preventDefault();
    if (!requireChat()) return;
    const phone = $("contact-phone").value.trim();
    if (!/^\+?[0-9][0-9 ()-]{2,30}$/.test(phone)) {
      showError("Check the phone number", new Error("use digits, optionally starting with +"));
      $("contact-phone").focus();
      return;
    }
    const body = { user_id: state.userId, bot: state.bot, phone_number: phone, own: true };
    const firstName = $("contact-name").value.trim();
    if (firstName) body.first_name = firstName;
    try {
      await post("/client/contact", body);
      clearError();
      if (contactOneTime) setReplyKeyboard(null);
      closeContactForm();
      $("composer-text").focus();
    } catch (err) {
      showError("Could not share the contact", err);
    }
  }

  async function sendFile(kind, file) {
    if (!requireChat() || !file) return;
    const form = new FormData();
    form.append("user_id", String(state.userId));
    form.append("bot", state.bot);
    form.append("file", file, file.name);
    const input = $("composer-text");
    const caption = input.value.trim();
    if (caption && kind !== "voice") form.append("caption", caption);
    try {
      await post(`/client/${kind}`, form);
      clearError();
      if (caption && kind !== "voice") input.value = "";
      autoGrow();
    } catch (err) {
      showError(`Could not send the ${kind}`, err);
    }
  }

  // --------------------------------------------------------- people and bots

  function userLabel(user) {
    return [user.first_name, user.last_name].filter(Boolean).join(" ") || `user ${user.id}`;
  }

  function renderPeople() {
    const list = $("people-list");
    list.replaceChildren();
    $("people-empty").hidden = state.users.length > 0;
    for (const user of state.users) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "person";
      button.dataset.testid = "person";
      button.dataset.userId = String(user.id);
      button.setAttribute("aria-pressed", String(user.id === state.userId));
      const name = document.createElement("span");
      name.className = "person-name";
      name.textContent = userLabel(user);
      const detail = document.createElement("span");
      detail.className = "person-detail";
      detail.textContent = `${user.language_code || "?"} · id ${user.id}${user.username ? ` · @${user.username}` : ""}`;
      button.append(name, detail);
      button.addEventListener("click", () => selectUser(user.id));
      li.append(button);
      list.append(li);
    }
  }

  function renderBots() {
    const box = $("bot-switch");
    box.replaceChildren();
    if (state.bots.length === 0) {
      const none = document.createElement("span");
      none.className = "muted";
      none.textContent = "no bots yet";
      box.append(none);
      return;
    }
    for (const bot of state.bots) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "bot-btn";
      button.dataset.testid = "bot-button";
      button.dataset.bot = bot.username;
      button.setAttribute("aria-pressed", String(bot.username === state.bot));
      button.textContent = bot.first_name || `@${bot.username}`;
      button.title = `@${bot.username}`;
      button.addEventListener("click", () => selectBot(bot.username));
      box.append(button);
    }
  }

  function updateChatHeader() {
    const user = state.users.find((u) => u.id === state.userId);
    const bot = state.bots.find((b) => b.username === state.bot);
    const ready = Boolean(user && bot);
    $("chat-title").textContent = ready
      ? `${userLabel(user)} ↔ ${bot.first_name || bot.username} (@${bot.username})`
      : user ? "Pick a bot above" : "Pick or create a person to start";
    for (const el of $("composer").elements) el.disabled = !ready;
    document.body.classList.toggle("chat-ready", ready);
  }

  function openChat() {
    state.generation += 1;
    state.lastSeq = 0;
    state.replyKeyboard = null;
    closeContactForm();
    clearMessages();
    renderPeople();
    renderBots();
    updateChatHeader();
    startLive();
  }

  function selectUser(id) {
    state.userId = id;
    try {
      localStorage.setItem(STORAGE_USER, String(id));
    } catch (_err) { /* private mode */ }
    showPeoplePanel(false);
    openChat();
    $("composer-text").focus();
  }

  function selectBot(username) {
    state.bot = username;
    try {
      localStorage.setItem(STORAGE_BOT, username);
    } catch (_err) { /* private mode */ }
    openChat();
  }

  async function createPerson(e) {
    e.preventDefault();
    const first = $("np-first").value.trim();
    if (!first) {
      showError("Could not create the person", new Error("a first name is needed"));
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
      if (!state.users.some((u) => u.id === user.id)) state.users.push(user);
      selectUser(user.id);
    } catch (err) {
      showError("Could not create the person", err);
    }
  }

  async function loadDirectory() {
    try {
      const [bots, users] = await Promise.all([api("GET", "/client/bots"), api("GET", "/client/users")]);
      state.bots = bots.bots || [];
      state.users = users.users || [];
      clearError();
    } catch (err) {
      showError("Could not load people and bots", err);
      return;
    }
    let savedUser = null;
    let savedBot = null;
    try {
      savedUser = localStorage.getItem(STORAGE_USER);
      savedBot = localStorage.getItem(STORAGE_BOT);
    } catch (_err) { /* private mode */ }
    const user = state.users.find((u) => String(u.id) === savedUser);
    state.userId = user ? user.id : null;
    const bot = state.bots.find((b) => b.username === savedBot) || state.bots[0];
    state.bot = bot ? bot.username : null;
    if (state.userId === null) showPeoplePanel(true);
    openChat();
    if (state.bots.length === 0) setTimeout(waitForBots, 2000);
  }

  /** Bots register with the emulator when they start: keep looking until one has. */
  async function waitForBots() {
    try {
      const data = await api("GET", "/client/bots");
      state.bots = data.bots || [];
    } catch (_err) {
      state.bots = [];
    }
    if (state.bots.length === 0) {
      setTimeout(waitForBots, 2000);
      return;
    }
    if (!state.bot) state.bot = state.bots[0].username;
    openChat();
  }

  // ------------------------------------------------------------------ plumbing

  function showPeoplePanel(show) {
    document.body.classList.toggle("people-open", show);
    $("people-toggle").setAttribute("aria-expanded", String(show));
  }

  function autoGrow() {
    const input = $("composer-text");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  const POPOVERS = [
    { button: "attach-btn", menu: "attach-menu" },
    { button: "commands-btn", menu: "commands-menu" },
  ];

  function setPopover(menuId, open) {
    for (const p of POPOVERS) {
      const show = open && p.menu === menuId;
      $(p.menu).hidden = !show;
      $(p.button).setAttribute("aria-expanded", String(show));
    }
    if (open) {
      const first = $(menuId).querySelector("button");
      if (first) first.focus();
    }
  }

  function openPopover() {
    return POPOVERS.find((p) => !$(p.menu).hidden) || null;
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

  async function openCommands() {
    try {
      const data = await api("GET", "/client/bots"); // commands may have changed since load
      state.bots = data.bots || state.bots;
    } catch (_err) {
      /* keep what we had */
    }
    const bot = state.bots.find((b) => b.username === state.bot);
    const user = state.users.find((u) => u.id === state.userId);
    const menu = $("commands-menu");
    menu.replaceChildren();
    const commands = commandsFor(bot, user);
    if (commands.length === 0) {
      const none = document.createElement("p");
      none.className = "muted";
      none.textContent = "This bot has no command menu.";
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
        setPopover(null, false);
        $("composer-text").focus();
        await sendText(`/${cmd.command}`);
      });
      menu.append(button);
    }
    setPopover("commands-menu", true);
  }

  function wire() {
    $("error-close").addEventListener("click", clearError);
    $("people-toggle").addEventListener("click", () => {
      showPeoplePanel(!document.body.classList.contains("people-open"));
    });
    $("new-person").addEventListener("submit", createPerson);
    $("contact-form").addEventListener("submit", shareContact);
    $("contact-cancel").addEventListener("click", closeContactForm);

    const input = $("composer-text");
    $("composer").addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = input.value;
      if (text.trim() === "") return;
      input.value = "";
      autoGrow();
      if (!(await sendText(text))) input.value = text;
      input.focus();
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer").requestSubmit();
      }
    });
    input.addEventListener("input", autoGrow);

    $("attach-btn").addEventListener("click", () => setPopover("attach-menu", $("attach-menu").hidden));
    $("commands-btn").addEventListener("click", () => {
      if ($("commands-menu").hidden) openCommands();
      else setPopover(null, false);
    });
    for (const button of $("attach-menu").querySelectorAll("button[data-kind]")) {
      button.addEventListener("click", () => {
        setPopover(null, false);
        $(`file-${button.dataset.kind}`).click();
      });
    }
    for (const kind of ["photo", "document", "voice"]) {
      const fileInput = $(`file-${kind}`);
      fileInput.addEventListener("change", async () => {
        const file = fileInput.files && fileInput.files[0];
        fileInput.value = "";
        await sendFile(kind, file);
      });
    }
    document.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      const popover = openPopover();
      if (popover) {
        setPopover(null, false);
        $(popover.button).focus();
      } else if (!$("contact-form").hidden) {
        closeContactForm();
      } else if (document.body.classList.contains("people-open")) {
        showPeoplePanel(false);
      }
    });
    document.addEventListener("click", (e) => {
      if (openPopover() && !e.target.closest(".popover-host")) setPopover(null, false);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    updateChatHeader();
    loadDirectory();
  });
})();
