"""Phone and video consultations: what the doctor calls, and where both meet.

Telegram bots cannot place calls (ANCHORS §6), so a phone consultation is the doctor calling
a number the patient shared for that one consultation, and a video consultation is a room on
the clinic's own Jitsi Meet.

- **Rooms** are named with 128 random bits, so a room cannot be guessed from another one or
  from the booking. With an app secret (``CARELINE_JITSI_APP_SECRET``) each participant gets
  a signed token (JWT, HS256; claims ``aud``/``iss``/``sub``/``room``/``nbf``/``exp`` and the
  display name, the doctor as moderator), as Jitsi's token authentication expects
  (``jitsi-meet-tokens`` with ``app_id``/``app_secret``); the server then admits no one else.
- **Numbers** (cn): the doctor is shown the clinic's masked number (an "AXB" middle number from
  a number-masking provider) instead of the patient's own. :class:`NumberMasker` is that
  provider's interface; :class:`StaticMasker` returns one configured number (the test double,
  and what a clinic whose switchboard forwards calls configures). Without a masker a cn doctor
  is never shown the patient's number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

#: A token is valid from a little before the time until this long after it ends.
TOKEN_EARLY = timedelta(minutes=15)
TOKEN_LATE = timedelta(hours=2)


def room_name() -> str:
    """A room name nobody can guess (128 random bits, URL-safe, no punctuation Jitsi minds)."""
    return "careline" + secrets.token_hex(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jitsi_token(
    *,
    app_id: str,
    secret: str,
    server_url: str,
    room: str,
    name: str,
    moderator: bool,
    start: datetime,
    end: datetime,
) -> str:
    """A participant's JWT for one room (HS256), valid around the consultation's time."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "aud": "jitsi",
        "iss": app_id,
        "sub": urlsplit(server_url).hostname or "*",
        "room": room,
        "nbf": int((start - TOKEN_EARLY).timestamp()),
        "exp": int((end + TOKEN_LATE).timestamp()),
        "moderator": moderator,
        "context": {"user": {"name": name, "moderator": moderator}},
    }
    signing = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    )
    sig = hmac.new(secret.encode(), signing.encode("ascii"), hashlib.sha256).digest()
    return signing + "." + _b64(sig)


def read_token(token: str, secret: str) -> dict[str, Any] | None:
    """The claims of a token signed with ``secret``, or None (what Jitsi's check does)."""
    try:
        head, body, sig = token.split(".")
        expected = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(sig)):
            return None
        if json.loads(_unb64(head)).get("alg") != "HS256":
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def room_url(server_url: str, room: str, token: str | None = None) -> str:
    """The link a participant opens."""
    url = f"{server_url.rstrip('/')}/{room}"
    return f"{url}?jwt={token}" if token else url


class NumberMasker(Protocol):
    """A number-masking provider: a middle number that forwards the doctor's call to the
    patient for one consultation, released when it ends."""

    def bind(self, booking_id: str, patient_phone: str) -> str | None:
        """The number the doctor dials for this booking (None: none available)."""

    def release(self, booking_id: str) -> None:
        """The consultation ended: the binding goes."""


@dataclass
class StaticMasker:
    """One configured number for every booking (the clinic's switchboard; the test double)."""

    number: str
    bound: dict[str, str] | None = None

    def bind(self, booking_id: str, patient_phone: str) -> str | None:
        """The configured number."""
        if self.bound is None:
            self.bound = {}
        self.bound[booking_id] = patient_phone
        return self.number

    def release(self, booking_id: str) -> None:
        """Forget the booking's binding."""
        if self.bound is not None:
            self.bound.pop(booking_id, None)


def number_for_doctor(
    jurisdiction: str, booking_id: str, patient_phone: str | None, masker: NumberMasker | None
) -> str | None:
    """What the doctor is shown to dial: the patient's own number (shared by consent), or in
    cn the masked number (never the patient's own; None without a masker)."""
    if not patient_phone:
        return None
    if jurisdiction == "cn":
        return masker.bind(booking_id, patient_phone) if masker is not None else None
    return patient_phone
