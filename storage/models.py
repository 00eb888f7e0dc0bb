"""SQLAlchemy 2 typed models. Every column that can hold health or identity data is
ciphertext (``*_enc``), encrypted by :mod:`storage.crypto` with associated data that binds it
to its table, column, row id and key version."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage import clock

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware UTC now from Careline's one clock (storage/clock.py), set in Python so
    every dialect stores the same value."""
    return clock.now()


def new_id() -> str:
    """A random row id; known before insert so it can be bound into ciphertext."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention for migrations."""

    metadata = MetaData(naming_convention=NAMING)


class DataKey(Base):
    """One data key per owner (a patient, or ``system``), wrapped by a master key."""

    __tablename__ = "data_keys"

    owner_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    master_key_id: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Patient(Base):
    """A patient of the patient bot. Profile fields are ciphertext under the patient's key."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tg_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    locale: Mapped[str] = mapped_column(String(8))
    onboarding_state: Mapped[str] = mapped_column(String(32))
    consent_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    birth_year_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sex_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_index: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    conditions_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    medicines_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    allergies_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when an admin upheld an abuse report: no new cases, nothing relayed (emergency
    # instructions still work); the patient may /appeal.
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Quiet hours, local "HH:MM" (routine prompts wait; dose reminders arrive silently).
    quiet_start: Mapped[str | None] = mapped_column(String(5), nullable=True)
    quiet_end: Mapped[str | None] = mapped_column(String(5), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Intake(Base):
    """One symptom intake. Its clinical state is ``state`` (the intake machine's); everything
    the patient said is one encrypted JSON document (``answers_enc``) under the patient's key.
    ``disposition`` and ``department`` stay readable because queues are ordered by them."""

    __tablename__ = "intakes"
    __table_args__ = (Index("ix_intakes_patient_state", "patient_id", "state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    questionnaire_version: Mapped[str] = mapped_column(String(32))
    answers_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    department: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Doctor(Base):
    """A doctor of the doctor bot (applicant until verified). Identity fields are ciphertext
    under the doctor's own data key (owner = doctor id); departments, years of practice and
    status stay readable because queues, the cn rule and authorisation need them."""

    __tablename__ = "doctors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tg_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    locale: Mapped[str] = mapped_column(String(8))
    # applying -> pending -> verified | rejected; verified -> suspended -> verified
    status: Mapped[str] = mapped_column(String(16), default="applying")
    # doctor | pharmacist | desk: a pharmacist applies and is verified the same way, has no
    # departments (never gets cases) and reviews e-prescriptions instead.
    role: Mapped[str] = mapped_column(String(16), default="doctor")
    # A hospital desk's hospital (role "desk": created by an admin, marks appointments).
    hospital_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    apply_step: Mapped[str] = mapped_column(String(32), default="name")
    departments: Mapped[str] = mapped_column(String(300), default="")  # comma-separated ids
    years_practice: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verified_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    work_hours: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "09:00-18:00"
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    licence_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    authority_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    hospital_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    title_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    licence_photo_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    decision_reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Consultation(Base):
    """One case between a patient and (once accepted) a doctor. ``state`` is the consultation
    machine's. ``number`` is the case tag shown on every relayed message (#N)."""

    __tablename__ = "consultations"
    __table_args__ = (
        Index("ix_consultations_queue", "state", "department", "priority", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    intake_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    department: Mapped[str] = mapped_column(String(32))  # the queue it waits in now
    # The triage's department when routing sent the case elsewhere (flows/routing.py).
    preferred_department: Mapped[str | None] = mapped_column(String(32), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=3)  # disposition rank, 0 = urgent
    state: Mapped[str] = mapped_column(String(24))
    doctor_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_comment_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    followup_visit: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When it entered the queue it waits in now (the department's time limit counts from it).
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The place in the queue the patient was last told, and when (updates ≥ 15 min apart).
    told_place: Mapped[int | None] = mapped_column(Integer, nullable=True)
    told_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Retention after the patient's erasure: the record moves under a key of its own
    # (``key_owner``, the case id) with a snapshot of the intake and the patient's minimal
    # identity (``record_enc``); messages go at ``chat_until``, the rest at ``record_until``.
    key_owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    record_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    chat_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    record_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CaseMessage(Base):
    """One message of a consultation, either way. Text and the file's bytes are ciphertext
    under the patient's data key (the record)."""

    __tablename__ = "case_messages"
    __table_args__ = (Index("ix_case_messages_recent", "consultation_id", "sender", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consultation_id: Mapped[str] = mapped_column(String(32), index=True)
    sender: Mapped[str] = mapped_column(String(8))  # patient | doctor | system
    kind: Mapped[str] = mapped_column(String(16))  # text | photo | voice | document
    body_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    file_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The patient bot's file id of a file not relayed yet (the cn offline record, passed to
    # the doctor who accepts the case), sealed like the body.
    source_file_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    tg_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AbuseReport(Base):
    """A doctor's report of a patient's abuse in a case, and the admin's decision:
    ``open`` → ``upheld`` (the patient is blocked) | ``dismissed``; an upheld report may be
    appealed (``appealed``) → ``lifted`` (unblocked) | ``upheld`` again. The reason and the
    appeal are ciphertext under the patient's data key."""

    __tablename__ = "abuse_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    consultation_id: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    appeal_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    appealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScheduledEvent(Base):
    """Time-based work (a check-back, later reminders and escalations): the source of truth
    for the scheduler's sweeper. Carries ids only, never health data."""

    __tablename__ = "scheduled_events"
    __table_args__ = (
        Index("ix_scheduled_events_claim", "status", "priority", "due_at"),
        # an occurrence's follow-ups by kind and subject (cancel a dose's ladder, count snoozes)
        Index("ix_scheduled_events_kind_subject", "kind", "subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # An occurrence key ("dose:<plan>:<local time>"): the same occurrence is never enqueued
    # twice. 0 is urgent (escalations, red flags), claimed before routine work.
    key: Mapped[str | None] = mapped_column(String(120), nullable=True, unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    # The lease: a claimed row is ``leased`` to ``leased_by`` until ``lease_until``; a worker
    # that dies leaves it to be claimed again once the lease runs out.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Consent(Base):
    """A consent decision with the version of the text shown. Kept after erasure as proof;
    it names the patient only by their random id."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InboxUpdate(Base):
    """A raw Telegram update, stored (encrypted) and committed before it is acknowledged."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("bot", "update_id", name="uq_inbox_bot_update"),
        # workers sharing the inbox take a chat's pending updates together, in update order
        Index("ix_inbox_chat", "bot", "chat_id", "update_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The chat (else the user) the update came from: one worker at a time handles a chat.
    chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class OutboxMessage(Base):
    """A Bot API call waiting to be made. The payload is ciphertext and is wiped once sent."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "priority", "id"),
        # workers sharing the outbox send a chat's calls in order: its earlier waiting ones
        # (only waiting calls are indexed: a chat's sent history is long and never asked)
        Index(
            "ix_outbox_chat",
            "bot",
            "chat_id",
            "id",
            sqlite_where=text("status IN ('pending', 'sending')"),
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
        # the sender's deferred chat heads (rows waiting out a retry or a chat's pacing)
        Index("ix_outbox_not_before", "not_before"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    method: Mapped[str] = mapped_column(String(40))
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    priority: Mapped[int] = mapped_column(Integer, default=5)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # While ``sending``: no other sender (another process on PostgreSQL) takes the row before
    # this time; after it, the call is taken as interrupted and made again.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    tg_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditRecord(Base):
    """One link of the append-only, hash-chained audit log. Details never hold health data."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_record", "record_type", "record_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain head: one row, locked while appending so concurrent writers serialise."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class MedicationPlan(Base):
    """A doctor-entered medication plan (Careline never suggests medicines or doses).
    ``status``: draft → proposed → active ⇄ paused → ended | declined | cancelled.
    What the medicine is (name and strength, dose, food note) is ciphertext under the
    patient's key; the timing (``schedule``, JSON: times or every_hours, days, start, end)
    is plain so the scheduler can compute occurrences without decrypting. ``version`` goes up
    whenever the plan changes, so buttons of an older version are recognised as stale."""

    __tablename__ = "med_plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32), index=True)
    consultation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    step: Mapped[str] = mapped_column(String(16), default="name")
    version: Mapped[int] = mapped_column(Integer, default=1)
    details_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    schedule: Mapped[str] = mapped_column(Text, default="{}")
    shift_minutes: Mapped[int] = mapped_column(Integer, default=0)
    again_after_min: Mapped[int] = mapped_column(Integer, default=30)
    caregiver_after_min: Mapped[int] = mapped_column(Integer, default=60)
    doctor_after_min: Mapped[int] = mapped_column(Integer, default=120)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Dose(Base):
    """One occurrence of a plan's dose: ``pending`` → ``taken`` | ``skipped`` | ``missed`` |
    ``cancelled`` (the plan was paused, changed or ended after the reminder went out); a
    snooze keeps it pending with a later reminder. ``local`` is the patient's local
    date and time of the dose ("YYYY-MM-DD HH:MM") and keys the occurrence with the plan, so
    no dose is ever scheduled twice. ``step`` is how far up the escalation ladder it went
    (0 patient, 1 reminded again, 2 caregivers, 3 doctor); ``acked_by`` stops the ladder."""

    __tablename__ = "doses"
    __table_args__ = (
        UniqueConstraint("plan_id", "local", name="uq_doses_plan_local"),
        Index("ix_doses_patient_due", "patient_id", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plan_id: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str] = mapped_column(String(32))
    plan_version: Mapped[int] = mapped_column(Integer, default=1)
    local: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(Integer, default=0)
    note_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Caregiver(Base):
    """A family caregiver the patient invited: ``invited`` → ``active`` → ``revoked`` (or the
    invitation ``expired`` or was ``declined``). The invitation is a one-time token, stored
    only as its hash.
    ``scope``: ``reminders`` (dose reminders) | ``missed`` (+ missed-dose alerts) |
    ``checkins`` (+ check-in alerts); ``details`` lets messages name medicines and readings."""

    __tablename__ = "caregivers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    tg_user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    scope: Mapped[str] = mapped_column(String(16), default="missed")
    details: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="invited")
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FollowUpPlan(Base):
    """A doctor's follow-up plan from a template (hypertension, diabetes, post-op, general):
    check-ins on a schedule (``schedule`` JSON: time, days or every_days) until ``review_by``."""

    __tablename__ = "followup_plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32), index=True)
    consultation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    template: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    schedule: Mapped[str] = mapped_column(Text, default="{}")
    review_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CheckIn(Base):
    """One scheduled check-in of a follow-up plan: ``pending`` (asked) → ``done`` | ``missed``.
    ``state`` is the check-in questionnaire machine's state (``closed`` for one skipped while
    the bot was down); the answers are ciphertext. ``level``: none | alert | danger.
    ``recalled``: the recall of the run of missed check-ins this one started was sent."""

    __tablename__ = "checkins"
    __table_args__ = (UniqueConstraint("plan_id", "local", name="uq_checkins_plan_local"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plan_id: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    plan_version: Mapped[int] = mapped_column(Integer, default=1)
    local: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    state: Mapped[str] = mapped_column(String(32), default="asked")
    answers_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    level: Mapped[str] = mapped_column(String(16), default="none")
    recalled: Mapped[bool] = mapped_column(Boolean, default=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Reading(Base):
    """A measurement (blood pressure, pulse, glucose, temperature, pain): the value is
    ciphertext; ``kind`` and ``flag`` (none | high | low | danger) stay readable."""

    __tablename__ = "readings"
    __table_args__ = (
        Index("ix_readings_patient_taken", "patient_id", "taken_at"),
        # A device's reading is stored once per identity it gave (the upload is idempotent).
        UniqueConstraint("patient_id", "source_key", name="uq_readings_source_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32))
    checkin_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(24))
    value_enc: Mapped[bytes] = mapped_column(LargeBinary)
    flag: Mapped[str] = mapped_column(String(8), default="none")
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # How it was made: manual (typed in a check-in) | device | imported.
    source: Mapped[str] = mapped_column(String(12), default="manual", server_default="manual")
    device_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # SHA-256 of the device and the identity the source gave the reading (None: manual).
    source_key: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Device(Base):
    """A patient's home device or health app (flows/devices.py): ``pending`` with a one-time
    pairing code (only its hash, expiring) → ``active`` with an upload token (only its hash)
    → ``revoked``."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    label: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    pair_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    pair_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    paired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class HealthImport(Base):
    """A file of readings a patient sends to import (flows/devices.py, bot/imports.py):
    ``waiting`` (the patient asked to import; the next file they send is taken, until
    ``expires_at``) → ``queued`` (the file is known) → ``running`` (leased to a worker until
    ``lease_until``) → ``done`` or ``failed``. Holds the Telegram file id and counts, never the
    file's contents or name."""

    __tablename__ = "health_imports"
    __table_args__ = (Index("ix_health_imports_status", "status", "lease_until"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(12), default="waiting")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    file_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    file_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str | None] = mapped_column(String(12), nullable=True)  # apple_xml|apple_zip|csv
    device_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The outbox row of the progress message (its Telegram message id once sent is edited).
    progress_row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CareAlert(Base):
    """Something a doctor must look at for a patient under their care (a reading over a
    threshold, a side effect, a dose nobody answered): shown at the top of /queue until
    acknowledged."""

    __tablename__ = "care_alerts"
    __table_args__ = (Index("ix_care_alerts_doctor_open", "doctor_id", "acked_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24))
    ref_id: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16), default="alert")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Hospital(Base):
    """A hospital in the clinic-managed referral directory (no patient data).
    ``departments`` is a JSON list of department names; ``locale`` is the language its
    desk reads (a slip is printed in it too, besides the patient's)."""

    __tablename__ = "hospitals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    departments: Mapped[str] = mapped_column(Text, default="[]")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Referral(Base):
    """A referral slip for an offline visit. ``status``: draft → issued → used | expired |
    revoked. ``code`` is the short human-readable code on the slip and in the verify URL.
    What the slip says (target, reason, findings, patient identification) is ciphertext
    under the patient's key (``content_enc``, canonical JSON); ``content_hash`` is the SHA-256
    of that canonical content, carried in the signed token; ``file_hash`` is the SHA-256 of
    the issued PDF's bytes; ``key_id`` names the signing key. ``step`` is the doctor's wizard
    step while a draft."""

    __tablename__ = "referrals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32), index=True)
    consultation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hospital_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    urgency: Mapped[str] = mapped_column(String(16), default="routine")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    step: Mapped[str] = mapped_column(String(16), default="target")
    content_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConsultationService(Base):
    """A consultation type the clinic sells (clinic data, no patient data): ``mode`` text |
    phone | video; for the clinic as a whole, one department, or one doctor (the most
    specific active one applies). ``minutes`` is a call's length; ``response_hours`` a text
    consultation's response window. ``price_minor`` is in the currency's smallest unit
    (0 = free); ``currency`` an ISO 4217 code or ``XTR`` (Telegram Stars)."""

    __tablename__ = "consultation_services"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    mode: Mapped[str] = mapped_column(String(8))
    department: Mapped[str | None] = mapped_column(String(100), nullable=True)
    doctor_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="XTR")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DoctorSchedule(Base):
    """A doctor's weekly availability per consultation mode, days off and time zone
    (:mod:`flows.schedule`'s versioned JSON; no patient data)."""

    __tablename__ = "doctor_schedules"

    doctor_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    availability: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Slot(Base):
    """A bookable time of a doctor (FHIR Slot): ``status`` free | busy-tentative (held for
    ``patient_id`` until ``hold_until``, e.g. while an invoice is unpaid) | busy (booked) |
    busy-unavailable. One slot per doctor and start time: a doctor is never double-booked."""

    __tablename__ = "slots"
    __table_args__ = (UniqueConstraint("doctor_id", "start_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    doctor_id: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8))
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="free")
    patient_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    booking_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Booking(Base):
    """A booked consultation (FHIR Appointment): ``status`` pending (payment awaited) |
    booked | cancelled | fulfilled | noshow. The price is the one it was sold at.
    ``charge_id`` is Telegram's ``telegram_payment_charge_id`` (unique: a second delivery of
    the same payment changes nothing); ``refund`` is None | refunded | to_refund."""

    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32), index=True)
    slot_id: Mapped[str] = mapped_column(String(32))
    service_id: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    price_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="XTR")
    charge_id: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    provider_charge_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    refund: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When it is (the slot's start, kept here for reminders, lists and the policy), the case
    # it became at its time, and how it went: the patient's consent to share their number
    # with this doctor for this consultation, the video room, the call's start, end and
    # outcome (completed | no_answer | video_failed), who cancelled it.
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    consultation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    room: Mapped[str | None] = mapped_column(String(64), nullable=True)
    call_started_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    call_ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    call_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The outbox row of the doctor's call card (its sent message is edited when the call or
    # the case ends, so the patient's number leaves the doctor's view).
    card_outbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A deposit for a free consultation (a patient over the clinic's no-show limit pays one
    # upfront; it goes back when the consultation takes place).
    deposit: Mapped[bool] = mapped_column(Boolean, default=False)


class Prescription(Base):
    """An e-prescription (flows/prescriptions.py). ``status``: draft → pending (waiting for a
    pharmacist's review) | active → dispensed | expired | revoked; pending → rejected.
    What it says (medicines, patient identification, the prescriber) is ciphertext under the
    patient's key (``content_enc``: the draft's answers, then the issued canonical JSON);
    ``content_hash`` is the SHA-256 of the canonical content, carried in the signed token;
    ``file_hash`` is the SHA-256 of the PDF sent to the patient. ``key_owner`` is the case id
    once a kept record moved under the case's own key (retention after an erasure).
    The review's reason and the dispensing (pharmacy, quantities) are sealed too."""

    __tablename__ = "prescriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    doctor_id: Mapped[str] = mapped_column(String(32), index=True)
    consultation_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    step: Mapped[str] = mapped_column(String(16), default="items")
    review_required: Mapped[bool] = mapped_column(Boolean, default=False)
    chronic: Mapped[str | None] = mapped_column(String(32), nullable=True)
    supply_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reviewer_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    review_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    dispensed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    dispense_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    plan_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class HospitalService(Base):
    """Something a hospital of the directory lets the clinic book (clinic data, no patient
    data): an examination, an outpatient visit or an admission, in one of its departments,
    with what the patient should bring."""

    __tablename__ = "hospital_services"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    hospital_id: Mapped[str] = mapped_column(String(32), index=True)
    department: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # examination | outpatient | admission
    name: Mapped[str] = mapped_column(String(200))
    bring: Mapped[str] = mapped_column(Text, default="")
    # Where to go inside the hospital (building, floor, reception), told with the booking
    # and the reminder.
    directions: Mapped[str] = mapped_column(Text, default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HospitalSlot(Base):
    """A bookable time of a hospital service with its capacity (``all_day``: a day's quota).
    ``booked`` only moves through one conditional UPDATE (never past ``capacity``)."""

    __tablename__ = "hospital_slots"
    __table_args__ = (UniqueConstraint("service_id", "starts_at", name="uq_hospital_slots_start"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(String(32), index=True)
    hospital_id: Mapped[str] = mapped_column(String(32), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class HospitalAppointment(Base):
    """A referral's booked hospital appointment (FHIR Appointment statuses: booked → arrived →
    fulfilled; booked → noshow | cancelled). The visit's outcome (the desk's text) is sealed
    under the patient's key. ``version`` rises with every change: a desk's mark names the
    version it saw, so two desks marking at once cannot both win."""

    __tablename__ = "hospital_appointments"
    __table_args__ = (
        # One open (booked or arrived) appointment per referral, on SQLite and PostgreSQL.
        Index(
            "uq_hospital_appointments_open",
            "referral_id",
            unique=True,
            sqlite_where=text("status IN ('booked', 'arrived')"),
            postgresql_where=text("status IN ('booked', 'arrived')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(String(32), index=True)
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    hospital_id: Mapped[str] = mapped_column(String(32), index=True)
    service_id: Mapped[str] = mapped_column(String(32))
    slot_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    booked_by: Mapped[str] = mapped_column(String(16))  # doctor | patient
    version: Mapped[int] = mapped_column(Integer, default=1)
    outcome_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The desk's files (a discharge letter, results): ids of the case's messages, which hold
    # the bytes sealed under the patient's key; comma-separated, oldest first.
    attachments: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Slots it was moved away from (the desk's reschedules), comma-separated, oldest first: a
    # slip printed before a move still passes the file check.
    moved_from: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeskInvite(Base):
    """An admin's one-time invitation that makes whoever opens it the desk of a hospital
    (``/start desk_<token>`` in the doctor bot). Only the token's SHA-256 is kept."""

    __tablename__ = "desk_invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hospital_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))  # audit actor of the admin
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the desk's id
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebAppUse(Base):
    """A Mini App's signed launch data (``initData``) that was used once (bot/bodymap_web.py):
    only the SHA-256 of its Telegram hash is kept, until its ``auth_date`` is too old for the
    data to be taken anyway."""

    __tablename__ = "webapp_uses"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    auth_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
