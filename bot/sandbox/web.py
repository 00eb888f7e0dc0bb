"""The sandbox chat page: a messenger-like web UI for simulated Telegram users.

The sandbox server mounts these routes on the Bot API emulator's
:class:`aiohttp.web.Application`, so the page talks to the emulator's JSON
client API (``/client/...``) from the same origin. The page itself is static
HTML, CSS and vanilla JavaScript from ``bot/sandbox/static/``: no build step, no
third-party assets, works offline.
"""

from __future__ import annotations

import html
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
