"""The referral verify page a hospital desk opens by scanning a slip's QR.

``GET /r/<code>?t=<token>`` shows the verdict (valid / expired / revoked / used / forged /
unknown) with only what the desk needs to match the patient's ID; without ``t`` the typed code
is checked. ``GET /r/`` is a form to type a code. A valid slip's page carries a form whose
``POST /r/<code>/use`` marks the slip used, once; the form holds a CSRF-style token (an HMAC
under the key ring's blind-index key, bound to the code and a time, valid 30 minutes). Every
check and mark is audited as ``desk:web``. Each client address gets ``per_minute`` requests a
minute (a 429 page after that). The page's language comes from ``?lang=``, else
Accept-Language. Everything shown is escaped; errors never show a stack trace.

Mounted on the webhook server and the sandbox page; in polling mode :func:`serve` runs it on
its own port (``CARELINE_VERIFY_HOST`` / ``CARELINE_VERIFY_PORT``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from flows import referrals as rf
from flows.signing import Signer
from locales import LOCALES, Translator, normalize_locale
from storage.models import utcnow
from storage.uow import Database

log = logging.getLogger(__name__)

FORM_TTL_S = 30 * 60
ACTOR = "desk:web"
_MAX_CLIENTS = 10_000
_COLOURS = {
    "valid": "#1b7f3b",
    "expired": "#9a6700",
    "used": "#9a6700",
    "revoked": "#b42318",
    "forged": "#b42318",
    "unknown": "#555",
}
_ICONS = {
    "valid": "✔",
    "expired": "⌛",
    "used": "●",
    "revoked": "✖",
    "forged": "✖",
    "unknown": "?",
}


class RateLimiter:
    """At most ``per_minute`` requests per client in any 60 s window (in memory)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        """Count one request of ``client``; False when it is over the limit."""
        now = self.clock()
        hits = self._hits.pop(client, None) or deque()
        while hits and now - hits[0] >= 60:
            hits.popleft()
        self._hits[client] = hits  # most recent last
        while len(self._hits) > _MAX_CLIENTS:
            self._hits.popitem(last=False)
        if len(hits) >= self.per_minute:
            return False
        hits.append(now)
        return True


@dataclass
class VerifyPage:
    """The verify routes. ``db`` may be set after mounting (the sandbox opens its database
    after its web server starts); until then the page says it is not available yet."""

    db: Database | None
    per_minute: int = 30
    trust_proxy: bool = False
    now: Callable[[], datetime] = field(default=utcnow)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.per_minute)

    def mount(self, app: web.Application) -> None:
        """Add the routes to an aiohttp application (before it starts)."""
        app.router.add_get("/r", self.index)
        app.router.add_get("/r/", self.index)
        app.router.add_get("/r/{code}", self.show)
        app.router.add_post("/r/{code}", self.show)  # the QR's #token, posted by the page
        app.router.add_post("/r/{code}/use", self.use)

    # -- helpers -----------------------------------------------------------------------------
    def _client(self, request: web.Request) -> str:
        if self.trust_proxy:
            forwarded = request.headers.get("X-Forwarded-For", "")
            first = forwarded.split(",")[0].strip()
            if first:
                return first[:64]
        return request.remote or "?"

    @staticmethod
    def _locale(request: web.Request) -> str:
        asked = request.query.get("lang")
        if asked:
            if asked in LOCALES:
                return asked
            return normalize_locale(asked)
        ranked: list[tuple[float, int, str]] = []
        for i, part in enumerate(request.headers.get("Accept-Language", "").split(",")[:20]):
            lang, _, params = part.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            if lang and q > 0:
                ranked.append((-q, i, lang))
        for _, _, lang in sorted(ranked):
            found = normalize_locale(lang, default="")
            if found:
                return found
        return "en"

    def _form_token(self, code: str, stamp: int) -> str:
        assert self.db is not None
        mac = self.db.ring.blind_index("verify-form", f"{code}|{stamp}")[:32]
        return f"{stamp}.{mac}"

    def _form_ok(self, code: str, token: str) -> bool:
        stamp_text, _, mac = token.partition(".")
        if not stamp_text.isdigit() or not mac:
            return False
        stamp = int(stamp_text)
        if not 0 <= time.time() - stamp <= FORM_TTL_S:
            return False
        return hmac.compare_digest(self._form_token(code, stamp), token)

    # -- routes ------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        """A form to type a slip's code (``?code=`` goes to its page)."""
        tr = Translator(self._locale(request))
        if not self.limiter.allow(self._client(request)):
            return _limited(tr)
        typed = request.query.get("code", "")
        if typed:
            canon = rf.normalize_code(typed)
            if canon is not None:
                raise web.HTTPSeeOther(f"/r/{canon}?lang={tr.locale}")
            body = _verdict_html(tr, rf.Verdict(status="unknown", reason="code"))
            return _page(tr, body + _code_form(tr, typed), status=404)
        return _page(tr, _code_form(tr, ""))

    async def show(self, request: web.Request) -> web.Response:
        """The verdict on one slip."""
        tr = Translator(self._locale(request))
        if not self.limiter.allow(self._client(request)):
            return _limited(tr)
        if self.db is None:
            return _page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        token = request.query.get("t", "")
        if request.method == "POST":
            try:
                token = str((await request.post()).get("t", ""))
            except (ValueError, web.HTTPException):
                token = ""
        token = token[:2048]
        try:
            async with self.db.uow() as uow:
                verdict = await self._check(uow, code, token)
                await uow.commit()
        except Exception:  # the desk sees a plain page, the log has the rest
            log.exception("verify page failed")
            return _page(tr, _p(tr.plain("verify.error")), status=500)
        body = _verdict_html(tr, verdict)
        if verdict.status == "valid" and verdict.code:
            body += self._use_form(tr, verdict.code, token)
        body += _code_form(tr, "")
        if not token:  # a scanned slip carries its token after '#': check that too
            body += _fragment_form(tr, code)
        return _page(tr, body, status=200 if verdict.status != "unknown" else 404)

    async def _check(self, uow: Any, code: str, token: str) -> rf.Verdict:
        assert self.db is not None
        signer = Signer(self.db.ring)
        now = self.now()
        if token:
            return await rf.verify_token(uow, token, signer, now, code=code, actor=ACTOR)
        return await rf.verify_code(uow, code, signer, now, actor=ACTOR)

    def _use_form(self, tr: Translator, code: str, token: str) -> str:
        form = self._form_token(code, int(time.time()))
        return (
            f'<form method="post" action="/r/{_e(code)}/use?lang={_e(tr.locale)}">'
            f'<input type="hidden" name="form" value="{_e(form)}">'
            f'<input type="hidden" name="t" value="{_e(token)}">'
            f"<p class=hint>{_e(tr.plain('verify.mark.hint'))}</p>"
            f"<button type=submit>{_e(tr.plain('verify.mark.button'))}</button></form>"
        )

    async def use(self, request: web.Request) -> web.Response:
        """The desk marks a valid slip used (once; audited)."""
        tr = Translator(self._locale(request))
        if not self.limiter.allow(self._client(request)):
            return _limited(tr)
        if self.db is None:
            return _page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        try:
            data = await request.post()
        except (ValueError, web.HTTPException):
            data = None
        form = str(data.get("form", "")) if data else ""
        token = str(data.get("t", ""))[:2048] if data else ""
        canon = rf.normalize_code(code)
        if canon is None or not self._form_ok(canon, form):
            return _page(tr, _p(tr.plain("verify.mark.stale")), status=403)
        try:
            async with self.db.uow() as uow:
                verdict = await self._check(uow, canon, token)
                done = False
                if verdict.status == "valid" and verdict.referral_id:
                    ref = await uow.session.get(rf.Referral, verdict.referral_id)
                    if ref is not None:
                        done = await rf.mark_used(uow, ref, self.now(), by="desk", actor=ACTOR)
                await uow.commit()
        except Exception:
            log.exception("verify page: marking used failed")
            return _page(tr, _p(tr.plain("verify.error")), status=500)
        if done:
            body = f'<div class="banner ok">{_e(tr.plain("verify.mark.done"))}</div>'
            return _page(tr, body + _code_form(tr, ""))
        status_text = tr.plain(f"verify.status.{verdict.status}")
        body = _p(tr.plain("verify.mark.refused", status=status_text))
        return _page(tr, body + _verdict_html(tr, verdict), status=409)


# --- rendering ---------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _p(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _verdict_html(tr: Translator, v: rf.Verdict) -> str:
    colour = _COLOURS.get(v.status, "#555")
    parts = [
        f'<div class="banner" style="background:{colour}"><span class=icon>'
        f"{_ICONS.get(v.status, '?')}</span> {_e(tr.plain(f'verify.status.{v.status}'))}</div>",
    ]
    explain = {
        "expired": {"date": v.valid_until.isoformat() if v.valid_until else ""},
        "used": {"date": v.used_on.date().isoformat() if v.used_on else ""},
    }.get(v.status, {})
    parts.append(_p(tr.plain(f"verify.explain.{v.status}", **explain)))
    if v.status in ("forged", "unknown"):
        return "".join(parts)
    rows = [
        ("verify.field.code", v.code),
        ("verify.field.name", v.patient_name),
        ("verify.field.birth_year", v.birth_year),
        ("verify.field.sex", tr.plain(f"sex.{v.sex}") if v.sex else None),
        ("verify.field.target", v.target_hospital),
        ("verify.field.department", v.target_department),
        ("verify.field.urgency", tr.plain(f"verify.urgency.{v.urgency}") if v.urgency else None),
        ("verify.field.issued", v.issued_on.isoformat() if v.issued_on else None),
        ("verify.field.valid_until", v.valid_until.isoformat() if v.valid_until else None),
        ("verify.field.used_on", v.used_on.date().isoformat() if v.used_on else None),
    ]
    cells = "".join(
        f"<tr><th>{_e(tr.plain(label))}</th><td>{_e(value)}</td></tr>"
        for label, value in rows
        if value
    )
    parts.append(f"<table>{cells}</table>")
    if v.status == "valid":
        parts.append(_p(tr.plain("verify.match_id")))
    return "".join(parts)


def _code_form(tr: Translator, typed: str) -> str:
    return (
        f'<form method="get" action="/r/" class=code><input type="hidden" name="lang" '
        f'value="{_e(tr.locale)}"><label>{_e(tr.plain("verify.form.label"))} '
        f'<input name="code" value="{_e(typed)}" maxlength="40" autocomplete="off" '
        f'placeholder="K7Q-4M9-XDB"></label> '
        f"<button type=submit>{_e(tr.plain('verify.form.check'))}</button></form>"
    )


# Browsers never send a URL's fragment: this posts the slip's token (``/r/<code>#<token>``) to
# the page so it is checked too, without landing in access logs. Allowed by its CSP hash.
_FRAGMENT_JS = (
    "(function(){var h=location.hash.slice(1);if(h.indexOf('t=')===0)h=h.slice(2);"
    "if(!h)return;var f=document.getElementById('tk');f.elements.t.value="
    "decodeURIComponent(h);history.replaceState(null,'',location.pathname+location.search);"
    "f.submit();})();"
)
_FRAGMENT_HASH = base64.b64encode(hashlib.sha256(_FRAGMENT_JS.encode()).digest()).decode()


def _fragment_form(tr: Translator, code: str) -> str:
    return (
        f'<form id=tk method="post" action="/r/{_e(code)}?lang={_e(tr.locale)}">'
        f'<input type="hidden" name="t" value=""></form><script>{_FRAGMENT_JS}</script>'
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:1rem auto;padding:0 1rem;"
    "color:#111}h1{font-size:1.3rem}.banner{color:#fff;padding:1rem;border-radius:.5rem;"
    "font-size:1.4rem;font-weight:bold}.banner.ok{background:#1b7f3b}.icon{margin-right:.4rem}"
    "table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;"
    "padding:.4rem;border-bottom:1px solid #ddd}th{width:40%;color:#444;font-weight:normal}"
    "button{font-size:1.1rem;padding:.6rem 1rem}.hint{color:#444}form.code{margin-top:2rem}"
)
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_FRAGMENT_HASH}'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def _page(tr: Translator, body: str, *, status: int = 200) -> web.Response:
    lang = {"zh_Hans": "zh-Hans"}.get(tr.locale, tr.locale)
    title = _e(tr.plain("verify.title"))
    text = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f"{body}</body></html>"
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def _limited(tr: Translator) -> web.Response:
    body = f"<p><b>{_e(tr.plain('verify.limited'))}</b></p>"
    response = _page(tr, body, status=429)
    response.headers["Retry-After"] = "60"
    return response


async def serve(page: VerifyPage, host: str, port: int) -> web.AppRunner:
    """Run the page on its own server (polling mode); returns the runner to clean up."""
    app = web.Application(client_max_size=64 * 1024)
    page.mount(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# --- the operator's command --------------------------------------------------------------------


async def verify_cli(db: Database, target: str, locale: str, out: Callable[[str], Any]) -> int:
    """``python bot.py referral verify FILE_OR_CODE``: a slip's PDF or photo, a scanned QR's
    text (verify URL or token) or a typed code; prints the verdict (audited ``admin:cli``).
    Returns 0 for a valid slip, 1 otherwise."""
    import asyncio

    tr = Translator(locale)
    signer = Signer(db.ring)
    now = utcnow()
    try:
        data = await asyncio.to_thread(_read_file, target)
    except OSError as exc:
        out(f"careline: cannot read {target} ({type(exc).__name__})")
        return 1
    async with db.uow() as uow:
        if data is not None:
            verdict = await rf.verify_file(uow, data, signer, now, actor="admin:cli")
        elif "://" in target or (target.count(".") == 1 and len(target) > 40):
            token = rf.token_from_text(target) or ""
            code = rf.code_from_text(target) if "://" in target else None
            verdict = await rf.verify_token(uow, token, signer, now, code=code, actor="admin:cli")
        else:
            verdict = await rf.verify_code(uow, target, signer, now, actor="admin:cli")
        await uow.commit()
    for line in verdict_lines(tr, verdict):
        out(line)
    return 0 if verdict.ok else 1


def _read_file(target: str) -> bytes | None:
    """The file's bytes when ``target`` names a file, else None (it is a code or a token)."""
    from pathlib import Path

    path = Path(target)
    try:
        if len(target) > 1024 or not path.is_file():
            return None
    except (OSError, ValueError):  # a long token is no file name
        return None
    if path.stat().st_size > 50 * 1024 * 1024:
        raise OSError("file too large")
    return path.read_bytes()


def verdict_lines(tr: Translator, v: rf.Verdict) -> list[str]:
    """The verdict as plain text lines (status first, then the details a desk matches)."""
    explain = {
        "expired": {"date": v.valid_until.isoformat() if v.valid_until else ""},
        "used": {"date": v.used_on.date().isoformat() if v.used_on else ""},
    }.get(v.status, {})
    lines = [
        f"{v.status.upper()}: {tr.plain(f'verify.status.{v.status}')} ({v.reason})",
        tr.plain(f"verify.explain.{v.status}", **explain),
    ]
    if v.status in ("forged", "unknown"):
        return lines
    rows = [
        ("verify.field.code", v.code),
        ("verify.field.name", v.patient_name),
        ("verify.field.birth_year", v.birth_year),
        ("verify.field.sex", tr.plain(f"sex.{v.sex}") if v.sex else None),
        ("verify.field.target", v.target_hospital),
        ("verify.field.department", v.target_department),
        ("verify.field.urgency", tr.plain(f"verify.urgency.{v.urgency}") if v.urgency else None),
        ("verify.field.issued", v.issued_on.isoformat() if v.issued_on else None),
        ("verify.field.valid_until", v.valid_until.isoformat() if v.valid_until else None),
        ("verify.field.used_on", v.used_on.date().isoformat() if v.used_on else None),
    ]
    lines += [f"  {tr.plain(label)}: {value}" for label, value in rows if value]
    return lines
