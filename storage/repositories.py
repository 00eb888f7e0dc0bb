"""Repositories: queries and row changes. They never commit; the unit of work does."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, NamedTuple, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from storage.models import (
    Consent,
    InboxUpdate,
    Intake,
    OutboxMessage,
    Patient,
    ScheduledEvent,
    new_id,
    utcnow,
)
from storage.vault import SYSTEM_OWNER, Vault

REPLAY_WINDOW = timedelta(days=7)


class QueuedCall(NamedTuple):
    """A call :meth:`OutboxRepository.enqueue` added."""

    id: int
    bot: str
    chat_id: int
    method: str
    priority: int
    not_before: datetime | None


# The outbox's hot statements, built once as Core (no ORM unit of work): the enqueue here,
# the sender's claim and marks further down.
_OUTBOX = cast(Table, OutboxMessage.__table__)  # a Table at run time
_OUTBOX_INSERT = (
    _OUTBOX.insert()
    .values(
        bot=bindparam("bot"),
        chat_id=bindparam("chat_id"),
        method=bindparam("method"),
        status="pending",
        priority=bindparam("priority"),
        attempts=0,
        not_before=bindparam("not_before"),
        created_at=bindparam("created_at"),
    )
    .returning(_OUTBOX.c.id)
)
_OUTBOX_SEAL = (
    _OUTBOX.update()
    .where(_OUTBOX.c.id == bindparam("rid"))
    .values(payload_enc=bindparam("payload_enc"))
)


class OutboxKey(NamedTuple):
    """What the sender needs to pick the next call."""

    id: int
    bot: str
    chat_id: int
    method: str


class PatientRepository:
    """Patients and their encrypted profile fields."""

    PROFILE_FIELDS = ("name", "birth_year", "sex", "phone")
    # The patient's own history, prefilled into their next intake.
    HISTORY_FIELDS = ("conditions", "medicines", "allergies")

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def by_tg_user(self, tg_user_id: int) -> Patient | None:
        """The patient using this Telegram account, if any."""
        return await self._s.scalar(select(Patient).where(Patient.tg_user_id == tg_user_id))

    async def get(self, patient_id: str) -> Patient | None:
        """A patient by id."""
        return await self._s.get(Patient, patient_id)

    async def add(self, patient: Patient) -> Patient:
        """Insert a new patient (id assigned in Python)."""
        self._s.add(patient)
        await self._s.flush()
        return patient

    async def set_field(self, patient: Patient, field: str, value: str | None) -> None:
        """Encrypt and store one profile field (``None`` clears it)."""
        if field not in self.PROFILE_FIELDS + self.HISTORY_FIELDS:
            raise ValueError(f"unknown profile field {field!r}")
        column = f"{field}_enc"
        blob = (
            None
            if value is None
            else await self._vault.seal(patient.id, "patients", column, patient.id, value)
        )
        setattr(patient, column, blob)
        if field == "phone":
            patient.phone_index = (
                None if value is None else self._vault.ring.blind_index("phone", value)
            )
        patient.updated_at = utcnow()

    async def get_field(self, patient: Patient, field: str) -> str | None:
        """Decrypt one profile field."""
        blob = getattr(patient, f"{field}_enc")
        if blob is None:
            return None
        return await self._vault.open(patient.id, "patients", f"{field}_enc", patient.id, blob)

    async def profile(self, patient: Patient) -> dict[str, str | None]:
        """All profile fields, decrypted."""
        return {f: await self.get_field(patient, f) for f in self.PROFILE_FIELDS}

    async def history(self, patient: Patient) -> dict[str, str | None]:
        """The patient's own conditions, medicines and allergies, decrypted."""
        return {f: await self.get_field(patient, f) for f in self.HISTORY_FIELDS}

    async def by_phone(self, phone: str) -> Patient | None:
        """Find a patient by phone number through the blind index."""
        digest = self._vault.ring.blind_index("phone", phone)
        return await self._s.scalar(select(Patient).where(Patient.phone_index == digest))

    async def delete(self, patient: Patient) -> None:
        """Remove the patient row (call after the data key has been destroyed)."""
        await self._s.delete(patient)


class IntakeRepository:
    """Symptom intakes; the answers are one JSON document under the patient's data key."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def add(self, intake: Intake, answers: dict[str, Any]) -> Intake:
        """Insert a new intake with its (encrypted) answers."""
        intake.id = intake.id or new_id()  # bound into the ciphertext, so known before insert
        self._s.add(intake)
        await self.save_answers(intake, answers)
        await self._s.flush()
        return intake

    async def get(self, intake_id: str) -> Intake | None:
        """An intake by id."""
        return await self._s.get(Intake, intake_id)

    async def open_for(self, patient_id: str, final_states: Sequence[str]) -> Intake | None:
        """The patient's intake still in progress (the newest), if any."""
        return await self._s.scalar(
            select(Intake)
            .where(Intake.patient_id == patient_id, Intake.state.not_in(list(final_states)))
            .order_by(Intake.created_at.desc())
            .limit(1)
        )

    async def for_patient(self, patient_id: str, limit: int = 20) -> list[Intake]:
        """The patient's intakes, newest first."""
        rows = await self._s.scalars(
            select(Intake)
            .where(Intake.patient_id == patient_id)
            .order_by(Intake.created_at.desc())
            .limit(limit)
        )
        return list(rows)

    async def answers(self, intake: Intake) -> dict[str, Any]:
        """The decrypted answers."""
        if intake.answers_enc is None:
            return {}
        text = await self._vault.open(
            intake.patient_id, "intakes", "answers_enc", intake.id, intake.answers_enc
        )
        data: dict[str, Any] = json.loads(text)
        return data

    async def save_answers(self, intake: Intake, answers: dict[str, Any]) -> None:
        """Encrypt and store the answers document."""
        text = json.dumps(answers, ensure_ascii=False, separators=(",", ":"))
        intake.answers_enc = await self._vault.seal(
            intake.patient_id, "intakes", "answers_enc", intake.id, text
        )
        intake.updated_at = utcnow()

    async def delete_for_patient(self, patient_id: str) -> int:
        """Remove every intake of a patient (erasure); returns how many."""
        res = await self._s.execute(delete(Intake).where(Intake.patient_id == patient_id))
        return int(getattr(res, "rowcount", 0) or 0)


class EventRepository:
    """The scheduler's due-event queue (``scheduled_events``)."""

    # Keys this process has seen in a database (inserted, or there already), for add_known.
    _known: ClassVar[dict[str, set[str]]] = {}

    def __init__(self, session: AsyncSession, postgres: bool) -> None:
        self._s = session
        self._postgres = postgres

    async def add_known(
        self, kind: str, subject: str, patient_id: str, due_at: datetime, *, key: str
    ) -> None:
        """:meth:`add` for a keyed event that many transactions ask for (the hourly weekly-
        summary planner, from every device upload): a key this process has added (or found)
        in this database is not asked for again. Should that transaction roll back, the
        event waits for the next key (the next hour)."""
        where = str(self._s.get_bind().engine.url)
        seen = self._known.setdefault(where, set())
        if key in seen:
            return
        await self.add(kind, subject, patient_id, due_at, key=key)
        if len(seen) > 1000:
            seen.clear()
        seen.add(key)

    async def add(
        self,
        kind: str,
        subject: str,
        patient_id: str,
        due_at: datetime,
        *,
        key: str | None = None,
        priority: int = 5,
    ) -> ScheduledEvent | None:
        """Schedule one event. With an occurrence ``key`` it is inserted only once, ever:
        a second ``add`` with the same key (a retried handler, a re-plan, another process)
        returns None and changes nothing."""
        if key is None:
            row = ScheduledEvent(
                kind=kind,
                subject=subject,
                patient_id=patient_id,
                due_at=due_at,
                status="pending",
                priority=priority,
                attempts=0,
                created_at=utcnow(),
            )
            self._s.add(row)
            await self._s.flush()
            return row
        insert = pg_insert if self._postgres else sqlite_insert
        stmt = (
            insert(ScheduledEvent)
            .values(
                kind=kind,
                subject=subject,
                patient_id=patient_id,
                due_at=due_at,
                status="pending",
                priority=priority,
                attempts=0,
                created_at=utcnow(),
                key=key,
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(ScheduledEvent.id)
        )
        new_id_ = await self._s.scalar(stmt)
        if new_id_ is None:
            return None
        return await self._s.get(ScheduledEvent, new_id_)

    async def by_key(self, key: str) -> ScheduledEvent | None:
        """The event with this occurrence key (any status)."""
        return await self._s.scalar(select(ScheduledEvent).where(ScheduledEvent.key == key))

    async def cancel_for(self, kind: str, subject: str) -> int:
        """Cancel the pending (or leased, not yet run) events of one kind for one subject."""
        res = await self._s.execute(
            update(ScheduledEvent)
            .where(
                ScheduledEvent.kind == kind,
                ScheduledEvent.subject == subject,
                ScheduledEvent.status.in_(("pending", "leased")),
            )
            .values(status="cancelled", done_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(res, "rowcount", 0) or 0)

    async def lease_due(
        self,
        now: datetime,
        limit: int,
        worker: str,
        lease: timedelta,
        max_priority: int | None = None,
    ) -> list[int]:
        """Lease up to ``limit`` due events to ``worker`` until ``now + lease``: first any
        whose lease ran out (their worker died), then pending ones, most urgent first
        (priority, then due time). On PostgreSQL rows locked by another worker's lease
        transaction are skipped (``SKIP LOCKED``), so workers never lease the same row."""
        ids: list[int] = []
        for cond in (
            (ScheduledEvent.status == "leased") & (ScheduledEvent.lease_until < now),
            (ScheduledEvent.status == "pending") & (ScheduledEvent.due_at <= now),
        ):
            if len(ids) >= limit:
                break
            q = (
                select(ScheduledEvent.id)
                .where(cond)
                .order_by(ScheduledEvent.priority, ScheduledEvent.due_at, ScheduledEvent.id)
                .limit(limit - len(ids))
            )
            if max_priority is not None:
                q = q.where(ScheduledEvent.priority <= max_priority)
            if self._postgres:
                q = q.with_for_update(skip_locked=True)
            ids.extend(await self._s.scalars(q))
        if ids:
            await self._s.execute(
                update(ScheduledEvent)
                .where(ScheduledEvent.id.in_(ids))
                .values(status="leased", lease_until=now + lease, leased_by=worker)
                .execution_options(synchronize_session=False)
            )
        return ids

    async def leased(self, ids: Sequence[int], worker: str) -> list[ScheduledEvent]:
        """The events of ``ids`` still leased to ``worker``, locked for this transaction (a
        lease another worker took over after ours ran out is not ours to run)."""
        if not ids:
            return []
        q = (
            select(ScheduledEvent)
            .where(
                ScheduledEvent.id.in_(list(ids)),
                ScheduledEvent.status == "leased",
                ScheduledEvent.leased_by == worker,
            )
            .order_by(ScheduledEvent.priority, ScheduledEvent.due_at, ScheduledEvent.id)
        )
        if self._postgres:
            q = q.with_for_update()
        return list(await self._s.scalars(q))

    async def claim_due(self, now: datetime, limit: int) -> list[ScheduledEvent]:
        """Pending events due by ``now``, most urgent first, locked for this transaction
        (no lease: for callers that run them in the same transaction).

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several workers share the queue; SQLite
        has a single writer, so the transaction alone is enough."""
        q = (
            select(ScheduledEvent)
            .where(ScheduledEvent.status == "pending", ScheduledEvent.due_at <= now)
            .order_by(ScheduledEvent.priority, ScheduledEvent.due_at, ScheduledEvent.id)
            .limit(limit)
        )
        if self._postgres:
            q = q.with_for_update(skip_locked=True)
        return list(await self._s.scalars(q))

    async def pending_for(self, kind: str, subject: str) -> list[ScheduledEvent]:
        """Pending events of one kind for one subject."""
        return list(
            await self._s.scalars(
                select(ScheduledEvent).where(
                    ScheduledEvent.kind == kind,
                    ScheduledEvent.subject == subject,
                    ScheduledEvent.status == "pending",
                )
            )
        )

    async def due_by(self, kind: str, subject: str, until: datetime) -> bool:
        """Whether an event of one kind for one subject is waiting (pending, or leased and not
        yet run) and due by ``until``."""
        found = await self._s.scalar(
            select(ScheduledEvent.id)
            .where(
                ScheduledEvent.kind == kind,
                ScheduledEvent.subject == subject,
                ScheduledEvent.status.in_(("pending", "leased")),
                ScheduledEvent.due_at <= until,
            )
            .limit(1)
        )
        return found is not None

    async def count_for(self, kind: str, subject: str) -> int:
        """How many events of one kind a subject has had (any status)."""
        n = await self._s.scalar(
            select(func.count())
            .select_from(ScheduledEvent)
            .where(ScheduledEvent.kind == kind, ScheduledEvent.subject == subject)
        )
        return int(n or 0)

    async def next_due(self, exclude: Sequence[str] = ()) -> datetime | None:
        """When the earliest pending event is due (of a kind not in ``exclude``)."""
        query = select(func.min(ScheduledEvent.due_at)).where(ScheduledEvent.status == "pending")
        if exclude:
            query = query.where(ScheduledEvent.kind.not_in(list(exclude)))
        return await self._s.scalar(query)

    async def delete_for_patient(self, patient_id: str) -> int:
        """Forget every event of a patient (erasure); returns how many."""
        res = await self._s.execute(
            delete(ScheduledEvent).where(ScheduledEvent.patient_id == patient_id)
        )
        return int(getattr(res, "rowcount", 0) or 0)


class ConsentRepository:
    """Consent decisions, with the version of the text shown."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(self, patient_id: str, kind: str, version: str, decision: str) -> Consent:
        """Store one decision."""
        row = Consent(patient_id=patient_id, kind=kind, version=version, decision=decision)
        self._s.add(row)
        await self._s.flush()
        return row

    async def for_patient(self, patient_id: str) -> list[Consent]:
        """All decisions of a patient, oldest first."""
        rows = await self._s.scalars(
            select(Consent).where(Consent.patient_id == patient_id).order_by(Consent.id)
        )
        return list(rows)


def chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (else its sender): the unit of per-chat order."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        message = value.get("message")
        chat = value.get("chat") or (message.get("chat") if isinstance(message, dict) else None)
        cid = chat.get("id") if isinstance(chat, dict) else None
        if isinstance(cid, int) and not isinstance(cid, bool):
            return cid
        user = value.get("from") or value.get("user")
        uid = user.get("id") if isinstance(user, dict) else None
        return uid if isinstance(uid, int) and not isinstance(uid, bool) else None
    return None


class InboxRepository:
    """Raw updates, stored before acknowledgement; payloads encrypted and wiped when done."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def store(self, bot: str, updates: Sequence[dict[str, Any]]) -> list[int]:
        """Insert updates not seen before; returns the new inbox ids in update order.

        One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` in the usual case; only when an
        update id is already stored does it look further (the one-week id reset below)."""
        return [row_id for row_id, _ in await self._store(bot, updates, processed=False)]

    async def store_processed(
        self, bot: str, updates: Sequence[dict[str, Any]]
    ) -> list[tuple[int, dict[str, Any]]]:
        """Like :meth:`store`, for updates processed in this same transaction: the rows are
        written ``done`` without a payload (nothing to encrypt and wipe again); an update that
        then fails is marked with :meth:`finish`. Returns (inbox id, update) of the new ones."""
        return await self._store(bot, updates, processed=True)

    async def _store(
        self, bot: str, updates: Sequence[dict[str, Any]], *, processed: bool
    ) -> list[tuple[int, dict[str, Any]]]:
        if not updates:
            return []
        fresh: dict[int, dict[str, Any]] = {}
        for upd in updates:
            fresh.setdefault(int(upd["update_id"]), upd)
        now = utcnow()
        rows = []
        for uid, upd in fresh.items():
            blob = None
            if not processed:
                blob = await self._vault.seal_bytes(
                    SYSTEM_OWNER,
                    "inbox",
                    "payload_enc",
                    f"{bot}:{uid}",
                    json.dumps(upd, separators=(",", ":")).encode("utf-8"),
                )
            rows.append(
                {
                    "bot": bot,
                    "update_id": uid,
                    "status": "done" if processed else "pending",
                    "payload_enc": blob,
                    "received_at": now,
                    "processed_at": now if processed else None,
                    "chat_id": chat_of(upd),
                }
            )
        new = await self._insert_new(rows)
        seen = [uid for uid in fresh if uid not in new]
        if seen:
            # Telegram picks update ids afresh after a week without updates, so a processed
            # row older than that with the same id is another update: clear it, don't drop.
            # https://core.telegram.org/bots/api#getting-updates
            res = await self._s.execute(
                delete(InboxUpdate).where(
                    InboxUpdate.bot == bot,
                    InboxUpdate.update_id.in_(seen),
                    InboxUpdate.status != "pending",
                    InboxUpdate.received_at < utcnow() - REPLAY_WINDOW,
                )
            )
            if int(getattr(res, "rowcount", 0) or 0):
                new.update(await self._insert_new([r for r in rows if r["update_id"] in seen]))
        return [(new[uid], upd) for uid, upd in fresh.items() if uid in new]

    async def _insert_new(self, rows: list[dict[str, Any]]) -> dict[int, int]:
        """Insert the rows whose (bot, update_id) is not stored yet: {update_id: inbox id}."""
        postgres = self._s.get_bind().dialect.name == "postgresql"
        stmt = (
            (pg_insert if postgres else sqlite_insert)(InboxUpdate)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["bot", "update_id"])
            .returning(InboxUpdate.update_id, InboxUpdate.id)
        )
        return {int(uid): int(row_id) for uid, row_id in (await self._s.execute(stmt)).all()}

    async def pending(self, limit: int, after_id: int = 0) -> list[InboxUpdate]:
        """Stored updates not yet processed, oldest first."""
        rows = await self._s.scalars(
            select(InboxUpdate)
            .where(InboxUpdate.status == "pending", InboxUpdate.id > after_id)
            .order_by(InboxUpdate.id)
            .limit(limit)
        )
        return list(rows)

    async def pending_chats(self, limit: int) -> list[tuple[str, int | None]]:
        """The chats with pending updates, the longest waiting first (workers sharing the
        inbox each take some of them)."""
        rows = await self._s.execute(
            select(InboxUpdate.bot, InboxUpdate.chat_id)
            .where(InboxUpdate.status == "pending")
            .group_by(InboxUpdate.bot, InboxUpdate.chat_id)
            .order_by(func.min(InboxUpdate.id))
            .limit(limit)
        )
        return [(bot, chat) for bot, chat in rows.all()]

    async def pending_of_chats(
        self, chats: Sequence[tuple[str, int | None]], limit: int
    ) -> list[InboxUpdate]:
        """The pending updates of these chats, each chat's in Telegram's order (update id)."""
        if not chats:
            return []
        conds = [
            (InboxUpdate.bot == bot)
            & (InboxUpdate.chat_id.is_(None) if chat is None else InboxUpdate.chat_id == chat)
            for bot, chat in chats
        ]
        rows = await self._s.scalars(
            select(InboxUpdate)
            .where(InboxUpdate.status == "pending", or_(*conds))
            .order_by(InboxUpdate.bot, InboxUpdate.chat_id, InboxUpdate.update_id)
            .limit(limit)
        )
        return list(rows)

    async def lock_chat(self, bot: str, chat: int | None) -> bool:
        """Take a chat for this transaction (PostgreSQL: a transaction-scoped advisory lock,
        released at commit, rollback, or when the worker's connection dies). False when
        another worker holds it. SQLite has one process: always True."""
        if self._s.get_bind().dialect.name != "postgresql":
            return True
        key = int.from_bytes(
            hashlib.sha256(f"careline-chat|{bot}|{chat}".encode()).digest()[:8], "big", signed=True
        )
        got = await self._s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
        return bool(got)

    async def payload(self, row: InboxUpdate) -> dict[str, Any]:
        """The decrypted raw update."""
        assert row.payload_enc is not None
        raw = await self._vault.open_bytes(
            SYSTEM_OWNER, "inbox", "payload_enc", f"{row.bot}:{row.update_id}", row.payload_enc
        )
        data: dict[str, Any] = json.loads(raw)
        return data

    async def finish(self, ids: Sequence[int], status: str, error: str | None = None) -> None:
        """Mark rows processed and wipe their payload."""
        if ids:
            await self._s.execute(
                update(InboxUpdate)
                .where(InboxUpdate.id.in_(list(ids)))
                .values(status=status, payload_enc=None, processed_at=utcnow(), error=error)
            )

    async def last_update_id(self, bot: str) -> int | None:
        """The highest update id stored for a bot."""
        return await self._s.scalar(
            select(func.max(InboxUpdate.update_id)).where(InboxUpdate.bot == bot)
        )

    async def count(self, status: str | None = None) -> int:
        """How many rows (optionally of one status)."""
        q = select(func.count()).select_from(InboxUpdate)
        if status:
            q = q.where(InboxUpdate.status == status)
        return int(await self._s.scalar(q) or 0)


class OutboxRepository:
    """Bot API calls to make; the payload is encrypted and wiped once the call is made."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def enqueue(
        self,
        bot: str,
        chat_id: int,
        method: str,
        params: dict[str, Any],
        *,
        priority: int = 5,
        not_before: datetime | None = None,
    ) -> QueuedCall:
        """Add one call; it is made after the surrounding transaction commits.

        Two Core statements, no ORM unit of work: the INSERT returns the new id, and the
        payload is sealed with that id (its associated data) and written by an UPDATE."""
        rid = (
            await self._s.execute(
                _OUTBOX_INSERT,
                {
                    "bot": bot,
                    "chat_id": chat_id,
                    "method": method,
                    "priority": priority,
                    "not_before": not_before,
                    "created_at": utcnow(),
                },
            )
        ).scalar_one()
        blob = await self._vault.seal_bytes(
            SYSTEM_OWNER,
            "outbox",
            "payload_enc",
            str(rid),
            json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        )
        await self._s.execute(_OUTBOX_SEAL, {"rid": rid, "payload_enc": blob})
        return QueuedCall(rid, bot, chat_id, method, priority, not_before)

    async def sent_message_id(self, row_id: int) -> int | None:
        """The Telegram message id a sent call produced (None while unsent or for none)."""
        return await self._s.scalar(
            select(OutboxMessage.tg_message_id).where(OutboxMessage.id == row_id)
        )

    async def params(self, row: OutboxMessage) -> dict[str, Any]:
        """The decrypted call parameters."""
        assert row.payload_enc is not None
        raw = await self._vault.open_bytes(
            SYSTEM_OWNER, "outbox", "payload_enc", str(row.id), row.payload_enc
        )
        data: dict[str, Any] = json.loads(raw)
        return data

    @staticmethod
    def _due(columns: Any, now: Any, limit: Any, exclude: Any) -> Any:
        """Pending and interrupted ("sending") calls, most urgent first. The ids come from one
        arm per status, each walking the (status, priority, id) index in order and stopping at
        ``limit``, so a backlog of 100,000 reminders is not sorted on every look (an ``IN``
        over both statuses made SQLite sort every waiting row: 75 ms a look at 100,000)."""
        arms = []
        for status in ("pending", "sending"):
            q = (
                select(OutboxMessage.id, OutboxMessage.priority)
                .where(
                    OutboxMessage.status == status,
                    (OutboxMessage.not_before.is_(None)) | (OutboxMessage.not_before <= now),
                )
                .order_by(OutboxMessage.priority, OutboxMessage.id)
                .limit(limit)
            )
            if isinstance(exclude, BindParameter):
                q = q.where(OutboxMessage.id.not_in(exclude))
            elif exclude:
                q = q.where(OutboxMessage.id.not_in(list(exclude)))
            if status == "sending":  # interrupted: only once no live sender holds its lease
                q = q.where(
                    (OutboxMessage.lease_until.is_(None)) | (OutboxMessage.lease_until < now)
                )
            arms.append(select(q.subquery()))
        ids = union_all(*arms).subquery()
        return (
            select(*columns)
            .join(ids, OutboxMessage.id == ids.c.id)
            .order_by(OutboxMessage.priority, OutboxMessage.id)
            .limit(limit)
        )

    async def due(
        self, now: datetime, limit: int, exclude: Sequence[int] = ()
    ) -> list[OutboxMessage]:
        """Calls ready to make: pending or interrupted while sending, most urgent first."""
        return list(await self._s.scalars(self._due([OutboxMessage], now, limit, exclude)))

    async def due_keys(
        self, now: datetime, limit: int, exclude: Sequence[int] = ()
    ) -> list[OutboxKey]:
        """Like :meth:`due`, but only what the sender needs to choose (no payloads)."""
        cols = [OutboxMessage.id, OutboxMessage.bot, OutboxMessage.chat_id, OutboxMessage.method]
        rows = (await self._s.execute(self._due(cols, now, limit, exclude))).all()
        return [OutboxKey(*r) for r in rows]

    async def look(
        self, now: datetime, limit: int, exclude: Sequence[int] = ()
    ) -> tuple[list[OutboxKey], dict[tuple[str, int], int], datetime | None]:
        """:meth:`due_keys`, :meth:`deferred_heads` and the earliest deferred ``not_before``
        in one statement (one round trip for the sender's look), built once."""
        rows = (
            await self._s.execute(
                _look_statement(), {"now": now, "lim": limit, "exclude": list(exclude)}
            )
        ).all()
        keys: list[tuple[int, int, OutboxKey]] = []
        firsts: dict[tuple[str, int], int] = {}
        wakeup: datetime | None = None
        for row_id, bot, chat_id, method, priority, not_before, head in rows:
            if head:
                firsts[(bot, chat_id)] = int(row_id)
                if not_before is not None and (wakeup is None or not_before < wakeup):
                    wakeup = not_before
            else:
                keys.append((int(priority), int(row_id), OutboxKey(row_id, bot, chat_id, method)))
        keys.sort(key=lambda k: (k[0], k[1]))
        return [k for *_, k in keys], firsts, wakeup

    async def backlog(self, cap: int) -> int:
        """Calls waiting to be made, counted up to ``cap`` (an index walk, not a full count)."""
        sub = (
            select(OutboxMessage.id).where(OutboxMessage.status == "pending").limit(cap).subquery()
        )
        return int(await self._s.scalar(select(func.count()).select_from(sub)) or 0)

    async def release_leases(self) -> int:
        """At start of the one sender on SQLite: calls left ``sending`` by a previous run are
        made again at once instead of after their lease (at most one duplicate per crash)."""
        res = await self._s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending", OutboxMessage.lease_until.is_not(None))
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(res, "rowcount", 0) or 0)

    async def claim(
        self, row_id: int, now: datetime | None = None, lease: timedelta = timedelta(seconds=120)
    ) -> tuple[int, bytes | None] | None:
        """Mark a row ``sending`` under a lease until ``now + lease`` and count the attempt:
        (attempts, payload), or None when the row is no longer waiting or another sender
        holds it (one statement; two senders never both take a row)."""
        now = now or utcnow()
        res = await self._s.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row_id,
                (OutboxMessage.status == "pending")
                | (
                    (OutboxMessage.status == "sending")
                    & ((OutboxMessage.lease_until.is_(None)) | (OutboxMessage.lease_until < now))
                ),
            )
            .values(status="sending", attempts=OutboxMessage.attempts + 1, lease_until=now + lease)
            .returning(OutboxMessage.attempts, OutboxMessage.payload_enc)
            .execution_options(synchronize_session=False)
        )
        row = res.first()
        return None if row is None else (int(row[0]), row[1])

    async def claim_many(
        self, row_ids: Sequence[int], now: datetime, lease: timedelta, *, in_order: bool = False
    ) -> dict[int, tuple[int, bytes | None]]:
        """:meth:`claim` for several rows in one statement: {id: (attempts, payload)} of the
        rows taken (a row another sender holds, or that is gone, is left out). ``in_order``
        (workers sharing the outbox): a row behind an earlier waiting call to its chat of the
        same or a more urgent priority is left too."""
        if not row_ids:
            return {}
        res = await self._s.execute(
            _CLAIM_MANY_IN_ORDER if in_order else _CLAIM_MANY,
            {"ids": list(row_ids), "now": now, "until": now + lease},
        )
        return {int(r[0]): (int(r[1]), r[2]) for r in res.all()}

    async def record(self, results: Sequence[dict[str, Any]]) -> None:
        """Write the outcome of calls made, in one statement per kind of outcome. Each
        result: ``id``, ``status`` and, by status, ``message_id`` (sent), ``error``,
        ``retry_at`` (pending again after a delay)."""
        sent = [r for r in results if r["status"] == "sent"]
        if sent:
            await self._s.execute(
                _MARK_SENT,
                [{"rid": r["id"], "at": r["at"], "mid": r.get("message_id")} for r in sent],
            )
        for status in ("failed", "unreachable"):
            done = [r for r in results if r["status"] == status]
            if done:
                await self._s.execute(
                    _MARK_DONE,
                    [{"rid": r["id"], "st": status, "err": r.get("error")} for r in done],
                )
        again = [r for r in results if r["status"] == "pending"]
        if again:
            await self._s.execute(
                _MARK_AGAIN,
                [{"rid": r["id"], "err": r.get("error"), "nb": r.get("retry_at")} for r in again],
            )

    async def open_payload(self, row_id: int, blob: bytes) -> dict[str, Any]:
        """The decrypted call parameters of a row, from its ciphertext."""
        raw = await self._vault.open_bytes(
            SYSTEM_OWNER, "outbox", "payload_enc", str(row_id), blob
        )
        data: dict[str, Any] = json.loads(raw)
        return data

    async def deferred_heads(self, now: datetime) -> dict[tuple[str, int], int]:
        """For each chat with a call waiting out a retry delay, the id of its earliest one.

        Later calls to that chat must wait for it, or a retried message would arrive after
        messages written after it."""
        rows = await self._s.execute(
            select(OutboxMessage.bot, OutboxMessage.chat_id, func.min(OutboxMessage.id))
            .where(
                # ``status || ''`` keeps the planner on the not_before index (few rows wait
                # out a deferral) instead of walking every waiting row by status
                (OutboxMessage.status + "").in_(("pending", "sending")),
                OutboxMessage.not_before > now,
            )
            .group_by(OutboxMessage.bot, OutboxMessage.chat_id)
        )
        return {(bot, chat): int(first) for bot, chat, first in rows.all()}

    async def next_wakeup(self) -> datetime | None:
        """When the earliest deferred call becomes due."""
        return await self._s.scalar(
            select(func.min(OutboxMessage.not_before)).where(
                OutboxMessage.status.in_(("pending", "sending"))
            )
        )

    async def drop_pending_for_chat(self, bot: str, chat_id: int) -> int:
        """Forget unsent calls to a chat (erasure); returns how many."""
        res = await self._s.execute(
            delete(OutboxMessage).where(
                OutboxMessage.bot == bot,
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.status.in_(("pending", "sending")),
            )
        )
        return int(getattr(res, "rowcount", 0) or 0)

    async def count(self, status: str | None = None) -> int:
        """How many rows (optionally of one status)."""
        q = select(func.count()).select_from(OutboxMessage)
        if status:
            q = q.where(OutboxMessage.status == status)
        return int(await self._s.scalar(q) or 0)


@functools.cache
def _look_statement() -> Any:
    """The sender's look (see :meth:`OutboxRepository.look`) with ``now``, ``lim`` and
    ``exclude`` as bound parameters: compiled once, not rebuilt on every look."""
    now = bindparam("now", type_=OutboxMessage.not_before.type)
    due = OutboxRepository._due(
        [
            OutboxMessage.id,
            OutboxMessage.bot,
            OutboxMessage.chat_id,
            OutboxMessage.method,
            OutboxMessage.priority,
            OutboxMessage.not_before,
            literal(0).label("head"),
        ],
        now,
        bindparam("lim"),
        bindparam("exclude", expanding=True),
    ).subquery()
    heads = (
        select(
            func.min(OutboxMessage.id),
            OutboxMessage.bot,
            OutboxMessage.chat_id,
            null(),
            null(),
            func.min(OutboxMessage.not_before),
            literal(1),
        )
        .where(
            # ``status || ''`` keeps the planner on the not_before index (few rows wait
            # out a deferral) instead of walking every waiting row by status
            (OutboxMessage.status + "").in_(("pending", "sending")),
            OutboxMessage.not_before > now,
        )
        .group_by(OutboxMessage.bot, OutboxMessage.chat_id)
    )
    return union_all(select(due), heads)


# The sender's statements, built once (Core, no ORM state): claim several rows, and record
# the outcomes of calls made with one executemany per kind of outcome (on _OUTBOX, above).
_CLAIM_MANY = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
        (_OUTBOX.c.status == "pending")
        | (
            (_OUTBOX.c.status == "sending")
            & (_OUTBOX.c.lease_until.is_(None) | (_OUTBOX.c.lease_until < bindparam("now")))
        ),
    )
    .values(status="sending", attempts=_OUTBOX.c.attempts + 1, lease_until=bindparam("until"))
    .returning(_OUTBOX.c.id, _OUTBOX.c.attempts, _OUTBOX.c.payload_enc)
)
# Workers sharing the outbox: a call is taken only when no earlier call to the same chat, as
# urgent or more, still waits or is in flight (another worker may be sending it), so a chat's
# messages keep their order across workers while an urgent one may still pass routine ones.
_EARLIER = _OUTBOX.alias("earlier")
_CLAIM_MANY_IN_ORDER = _CLAIM_MANY.where(
    ~select(_EARLIER.c.id)
    .where(
        _EARLIER.c.bot == _OUTBOX.c.bot,
        _EARLIER.c.chat_id == _OUTBOX.c.chat_id,
        _EARLIER.c.chat_id != 0,  # chat 0 holds unordered calls (callback answers)
        _EARLIER.c.id < _OUTBOX.c.id,
        _EARLIER.c.priority <= _OUTBOX.c.priority,
        _EARLIER.c.status.in_(("pending", "sending")),
    )
    .exists()
)
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("rid"))
    .values(
        status="sent",
        error=None,
        sent_at=bindparam("at"),
        tg_message_id=bindparam("mid"),
        payload_enc=None,
    )
)
_MARK_DONE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("rid"))
    .values(status=bindparam("st"), error=bindparam("err"), payload_enc=None)
)
_MARK_AGAIN = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("rid"))
    .values(
        status="pending",
        error=bindparam("err"),
        not_before=func.coalesce(
            bindparam("nb", type_=_OUTBOX.c.not_before.type), _OUTBOX.c.not_before
        ),
    )
)


# --- operations: read-only figures for /readyz and /metrics (bot/ops_web.py) -----------------


class OpsRepository:
    """What the operations endpoints read: the schema version and how much work waits, and
    since when. Read-only, one statement each (counts through the status indexes); used on a
    session of its own, outside the unit of work, so a probe never waits for SQLite's writer.
    Times come back as stored (naive UTC on SQLite)."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def ping(self) -> None:
        """One round trip to the database."""
        await self._s.execute(text("SELECT 1"))

    async def schema_versions(self) -> list[str]:
        """The Alembic revision(s) the database is at (empty before the first migration)."""
        rows = await self._s.execute(text("SELECT version_num FROM alembic_version"))
        return [str(r[0]) for r in rows]

    async def inbox_waiting(self) -> tuple[int, datetime | None]:
        """Updates stored and not yet processed, and when the oldest was received."""
        row = (
            await self._s.execute(
                select(func.count(), func.min(InboxUpdate.received_at)).where(
                    InboxUpdate.status == "pending"
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def outbox_waiting(self, now: datetime) -> tuple[int, datetime | None]:
        """Calls not yet made (pending, or in flight / interrupted while sending), and since
        when the oldest one that is due has been due: a call deferred on purpose (a retry's
        backoff, a 429, a message for later) counts from its ``not_before``, not before."""
        from sqlalchemy import case  # kept beside its one use: this section stands apart

        since = func.coalesce(OutboxMessage.not_before, OutboxMessage.created_at)
        due = OutboxMessage.not_before.is_(None) | (OutboxMessage.not_before <= now)
        row = (
            await self._s.execute(
                select(
                    func.count(),
                    func.min(case((due, since), else_=null())),
                ).where(OutboxMessage.status.in_(("pending", "sending")))
            )
        ).one()
        return int(row[0]), row[1]

    async def events_due(self, now: datetime) -> tuple[int, datetime | None]:
        """Scheduled events due by ``now`` and not yet run, and the oldest one's due time."""
        row = (
            await self._s.execute(
                select(func.count(), func.min(ScheduledEvent.due_at)).where(
                    ScheduledEvent.status == "pending", ScheduledEvent.due_at <= now
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def imports_running(self) -> int:
        """Health-data imports being run by some worker right now."""
        from storage.models import HealthImport  # only the operations endpoints need it here

        return int(
            await self._s.scalar(select(func.count()).where(HealthImport.status == "running")) or 0
        )
