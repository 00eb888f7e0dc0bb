"""Append-only audit log: who did what to which record, when — chained with a keyed MAC and
pinned by signed checkpoints outside the database.

Each record's ``hash`` is ``"m1:" + base64url(HMAC-SHA256(K, json([tag, seq, at, actor,
action, record_type, record_id, details, prev_hash])))``: the previous record's MAC is inside,
so the records form a chain. ``K`` is derived from the keys file, never stored in the database:
``K = KeyRing.blind_index("audit-chain", "key/v1")`` (an HMAC under the keys file's secret).
Whoever holds only the database can read the log but cannot write a record that verifies.

Records written before keyed chaining carry a plain SHA-256 ``hash`` (64 hex digits,
:func:`link_hash`) and still verify; the first keyed record chains onto the last of them, so
no migration is needed: the form of ``hash`` says which check applies, and once a keyed record
has been seen every later record must be keyed.

Every ``CHECKPOINT_EVERY`` records, at least hourly while records are written and at shutdown,
the head is signed into ``audit-checkpoints.jsonl`` (storage/audit_checkpoints.py); ``python
bot.py audit verify`` checks the chain end to end and against those checkpoints.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from storage import audit_checkpoints as checkpoints
from storage.audit_checkpoints import Checkpoint, CheckpointSet, Journal
from storage.crypto import KeyRing
from storage.models import AuditHead, AuditRecord, utcnow

if TYPE_CHECKING:
    from storage.uow import Database

log = logging.getLogger("careline.audit")

GENESIS = "0" * 64
KEYED = "m1:"
_TAG = "careline-audit/1"
_LEGACY = re.compile(r"[0-9a-f]{64}")
_SEARCH = 10_000  # how far from its place a moved record's true number is looked for
_LOOKAHEAD_SEARCH = 1_000

# session.info keys: the ring (for verify_chain on the same session), the head this
# transaction wrote, whether the commit hooks are in place.
RING_INFO = "careline.audit.ring"
_PENDING = "careline.audit.pending"
_HOOKED = "careline.audit.hooked"


def link_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    record_type: str,
    record_id: str,
    details: str,
    prev_hash: str,
) -> str:
    """The plain SHA-256 of a pre-MAC link: every field plus the previous link's hash."""
    body = json.dumps(
        [seq, at.isoformat(), actor, action, record_type, record_id, details, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def chain_key(ring: KeyRing) -> bytes:
    """The chain's MAC key, derived from the keys file's secret (never stored anywhere)."""
    return bytes.fromhex(ring.blind_index("audit-chain", "key/v1"))


def chain_key_id(key: bytes) -> str:
    """A public fingerprint of the MAC key, written into checkpoints: a different keys file
    is told apart from an edited log."""
    return hmac.new(key, b"careline-audit-chain-id", hashlib.sha256).hexdigest()[:16]


def link_mac(
    key: bytes,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    record_type: str,
    record_id: str,
    details: str,
    prev_hash: str,
) -> str:
    """The keyed MAC of one link (see the module docstring)."""
    body = json.dumps(
        [_TAG, seq, at.isoformat(), actor, action, record_type, record_id, details, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    digest = hmac.new(key, body.encode("utf-8"), hashlib.sha256).digest()
    return KEYED + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class AuditLog:
    """Appends audit links inside the caller's transaction; checkpoints the head once it is
    committed and a checkpoint is due."""

    def __init__(self, session: AsyncSession, ring: KeyRing) -> None:
        self._session = session
        self._key = chain_key(ring)
        self._journal = Journal(ring, chain_key_id(self._key))
        session.info.setdefault(RING_INFO, ring)

    async def record(
        self,
        actor: str,
        action: str,
        record_type: str,
        record_id: str,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one link. ``details`` must hold ids and codes only, never health data."""
        info = self._session.info
        head = await self._session.scalar(
            select(AuditHead)
            .where(AuditHead.id == 1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            self._session.add(head)
        at = utcnow()
        # Microseconds survive every dialect's timestamp type; the MAC must match on re-read.
        detail_text = json.dumps(details or {}, sort_keys=True, separators=(",", ":"))
        seq = head.seq + 1
        mac = link_mac(
            self._key, seq, at, actor, action, record_type, record_id, detail_text, head.hash
        )
        rec = AuditRecord(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            record_type=record_type,
            record_id=record_id,
            details=detail_text,
            prev_hash=head.hash,
            hash=mac,
        )
        self._session.add(rec)
        head.seq, head.hash = seq, mac
        info[_PENDING] = (seq, mac)
        self._hook()
        return rec

    def _hook(self) -> None:
        """After the commit, checkpoint the head this transaction wrote (when due). A rolled
        back savepoint forgets it: the head it names may no longer exist."""
        sync = self._session.sync_session
        if sync.info.get(_HOOKED):
            return
        sync.info[_HOOKED] = True
        journal = self._journal

        def after_commit(session: Session) -> None:
            pending = session.info.pop(_PENDING, None)
            if pending is not None:
                journal.maybe(*pending)

        def after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
            session.info.pop(_PENDING, None)

        event.listen(sync, "after_commit", after_commit)
        event.listen(sync, "after_soft_rollback", after_soft_rollback)

    async def for_record(self, record_type: str, record_id: str) -> list[AuditRecord]:
        """Links about one record, oldest first."""
        rows = await self._session.scalars(
            select(AuditRecord)
            .where(AuditRecord.record_type == record_type, AuditRecord.record_id == record_id)
            .order_by(AuditRecord.seq)
        )
        return list(rows)


async def checkpoint_now(db: Database) -> Checkpoint | None:
    """Sign the committed head into the checkpoint file unless the last checkpoint already
    names it (shutdown calls this). Never raises for a database or file problem; logs it."""
    try:
        async with db.uow() as uow:
            head = await uow.session.get(AuditHead, 1)
            seq, mac = (head.seq, head.hash) if head is not None else (0, GENESIS)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("audit checkpoint not written", extra={"ctx": {"error": type(exc).__name__}})
        return None
    if seq <= 0:
        return None
    return Journal(db.ring, chain_key_id(chain_key(db.ring))).maybe(seq, mac, force=True)


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One way the log was tampered with: a ``kind`` (see :data:`KINDS`), the record it shows
    at (if any) and what was found."""

    kind: str
    seq: int | None
    message: str


KINDS = {
    "edited": "a record's content no longer matches its MAC",
    "rewritten": "records re-hashed without the key (plain SHA-256) or not matching a checkpoint",
    "forged": "a record that was never written by Careline",
    "inserted": "a forged record inserted between genuine ones",
    "deleted": "records missing from the middle",
    "renumbered": "records deleted and the later ones renumbered to close the gap",
    "reordered": "records swapped or moved",
    "truncated": "records cut from the end",
    "head-reset": "the tail cut and the head row moved back to hide it, or the head row edited",
    "wiped": "the whole table emptied",
    "checkpoint-edited": "a checkpoint line that is not genuinely signed",
    "checkpoint-missing": "no checkpoint file while keyed records exist: the tail is unproven",
    "wrong-key": "the keys file's chain key is not the one the checkpoints name",
    "no-key": "keyed records cannot be checked without the keys file",
}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain` (the first problem of the chain and its head)."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""
    kind: str = ""


@dataclass
class AuditReport:
    """Outcome of :func:`verify_log`: the chain, its head and the checkpoints."""

    checked: int = 0
    keyed: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoints: int = 0
    latest: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        """No tampering found."""
        return not self.problems


async def iter_links(session: AsyncSession, batch: int = 1000) -> AsyncIterator[AuditRecord]:
    """All links in order, fetched in batches."""
    last = 0
    while True:
        rows = list(
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.seq > last)
                .order_by(AuditRecord.seq)
                .limit(batch)
            )
        )
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1].seq


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


class _Links:
    """Recomputes links (keyed or plain, as their ``hash`` says) at any sequence number."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key

    def digest(self, rec: AuditRecord, seq: int) -> str | None:
        fields = (
            seq,
            _utc(rec.at),
            rec.actor,
            rec.action,
            rec.record_type,
            rec.record_id,
            rec.details,
            rec.prev_hash,
        )
        if rec.hash.startswith(KEYED):
            return None if self.key is None else link_mac(self.key, *fields)
        return link_hash(*fields)

    def valid_at(self, rec: AuditRecord, seq: int) -> bool:
        digest = self.digest(rec, seq)
        return digest is not None and hmac.compare_digest(digest, rec.hash)

    def claim(self, rec: AuditRecord, hint: int | None = None, reach: int = _SEARCH) -> int | None:
        """The sequence number this record was written with, if it is genuine at all."""
        for seq in (rec.seq, hint):
            if seq is not None and seq > 0 and self.valid_at(rec, seq):
                return seq
        for d in range(1, reach + 1):
            for seq in (rec.seq + d, rec.seq - d):
                if seq > 0 and self.valid_at(rec, seq):
                    return seq
        return None


@dataclass
class _Walk:
    checked: int = 0
    keyed: int = 0
    end_seq: int = 0
    end_hash: str = GENESIS
    at_seq: dict[int, str] = field(default_factory=dict)
    problem: Problem | None = None


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}–{last} are"


async def _walk(
    session: AsyncSession, key: bytes | None, head: AuditHead | None, want: set[int]
) -> _Walk:
    """Check every link in order; stop at the first break and say what kind it is."""
    links = _Links(key)
    walk = _Walk()
    keyed_seen = False
    it = aiter(iter_links(session))
    cur = await anext(it, None)
    while cur is not None:
        nxt = await anext(it, None)
        expect = walk.end_seq + 1
        if cur.hash.startswith(KEYED) and key is None:
            walk.problem = Problem("no-key", cur.seq, KINDS["no-key"])
            return walk
        problem = await _classify(links, cur, nxt, it, expect, walk.end_hash, keyed_seen, head)
        if problem is not None:
            walk.problem = problem
            return walk
        keyed_seen = keyed_seen or cur.hash.startswith(KEYED)
        walk.keyed += cur.hash.startswith(KEYED)
        walk.checked += 1
        walk.end_seq, walk.end_hash = cur.seq, cur.hash
        if cur.seq in want:
            walk.at_seq[cur.seq] = cur.hash
        cur = nxt
    return walk


async def _classify(
    links: _Links,
    cur: AuditRecord,
    nxt: AuditRecord | None,
    rest: AsyncIterator[AuditRecord],
    expect: int,
    prev_hash: str,
    keyed_seen: bool,
    head: AuditHead | None,
) -> Problem | None:
    """None when ``cur`` is the genuine record ``expect`` linked to ``prev_hash``; else the
    kind of tampering its place, its MAC, its neighbour and the head show."""
    if cur.seq != expect:
        return Problem(
            "deleted",
            expect,
            f"{_span(expect, cur.seq - 1)} missing: deleted from the middle of the log",
        )
    legacy = bool(_LEGACY.fullmatch(cur.hash))
    if keyed_seen and not cur.hash.startswith(KEYED):
        if legacy and nxt is not None and nxt.prev_hash == cur.hash:
            return Problem(
                "rewritten",
                expect,
                f"record {expect} and the ones after it carry plain SHA-256 hashes where the "
                "keyed chain requires MACs: the log was edited and re-hashed from here on",
            )
        return Problem(
            "forged",
            expect,
            f"record {expect} carries a plain hash where a MAC is required: it was forged "
            "without the key",
        )
    if links.valid_at(cur, expect):
        if cur.prev_hash == prev_hash:
            return None
        return Problem(
            "rewritten",
            expect,
            f"record {expect} is genuine but the records before it are not the ones it was "
            "chained to: they were rewritten and re-hashed",
        )
    claim = links.claim(cur)
    if claim is None:
        if nxt is not None and nxt.prev_hash == cur.hash:
            return Problem(
                "edited",
                expect,
                f"record {expect} was edited: its content no longer matches its MAC",
            )
        if nxt is not None and links.claim(nxt, expect, _LOOKAHEAD_SEARCH) == expect:
            return Problem(
                "inserted",
                expect,
                f"record {expect} is forged: it was inserted before the genuine record "
                f"{expect}, and the records after it renumbered",
            )
        if nxt is None and (head is None or head.seq < cur.seq):
            return Problem(
                "inserted",
                expect,
                f"record {expect} is forged: it was appended after the chain's head",
            )
        return Problem(
            "edited",
            expect,
            f"record {expect} does not match its MAC: it was edited, or forged",
        )
    if claim < expect:
        return Problem(
            "reordered",
            expect,
            f"record {expect} was written as record {claim}: the log was reordered",
        )
    # A genuine record moved down: a gap closed by renumbering, or a record swapped with a
    # later one. Look on for a record that now sits after its true place.
    offset = claim - expect
    later = nxt
    while later is not None:
        true = links.claim(later, later.seq + offset, _LOOKAHEAD_SEARCH)
        if true is not None and true < later.seq:
            return Problem(
                "reordered",
                expect,
                f"record {expect} was written as record {claim} and record {later.seq} as "
                f"record {true}: the log was reordered",
            )
        if true is not None:
            offset = true - later.seq
        later = await anext(rest, None)
    return Problem(
        "renumbered",
        expect,
        f"record {expect} was written as record {claim}: {claim - expect} record(s) before "
        "it were deleted and the later ones renumbered to close the gap",
    )


def _session_key(session: AsyncSession, ring: KeyRing | None) -> bytes | None:
    ring = ring or session.info.get(RING_INFO)
    return chain_key(ring) if isinstance(ring, KeyRing) else None


def _head_problem(walk: _Walk, head: AuditHead | None) -> Problem | None:
    """Compare an intact chain's end with the head row."""
    if head is None:
        if walk.end_seq == 0:
            return None
        return Problem("head-reset", None, "the head row is missing although records exist")
    if (head.seq, head.hash) == (walk.end_seq, walk.end_hash):
        return None
    if walk.end_seq == 0 and head.seq > 0:
        return Problem("wiped", None, f"the table is empty but its head row says {head.seq}")
    if head.seq > walk.end_seq:
        return Problem(
            "truncated",
            walk.end_seq + 1,
            f"{_span(walk.end_seq + 1, head.seq)} missing: the tail was cut "
            f"(the head row says {head.seq})",
        )
    return Problem(
        "head-reset",
        None,
        f"the head row (record {head.seq}) does not match the chain's end "
        f"(record {walk.end_seq}): it was reset or edited",
    )


async def verify_chain(session: AsyncSession, ring: KeyRing | None = None) -> VerifyResult:
    """Recompute every link and compare the end with the head row; report the first problem
    (edited, removed, renumbered, reordered, forged, cut). ``ring`` defaults to the one the
    session's audit log writes with. Checkpoints are :func:`verify_log`'s part."""
    head = await session.get(AuditHead, 1)
    walk = await _walk(session, _session_key(session, ring), head, set())
    problem = walk.problem or _head_problem(walk, head)
    if problem is None:
        return VerifyResult(True, walk.checked)
    broken = problem.seq if problem.seq is not None else walk.end_seq + 1
    return VerifyResult(False, walk.checked, broken, problem.message, problem.kind)


async def verify_log(
    session: AsyncSession, ring: KeyRing, found: CheckpointSet | None = None
) -> AuditReport:
    """The whole check ``audit verify`` prints: every checkpoint's signature, the chain's
    MACs end to end, its head row, and the chain against every genuine checkpoint (the latest
    above all). ``found`` defaults to the checkpoint file beside the keys file."""
    found = found if found is not None else checkpoints.read(checkpoints.checkpoint_path(ring))
    report = AuditReport()
    good, bad = checkpoints.check(found, ring)
    where = "export" if found.exported else "checkpoint file"
    for item in bad:
        report.problems.append(
            Problem(
                "checkpoint-edited",
                None,
                f"{where} {found.source.name}, entry {item.line}: {item.why} "
                "(the file was edited)",
            )
        )
    report.checkpoints = len(good)
    key = chain_key(ring)
    kid = chain_key_id(key)
    foreign = [cp for cp in good if cp.chain != kid]
    if good and len(foreign) == len(good):
        report.problems.append(
            Problem(
                "wrong-key",
                None,
                f"the checkpoints name chain key {good[-1].chain}, this keys file's is {kid}: "
                "verify with the keys file that wrote the log",
            )
        )
        return report
    good = [cp for cp in good if cp.chain == kid]
    latest = max(good, key=lambda cp: cp.seq, default=None)
    report.latest = latest

    head = await session.get(AuditHead, 1)
    walk = await _walk(session, key, head, {cp.seq for cp in good})
    report.checked, report.keyed = walk.checked, walk.keyed
    if walk.problem is not None:
        report.problems.append(walk.problem)
        return report

    if walk.end_seq == 0:
        if latest is not None:
            report.problems.append(
                Problem(
                    "wiped",
                    None,
                    f"the audit table is empty but a checkpoint signed {latest.at} covers "
                    f"{latest.count} records: the log was wiped",
                )
            )
        elif head is not None and head.seq > 0:
            report.problems.append(_head_problem(walk, head) or Problem("wiped", None, ""))
        return report

    for cp in sorted(good, key=lambda c: c.seq):
        if cp.seq <= walk.end_seq and walk.at_seq.get(cp.seq) != cp.mac:
            report.problems.append(
                Problem(
                    "rewritten",
                    cp.seq,
                    f"record {cp.seq} does not match the checkpoint signed {cp.at}: "
                    "the log was rewritten up to here",
                )
            )
            return report

    head_ok = head is not None and (head.seq, head.hash) == (walk.end_seq, walk.end_hash)
    if latest is not None and latest.seq > walk.end_seq:
        if head_ok:
            report.problems.append(
                Problem(
                    "head-reset",
                    walk.end_seq + 1,
                    f"{_span(walk.end_seq + 1, latest.seq)} missing and the head row was "
                    f"reset to record {walk.end_seq} to hide it: the checkpoint signed "
                    f"{latest.at} covers {latest.count} records",
                )
            )
        else:
            report.problems.append(
                Problem(
                    "truncated",
                    walk.end_seq + 1,
                    f"{_span(walk.end_seq + 1, latest.seq)} missing: the tail was cut (the "
                    f"checkpoint signed {latest.at} covers {latest.count} records)",
                )
            )
        return report
    problem = _head_problem(walk, head)
    if problem is not None:
        report.problems.append(problem)
        return report

    if not found.exists or not found.entries:
        if walk.keyed:
            report.problems.append(
                Problem(
                    "checkpoint-missing",
                    None,
                    f"no checkpoints ({found.source} is missing or empty) although "
                    f"{walk.keyed} keyed records exist: the chain verifies, but nothing "
                    "proves its tail was not cut",
                )
            )
        else:
            report.warnings.append(
                "no checkpoints yet: these records predate keyed chaining (plain SHA-256), "
                "which an insider with database access could recompute"
            )
    elif latest is not None and latest.seq < walk.end_seq:
        report.warnings.append(
            f"records {latest.seq + 1}–{walk.end_seq} are after the last checkpoint "
            f"(signed {latest.at}); they are proven by the chain but not yet by a signature"
        )
    return report
