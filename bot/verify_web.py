"""The referral verify page a hospital desk opens by scanning a slip's QR.

``GET /r/<code>?t=<token>`` shows the verdict (valid / expired / revoked / used / forged /
unknown). Who the slip is for (name, year of birth, sex) is shown only with the slip's signed
token (the QR link) or with the typed code plus the patient's year of birth; a typed code alone
says only whether the slip is valid, where it sends the patient and until when. A slip with an
open hospital appointment (booked or arrived, flows/appointments.py) shows it with the patient:
its day and time in the clinic's time zone (``timezone``), the service, the department and its
status; a typed code alone says only that one is booked. ``GET /r/`` is a form to type a
code. A slip whose patient was shown and that is valid carries a form whose
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

The e-prescription check page a pharmacy opens from a prescription's QR is the same page with
the same protections: ``GET /rx/<code>?t=<token>`` (verdicts valid / pending / rejected /
expired / revoked / dispensed / forged / unknown, audited ``pharmacy:web``). The patient, the
diagnosis and the medicines are shown only with the token or the code plus the year of birth
(wrong years counted per prescription, apart from slips'); a code alone shows the verdict, the
prescriber's name and the dates. A valid one shown in full carries the dispensing form
(``POST /rx/<code>/dispense``: the pharmacy's name and one quantity per medicine, less than
prescribed being a partial dispensing), guarded like the slip's "mark used" form but with form
tokens of their own kind (:class:`Kind`) and their own nonce cookie, so neither form passes as
the other. A bad entry shows the form again with the reason and keeps nothing; a refused POST
of a prescription that exists is audited ``rx.dispense.refused`` with the address and reason;
a dispensing also ``rx.dispense.web`` with the address. ``python bot.py rx verify``:
:func:`rx_verify_cli`.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from bot.ratelimit import Limiter, LimiterFactory, in_memory
from flows import prescriptions as rxf
from flows import referrals as rf
from flows import trust
from flows.signing import Signer
from handlers.patient import prescriptions as patient_rx
from locales import LOCALES, Translator, normalize_locale
from storage.models import utcnow
from storage.uow import Database

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

FORM_TTL_S = 30 * 60
ACTOR = "desk:web"
RX_ACTOR = "pharmacy:web"
COOKIE = "careline_verify"
RX_COOKIE = "careline_rx"
BORN_TRIES = 5  # wrong years of birth per slip ...
BORN_WINDOW_S = 60 * 60  # ... an hour, from any address
LOOPBACK = ("127.0.0.0/8", "::1/128")
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

# A slip's open hospital appointment, as the page names its status.
MSG_APPT_STATUS = {"booked": "apptweb.status.booked", "arrived": "apptweb.status.arrived"}


@dataclass(frozen=True)
class Booking:
    """A slip's open hospital appointment as the page shows it (None: not known, e.g. a
    service or slot gone)."""

    status: str
    starts_at: datetime | None
    all_day: bool
    service: str | None
    department: str | None


@dataclass(frozen=True)
class Kind:
    """What a checked document's page is: its path, its nonce cookie and the domain of its
    form tokens (so a slip's "mark used" form never passes as a prescription's "dispense"
    form, nor the other way round), and its page title."""

    base: str
    cookie: str
    purpose: str
    title: str


SLIP = Kind("/r", COOKIE, "verify-form", "verify.title")
RX = Kind("/rx", RX_COOKIE, "rx-form", "rxweb.title")


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
    X-Forwarded-For is read when ``trust_proxy`` is on; ``timezone``: the clinic's, in which
    a slip's hospital appointment is shown."""

    db: Database | None
    per_minute: int = 30
    trust_proxy: bool = False
    now: Callable[[], datetime] = field(default=utcnow)
    trusted_proxies: Sequence[str] = LOOPBACK
    public_url: str | None = None
    timezone: str = "UTC"
    limits: LimiterFactory = field(default=in_memory)
    limiter: Limiter = field(init=False)
    born_limiter: Limiter = field(init=False)
    _proxies: tuple[Network, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = self.limits("verify", self.per_minute, 60.0)
        self.born_limiter = self.limits("verify-born", BORN_TRIES, BORN_WINDOW_S)
        self._proxies = parse_networks(self.trusted_proxies)

    @classmethod
    def from_settings(
        cls, db: Database | None, settings: Settings, limits: LimiterFactory = in_memory
    ) -> VerifyPage:
        """The page as a deployment's settings configure it (``limits``: shared by the
        workers when Redis is configured, see bot.ratelimit)."""
        return cls(
            db,
            limits=limits,
            per_minute=settings.verify_requests_per_minute,
            trust_proxy=settings.verify_trust_proxy,
            trusted_proxies=settings.verify_trusted_proxies,
            public_url=settings.public_url,
            timezone=settings.timezone,
        )

    def mount(self, app: web.Application) -> None:
        """Add the routes to an aiohttp application (before it starts)."""
        app.router.add_get("/r", self.index)
        app.router.add_get("/r/", self.index)
        app.router.add_get("/r/{code}", self.show)
        app.router.add_post("/r/{code}", self.show)  # the QR's #token or a year of birth
        app.router.add_post("/r/{code}/use", self.use)
        app.router.add_get("/rx", self.rx_index)
        app.router.add_get("/rx/", self.rx_index)
        app.router.add_get("/rx/{code}", self.rx_show)
        app.router.add_post("/rx/{code}", self.rx_show)  # the QR's #token or a year of birth
        app.router.add_post("/rx/{code}/dispense", self.rx_dispense)

    # -- helpers -----------------------------------------------------------------------------
    def _client(self, request: web.Request) -> str:
        return client_address(
            request.remote,
            request.headers.getall("X-Forwarded-For", []),
            self._proxies,
            self.trust_proxy,
        )

    async def _allow(self, request: web.Request) -> bool:
        return await self.limiter.allow(_limit_key(self._client(request)))

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

    def _form_mac(
        self, code: str, status: str, via: str, stamp: int, nonce: str, kind: Kind = SLIP
    ) -> str:
        assert self.db is not None
        return self.db.ring.blind_index(kind.purpose, f"{code}|{status}|{via}|{stamp}|{nonce}")

    def _form_token(self, code: str, status: str, via: str, nonce: str, kind: Kind = SLIP) -> str:
        stamp = int(time.time())
        return f"{stamp}.{via}.{self._form_mac(code, status, via, stamp, nonce, kind)[:32]}"

    def _form_ok(self, code: str, token: str, nonce: str, kind: Kind = SLIP) -> str | None:
        """How the patient was shown (``token`` / ``born``) when ``token`` is this page's
        form (of this ``kind`` of document) for the valid verdict on ``code``, with this
        browser's nonce; else None."""
        stamp_text, _, rest = token.partition(".")
        via, _, mac = rest.partition(".")
        if not stamp_text.isdigit() or via not in ("token", "born") or not mac or not nonce:
            return None
        stamp = int(stamp_text)
        if not 0 <= time.time() - stamp <= FORM_TTL_S:
            return None
        expected = self._form_mac(code, "valid", via, stamp, nonce, kind)[:32]
        return via if hmac.compare_digest(expected, mac) else None

    def _set_nonce(
        self, request: web.Request, response: web.Response, nonce: str, kind: Kind = SLIP
    ) -> None:
        secure = request.secure or (self.public_url or "").startswith("https://")
        response.set_cookie(
            kind.cookie,
            nonce,
            max_age=FORM_TTL_S,
            path=kind.base,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    @staticmethod
    async def _posted(request: web.Request) -> tuple[str, str]:
        """The token (``?t=``, or posted from the URL's fragment) and a posted year of birth."""
        token = request.query.get("t", "")
        born = ""
        if request.method == "POST":
            try:
                form = await request.post()
            except (ValueError, web.HTTPException):
                form = None
            token = str(form.get("t", "")) if form else ""
            born = str(form.get("born", "")).strip()[:8] if form else ""
        return token[:2048], born

    async def _who(
        self, token: str, born: str, birth_year: str | None, key: str
    ) -> tuple[str | None, bool]:
        """How the patient may be shown (``token``, ``born`` or None) and whether a typed
        year of birth was wrong; a wrong year is counted against ``key`` (one document)."""
        if token:
            return "token", False
        if not born or not birth_year:
            return None, False
        year = _year(born)
        if year is not None and year == birth_year:
            return "born", False
        if year is not None:  # a wrong guess, counted per document
            await self.born_limiter.allow(key)
        return None, True

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
        if not await self._allow(request):
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
        if not await self._allow(request):
            return _limited(tr)
        if self.db is None:
            return _page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        token, born = await self._posted(request)
        canon = rf.normalize_code(code)
        if born and not token and canon is not None and await self.born_limiter.exhausted(canon):
            return _limited(tr, "verify.born.locked", BORN_WINDOW_S)
        try:
            async with self.db.uow() as uow:
                verdict = await self._check(uow, code, token)
                booking = await _booking(uow, verdict)
                await uow.commit()
        except Exception:  # the desk sees a plain page, the log has the rest
            log.exception("verify page failed")
            return _page(tr, _p(tr.plain("verify.error")), status=500)
        via, wrong = await self._who(token, born, verdict.birth_year, canon or code)
        notice = _notice(tr.plain("verify.born.mismatch")) if wrong else ""
        shown = verdict if via else _without_identity(verdict)
        body = notice + _verdict_html(tr, shown)
        body += _booking_html(tr, booking, via is not None, self.timezone)
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
        if not await self.limiter.allow(_limit_key(client)):
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

    # -- prescriptions ---------------------------------------------------------------------------
    def _rx_page(self, tr: Translator, body: str, *, status: int = 200) -> web.Response:
        return _page(tr, body, status=status, title=RX.title)

    async def rx_index(self, request: web.Request) -> web.Response:
        """A form to type a prescription's code (``?code=`` goes to its page)."""
        tr = Translator(self._locale(request))
        if not await self._allow(request):
            return _limited(tr, title=RX.title)
        typed = request.query.get("code", "")
        if typed:
            canon = rf.normalize_code(typed)
            if canon is not None:
                raise web.HTTPSeeOther(f"/rx/{canon}?lang={tr.locale}")
            body = _rx_verdict_html(tr, rxf.Verdict(status="unknown", reason="code"), False)
            return self._rx_page(tr, body + _rx_code_form(tr, typed), status=404)
        return self._rx_page(tr, _rx_code_form(tr, ""))

    async def rx_show(self, request: web.Request) -> web.Response:
        """The verdict on one prescription: with the patient, the diagnosis and the medicines
        by its token or code + year of birth; by its code alone only the verdict, the
        prescriber and the dates. A valid one shown in full carries the dispensing form."""
        tr = Translator(self._locale(request))
        if not await self._allow(request):
            return _limited(tr, title=RX.title)
        if self.db is None:
            return self._rx_page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        token, born = await self._posted(request)
        canon = rf.normalize_code(code)
        key = f"rx:{canon or code}"  # prescriptions' wrong years are counted apart from slips'
        if born and not token and canon is not None and await self.born_limiter.exhausted(key):
            return _limited(tr, "rxweb.born.locked", BORN_WINDOW_S, title=RX.title)
        try:
            async with self.db.uow() as uow:
                verdict = await self._rx_check(uow, code, token)
                await uow.commit()
        except Exception:  # the pharmacy sees a plain page, the log has the rest
            log.exception("prescription page failed")
            return self._rx_page(tr, _p(tr.plain("verify.error")), status=500)
        content = verdict.content
        via, wrong = await self._who(token, born, content.birth_year if content else None, key)
        if content is None:
            via = None
        body = _notice(tr.plain("rxweb.born.mismatch")) if wrong else ""
        body += _rx_verdict_html(tr, verdict, via is not None)
        nonce = ""
        if via and verdict.status == "valid" and verdict.code and content is not None:
            nonce = secrets.token_urlsafe(18)
            body += self._dispense_form(tr, verdict.code, content, via, nonce)
        elif not via and content is not None and content.birth_year and verdict.code:
            body += _rx_born_form(tr, verdict.code)
        body += _rx_code_form(tr, "")
        if not token:  # a QR may carry its token after '#': check that too
            body += _fragment_form(tr, code, RX.base)
        response = self._rx_page(tr, body, status=200 if verdict.status != "unknown" else 404)
        if nonce:
            self._set_nonce(request, response, nonce, RX)
        return response

    async def _rx_check(self, uow: Any, code: str, token: str) -> rxf.Verdict:
        now = self.now()
        if token:
            signer = trust.signer(uow)
            return await rxf.verify_token(uow, token, signer, now, code=code, actor=RX_ACTOR)
        return await rxf.verify_code(uow, code, now, actor=RX_ACTOR)

    def _dispense_form(
        self,
        tr: Translator,
        code: str,
        content: rxf.RxContent,
        via: str,
        nonce: str,
        pharmacy: str = "",
        given: Sequence[str] | None = None,
    ) -> str:
        form = self._form_token(code, "valid", via, nonce, RX)
        return _rx_dispense_form(tr, code, content, form, pharmacy, given)

    async def rx_dispense(self, request: web.Request) -> web.Response:
        """The pharmacy records a valid prescription dispensed (once; audited with its
        address): its name and the quantity given of each medicine. Only from this page's own
        origin, with the form of the verdict this browser was shown. A bad entry shows the
        form again with the reason, and nothing is kept."""
        tr = Translator(self._locale(request))
        client = self._client(request)
        if not await self.limiter.allow(_limit_key(client)):
            return _limited(tr, title=RX.title)
        if self.db is None:
            return self._rx_page(tr, _p(tr.plain("verify.unavailable")), status=503)
        code = request.match_info["code"][:40]
        canon = rf.normalize_code(code)
        if not self._same_origin(request):
            await self._rx_refused(canon, client, "origin")
            return self._rx_page(tr, _p(tr.plain("rxweb.dispense.cross_origin")), status=403)
        try:
            data = await request.post()
        except (ValueError, web.HTTPException):
            data = None
        form = str(data.get("form", ""))[:200] if data else ""
        nonce = request.cookies.get(RX.cookie, "")[:64]
        via = self._form_ok(canon, form, nonce, RX) if canon is not None else None
        if canon is None or via is None:
            await self._rx_refused(canon, client, "form")
            return self._rx_page(tr, _p(tr.plain("rxweb.dispense.stale")), status=403)
        pharmacy = str(data.get("pharmacy", ""))[:1000] if data else ""
        given = [str(q)[:32] for q in data.getall("q", [])][: rxf.MAX_ITEMS + 1] if data else []
        now = self.now()
        error: rxf.RxError | None = None
        done: rxf.Dispensing | None = None
        try:
            async with self.db.uow() as uow:
                verdict = await rxf.verify_code(uow, canon, now)
                rx = await uow.prescriptions.get(verdict.rx_id) if verdict.rx_id else None
                if rx is not None and verdict.status == "valid":
                    try:
                        done = await rxf.dispense(uow, rx, pharmacy, given, now, actor=RX_ACTOR)
                    except rxf.RxError as exc:
                        error = exc
                        if exc.msgid not in _RX_INPUT_ERRORS:  # e.g. another pharmacy won
                            verdict = await rxf.verify_code(uow, canon, now)
                elif rx is not None:
                    await self._rx_refusal(uow, rx.id, client, verdict.status)
                if done is not None and rx is not None:
                    # The patient hears at once: a dispensing they did not ask for is seen.
                    await patient_rx.tell(
                        uow, rx, "rx.pat.dispensed", pharmacy=done.pharmacy,
                        partial=" " + Translator(await _locale_of(uow, rx)).plain("rx.partial")
                        if done.partial else "",
                    )  # fmt: skip
                if done is not None:
                    await uow.audit.record(
                        RX_ACTOR,
                        "rx.dispense.web",
                        "prescription",
                        rx.id if rx is not None else "",
                        {"address": client[:64], "shown_by": via},
                    )
                if error is None or error.msgid not in _RX_INPUT_ERRORS:
                    await uow.commit()  # a refusal's audit (and an expiry) is kept
        except Exception:
            log.exception("prescription page: dispensing failed")
            return self._rx_page(tr, _p(tr.plain("verify.error")), status=500)
        content = verdict.content
        if done is not None and content is not None:
            return self._rx_page(tr, _rx_done_html(tr, content, done) + _rx_code_form(tr, ""))
        if error is not None and error.msgid in _RX_INPUT_ERRORS and content is not None:
            # Nothing was kept: the same page again, with the reason and what was typed.
            nonce = secrets.token_urlsafe(18)
            body = _notice(tr.plain(error.msgid, **error.params))
            body += _rx_verdict_html(tr, verdict, True)
            body += self._dispense_form(tr, canon, content, via, nonce, pharmacy, given)
            response = self._rx_page(tr, body, status=422)
            self._set_nonce(request, response, nonce, RX)
            return response
        msgid = error.msgid if error is not None else MSG_RX_REFUSED.get(verdict.status)
        body = _p(tr.plain(msgid, **(error.params if error else {}))) if msgid else ""
        body = body or _p(tr.plain("rxweb.dispense.not_recorded"))
        return self._rx_page(tr, body + _rx_verdict_html(tr, verdict, False), status=409)

    async def _rx_refusal(self, uow: Any, rx_id: str, client: str, reason: str) -> None:
        await uow.audit.record(
            RX_ACTOR,
            "rx.dispense.refused",
            "prescription",
            rx_id,
            {"address": client[:64], "reason": reason},
        )

    async def _rx_refused(self, code: str | None, client: str, reason: str) -> None:
        """A refused dispensing of a prescription that exists is audited (from where, why)."""
        if code is None or self.db is None:
            return
        try:
            async with self.db.uow() as uow:
                rx = await rxf.by_code(uow, code)
                if rx is not None:
                    await self._rx_refusal(uow, rx.id, client, reason)
                    await uow.commit()
        except Exception:  # the refusal stands; the log has the rest
            log.exception("prescription page: auditing a refused dispensing failed")


# --- rendering ---------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _p(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _notice(text: str) -> str:
    return f'<p class="notice">{_e(text)}</p>'


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


async def _booking(uow: Any, v: rf.Verdict) -> Booking | None:
    """The open (booked or arrived) hospital appointment of a genuine slip, if it has one."""
    if v.referral_id is None or v.status in ("forged", "unknown"):
        return None
    appt = await uow.appointments.open_for_referral(v.referral_id)
    if appt is None:
        return None
    slot = await uow.appointments.slot(appt.slot_id)
    service = await uow.appointments.service(appt.service_id)
    return Booking(
        status=appt.status,
        starts_at=slot.starts_at if slot is not None else None,
        all_day=bool(slot.all_day) if slot is not None else False,
        service=service.name if service is not None else None,
        department=service.department if service is not None else None,
    )


def _local(at: datetime, tz: str) -> datetime:
    """A stored (UTC) time in the clinic's zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)


def _booking_html(tr: Translator, b: Booking | None, identity: bool, tz: str) -> str:
    """The slip's hospital appointment: with the patient shown, when (in the clinic's zone),
    what, where and its status; without them, only that one is booked."""
    if b is None:
        return ""
    head = f"<h2>{_e(tr.plain('apptweb.title'))}</h2>"
    if not identity:
        return head + _p(tr.plain("apptweb.booked"))
    when = None
    if b.starts_at is not None:
        local = _local(b.starts_at, tz)
        when = (
            tr.plain("apptweb.all_day", date=local.date().isoformat())
            if b.all_day
            else local.strftime("%Y-%m-%d %H:%M")
        )
    status = MSG_APPT_STATUS.get(b.status)
    rows = [
        ("apptweb.field.when", when),
        ("apptweb.field.service", b.service),
        ("apptweb.field.department", b.department),
        ("apptweb.field.status", tr.plain(status) if status else b.status),
    ]
    cells = "".join(
        f"<tr><th>{_e(tr.plain(label))}</th><td>{_e(value)}</td></tr>"
        for label, value in rows
        if value
    )
    return f"{head}<table class=appt>{cells}</table>"


def _born_form(tr: Translator, code: str) -> str:
    """Asks for the patient's year of birth (posted, so it stays out of URLs and logs)."""
    return (
        f'<form method="post" action="/r/{_e(code)}?lang={_e(tr.locale)}" class=born>'
        f"<p class=hint>{_e(tr.plain('verify.born.hint'))}</p>"
        f'<label>{_e(tr.plain("verify.born.label"))} <input name="born" inputmode="numeric" '
        f'maxlength="4" size="5" autocomplete="off"></label> '
        f"<button type=submit>{_e(tr.plain('verify.born.check'))}</button></form>"
    )


def _code_form(
    tr: Translator,
    typed: str,
    *,
    base: str = "/r",
    label: str = "verify.form.label",
    check: str = "verify.form.check",
) -> str:
    return (
        f'<form method="get" action="{base}/" class=code><input type="hidden" name="lang" '
        f'value="{_e(tr.locale)}"><label>{_e(tr.plain(label))} '
        f'<input name="code" value="{_e(typed)}" maxlength="40" autocomplete="off" '
        f'placeholder="K7Q-4M9-XDB"></label> '
        f"<button type=submit>{_e(tr.plain(check))}</button></form>"
    )


# --- prescriptions: rendering ------------------------------------------------------------------

# What the flow's refusals of a bad entry are: the form is shown again, nothing is kept.
_RX_INPUT_ERRORS = frozenset(
    {
        "rx.dispense.pharmacy",
        "rx.error.too_long",
        "rx.dispense.quantities",
        "rx.dispense.quantity_bad",
        "rx.dispense.quantity_over",
        "rx.dispense.nothing",
    }
)
# Why a prescription that is not valid (any more) was not dispensed.
MSG_RX_REFUSED = {
    "pending": "rx.dispense.pending",
    "rejected": "rx.dispense.rejected",
    "expired": "rx.dispense.expired",
    "revoked": "rx.dispense.revoked",
    "dispensed": "rx.dispense.already",
}
MSG_RX_STATUS = {
    "valid": "rxweb.status.valid",
    "pending": "rxweb.status.pending",
    "rejected": "rxweb.status.rejected",
    "expired": "rxweb.status.expired",
    "revoked": "rxweb.status.revoked",
    "dispensed": "rxweb.status.dispensed",
    "dispensed_partly": "rxweb.status.dispensed_partly",
    "dispensed_plain": "rxweb.status.dispensed_plain",
    "forged": "rxweb.status.forged",
    "unknown": "rxweb.status.unknown",
}
MSG_RX_EXPLAIN = {
    "valid": "rxweb.explain.valid",
    "pending": "rxweb.explain.pending",
    "rejected": "rxweb.explain.rejected",
    "expired": "rxweb.explain.expired",
    "revoked": "rxweb.explain.revoked",
    "dispensed": "rxweb.explain.dispensed",
    "forged": "rxweb.explain.forged",
    "unknown": "rxweb.explain.unknown",
}
_RX_COLOURS = {
    "valid": "#1b7f3b",
    "pending": "#9a6700",
    "rejected": "#b42318",
    "expired": "#9a6700",
    "revoked": "#b42318",
    "dispensed": "#9a6700",
    "forged": "#b42318",
    "unknown": "#555",
}
_RX_ICONS = {
    "valid": "✔",
    "pending": "⏳",
    "rejected": "✖",
    "expired": "⌛",
    "revoked": "✖",
    "dispensed": "●",
    "forged": "✖",
    "unknown": "?",
}


def _amount(value: float) -> str:
    """A quantity as a pharmacist types it: ``21``, ``2.5``."""
    return str(int(value)) if value == int(value) else f"{value:g}"


def rx_status_text(tr: Translator, v: rxf.Verdict) -> str:
    """The verdict in words (a dispensed one says when, where, and whether only partly)."""
    if v.status == "dispensed":
        d = v.dispensing
        if d is None:
            return tr.plain(MSG_RX_STATUS["dispensed_plain"])
        key = "dispensed_partly" if d.partial else "dispensed"
        return tr.plain(MSG_RX_STATUS[key], date=d.at.date().isoformat(), pharmacy=d.pharmacy)
    return tr.plain(MSG_RX_STATUS.get(v.status, MSG_RX_STATUS["unknown"]))


async def _locale_of(uow: Any, rx: Any) -> str:
    patient = await uow.patients.get(rx.patient_id)
    return str(patient.locale) if patient is not None else "en"


def _rx_explain(tr: Translator, v: rxf.Verdict) -> str:
    c = v.content
    params = {"date": c.valid_until.isoformat()} if v.status == "expired" and c else {}
    return tr.plain(MSG_RX_EXPLAIN.get(v.status, MSG_RX_EXPLAIN["unknown"]), **params)


def _rx_rows(tr: Translator, v: rxf.Verdict, identity: bool) -> list[tuple[str, str]]:
    """(label, value) of what a pharmacy may see: with ``identity`` the patient, the
    prescriber in full and the diagnosis; without, the prescriber's name and the dates."""
    c = v.content
    if c is None:
        return []
    doctor = c.doctor_name
    if identity and c.doctor_title:
        doctor = f"{c.doctor_name}, {c.doctor_title}" if c.doctor_name else c.doctor_title
    rows: list[tuple[str, str | None]] = [("rxweb.field.code", v.code)]
    if identity:
        rows += [
            ("rxweb.field.patient", c.patient_name),
            ("rxweb.field.birth_year", c.birth_year),
            ("rxweb.field.sex", tr.plain(f"sex.{c.sex}") if c.sex else None),
        ]
    rows.append(("rxweb.field.doctor", doctor))
    if identity:
        rows += [
            ("rxweb.field.licence", c.doctor_licence),
            ("rxweb.field.hospital", c.doctor_hospital),
            ("rxweb.field.diagnosis", c.diagnosis),
        ]
    rows += [
        ("rxweb.field.issued", c.issued_on.isoformat()),
        ("rxweb.field.valid_until", c.valid_until.isoformat()),
    ]
    if v.dispensing is not None:
        rows += [
            ("rxweb.field.dispensed_on", v.dispensing.at.date().isoformat()),
            ("rxweb.field.pharmacy", v.dispensing.pharmacy),
        ]
    return [(tr.plain(label), str(value)) for label, value in rows if value]


def _rx_items_html(tr: Translator, v: rxf.Verdict) -> str:
    """The medicines as prescribed (and what was given, once dispensed)."""
    c = v.content
    if c is None:
        return ""
    given = v.dispensing.quantities if v.dispensing is not None else None
    heads = ["rxweb.items.name", "rxweb.items.dose", "rxweb.items.quantity", "rxweb.items.days"]
    if given is not None:
        heads.append("rxweb.items.given")
    head = "".join(f"<th>{_e(tr.plain(h))}</th>" for h in heads)
    rows = []
    for i, item in enumerate(c.items):
        cells = [
            f"<td><b>{_e(item.name)}</b> {_e(item.strength)}</td>",
            f"<td>{_e(item.dose)}</td>",
            f"<td>{_e(item.quantity)}</td>",
            f"<td>{_e(item.days)}</td>",
        ]
        if given is not None:
            cells.append(f"<td>{_e(_amount(given[i]) if i < len(given) else '')}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<h2>{_e(tr.plain('rxweb.items.title'))}</h2>"
        f"<table class=items><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _rx_verdict_html(tr: Translator, v: rxf.Verdict, identity: bool) -> str:
    colour = _RX_COLOURS.get(v.status, "#555")
    parts = [
        f'<div class="banner" style="background:{colour}"><span class=icon>'
        f"{_RX_ICONS.get(v.status, '?')}</span> {_e(rx_status_text(tr, v))}</div>",
        _p(_rx_explain(tr, v)),
    ]
    if v.status in ("forged", "unknown") or v.content is None:
        return "".join(parts)
    cells = "".join(
        f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>"
        for label, value in _rx_rows(tr, v, identity)
    )
    parts.append(f"<table>{cells}</table>")
    if identity:
        parts.append(_rx_items_html(tr, v))
        if v.status == "valid":
            parts.append(f"<p class=hint>{_e(tr.plain('rxweb.match_id'))}</p>")
    return "".join(parts)


def _rx_dispense_form(
    tr: Translator,
    code: str,
    content: rxf.RxContent,
    form: str,
    pharmacy: str = "",
    given: Sequence[str] | None = None,
) -> str:
    """The dispensing form: the pharmacy's name and one quantity per medicine (prefilled with
    what was prescribed; less is a partial dispensing)."""
    rows = []
    for i, item in enumerate(content.items):
        value = given[i] if given is not None and i < len(given) else _amount(item.amount)
        label = f"{tr.plain('rxweb.dispense.given')}: {item.name}"
        rows.append(
            f"<tr><td><b>{_e(item.name)}</b> {_e(item.strength)}</td><td>{_e(item.quantity)}"
            f'</td><td><input name="q" type="number" min="0" max="{_e(_amount(item.amount))}" '
            f'step="any" inputmode="decimal" value="{_e(value)}" aria-label="{_e(label)}" '
            f"required></td></tr>"
        )
    heads = "".join(
        f"<th>{_e(tr.plain(h))}</th>"
        for h in ("rxweb.items.name", "rxweb.dispense.prescribed", "rxweb.dispense.given")
    )
    return (
        f'<form method="post" action="/rx/{_e(code)}/dispense?lang={_e(tr.locale)}" '
        f'class=dispense><input type="hidden" name="form" value="{_e(form)}">'
        f"<h2>{_e(tr.plain('rxweb.dispense.title'))}</h2>"
        f"<p class=hint>{_e(tr.plain('rxweb.dispense.hint'))}</p>"
        f"<label class=pharmacy>{_e(tr.plain('rxweb.dispense.pharmacy_label'))} "
        f'<input name="pharmacy" value="{_e(pharmacy)}" maxlength="{rxf.PHARMACY_MAX}" '
        f'autocomplete="organization" required></label>'
        f"<table class=items><thead><tr>{heads}</tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table><button type=submit>{_e(tr.plain('rxweb.dispense.button'))}</button></form>"
    )


def _rx_done_html(tr: Translator, content: rxf.RxContent, done: rxf.Dispensing) -> str:
    """What a successful dispensing shows: that it is kept, and what was given where."""
    key = "rxweb.dispense.done_partly" if done.partial else "rxweb.dispense.done"
    rows = "".join(
        f"<tr><td><b>{_e(item.name)}</b> {_e(item.strength)}</td><td>{_e(item.quantity)}</td>"
        f"<td><b>{_e(_amount(q))}</b></td></tr>"
        for item, q in zip(content.items, done.quantities, strict=False)
    )
    heads = "".join(
        f"<th>{_e(tr.plain(h))}</th>"
        for h in ("rxweb.items.name", "rxweb.dispense.prescribed", "rxweb.items.given")
    )
    facts = "".join(
        f"<tr><th>{_e(tr.plain(label))}</th><td>{_e(value)}</td></tr>"
        for label, value in (
            ("rxweb.field.code", content.code),
            ("rxweb.field.pharmacy", done.pharmacy),
            ("rxweb.field.dispensed_on", done.at.date().isoformat()),
        )
    )
    return (
        f'<div class="banner ok"><span class=icon>✔</span> {_e(tr.plain(key))}</div>'
        f"<p>{_e(tr.plain('rxweb.dispense.done_hint'))}</p><table>{facts}</table>"
        f"<table class=items><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _rx_born_form(tr: Translator, code: str) -> str:
    """Asks for the patient's year of birth (posted, so it stays out of URLs and logs)."""
    return (
        f'<form method="post" action="/rx/{_e(code)}?lang={_e(tr.locale)}" class=born>'
        f"<p class=hint>{_e(tr.plain('rxweb.born.hint'))}</p>"
        f'<label>{_e(tr.plain("rxweb.born.label"))} <input name="born" inputmode="numeric" '
        f'maxlength="4" size="5" autocomplete="off"></label> '
        f"<button type=submit>{_e(tr.plain('rxweb.born.check'))}</button></form>"
    )


def _rx_code_form(tr: Translator, typed: str) -> str:
    return _code_form(tr, typed, base=RX.base, label="rxweb.form.label", check="rxweb.form.check")


# Browsers never send a URL's fragment: this posts the slip's token (``/r/<code>#<token>``) to
# the page so it is checked too, without landing in access logs. Allowed by its CSP hash.
_FRAGMENT_JS = (
    "(function(){var h=location.hash.slice(1);if(h.indexOf('t=')===0)h=h.slice(2);"
    "if(!h)return;var f=document.getElementById('tk');f.elements.t.value="
    "decodeURIComponent(h);history.replaceState(null,'',location.pathname+location.search);"
    "f.submit();})();"
)
_FRAGMENT_HASH = base64.b64encode(hashlib.sha256(_FRAGMENT_JS.encode()).digest()).decode()


def _fragment_form(tr: Translator, code: str, base: str = "/r") -> str:
    return (
        f'<form id=tk method="post" action="{base}/{_e(code)}?lang={_e(tr.locale)}">'
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
    # the prescription page: its medicines and the dispensing form
    "h2{font-size:1.1rem;margin:1.4rem 0 .3rem}table.items th{width:auto;font-weight:600}"
    "table.items td{vertical-align:top}form.dispense{border:2px solid #1b7f3b;border-radius:.5rem;"
    "padding:0 1rem 1rem;margin:1.5rem 0}form.dispense h2{margin-top:1rem}"
    "label.pharmacy{display:block;font-weight:600}label.pharmacy input{display:block;"
    "width:100%;box-sizing:border-box;margin-top:.3rem;font-weight:normal}"
    "form.dispense input[type=number]{width:5rem}form.dispense button{background:#1b7f3b;"
    "color:#fff;border:0;border-radius:.4rem;font-weight:bold}"
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


def _page(
    tr: Translator, body: str, *, status: int = 200, title: str = "verify.title"
) -> web.Response:
    lang = {"zh_Hans": "zh-Hans"}.get(tr.locale, tr.locale)
    title = _e(tr.plain(title))
    text = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f"{body}</body></html>"
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def _limited(
    tr: Translator,
    msgid: str = "verify.limited",
    retry_s: int = 60,
    *,
    title: str = "verify.title",
) -> web.Response:
    body = f"<p><b>{_e(tr.plain(msgid))}</b></p>"
    response = _page(tr, body, status=429, title=title)
    response.headers["Retry-After"] = str(retry_s)
    return response


async def serve(page: VerifyPage, host: str, port: int, *more: Any) -> web.AppRunner:
    """Run the page (and ``more`` route sets with a ``mount(app)``, e.g. the device API) on
    its own server (polling mode); returns the runner to clean up."""
    app = web.Application(client_max_size=64 * 1024)
    page.mount(app)
    for routes in more:
        routes.mount(app)
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


async def rx_verify_cli(db: Database, target: str, locale: str, out: Callable[[str], Any]) -> int:
    """``python bot.py rx verify FILE_OR_CODE``: a prescription's PDF or a photo of its QR, a
    scanned QR's text (``/rx/`` URL or token) or a typed code; prints the verdict (audited
    ``admin:cli``), with the patient and the medicines only when checked by token or file.
    Returns 0 for a valid prescription, 1 otherwise."""
    import asyncio

    tr = Translator(locale)
    now = utcnow()
    try:
        data = await asyncio.to_thread(_read_file, target)
    except OSError as exc:
        out(f"careline: cannot read {target} ({type(exc).__name__})")
        return 1
    identity = True
    async with db.uow() as uow:
        signer = trust.signer(uow)
        if data is not None:
            verdict = await rxf.verify_file(uow, data, signer, now, actor="admin:cli")
        elif "://" in target or (target.count(".") == 1 and len(target) > 40):
            token = rf.token_from_text(target) or ""
            code = rxf.code_from_text(target) if "://" in target else None
            verdict = await rxf.verify_token(uow, token, signer, now, code=code, actor="admin:cli")
        else:
            identity = False
            verdict = await rxf.verify_code(uow, target, now, actor="admin:cli")
        await uow.commit()
    for line in rx_verdict_lines(tr, verdict, identity):
        out(line)
    return 0 if verdict.ok else 1


def rx_verdict_lines(tr: Translator, v: rxf.Verdict, identity: bool) -> list[str]:
    """A prescription's verdict as plain text lines (status first; the patient and the
    medicines only with ``identity``)."""
    lines = [f"{v.status.upper()}: {rx_status_text(tr, v)} ({v.reason})", _rx_explain(tr, v)]
    if v.status in ("forged", "unknown") or v.content is None:
        return lines
    lines += [f"  {label}: {value}" for label, value in _rx_rows(tr, v, identity)]
    if identity:
        given = v.dispensing.quantities if v.dispensing is not None else ()
        lines.append(f"  {tr.plain('rxweb.items.title')}:")
        for i, item in enumerate(v.content.items):
            line = (
                f"    {i + 1}. {item.name} {item.strength}: {item.dose}; {item.quantity}; "
                f"{tr.plain('rxweb.items.days')}: {item.days}"
            )
            if i < len(given):
                line += f" — {tr.plain('rxweb.items.given')}: {_amount(given[i])}"
            lines.append(line)
    elif v.content.birth_year:
        lines.append(tr.plain("rxweb.cli.identity_hidden"))
    return lines
