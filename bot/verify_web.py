"""The referral verify page a hospital desk opens by scanning a slip's QR.

``GET /r/<code>?t=<token>`` shows the verdict (valid / expired / revoked / used / forged /
unknown). Who the slip is for (name, year of birth, sex) is shown only with the slip's signed
token (the QR link) or with the typed code plus the patient's year of birth; a typed code alone
says only whether the slip is valid, where it sends the patient and until when. ``GET /r/`` is a
form to type a code. A slip whose patient was shown and that is valid carries a form whose
``POST /r/<code>/use`` marks it used, once: the POST must come from this page's own origin
(``Origin``, else ``Referer``) and carry a form token bound to the verdict just shown (an HMAC
over the code, the verdict, how the patient was shown, the issue time and a per-page nonce
kept in a ``SameSite=Strict`` HttpOnly cookie; valid 30 minutes). Every check and mark is
audited as ``desk:web``; a mark also with the desk's address (``referral.use.web``). Each
client address gets ``per_minute`` requests a minute (a 429 page after that); wrong years of
birth are also counted per slip (``BORN_TRIES`` an hour), so spreading guesses over many
addresses does not help. Behind a reverse proxy (``trust_proxy``) the client address is the
right-most ``X-Forwarded-For`` hop that is not one of ``trusted_proxies``. The page's
language comes from ``?lang=``, else Accept-Language. Everything shown is escaped; errors never
show a stack trace.

Mounted on the webhook server and the sandbox page; in polling mode :func:`serve` runs it on
its own port (``CARELINE_VERIFY_HOST`` / ``CARELINE_VERIFY_PORT``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import html
import ipaddress
import logging
import secrets
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from flows import referrals as rf
from flows.signing import Signer
from locales import LOCALES, Translator, normalize_locale
from storage.models import utcnow
from storage.uow import Database

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

FORM_TTL_S = 30 * 60
ACTOR = "desk:web"
COOKIE = "careline_verify"
BORN_TRIES = 5  # wrong years of birth per slip ...
BORN_WINDOW_S = 60 * 60  # ... an hour, from any address
LOOPBACK = ("127.0.0.0/8", "::1/128")
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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    """At most ``per_minute`` requests per client in any ``window`` seconds (in memory)."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        window: float = 60.0,
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.window = window
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        hits = self._hits.pop(client, None) or deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        self._hits[client] = hits  # most recent last
        while len(self._hits) > _MAX_CLIENTS:
            self._hits.popitem(last=False)
        return hits

    def allow(self, client: str) -> bool:
        """Count one request of ``client``; False when it is over the limit."""
        hits = self._recent(client)
        if len(hits) >= self.per_minute:
            return False
        hits.append(self.clock())
        return True

    def exhausted(self, client: str) -> bool:
        """Is ``client`` over the limit already (nothing counted)?"""
        return len(self._recent(client)) >= self.per_minute


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """IP networks from addresses or CIDRs (``ValueError`` on a malformed one)."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from an X-Forwarded-For hop (``[v6]``, ``v4:port`` forgiven), or None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(
    remote: str | None, forwarded: Sequence[str], trusted: Sequence[Network], trust: bool
) -> str:
    """Who is asking: the peer, or — when it is a trusted proxy and ``trust`` is on — the
    right-most ``X-Forwarded-For`` hop that is not a trusted proxy. Hops to its left were
    written by the client itself and are never believed."""
    peer = remote or "?"
    if not trust or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            found = _ip(hop)
            return str(found) if found is not None else hop[:64]
    return peer  # every hop is one of ours: the request came from inside


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    found = _ip(address)
    return found is not None and any(found in net for net in trusted)


def _limit_key(address: str) -> str:
    """IPv6 clients are counted per /64 (one host can hold a whole /64)."""
    found = _ip(address)
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{found}/64", strict=False))
    return address


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL (default ports dropped), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _year(typed: str) -> str | None:
    """A typed year of birth as four ASCII digits (full-width and other digits forgiven)."""
    text = unicodedata.normalize("NFKC", typed).strip()
    return str(int(text)) if len(text) == 4 and text.isdecimal() else None


def _without_identity(v: rf.Verdict) -> rf.Verdict:
    """The verdict as a typed code may show it: status, target and dates, nobody's identity."""
    return dataclasses.replace(v, patient_name=None, birth_year=None, sex=None)


@dataclass
class VerifyPage:
    """The verify routes. ``db`` may be set after mounting (the sandbox opens its database
    after its web server starts); until then the page says it is not available yet.
    ``public_url``: where slips' QR codes point (its origin is this page's own, besides the
    request's); ``trusted_proxies``: addresses or CIDRs of the reverse proxies whose
    X-Forwarded-For is read when ``trust_proxy`` is on."""

    db: Database | None
    per_minute: int = 30
    trust_proxy: bool = False
    now: Callable[[], datetime] = field(default=utcnow)
    trusted_proxies: Sequence[str] = LOOPBACK
    public_url: str | None = None
    limiter: RateLimiter = field(init=False)
    born_limiter: RateLimiter = field(init=False)
    _proxies: tuple[Network, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.per_minute)
        self.born_limiter = RateLimiter(BORN_TRIES, window=BORN_WINDOW_S)
        self._proxies = parse_networks(self.trusted_proxies)

    @classmethod
    def from_settings(cls, db: Database | None, settings: Settings) -> VerifyPage:
        """The page as a deployment's settings configure it."""
        return cls(
            db,
            per_minute=settings.verify_requests_per_minute,
            trust_proxy=settings.verify_trust_proxy,
            trusted_proxies=settings.verify_trusted_proxies,
            public_url=settings.public_url,
        )

    def mount(self, app: web.Application) -> None:
        """Add the routes to an aiohttp application (before it starts)."""
        app.router.add_get("/r", self.index)
        app.router.add_get("/r/", self.index)
        app.router.add_get("/r/{code}", self.show)
        app.router.add_post("/r/{code}", self.show)  # the QR's #token or a year of birth
        app.router.add_post("/r/{code}/use", self.use)

    # -- helpers -----------------------------------------------------------------------------
    def _client(self, request: web.Request) -> str:
        return client_address(
            request.remote,
            request.headers.getall("X-Forwarded-For", []),
            self._proxies,
            self.trust_proxy,
        )

    def _allow(self, request: web.Request) -> bool:
        return self.limiter.allow(_limit_key(self._client(request)))

    def _own_origins(self, request: web.Request) -> set[str]:
        """This page's origins: the public URL's, and the one the request was made to."""
        scheme = request.scheme
        if self.trust_proxy and _trusted(request.remote or "", self._proxies):
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            scheme = proto if proto in ("http", "https") else scheme
        found = {_origin_of(f"{scheme}://{request.host}")}
        if self.public_url:
            found.add(_origin_of(self.public_url))
        return {o for o in found if o}

    def _same_origin(self, request: web.Request) -> bool:
        """The POST came from this page: its Origin (else its Referer) is one of ours. A
        browser sends Origin with every form POST; "null" or neither is refused."""
        given = request.headers.get("Origin")
        if given is None:
            referer = request.headers.get("Referer")
            given = _origin_of(referer) if referer else None
        if not given or given == "null":
            return False
        return _origin_of(given) in self._own_origins(request)

    def _form_mac(self, code: str, status: str, via: str, stamp: int, nonce: str) -> str:
        assert self.db is not None
        return self.db.ring.blind_index("verify-form", f"{code}|{status}|{via}|{stamp}|{nonce}")

    def _form_token(self, code: str, status: str, via: str, nonce: str) -> str:
        stamp = int(time.time())
        return f"{stamp}.{via}.{self._form_mac(code, status, via, stamp, nonce)[:32]}"

    def _form_ok(self, code: str, token: str, nonce: str) -> str | None:
        """How the patient was shown (``token`` / ``born``) when ``token`` is this page's
        form for the valid verdict on ``code``, with this browser's nonce; else None."""
        stamp_text, _, rest = token.partition(".")
        via, _, mac = rest.partition(".")
        if not stamp_text.isdigit() or via not in ("token", "born") or not mac or not nonce:
            return None
        stamp = int(stamp_text)
        if not 0 <= time.time() - stamp <= FORM_TTL_S:
            return None
        expected = self._form_mac(code, "valid", via, stamp, nonce)[:32]
        return via if hmac.compare_digest(expected, mac) else None

    def _set_nonce(self, request: web.Request, response: web.Response, nonce: str) -> None:
        secure = request.secure or (self.public_url or "").startswith("https://")
        response.set_cookie(
            COOKIE,
            nonce,
            max_age=FORM_TTL_S,
            path="/r",
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

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

    # -- routes ------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        """A form to type a slip's code (``?code=`` goes to its page)."""
        tr = Translator(self._locale(request))
        if not self._allow(request):
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
        """The verdict on one slip: with the patient by its token or code + year of birth,
        without them by its code alone."""
        tr = Translator(self._locale(request))
        if not self._allow(request):
            return _limited(tr)
        if self.db is None:
            return _page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        token = request.query.get("t", "")
        born = ""
        if request.method == "POST":
            try:
                form = await request.post()
            except (ValueError, web.HTTPException):
                form = None
            token = str(form.get("t", "")) if form else ""
            born = str(form.get("born", "")).strip()[:8] if form else ""
        token = token[:2048]
        canon = rf.normalize_code(code)
        if born and not token and canon is not None and self.born_limiter.exhausted(canon):
            return _limited(tr, "verify.born.locked", BORN_WINDOW_S)
        try:
            async with self.db.uow() as uow:
                verdict = await self._check(uow, code, token)
                await uow.commit()
        except Exception:  # the desk sees a plain page, the log has the rest
            log.exception("verify page failed")
            return _page(tr, _p(tr.plain("verify.error")), status=500)
        via = "token" if token else None
        notice = ""
        if not token and born and verdict.birth_year:
            year = _year(born)
            if year is not None and year == verdict.birth_year:
                via = "born"
            else:
                if year is not None:  # a wrong guess, counted per slip
                    self.born_limiter.allow(canon or code)
                notice = f'<p class="notice">{_e(tr.plain("verify.born.mismatch"))}</p>'
        shown = verdict if via else _without_identity(verdict)
        body = notice + _verdict_html(tr, shown)
        nonce = ""
        if via and verdict.status == "valid" and verdict.code:
            nonce = secrets.token_urlsafe(18)
            body += self._use_form(tr, verdict.code, via, nonce)
        elif not via and verdict.birth_year and verdict.code:
            body += _born_form(tr, verdict.code)
        body += _code_form(tr, "")
        if not token:  # a scanned slip carries its token after '#': check that too
            body += _fragment_form(tr, code)
        response = _page(tr, body, status=200 if verdict.status != "unknown" else 404)
        if nonce:
            self._set_nonce(request, response, nonce)
        return response

    async def _check(self, uow: Any, code: str, token: str) -> rf.Verdict:
        assert self.db is not None
        signer = Signer(self.db.ring)
        now = self.now()
        if token:
            return await rf.verify_token(uow, token, signer, now, code=code, actor=ACTOR)
        return await rf.verify_code(uow, code, signer, now, actor=ACTOR)

    def _use_form(self, tr: Translator, code: str, via: str, nonce: str) -> str:
        form = self._form_token(code, "valid", via, nonce)
        return (
            f'<form method="post" action="/r/{_e(code)}/use?lang={_e(tr.locale)}">'
            f'<input type="hidden" name="form" value="{_e(form)}">'
            f"<p class=hint>{_e(tr.plain('verify.mark.hint'))}</p>"
            f"<button type=submit>{_e(tr.plain('verify.mark.button'))}</button></form>"
        )

    async def use(self, request: web.Request) -> web.Response:
        """The desk marks a valid slip used (once; audited with the desk's address). Only
        from this page's own origin, with the form of the verdict this browser was shown."""
        tr = Translator(self._locale(request))
        client = self._client(request)
        if not self.limiter.allow(_limit_key(client)):
            return _limited(tr)
        if self.db is None:
            return _page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        canon = rf.normalize_code(code)
        if not self._same_origin(request):
            await self._refused(canon, client, "origin")
            return _page(tr, _p(tr.plain("verify.mark.cross_origin")), status=403)
        try:
            data = await request.post()
        except (ValueError, web.HTTPException):
            data = None
        form = str(data.get("form", ""))[:200] if data else ""
        nonce = request.cookies.get(COOKIE, "")[:64]
        via = self._form_ok(canon, form, nonce) if canon is not None else None
        if canon is None or via is None:
            await self._refused(canon, client, "form")
            return _page(tr, _p(tr.plain("verify.mark.stale")), status=403)
        try:
            async with self.db.uow() as uow:
                verdict = await rf.verify_code(uow, canon, Signer(self.db.ring), self.now())
                done = False
                if verdict.status == "valid" and verdict.referral_id:
                    ref = await uow.session.get(rf.Referral, verdict.referral_id)
                    if ref is not None:
                        done = await rf.mark_used(uow, ref, self.now(), by="desk", actor=ACTOR)
                    if done:
                        await uow.audit.record(
                            ACTOR,
                            "referral.use.web",
                            "referral",
                            verdict.referral_id,
                            {"address": client[:64], "shown_by": via},
                        )
                await uow.commit()
        except Exception:
            log.exception("verify page: marking used failed")
            return _page(tr, _p(tr.plain("verify.error")), status=500)
        if done:
            body = f'<div class="banner ok">{_e(tr.plain("verify.mark.done"))}</div>'
            return _page(tr, body + _code_form(tr, ""))
        status_text = tr.plain(f"verify.status.{verdict.status}")
        body = _p(tr.plain("verify.mark.refused", status=status_text))
        return _page(tr, body + _verdict_html(tr, _without_identity(verdict)), status=409)

    async def _refused(self, code: str | None, client: str, reason: str) -> None:
        """A refused mark of a slip that exists is audited (who asked from where, and why)."""
        if code is None or self.db is None:
            return
        try:
            async with self.db.uow() as uow:
                ref = await rf.by_code(uow, code)
                if ref is not None:
                    await uow.audit.record(
                        ACTOR,
                        "referral.use.refused",
                        "referral",
                        ref.id,
                        {"address": client[:64], "reason": reason},
                    )
                    await uow.commit()
        except Exception:  # the refusal stands; the log has the rest
            log.exception("verify page: auditing a refused mark failed")


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


def _born_form(tr: Translator, code: str) -> str:
    """Asks for the patient's year of birth (posted, so it stays out of URLs and logs)."""
    return (
        f'<form method="post" action="/r/{_e(code)}?lang={_e(tr.locale)}" class=born>'
        f"<p class=hint>{_e(tr.plain('verify.born.hint'))}</p>"
        f'<label>{_e(tr.plain("verify.born.label"))} <input name="born" inputmode="numeric" '
        f'maxlength="4" size="5" autocomplete="off"></label> '
        f"<button type=submit>{_e(tr.plain('verify.born.check'))}</button></form>"
    )


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
    ".notice{background:#fff4e5;border-left:4px solid #9a6700;padding:.6rem}"
    "input{font-size:1.1rem;padding:.4rem}"
)
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_FRAGMENT_HASH}'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Same-origin only: other sites never see the page's address (its token), and the
    # browser still sends this page's Origin with the "used" form (no-referrer would send
    # "Origin: null", which the same-origin check refuses).
    "Referrer-Policy": "same-origin",
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


def _limited(tr: Translator, msgid: str = "verify.limited", retry_s: int = 60) -> web.Response:
    body = f"<p><b>{_e(tr.plain(msgid))}</b></p>"
    response = _page(tr, body, status=429)
    response.headers["Retry-After"] = str(retry_s)
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
