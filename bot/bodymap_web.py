"""The body map Mini App (flows/bodymap.py), on the same aiohttp server as the verify page and
the device API (the webhook server, the verify port in polling mode, or the sandbox's port).

``GET /m/bodymap?lang=en&i=<intake tag>`` is the page: two SVG figures drawn from
``flows/questionnaires/bodymap.toml``, inline CSS, one same-origin script
(``GET /m/bodymap.js``), no third-party code. Telegram opens it from the intake's inline
``web_app`` button with the signed launch data in the URL fragment (``#tgWebAppData=…``).

``POST /m/bodymap`` with ``{"initData": …, "intake": <tag>, "marks": [{"region",
"intensity", "type"}]}`` (at most :data:`MAX_BODY` bytes) is the Mini App's own authenticated
call (an inline button's Mini App has no ``sendData``). Checked in this order, each refusal a
JSON ``{"ok": false, "error": <code>}`` the page shows in the patient's language:

- 413 ``too_large`` (read in chunks, never more than the limit); 400 ``bad_json``;
- 401 ``forged``: the initData's HMAC (secret = HMAC-SHA256("WebAppData", bot token)) does
  not match, or it names no user (aiogram's ``safe_parse_webapp_init_data``);
- 401 ``expired``: ``auth_date`` older than :attr:`BodyMapApi.max_age_s` or in the future;
- 422 ``no_marks`` / ``too_many`` / ``bad_region`` / ``bad_intensity`` / ``bad_type``;
- 429 ``busy``: over the per-person rate;
- 409 ``replayed``: this initData was used before (its hash is kept, once, in the same
  transaction as the result); 409 ``not_in_intake``: the person has no intake at the
  complaint step the page was opened for.

On success one transaction stores the marks in the intake (sealed with its answers), moves
it on, queues the bot's next message to the chat and marks the initData used; then the
sender is woken and the answer is ``{"ok": true}``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data
from aiohttp import web

from bot.ratelimit import Limiter, LimiterFactory, in_memory
from bot.settings import Settings
from flows import bodymap
from flows.domain import utcnow
from flows.intake import StaleButton
from flows.onboarding import Step, step_of
from handlers.patient.bodymap import take_marks
from locales import LOCALES, Translator, normalize_locale
from storage.uow import Database

MAX_BODY = 4096  # what Telegram allows a Mini App's sendData; our own call keeps to it
PATH = "/m/bodymap"
SCRIPT = Path(__file__).with_name("bodymap.js")

PAGE_TEXTS = (
    "title", "hint", "views", "front_note", "back_note", "figure_front", "figure_back",
    "region_marked", "intensity",
    "type", "type_none", "remove", "done", "marked", "none_marked", "edit", "send",
    "sending", "sent", "no_telegram",
)  # fmt: skip
ERRORS = (
    "forged", "expired", "replayed", "too_large", "not_in_intake", "bad_region",
    "bad_intensity", "bad_type", "no_marks", "too_many", "bad_json", "busy", "network",
)  # fmt: skip

_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
color:var(--tg-theme-text-color,#1b2530);background:var(--tg-theme-bg-color,#fff)}
main{max-width:32rem;margin:0 auto;padding:.75rem .75rem 8rem}
h1{font-size:1.3rem;margin:.2rem 0 .3rem}
h2{font-size:1.05rem;margin:.6rem 0 .3rem}
.hint{margin:0 0 .6rem;color:#4a5a6a;font-size:.95rem}
.views{display:flex;gap:.4rem;margin-bottom:.4rem}
.views button{flex:1}
button,select{font:inherit;min-height:44px;border-radius:10px;border:1px solid #9aa9b8;
background:#f4f7fa;color:inherit;padding:.35rem .8rem}
button[aria-pressed=true]{background:#1565c0;border-color:#1565c0;color:#fff}
button:focus-visible,select:focus-visible,input:focus-visible{outline:3px solid #ff9800;
outline-offset:2px}
button:disabled{opacity:.5}
.figure{display:flex;justify-content:center}
svg{width:100%;max-width:17rem;max-height:56vh;height:auto;touch-action:manipulation}
.region{fill:#eef2f6;stroke:#5d6d7e;stroke-width:1;cursor:pointer}
.region:hover{fill:#dde6ef}
.region:focus{outline:none;stroke:#ff9800;stroke-width:3}
.region.current{stroke:#1565c0;stroke-width:3}
.side{font-size:13px;fill:#5d6d7e}
.label{font-size:10px;font-weight:700;pointer-events:none}
#panel{border:2px solid #1565c0;border-radius:12px;padding:.5rem .75rem;margin:.5rem 0}
#panel h2{margin-top:.1rem}
label{display:block;margin:.4rem 0 .2rem;font-weight:600}
.range{display:flex;align-items:center;gap:.6rem}
input[type=range]{flex:1;min-height:44px}
output{min-width:2.5rem;text-align:center;font-size:1.3rem;font-weight:700}
select{width:100%}
.row{display:flex;gap:.5rem;margin-top:.6rem}
.row button{flex:1}
#marks{list-style:none;padding:0;margin:0}
#marks li{display:flex;align-items:center;gap:.5rem;padding:.3rem 0;
border-bottom:1px solid #e3e8ee}
#marks li span{flex:1}
#marks li button{min-height:36px;padding:.2rem .6rem}
#status{margin:0 auto .4rem;max-width:32rem;text-align:center}
#status:empty{display:none}
.note{margin:0 0 .3rem;font-size:.85rem;color:#4a5a6a;text-align:center}
#status.error{color:#b71c1c;font-weight:600}
#status.ok{color:#1b5e20;font-weight:600}
.send{position:fixed;left:0;right:0;bottom:0;padding:.6rem .75rem;
background:var(--tg-theme-bg-color,#fff);border-top:1px solid #e3e8ee}
.send button{display:block;width:100%;max-width:32rem;margin:0 auto;background:#1565c0;
border-color:#1565c0;color:#fff;font-weight:700}
[hidden]{display:none!important}
"""
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
# Telegram's web clients show a Mini App in an iframe of web.telegram.org; the sandbox page
# shows it in an iframe of its own origin. Nothing else may frame it.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; "
        f"style-src 'sha256-{_CSS_HASH}'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self' https://web.telegram.org"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FIGURE_LABELS = {"front": "bodymap.page.figure_front", "back": "bodymap.page.figure_back"}
_HTML_LANG = {"en": "en", "ru": "ru", "zh_Hans": "zh-Hans"}


def _path(points: tuple[tuple[float, float], ...]) -> str:
    return "M" + "L".join(f"{x:g} {y:g}" for x, y in points) + "Z"


def figure_svg(bm: bodymap.BodyMap, view: str, tr: Translator) -> str:
    """One view's SVG: a focusable path per region, named in ``tr``'s language."""
    top = 24
    right_x, left_x = (12, bm.width - 12) if view == "front" else (bm.width - 12, 12)
    parts = [
        f'<svg id="fig-{view}" data-view="{view}" viewBox="0 -{top} {bm.width:g} '
        f'{bm.height + top:g}" role="group" '
        f'aria-label="{html.escape(tr.plain(FIGURE_LABELS[view]))}"'
        + (" hidden" if view != "front" else "")
        + ">",
        f'<text class="side" x="{right_x:g}" y="-8" text-anchor="middle" aria-hidden="true">'
        f"{html.escape(tr.plain('bodymap.side.right'))}</text>",
        f'<text class="side" x="{left_x:g}" y="-8" text-anchor="middle" aria-hidden="true">'
        f"{html.escape(tr.plain('bodymap.side.left'))}</text>",
    ]
    for region in bm.in_view(view):
        name = html.escape(tr.plain(f"bodymap.region.{region.id}"))
        parts.append(
            f'<path class="region" d="{_path(region.shapes[view])}" data-region="{region.id}" '
            f'tabindex="0" role="button" aria-pressed="false" aria-label="{name}">'
            f"<title>{name}</title></path>"
        )
    parts.append("</svg>")
    return "".join(parts)


def page_html(bm: bodymap.BodyMap, locale: str, tag: str) -> str:
    """The whole page in ``locale`` for the intake ``tag`` (the script reads its texts and
    the regions' names from the JSON block)."""
    tr = Translator(locale)

    def words(key: str) -> str:
        return html.escape(tr.plain(f"bodymap.page.{key}"))

    data = {
        "lang": tr.locale,
        "intake": tag,
        "texts": {k: tr.plain(f"bodymap.page.{k}") for k in PAGE_TEXTS},
        "errors": {k: tr.plain(f"bodymap.error.{k}") for k in ERRORS},
        "regions": {r: tr.plain(f"bodymap.region.{r}") for r in bm.regions},
        "views": {r.id: [v for v in bodymap.VIEWS if v in r.shapes] for r in bm.regions.values()},
        "types": {k: tr.plain(f"bodymap.type.{k}") for k in bm.types},
        "max_marks": bm.max_marks,
    }
    # "<" escaped so no text can close the JSON block early
    blob = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    options = "".join(
        f'<option value="{k}">{html.escape(tr.plain(f"bodymap.type.{k}"))}</option>'
        for k in bm.types
    )
    views = "".join(
        f'<button type="button" data-view="{v}" '
        f'aria-pressed="{"true" if v == "front" else "false"}" aria-controls="fig-{v}">'
        f"{html.escape(tr.plain(f'bodymap.view.{v}'))}</button>"
        for v in bodymap.VIEWS
    )
    return (
        f'<!doctype html><html lang="{_HTML_LANG.get(tr.locale, "en")}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        'initial-scale=1"><meta name="color-scheme" content="light">'
        '<link rel="icon" href="data:,">'
        f"<title>{words('title')}</title><style>{_CSS}</style>"
        f'<script src="{PATH}.js" defer></script></head><body><main>'
        f'<h1>{words("title")}</h1><p class="hint">{words("hint")}</p>'
        f'<div class="views" role="group" aria-label="{words("views")}">{views}</div>'
        f'<p class="note" id="view-note" data-front="{words("front_note")}" '
        f'data-back="{words("back_note")}">{words("front_note")}</p>'
        f'<div class="figure">{figure_svg(bm, "front", tr)}{figure_svg(bm, "back", tr)}</div>'
        '<section id="panel" hidden aria-labelledby="panel-title">'
        '<h2 id="panel-title"></h2>'
        f'<label for="intensity">{words("intensity")}</label>'
        '<div class="range"><input type="range" id="intensity" min="0" max="10" step="1" '
        'value="5"><output id="intensity-value" for="intensity">5</output></div>'
        f'<label for="ptype">{words("type")}</label>'
        f'<select id="ptype"><option value="">{words("type_none")}</option>{options}</select>'
        f'<div class="row"><button type="button" id="remove">{words("remove")}</button>'
        f'<button type="button" id="done">{words("done")}</button></div></section>'
        f'<section aria-labelledby="marked-title"><h2 id="marked-title">{words("marked")}</h2>'
        f'<ul id="marks"></ul><p id="none">{words("none_marked")}</p></section>'
        f'<div class="send"><p id="status" role="status" aria-live="polite"></p>'
        f'<button type="button" id="send" disabled>{words("send")}</button></div>'
        f'</main><script type="application/json" id="bm-data">{blob}</script></body></html>'
    )


def _answer(status: int, error: str | None = None, detail: str = "") -> web.Response:
    body: dict[str, Any] = {"ok": error is None}
    if error is not None:
        body["error"] = error
        if detail:
            body["detail"] = detail
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


class InitDataError(Exception):
    """The launch data cannot be taken: ``code`` is ``forged`` or ``expired``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def check_init_data(
    token: str, init_data: str, now: datetime, max_age: timedelta, skew: timedelta
) -> WebAppInitData:
    """The launch data, if Telegram signed it for this bot (HMAC-SHA256 with the bot token:
    https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app), it
    names a user and it is fresh: signed at most ``max_age`` ago and not after ``now`` (with
    ``skew`` for clocks); else :class:`InitDataError`."""
    if not init_data or len(init_data) > MAX_BODY:
        raise InitDataError("forged", "no initData")
    try:
        data = safe_parse_webapp_init_data(token, init_data)
    except ValueError:  # a wrong hash, or fields that do not parse
        raise InitDataError("forged", "initData is not signed for this bot") from None
    if data.user is None:
        raise InitDataError("forged", "initData names no user")
    signed = data.auth_date if data.auth_date.tzinfo else data.auth_date.replace(tzinfo=UTC)
    if signed > now + skew:
        raise InitDataError("expired", "auth_date is in the future")
    if now - signed > max_age:
        raise InitDataError("expired", "auth_date is too old")
    return data


@dataclass
class BodyMapApi:
    """The page and its endpoint over a database and the patient bot's token (both may be
    set after mounting, as the sandbox does). ``on_commit`` wakes the sender."""

    db: Database | None
    token: str | None = None
    settings: Settings | None = None
    max_age_s: float = 3600.0
    skew_s: float = 60.0
    per_minute: int = 20  # results per person a minute
    now: Callable[[], datetime] = field(default=utcnow)
    on_commit: Callable[[], Any] | None = None
    limits: LimiterFactory = field(default=in_memory)
    limiter: Limiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = self.limits("bodymap", self.per_minute, 60.0)

    @classmethod
    def from_settings(
        cls,
        db: Database | None,
        settings: Settings,
        on_commit: Callable[[], Any] | None = None,
        limits: LimiterFactory = in_memory,
    ) -> BodyMapApi:
        """The API as a deployment's settings configure it (the patient bot's token)."""
        token = settings.patient_bot_token
        return cls(
            db,
            token=token.get_secret_value() if token is not None else None,
            settings=settings,
            on_commit=on_commit,
            limits=limits,
        )

    def mount(self, app: web.Application) -> None:
        """Add the routes to an aiohttp application (before it starts)."""
        app.router.add_get(PATH, self.page)
        app.router.add_get(PATH + ".js", self.script)
        app.router.add_post(PATH, self.submit)

    async def page(self, request: web.Request) -> web.Response:
        """The body map in the language asked for (the patient's, from the button)."""
        locale = normalize_locale(request.query.get("lang"), "en")
        locale = locale if locale in LOCALES else "en"
        tag = "".join(ch for ch in request.query.get("i", "")[:16] if ch.isalnum())
        return web.Response(
            text=page_html(bodymap.load(), locale, tag),
            content_type="text/html",
            charset="utf-8",
            headers=_HEADERS,
        )

    async def script(self, request: web.Request) -> web.Response:
        """The page's one script (same origin, so the CSP needs no inline code)."""
        return web.Response(
            text=SCRIPT.read_text(encoding="utf-8"),
            content_type="text/javascript",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    async def _body(self, request: web.Request) -> bytes | None:
        """The request body, or None when it is over :data:`MAX_BODY` (read in chunks, never
        more than the limit)."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            return None
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(1024)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def submit(self, request: web.Request) -> web.Response:
        """The Mini App's marks: checked, then taken into the intake in one transaction."""
        if self.db is None or self.token is None or self.settings is None:
            return _answer(503, "busy", "not ready")
        raw = await self._body(request)
        if raw is None:
            return _answer(413, "too_large", f"the body is over {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            return _answer(400, "bad_json", "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("initData"), str):
            return _answer(400, "bad_json", 'send {"initData", "intake", "marks"}')
        now = self.now()
        try:
            data = check_init_data(
                self.token,
                body["initData"],
                now,
                timedelta(seconds=self.max_age_s),
                timedelta(seconds=self.skew_s),
            )
        except InitDataError as exc:
            return _answer(401, exc.code, str(exc))
        assert data.user is not None  # check_init_data refuses data without a user
        try:
            marks = bodymap.parse_marks(body.get("marks"), bodymap.load())
        except bodymap.MarkError as exc:
            return _answer(422, exc.code, str(exc))
        if not await self.limiter.allow(str(data.user.id)):
            return _answer(429, "busy", "too many results")
        tag = body.get("intake")
        if not isinstance(tag, str) or not 8 <= len(tag) <= 16:
            return _answer(409, "not_in_intake", "no intake named")
        # Only a digest of Telegram's hash is kept: enough to know it again, nothing more.
        digest = hashlib.sha256(data.hash.encode()).hexdigest()
        signed = data.auth_date if data.auth_date.tzinfo else data.auth_date.replace(tzinfo=UTC)
        async with self.db.uow() as uow:
            await uow.webapp.forget_older(now - timedelta(seconds=self.max_age_s + self.skew_s))
            if not await uow.webapp.take(digest, signed, now):
                return _answer(409, "replayed", "this initData was used before")
            patient = await uow.patients.by_tg_user(data.user.id)
            if patient is None or step_of(patient) is not Step.DONE:
                return _answer(409, "not_in_intake", "no patient with an open intake")
            try:
                await take_marks(uow, patient, tag, marks, self.settings)
            except StaleButton:
                return _answer(409, "not_in_intake", "the intake is not at its complaint step")
            await uow.commit()
        if self.on_commit is not None:
            self.on_commit()
        return _answer(200)
