"""Encryption at rest.

* A **master key ring** lives in a JSON file outside the database (0600). Master keys only wrap
  data keys; rotation adds a key and re-wraps, old keys stay for reading until nothing uses them.
* Each owner (a patient, or ``system`` for inbox/outbox payloads) has a **data key** (AES-256),
  stored wrapped in ``data_keys``. Destroying it crypto-shreds everything encrypted under it.
* Fields are AES-GCM ciphertext whose associated data binds them to
  ``(table, column, row id, key version)``: a ciphertext copied to another row or column fails.
* Lookups (phone number) use an HMAC-SHA256 **blind index** under its own key.
* The ring **fails safe**: a keys file other users can read or write is refused
  (:func:`check_keys_file_mode`), a missing one is not silently replaced when the caller says
  data exists (``load_or_create(create=False)``), and :meth:`KeyRing.check_sample` tells
  whether the ring unwraps a sample of the stored data keys.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import struct
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT = 1
_FIELD_MAGIC = b"\x01"
_NONCE = 12


class CryptoError(Exception):
    """Decryption failed, a key is missing or destroyed. Carries no plaintext."""


class KeysFileError(Exception):
    """The keys file is unreadable or malformed; the message names the file, not its content."""


# Group and others must have no access at all: a keys file anyone else can read is a copy of
# every patient's data, and one they can write can be swapped for theirs.
_OPEN_TO_OTHERS = 0o077
# How many of the newest live data keys of each master key start-up tries to unwrap.
SAMPLE_PER_MASTER_KEY = 3


def check_keys_file_mode(path: Path) -> None:
    """Refuse (:class:`KeysFileError`) a keys file that group or others can read or write."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise KeysFileError(f"keys file {path} is unreadable ({type(exc).__name__})") from None
    if mode & _OPEN_TO_OTHERS:
        raise KeysFileError(
            f"keys file {path} is open to other users (mode {mode:04o}); "
            f"make it private with: chmod 600 {path}"
        )


def missing_keys_message(path: Path) -> str:
    """The refusal when the keys file is gone but the database holds data."""
    return (
        f"keys file {path} is missing, but the database already holds data; restore the keys "
        "file from its backup (a new one could not read that data)"
    )


@dataclass(frozen=True)
class SampleCheck:
    """What unwrapping a sample of stored data keys with the ring found. ``sampled`` maps each
    master key id the sample used to (keys tried, keys unwrapped)."""

    path: Path
    sampled: dict[int, tuple[int, int]]
    missing: tuple[int, ...]

    @property
    def checked(self) -> int:
        """Data keys tried."""
        return sum(tried for tried, _ in self.sampled.values())

    @property
    def unwrapped(self) -> int:
        """Data keys that unwrapped."""
        return sum(ok for _, ok in self.sampled.values())

    def problems(self) -> list[str]:
        """One line per master key that failed its sample; empty when all unwrapped."""
        out = [
            f"keys file {self.path} has no master key {mid}, which wraps data keys in the "
            "database; restore the keys file this database was written with"
            for mid in self.missing
        ]
        for mid, (tried, ok) in sorted(self.sampled.items()):
            if mid in self.missing or ok == tried:
                continue
            if ok == 0:
                out.append(
                    f"keys file {self.path} cannot unwrap the database's data keys (master key "
                    f"{mid}: 0 of {tried} sampled unwrapped); it is damaged or belongs to "
                    "another database; restore the right keys file from its backup"
                )
            else:
                out.append(
                    f"keys file {self.path}: master key {mid} unwrapped only {ok} of {tried} "
                    "sampled data keys; those rows of data_keys are damaged"
                )
        return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class MasterKey:
    """One master key of the ring."""

    id: int
    key: bytes
    created: str


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 key for referral slips. ``private`` is kept only for the active key; retired
    keys keep their public half so slips they signed verify until they expire. ``kid`` is the
    first 8 bytes (hex) of the SHA-256 of the raw public key."""

    kid: str
    public: bytes
    private: bytes | None
    created: str


def new_signing_key() -> SigningKey:
    """A fresh Ed25519 signing key."""
    priv = Ed25519PrivateKey.generate()
    raw_priv = priv.private_bytes_raw()
    raw_pub = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SigningKey(signing_kid(raw_pub), raw_pub, raw_priv, _now())


def signing_kid(public: bytes) -> str:
    """The id of a signing key: a fingerprint of its public half."""
    return hashlib.sha256(public).hexdigest()[:16]


class KeyRing:
    """The master keys, the blind-index key and the slip signing keys, loaded from (and saved
    to) the keys file. Files written before signing keys existed still load; a signing key is
    added to them on load."""

    def __init__(
        self,
        path: Path,
        keys: dict[int, MasterKey],
        active: int,
        blind: bytes,
        signing: dict[str, SigningKey] | None = None,
        signing_active: str | None = None,
    ) -> None:
        self.path = path
        self._keys = keys
        self.active_id = active
        self._blind = blind
        self._signing = dict(signing or {})
        self.signing_active_id = signing_active
        self._lock = threading.Lock()
        self._mtime = self._stat()

    # -- file handling ---------------------------------------------------------------------
    @classmethod
    def load_or_create(cls, path: Path, *, create: bool = True) -> tuple[KeyRing, bool]:
        """Load the ring, or create a new one (0600, in a 0700 directory when it makes one) and
        return ``created=True``. With ``create=False`` a missing file is refused instead: the
        caller knows data exists that a new ring could never read."""
        if path.exists():
            return cls.load(path), False
        if not create:
            raise KeysFileError(missing_keys_message(path))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = MasterKey(1, AESGCM.generate_key(bit_length=256), _now())
        sk = new_signing_key()
        ring = cls(path, {1: key}, 1, secrets.token_bytes(32), {sk.kid: sk}, sk.kid)
        ring._write(exclusive=True)
        return ring, True

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Load an existing keys file."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise KeysFileError(f"keys file {path} has an unknown format")
            keys = {
                int(k): MasterKey(int(k), _unb64(v["key"]), str(v.get("created", "")))
                for k, v in raw["master_keys"].items()
            }
            active = int(raw["active"])
            blind = _unb64(raw["blind_index_key"])
            signing: dict[str, SigningKey] = {}
            for kid, v in (raw.get("signing_keys") or {}).items():
                pub = _unb64(v["public"])
                priv = _unb64(v["private"]) if v.get("private") else None
                signing[str(kid)] = SigningKey(str(kid), pub, priv, str(v.get("created", "")))
            signing_active = raw.get("signing_active")
        except KeysFileError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeysFileError(f"keys file {path} is unreadable ({type(exc).__name__})") from None
        if active not in keys or any(len(k.key) != 32 for k in keys.values()):
            raise KeysFileError(f"keys file {path} is inconsistent")
        bad_key = any(
            len(k.public) != 32
            or signing_kid(k.public) != k.kid
            or (k.private is not None and len(k.private) != 32)
            for k in signing.values()
        )
        bad_active = bool(signing) and (
            signing_active not in signing or not signing[signing_active].private
        )
        if bad_key or bad_active:
            raise KeysFileError(f"keys file {path} has inconsistent signing keys")
        ring = cls(path, keys, active, blind, signing, signing_active if signing else None)
        if not signing:
            # A keys file from before referral slips: add the first signing key, then read the
            # file back (another process may have added its own at the same moment).
            sk = new_signing_key()
            with ring._lock:
                ring._signing, ring.signing_active_id = {sk.kid: sk}, sk.kid
                ring._write()
            return cls.load(path)
        return ring

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _write(self, *, exclusive: bool = False) -> None:
        data = {
            "format": FORMAT,
            "active": self.active_id,
            "master_keys": {
                str(k.id): {"key": _b64(k.key), "created": k.created} for k in self._keys.values()
            },
            "blind_index_key": _b64(self._blind),
            "signing_active": self.signing_active_id,
            "signing_keys": {
                k.kid: {
                    "public": _b64(k.public),
                    **({"private": _b64(k.private)} if k.private else {}),
                    "created": k.created,
                }
                for k in self._signing.values()
            },
            "note": "Careline master keys. Back this file up separately from the database; "
            "without it the encrypted data cannot be read.",
        }
        body = json.dumps(data, indent=2).encode("utf-8")
        if exclusive:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
        else:
            # Atomic replace so a running bot never reads a half-written ring.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".tmp")
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        self._mtime = self._stat()

    def reload_if_changed(self) -> bool:
        """Pick up keys another process added (``keys rotate``) without a restart."""
        if self._stat() == self._mtime:
            return False
        fresh = KeyRing.load(self.path)
        with self._lock:
            self._keys, self.active_id, self._blind = fresh._keys, fresh.active_id, fresh._blind
            self._signing, self.signing_active_id = fresh._signing, fresh.signing_active_id
            self._mtime = fresh._mtime
        return True

    def add_master_key(self) -> int:
        """Add a new master key, make it active, save the file; returns its id."""
        with self._lock:
            new_id = max(self._keys) + 1
            self._keys[new_id] = MasterKey(new_id, AESGCM.generate_key(bit_length=256), _now())
            self.active_id = new_id
            self._write()
        return new_id

    def add_signing_key(self) -> str:
        """Add a new slip signing key and make it active; the previous keys keep only their
        public half (old slips still verify). Saves the file; returns the new key's id."""
        with self._lock:
            sk = new_signing_key()
            self._signing = {
                kid: SigningKey(k.kid, k.public, None, k.created)
                for kid, k in self._signing.items()
            }
            self._signing[sk.kid] = sk
            self.signing_active_id = sk.kid
            self._write()
        return sk.kid

    def signing_key(self, kid: str | None = None) -> SigningKey | None:
        """A signing key by id (the active one when ``kid`` is None); reloads the file once
        when the id is unknown (another process rotated)."""
        kid = kid or self.signing_active_id
        if kid is None:
            return None
        if kid not in self._signing:
            self.reload_if_changed()
        return self._signing.get(kid)

    @property
    def signing_key_ids(self) -> list[str]:
        """Ids of all signing keys, active or retired."""
        return sorted(self._signing)

    @property
    def key_ids(self) -> list[int]:
        """Ids of all master keys in the ring."""
        return sorted(self._keys)

    # -- wrapping ------------------------------------------------------------------------------
    def wrap(self, data_key: bytes, owner_id: str) -> tuple[int, bytes]:
        """Wrap a data key under the active master key."""
        mk = self._keys[self.active_id]
        nonce = os.urandom(_NONCE)
        aad = f"datakey|{owner_id}|{mk.id}".encode()
        return mk.id, nonce + AESGCM(mk.key).encrypt(nonce, data_key, aad)

    def unwrap(self, master_id: int, wrapped: bytes, owner_id: str) -> bytes:
        """Unwrap a data key; reloads the file once if the master key is unknown."""
        if master_id not in self._keys:
            self.reload_if_changed()
        mk = self._keys.get(master_id)
        if mk is None:
            raise CryptoError(f"master key {master_id} is not in the key ring")
        aad = f"datakey|{owner_id}|{mk.id}".encode()
        try:
            return AESGCM(mk.key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        except InvalidTag:
            raise CryptoError("a data key failed authentication") from None

    def check_sample(self, sample: Iterable[tuple[str, int, bytes]]) -> SampleCheck:
        """Try to unwrap stored data keys, given as ``(owner id, master key id, wrapped)``;
        never raises, never keeps the unwrapped keys."""
        sampled: dict[int, tuple[int, int]] = {}
        missing: set[int] = set()
        for owner, master_id, wrapped in sample:
            tried, ok = sampled.get(master_id, (0, 0))
            try:
                self.unwrap(master_id, wrapped, owner)
            except (CryptoError, ValueError):  # ValueError: a wrapped key too short for a nonce
                if master_id not in self._keys:
                    missing.add(master_id)
            else:
                ok += 1
            sampled[master_id] = (tried + 1, ok)
        return SampleCheck(self.path, sampled, tuple(sorted(missing)))

    def blind_index(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of a normalised value, for equality lookups without plaintext."""
        return hmac.new(self._blind, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _aad(table: str, column: str, row_id: str, key_version: int) -> bytes:
    return f"{table}|{column}|{row_id}|{key_version}".encode()


def encrypt_field(
    data_key: bytes, key_version: int, table: str, column: str, row_id: str, value: bytes
) -> bytes:
    """AES-GCM encrypt one field; output is magic | key version | nonce | ciphertext."""
    nonce = os.urandom(_NONCE)
    body = AESGCM(data_key).encrypt(nonce, value, _aad(table, column, row_id, key_version))
    return _FIELD_MAGIC + struct.pack(">I", key_version) + nonce + body


def field_key_version(blob: bytes) -> int:
    """The data-key version a field was encrypted under."""
    if len(blob) < 5 + _NONCE + 16 or blob[:1] != _FIELD_MAGIC:
        raise CryptoError("not a Careline ciphertext")
    return int(struct.unpack(">I", blob[1:5])[0])


def decrypt_field(data_key: bytes, table: str, column: str, row_id: str, blob: bytes) -> bytes:
    """Decrypt one field, checking it belongs to exactly this table, column and row."""
    version = field_key_version(blob)
    nonce, body = blob[5 : 5 + _NONCE], blob[5 + _NONCE :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, _aad(table, column, row_id, version))
    except InvalidTag:
        raise CryptoError(f"ciphertext in {table}.{column} failed authentication") from None


def new_data_key() -> bytes:
    """A fresh AES-256 data key."""
    return AESGCM.generate_key(bit_length=256)
