"""Mini App launch data as Telegram makes it, for the emulator's ``POST /client/web_app``.

Telegram opens an inline keyboard's ``web_app`` button with signed launch data (``initData``)
in the URL fragment: ``#tgWebAppData=<urlencoded initData>&tgWebAppVersion=…``. The data is a
query string (``query_id``, ``user`` as JSON, ``auth_date``) plus ``hash``:
``HMAC_SHA256(key=HMAC_SHA256(key="WebAppData", msg=bot_token), msg=data_check_string)`` in
hex, where the data-check string is the other fields as sorted ``key=value`` lines
(https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app). This is
written from that description, not from aiogram's checker, so tests of the checker against
it are tests of two readings of the same rule.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import quote, urlencode

WEB_APP_VERSION = "8.0"


def sign(token: str, fields: dict[str, str]) -> str:
    """``fields`` as an initData query string with its ``hash`` for the bot ``token``."""
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def init_data(
    token: str, user: dict[str, Any], auth_date: int, query_id: str | None = None
) -> str:
    """The launch data an inline button's Mini App gets for ``user`` (a Telegram User)."""
    fields = {
        "query_id": query_id or "AA" + secrets.token_urlsafe(18),
        "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
        "auth_date": str(auth_date),
    }
    return sign(token, fields)


def launch_url(url: str, data: str, platform: str = "sandbox") -> str:
    """The Mini App's URL as Telegram opens it: the launch data in the fragment."""
    fragment = urlencode(
        {"tgWebAppData": data, "tgWebAppVersion": WEB_APP_VERSION, "tgWebAppPlatform": platform},
        quote_via=quote,
    )
    return f"{url.split('#', 1)[0]}#{fragment}"
