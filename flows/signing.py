"""Signed tokens for referral slips (Ed25519, from ``cryptography``).

A token is ``base64url(payload JSON) + "." + base64url(signature)``, unpadded; the signature is
over the payload's JSON bytes exactly as carried. The payload is
``{"rid": referral id, "iss": issue date, "exp": last valid date, "h": SHA-256 of the slip's
canonical content, "kid": signing key id}``; a prescription's (flows/prescriptions.py) also
carries ``"typ": "rx"``. The keys live in the keys file beside the master
keys (:class:`storage.crypto.KeyRing`); ``python bot.py keys rotate-signing`` adds a new key and
keeps the old public keys, so slips signed before a rotation verify until they expire.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.crypto import KeyRing

TOKEN_MAX = 1024  # anything longer is not one of ours
PAYLOAD_FIELDS = ("rid", "iss", "exp", "h", "kid")


class SigningError(Exception):
    """There is no active signing key to sign with."""


def b64u(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError on anything else."""
    if not text or any(c not in _B64U for c in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


_B64U = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Signer:
    """Signs and verifies slip tokens with the key ring's signing keys."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    @property
    def active_kid(self) -> str:
        """The id of the key new slips are signed with."""
        self.ring.reload_if_changed()
        key = self.ring.signing_key()
        if key is None or key.private is None:
            raise SigningError("the keys file has no active signing key")
        return key.kid

    def sign(self, payload: dict[str, Any]) -> str:
        """A token for ``payload`` (its ``kid`` is set to the active key's)."""
        self.ring.reload_if_changed()  # a `keys rotate-signing` by another process
        key = self.ring.signing_key()
        if key is None or key.private is None:
            raise SigningError("the keys file has no active signing key")
        body = dict(payload, kid=key.kid)
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
        sig = Ed25519PrivateKey.from_private_bytes(key.private).sign(raw)
        return f"{b64u(raw)}.{b64u(sig)}"

    def verify(self, token: str, typ: str | None = None) -> dict[str, Any] | None:
        """The payload of a genuine token (signed by one of our keys, active or retired, and
        well formed), else None. Never raises on bad input. ``typ`` names the kind of document
        (``rx`` for a prescription, whose payload carries it); without it only a referral
        slip's payload (no ``typ``) passes, so one kind's token never checks as the other's."""
        if not isinstance(token, str) or len(token) > TOKEN_MAX or token.count(".") != 1:
            return None
        head, _, tail = token.partition(".")
        try:
            raw, sig = unb64u(head), unb64u(tail)
            payload = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        wanted = set(PAYLOAD_FIELDS) | ({"typ"} if typ is not None else set())
        if not isinstance(payload, dict) or set(payload) != wanted:
            return None
        if not all(isinstance(payload[f], str) for f in wanted):
            return None
        if typ is not None and payload["typ"] != typ:
            return None
        key = self.ring.signing_key(payload["kid"]) if payload["kid"] else None
        if key is None or key.kid != payload["kid"] or len(sig) != 64:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(sig, raw)
        except InvalidSignature:
            return None
        return payload
