"""Signed checkpoints of the audit chain, kept outside the database.

A checkpoint pins the chain head: ``{seq, mac, at, count, kid, chain, signature}`` — the
sequence number and MAC of the last record it covers, when it was taken, how many records it
covers (``count`` equals ``seq``: sequence numbers start at 1 and have no gaps), the id of the
Ed25519 key that signed it (the key ring's slip signing key, :meth:`KeyRing.signing_key`), the
id of the chain's MAC key, and the signature. The signature is over
``b"careline-audit-checkpoint/1\\n"`` followed by the JSON of the other fields, keys sorted,
no spaces — what a regulator checks with the exported public key.

Checkpoints are lines of ``audit-checkpoints.jsonl`` beside the keys file (the data dir unless
``CARELINE_KEYS_FILE`` moves the keys elsewhere): opened append-only, created 0600, one
``write`` per line, fsynced. An insider with the database alone can neither sign a checkpoint
nor remove one, so cutting, rewriting or wiping the log shows against the last checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.crypto import KeyRing, KeysFileError
from storage.models import utcnow

log = logging.getLogger("careline.audit")

CHECKPOINT_FILE = "audit-checkpoints.jsonl"
CHECKPOINT_EVERY = 100  # records between checkpoints
CHECKPOINT_MAX_AGE = timedelta(hours=1)  # and at least this often while records are written
EXPORT_FORMAT = "careline-audit-checkpoints/1"
SIGNED_PREFIX = b"careline-audit-checkpoint/1\n"
FIELDS = ("seq", "mac", "at", "count", "kid", "chain", "signature")
_TAIL = 8192  # bytes read from the end of the file to find the last checkpoint


class CheckpointError(Exception):
    """A checkpoint file or export cannot be read or written (the message names the file)."""


def checkpoint_path(ring: KeyRing) -> Path:
    """Where this key ring's checkpoints are kept: beside its keys file."""
    return ring.path.parent / CHECKPOINT_FILE


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint of the chain head."""

    seq: int
    mac: str
    at: str
    count: int
    kid: str
    chain: str
    signature: str

    def signed_bytes(self) -> bytes:
        """Exactly the bytes the signature covers."""
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return SIGNED_PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        """The checkpoint as one JSON line (no newline)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @property
    def taken(self) -> datetime | None:
        """``at`` as a datetime, if it parses."""
        try:
            return datetime.fromisoformat(self.at)
        except ValueError:
            return None

    @classmethod
    def parse(cls, data: Any) -> Checkpoint:
        """A checkpoint from its JSON object; ValueError when anything is missing or off."""
        if not isinstance(data, dict) or set(data) != set(FIELDS):
            raise ValueError("not a checkpoint")
        ints = ("seq", "count")
        for name in FIELDS:
            want = int if name in ints else str
            if not isinstance(data[name], want) or isinstance(data[name], bool):
                raise ValueError(f"field {name} has the wrong type")
        if data["seq"] < 1 or data["count"] < 1:
            raise ValueError("not a checkpoint")
        return cls(**{name: data[name] for name in FIELDS})


def sign(ring: KeyRing, seq: int, mac: str, chain: str, at: datetime | None = None) -> Checkpoint:
    """A checkpoint of (seq, mac) signed with the ring's active signing key."""
    ring.reload_if_changed()  # a `keys rotate-signing` by another process
    key = ring.signing_key()
    if key is None or key.private is None:
        raise CheckpointError("the keys file has no active signing key")
    stamp = (at or utcnow()).isoformat(timespec="seconds")
    unsigned = Checkpoint(seq, mac, stamp, seq, key.kid, chain, "")
    raw = Ed25519PrivateKey.from_private_bytes(key.private).sign(unsigned.signed_bytes())
    return Checkpoint(seq, mac, stamp, seq, key.kid, chain, base64.b64encode(raw).decode())


def signature_ok(cp: Checkpoint, public: bytes) -> bool:
    """True when ``cp`` carries a genuine signature by the key ``public``."""
    try:
        sig = base64.b64decode(cp.signature, validate=True)
        Ed25519PublicKey.from_public_bytes(public).verify(sig, cp.signed_bytes())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def append(path: Path, cp: Checkpoint) -> None:
    """Append one checkpoint line: O_APPEND, created 0600, one write, fsynced."""
    data = (cp.line() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):  # not ours to chmod (another user created it)
            os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def last(path: Path) -> Checkpoint | None:
    """The last well-formed checkpoint of the file (signature NOT checked: this only tells
    the writer when the next one is due; ``audit verify`` checks every signature)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL))
            tail = fh.read()
    except OSError:
        return None
    for raw in reversed(tail.splitlines()):
        try:
            return Checkpoint.parse(json.loads(raw))
        except ValueError:
            continue
    return None


def due(previous: Checkpoint | None, seq: int, now: datetime, every: int) -> bool:
    """Whether the head ``seq`` should be checkpointed now: none yet, ``every`` records since
    the last one, or the last one older than an hour."""
    if previous is None:
        return seq > 0
    if seq <= previous.seq:
        return False
    taken = previous.taken
    return seq - previous.seq >= every or taken is None or now - taken >= CHECKPOINT_MAX_AGE


class Journal:
    """Writes checkpoints of this ring's chain to its checkpoint file when they are due.
    Never raises: a checkpoint that cannot be written is logged (``audit verify`` then
    reports the tail it cannot prove) and the audited work goes on."""

    def __init__(self, ring: KeyRing, chain: str, *, every: int = CHECKPOINT_EVERY) -> None:
        self.ring = ring
        self.chain = chain
        self.every = every
        self.path = checkpoint_path(ring)

    def maybe(self, seq: int, mac: str, *, force: bool = False) -> Checkpoint | None:
        """Checkpoint the committed head (seq, mac) if one is due (or ``force``)."""
        try:
            previous = last(self.path)
            now = utcnow()
            if force:
                if seq <= 0 or (previous is not None and previous.seq == seq):
                    return None
            elif not due(previous, seq, now, self.every):
                return None
            cp = sign(self.ring, seq, mac, self.chain, now)
            append(self.path, cp)
        except (OSError, CheckpointError, KeysFileError, ValueError) as exc:
            # Runs after a commit: raising here would report committed work as failed.
            log.warning(
                "audit checkpoint not written", extra={"ctx": {"error": type(exc).__name__}}
            )
            return None
        return cp


# -- reading for verification ---------------------------------------------------------------


@dataclass
class CheckpointSet:
    """Checkpoints read from the data dir's file or from an export, before any check."""

    source: Path
    exists: bool
    entries: list[tuple[int, Checkpoint | None]] = field(default_factory=list)
    public_keys: dict[str, bytes] = field(default_factory=dict)  # an export's keys
    exported: bool = False


@dataclass(frozen=True)
class CheckpointProblem:
    """A checkpoint that is not genuine: its line (or position) and why."""

    line: int
    why: str


def read(path: Path) -> CheckpointSet:
    """Every line of a checkpoint file (``None`` for a line that is not a checkpoint)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CheckpointSet(path, exists=False)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path} ({type(exc).__name__})") from None
    found = CheckpointSet(path, exists=True)
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.entries.append((number, Checkpoint.parse(json.loads(line))))
        except (ValueError, UnicodeDecodeError):
            found.entries.append((number, None))
    return found


def read_any(path: Path) -> CheckpointSet:
    """An export written by :func:`export`, or a copy of the checkpoint file itself."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {path} ({type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not (isinstance(data, dict) and data.get("format") == EXPORT_FORMAT):
        return read(path)
    found = CheckpointSet(path, exists=True, exported=True)
    try:
        found.public_keys = {
            str(kid): base64.b64decode(str(pub), validate=True)
            for kid, pub in dict(data["public_keys"]).items()
        }
        items = list(data["checkpoints"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CheckpointError(f"{path} is not a readable checkpoint export") from None
    for number, item in enumerate(items, start=1):
        try:
            found.entries.append((number, Checkpoint.parse(item)))
        except ValueError:
            found.entries.append((number, None))
    return found


def check(found: CheckpointSet, ring: KeyRing) -> tuple[list[Checkpoint], list[CheckpointProblem]]:
    """Split checkpoints into genuine ones and problems. A signature is checked with the key
    ring's public key of that id; an export's own copy of a public key is used only for an id
    the ring no longer has, and must agree with the ring's when both have it."""
    good: list[Checkpoint] = []
    bad: list[CheckpointProblem] = []
    for number, cp in found.entries:
        if cp is None:
            bad.append(CheckpointProblem(number, "not a well-formed checkpoint"))
            continue
        ours = ring.signing_key(cp.kid)
        theirs = found.public_keys.get(cp.kid)
        if ours is not None and theirs is not None and theirs != ours.public:
            bad.append(CheckpointProblem(number, f"public key {cp.kid} differs from the ring's"))
            continue
        public = ours.public if ours is not None else theirs
        if public is None:
            bad.append(CheckpointProblem(number, f"signed by an unknown key {cp.kid}"))
        elif not signature_ok(cp, public):
            bad.append(CheckpointProblem(number, "bad signature"))
        else:
            good.append(cp)
    return good, bad


def export(dest: Path, checkpoints: Iterable[Checkpoint], ring: KeyRing) -> int:
    """Write genuine checkpoints with the public keys that verify them; returns how many."""
    items = list(checkpoints)
    keys: dict[str, str] = {}
    for cp in items:
        key = ring.signing_key(cp.kid)
        if key is not None:
            keys[cp.kid] = base64.b64encode(key.public).decode()
    doc = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(timespec="seconds"),
        "signature_scheme": "Ed25519 over b'careline-audit-checkpoint/1\\n' + JSON of the "
        "checkpoint without 'signature' (keys sorted, separators ',' and ':')",
        "public_keys": keys,
        "checkpoints": [asdict(cp) for cp in items],
    }
    try:
        dest.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"cannot write {dest} ({type(exc).__name__})") from None
    return len(items)
