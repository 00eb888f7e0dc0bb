"""Append-only, hash-chained audit log: who did what to which record, when."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditHead, AuditRecord, utcnow

GENESIS = "0" * 64


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
    """The hash of one link: every field plus the previous link's hash."""
    body = json.dumps(
        [seq, at.isoformat(), actor, action, record_type, record_id, details, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class AuditLog:
    """Appends audit links inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(
        self,
        actor: str,
        action: str,
        record_type: str,
        record_id: str,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one link. ``details`` must hold ids and codes only, never health data."""
        head = await self._session.scalar(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        )
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            self._session.add(head)
        at = utcnow()
        # Microseconds survive every dialect's timestamp type; the hash must match on re-read.
        detail_text = json.dumps(details or {}, sort_keys=True, separators=(",", ":"))
        seq = head.seq + 1
        digest = link_hash(seq, at, actor, action, record_type, record_id, detail_text, head.hash)
        rec = AuditRecord(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            record_type=record_type,
            record_id=record_id,
            details=detail_text,
            prev_hash=head.hash,
            hash=digest,
        )
        self._session.add(rec)
        head.seq, head.hash = seq, digest
        return rec

    async def for_record(self, record_type: str, record_id: str) -> list[AuditRecord]:
        """Links about one record, oldest first."""
        rows = await self._session.scalars(
            select(AuditRecord)
            .where(AuditRecord.record_type == record_type, AuditRecord.record_id == record_id)
            .order_by(AuditRecord.seq)
        )
        return list(rows)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain`."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""


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


async def verify_chain(session: AsyncSession) -> VerifyResult:
    """Recompute every link; report the first broken one (edited, removed or reordered)."""
    prev = GENESIS
    expected = 1
    checked = 0
    async for rec in iter_links(session):
        if rec.seq != expected:
            return VerifyResult(False, checked, expected, "link missing (a row was deleted)")
        if rec.prev_hash != prev:
            return VerifyResult(False, checked, rec.seq, "previous-hash mismatch")
        at = (rec.at if rec.at.tzinfo else rec.at.replace(tzinfo=UTC)).astimezone(UTC)
        digest = link_hash(
            rec.seq,
            at,
            rec.actor,
            rec.action,
            rec.record_type,
            rec.record_id,
            rec.details,
            rec.prev_hash,
        )
        if digest != rec.hash:
            return VerifyResult(False, checked, rec.seq, "content does not match its hash")
        prev = rec.hash
        expected += 1
        checked += 1
    head = await session.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.hash != prev):
        return VerifyResult(False, checked, checked + 1, "links after this point were removed")
    return VerifyResult(True, checked)
