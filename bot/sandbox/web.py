"""The sandbox chat page: a messenger-like web UI for simulated Telegram users.

The sandbox server mounts these routes on the Bot API emulator's
:class:`aiohttp.web.Application`, so the page talks to the emulator's JSON
client API (``/client/...``) from the same origin. The page itself is static
HTML, CSS and vanilla JavaScript from ``bot/sandbox/static/``: no build step, no
third-party assets, works offline.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Where ``index.html``, ``app.js``, ``i18n.js`` (the page's texts) and ``style.css`` live."""

_TITLE_PLACEHOLDER = "{{title}}"

# The page only loads its own scripts, styles and images, and talks only to its
# own origin. Bot content is rendered as text by app.js; this policy is the
# second line of defence should that ever break.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def render_index(title: str) -> str:
    """Return the page's HTML with ``title`` (HTML-escaped) filled in."""
    template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return template.replace(_TITLE_PLACEHOLDER, html.escape(title, quote=True))


def add_web_routes(app: web.Application, *, title: str = "Careline sandbox") -> None:
    """Add the sandbox page to ``app``.

    Adds ``GET /`` (the chat page, with ``title`` in its heading) and
    ``/static/`` (the page's assets). The app must also serve the emulator's
    ``/client/`` API, which the page calls same-origin.
    """
    page = render_index(title)

    async def index(request: web.Request) -> web.Response:
        """Serve the chat page."""
        return web.Response(
            text=page, content_type="text/html", charset="utf-8", headers=_SECURITY_HEADERS
        )

    async def harden_static(request: web.Request, response: web.StreamResponse) -> None:
        """Give the page's assets the same no-sniff, no-cache treatment as the page."""
        if request.path.startswith("/static/"):
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-cache")

    app.router.add_get("/", index, name="sandbox_index")
    app.router.add_static("/static/", STATIC_DIR, name="sandbox_static")
    app.on_response_prepare.append(harden_static)


#: Where the sandbox's stand-in for a Jitsi room lives (``CARELINE_JITSI_URL`` points here in
#: the sandbox unless set): a page naming the room and whether a signed token came with it.
MEET_PATH = "/sandbox/meet"
_ROOM = re.compile(r"[A-Za-z0-9]{1,64}")
_MEET_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b2530}code{background:#eef2f6;padding:.1rem .3rem;border-radius:.25rem}"
)
# Its one inline style is allowed by its hash; nothing else (no scripts, no other styles).
_MEET_HEADERS = {
    **_SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_MEET_CSS.encode()).digest()).decode()
    + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def add_meet_route(app: web.Application) -> None:
    """``GET /sandbox/meet/<room>``: what a video consultation's link opens in the sandbox."""

    async def room(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        if not _ROOM.fullmatch(name):
            raise web.HTTPNotFound
        signed = "a signed token" if request.query.get("jwt") else "no token"
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Video room (sandbox)</title><style>{_MEET_CSS}</style></head>"
            f"<body><h1>Video room</h1><p>Room <code>{html.escape(name)}</code>, opened with "
            f"{signed}.</p><p>In a clinic this link opens the video call on the clinic's own "
            "Jitsi Meet server (<code>CARELINE_JITSI_URL</code>). The sandbox works offline, "
            "so there is no call here: go back to the chat and use the buttons there (the "
            "doctor marks the call started and finished).</p></body></html>"
        )
        return web.Response(
            text=body, content_type="text/html", charset="utf-8", headers=_MEET_HEADERS
        )

    app.router.add_get(MEET_PATH + "/{room}", room, name="sandbox_meet")
