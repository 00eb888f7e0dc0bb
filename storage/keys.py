"""Key maintenance: master key rotation, the key store's upkeep, and moving legacy owners
under key shares.

* ``keys rotate`` adds a master key and re-wraps every data key under it, in small batches so
  the running bot stays readable throughout (it reloads the key ring when it meets the new key).
* :func:`settle_keystore` (every start) deletes the shares of data keys the database says are
  destroyed: an erasure whose process stopped between its commit and the key store.
* ``keys migrate-shares`` (:func:`migrate_shares`) gives each legacy owner (a version 1 data
  key, from before the key store) a share and re-encrypts every field of the owner under a new
  version 2 data key combined with it, one owner per transaction. Safe while the bot runs: a
  legacy key is used for sealing only under a share lock on its row (PostgreSQL; SQLite has
  one writer), the migration takes that row ``FOR UPDATE NOWAIT`` and retries an owner another
  transaction is using.
* :func:`restored_owners` sorts the live data keys of a restored database against the key
  store (``python bot.py restore``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from storage.crypto import CryptoError, decrypt_field, encrypt_field, new_data_key
from storage.db import is_sqlite
from storage.keystore import SHARE_VERSION, KeyStoreError, backup_progress, field_key
from storage.models import (
    AbuseReport,
    Caregiver,
    CaseMessage,
    CheckIn,
    Consultation,
    DataKey,
    Doctor,
    Dose,
    HospitalAppointment,
    InboxUpdate,
    Intake,
    MedicationPlan,
    OutboxMessage,
    Patient,
    Prescription,
    Reading,
    Referral,
)
from storage.uow import Database, UnitOfWork
from storage.vault import SYSTEM_OWNER

Progress = Callable[[int, int], None]
SAMPLE = 200  # protected owners checked against the key store at each start

log = logging.getLogger("careline.keys")


async def rotate_master_key(
    db: Database, *, batch: int = 200, progress: Progress | None = None
) -> tuple[int, int]:
    """Returns (new master key id, data keys re-wrapped)."""
    new_id = db.ring.add_master_key()
    live = DataKey.wrapped.is_not(None)
    async with db.uow() as uow:
        total = int(
            await uow.session.scalar(select(func.count()).select_from(DataKey).where(live)) or 0
        )
    done = 0
    if progress:
        progress(0, total)
    idle = 0
    while True:
        async with db.uow() as uow:
            n = await uow.vault.rewrap_batch(new_id, batch)
            await uow.commit()
        if n == 0:
            # Rows another transaction holds (SKIP LOCKED) are not done yet: wait for them.
            async with db.uow() as uow:
                left = await uow.session.scalar(
                    select(func.count())
                    .select_from(DataKey)
                    .where(live, DataKey.master_key_id != new_id)
                )
            if not left or idle >= 50:
                break
            idle += 1
            await asyncio.sleep(0.1 * idle)
            continue
        idle = 0
        # A bot still on the old ring may create keys meanwhile; the loop picks those up too.
        done += n
        total = max(total, done)
        if progress:
            progress(done, total)
    return new_id, done


# -- which fields belong to which owner ---------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    """A table with ciphertext columns: how to find an owner's rows, and the row id each
    ciphertext is bound to."""

    model: Any
    owner: Callable[[str], ColumnElement[bool]]
    row_id: Callable[[Any], str] = lambda row: str(row.id)

    @property
    def table(self) -> str:
        """The table's name (bound into every ciphertext)."""
        return str(self.model.__tablename__)

    @property
    def columns(self) -> tuple[str, ...]:
        """The ciphertext columns."""
        return tuple(c.key for c in self.model.__table__.columns if c.key.endswith("_enc"))


def _case_owner() -> ColumnElement[str]:
    return func.coalesce(Consultation.key_owner, Consultation.patient_id)


def _system(owner: str) -> ColumnElement[bool]:
    """Inbox and outbox payloads are all the ``system`` owner's."""
    return true() if owner == SYSTEM_OWNER else false()


# Every table with ``*_enc`` columns (a test checks none is missing) and whose key seals it.
SEALED: tuple[Sealed, ...] = (
    Sealed(Patient, lambda o: Patient.id == o),
    Sealed(Doctor, lambda o: Doctor.id == o),
    Sealed(Intake, lambda o: Intake.patient_id == o),
    Sealed(AbuseReport, lambda o: AbuseReport.patient_id == o),
    Sealed(Caregiver, lambda o: Caregiver.patient_id == o),
    Sealed(CheckIn, lambda o: CheckIn.patient_id == o),
    Sealed(Reading, lambda o: Reading.patient_id == o),
    Sealed(Referral, lambda o: Referral.patient_id == o),
    Sealed(HospitalAppointment, lambda o: HospitalAppointment.patient_id == o),
    Sealed(
        Prescription,
        lambda o: func.coalesce(Prescription.key_owner, Prescription.patient_id) == o,
    ),
    Sealed(MedicationPlan, lambda o: MedicationPlan.patient_id == o),
    Sealed(Dose, lambda o: Dose.patient_id == o),
    Sealed(Consultation, lambda o: _case_owner() == o),
    Sealed(
        CaseMessage,
        lambda o: CaseMessage.consultation_id.in_(
            select(Consultation.id).where(_case_owner() == o)
        ),
    ),
    Sealed(InboxUpdate, _system, lambda row: f"{row.bot}:{row.update_id}"),
    Sealed(OutboxMessage, _system),
)


async def owner_fields(uow: UnitOfWork, owner: str, *, lock: bool = False) -> list[Any]:
    """(spec, row) for every row holding a ciphertext of ``owner``; ``lock``: FOR UPDATE
    NOWAIT (PostgreSQL)."""
    out = []
    for spec in SEALED:
        cols = [getattr(spec.model, c) for c in spec.columns]
        query = select(spec.model).where(spec.owner(owner), or_(*(c.is_not(None) for c in cols)))
        if lock:
            query = query.with_for_update(nowait=True)
        out += [(spec, row) for row in await uow.session.scalars(query)]
    return out


# -- legacy owners ------------------------------------------------------------------------


@dataclass
class Migration:
    """What ``keys migrate-shares`` did."""

    owners: int = 0  # legacy owners moved under a share
    fields: int = 0  # ciphertexts re-encrypted
    failed: list[str] = field(default_factory=list)  # owners left legacy (see the log line)


async def legacy_owners(db: Database) -> list[str]:
    """Owners whose live data key is from before the key store (version 1)."""
    async with db.uow() as uow:
        rows = await uow.session.scalars(
            select(DataKey.owner_id)
            .where(DataKey.wrapped.is_not(None), DataKey.key_version < SHARE_VERSION)
            .order_by(DataKey.owner_id)
        )
        return list(rows)


async def _migrate_owner(uow: UnitOfWork, db: Database, owner: str) -> int | None:
    """Move one legacy owner under a share (in the caller's transaction); returns the number
    of ciphertexts re-encrypted, None when the owner needs nothing (any more)."""
    row = await uow.session.get(
        DataKey, owner, populate_existing=True, with_for_update={"nowait": True}
    )
    if row is None or row.wrapped is None or row.key_version >= SHARE_VERSION:
        return None
    old = db.ring.unwrap(row.master_key_id, row.wrapped, owner)
    try:
        share = await asyncio.to_thread(db.keystore.share_or_create, owner)
    except KeyStoreError as exc:
        raise CryptoError(str(exc)) from None
    raw = new_data_key()
    new = field_key(raw, share, owner)
    count = 0
    for spec, obj in await owner_fields(uow, owner, lock=True):
        rid = spec.row_id(obj)
        for column in spec.columns:
            blob = getattr(obj, column)
            if not blob:
                continue
            plain = decrypt_field(old, spec.table, column, rid, blob)
            setattr(obj, column, encrypt_field(new, SHARE_VERSION, spec.table, column, rid, plain))
            count += 1
    row.master_key_id, row.wrapped = db.ring.wrap(raw, owner)
    row.key_version = SHARE_VERSION
    return count


async def migrate_shares(
    db: Database, *, progress: Progress | None = None, attempts: int = 20
) -> Migration:
    """Give every legacy owner a share and re-encrypt their fields (see the module notes)."""
    owners = await legacy_owners(db)
    result = Migration()
    if progress:
        progress(0, len(owners))
    for i, owner in enumerate(owners, 1):
        for attempt in range(attempts):
            try:
                async with db.uow() as uow:
                    count = await _migrate_owner(uow, db, owner)
                    await uow.commit()
            except DBAPIError:
                # A transaction of the running bot holds the owner's key or rows: retry.
                await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
                continue
            except CryptoError:
                result.failed.append(owner)
                break
            db.cache.drop(owner)
            if count is not None:
                result.owners += 1
                result.fields += count
            break
        else:
            result.failed.append(owner)
        if progress:
            progress(i, len(owners))
    return result


# -- the key store beside the database ------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    """The key store checked against the database at start."""

    forgotten: int  # destroyed keys whose shares were still there (now deleted)
    legacy: int  # owners not yet under a share (run keys migrate-shares)


async def settle_keystore(db: Database) -> Settled:
    """At start: refuse (:class:`KeyStoreError`) a key store that lacks the shares of this
    database's owners (a lost or foreign ``keystore.db``: serving would fail on every read);
    delete the shares of every data key the database says is destroyed and add those owners
    to the erasure ledger (an erasure whose process stopped between its commit and the key
    store); warn about legacy owners. Idempotent, cheap when nothing is pending."""
    live = DataKey.wrapped.is_not(None)
    async with db.uow() as uow:
        destroyed = set(
            await uow.session.scalars(select(DataKey.owner_id).where(DataKey.wrapped.is_(None)))
        )
        legacy = int(
            await uow.session.scalar(
                select(func.count())
                .select_from(DataKey)
                .where(live, DataKey.key_version < SHARE_VERSION)
            )
            or 0
        )
        sample = list(
            await uow.session.scalars(
                select(DataKey.owner_id)
                .where(live, DataKey.key_version >= SHARE_VERSION)
                .order_by(DataKey.owner_id.desc())
                .limit(SAMPLE)
            )
        )
    store = db.keystore
    ledger = await asyncio.to_thread(store.erased)
    missing = [
        o for o in sample if o not in ledger and await asyncio.to_thread(store.share, o) is None
    ]
    if missing:
        raise KeyStoreError(
            f"key store {store.path} lacks the key shares of {len(missing)} of {len(sample)} "
            "owners checked in this database: put back the key store that belongs to it "
            "(a backup --with-keystore copy), or restore the database that belongs to this one"
        )
    pending = destroyed - ledger
    if pending:
        await asyncio.to_thread(store.forget, pending)
        log.warning(
            "key shares of erased owners deleted at start", extra={"ctx": {"owners": len(pending)}}
        )
    if legacy:
        log.warning(
            "owners not yet protected by key shares: run python bot.py keys migrate-shares",
            extra={"ctx": {"owners": legacy}},
        )
    return Settled(len(pending), legacy)


@dataclass
class Restored:
    """The live data keys of a restored database, sorted against the current key store."""

    owners: int = 0  # live data keys
    erased: list[str] = field(default_factory=list)  # erased since the backup (the ledger)
    erased_legacy: int = 0  # of those, legacy: the backup file itself still opens them
    unmatched: list[str] = field(default_factory=list)  # no share, not in the ledger
    legacy: int = 0  # legacy owners still live


async def restored_owners(db: Database) -> Restored:
    """Sort the restored database's live keys: owners the ledger says were erased after the
    backup, protected owners with no share and no ledger entry (a key store that does not
    belong to this database: nothing is done to them), and legacy owners."""
    async with db.uow() as uow:
        rows = list(
            await uow.session.execute(
                select(DataKey.owner_id, DataKey.key_version).where(DataKey.wrapped.is_not(None))
            )
        )
    ledger = await asyncio.to_thread(db.keystore.erased)
    shares = await asyncio.to_thread(db.keystore.owners)
    out = Restored(owners=len(rows))
    for owner, version in rows:
        if owner in ledger:
            out.erased.append(owner)
            out.erased_legacy += version < SHARE_VERSION
        elif version < SHARE_VERSION:
            out.legacy += 1
        elif owner not in shares:
            out.unmatched.append(owner)
    return out


# -- backups ------------------------------------------------------------------------------

KEYSTORE_COPY_DAYS = 7  # the longest a key-store copy is kept (the bot's texts say so)
DATABASE_COPY = "careline-{stamp}.db"
KEYSTORE_COPY = "keystore-{stamp}.db"


def stamp(now: datetime) -> str:
    """A file-name time stamp (UTC)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    if not is_sqlite(url) or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _read_only(path: Path) -> str:
    """A SQLite URI opening ``path`` read-only."""
    return f"{Path(path).resolve().as_uri()}?mode=ro"


def _private(path: Path) -> None:
    """Create ``path`` owner-only; refuse to overwrite."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def copy_sqlite(src: Path, dest: Path, progress: Progress | None = None) -> None:
    """An online, consistent copy of a SQLite database (the backup API: the bot may keep
    writing) to a new owner-only file."""
    _private(dest)
    with closing(sqlite3.connect(src)) as source, closing(sqlite3.connect(dest)) as out:
        source.backup(out, pages=256, progress=backup_progress(progress))
        out.execute("PRAGMA journal_mode=DELETE")  # a copy is one self-contained file


def check_copy(src: Path) -> int:
    """The number of data keys in a database copy; :class:`ValueError` when ``src`` is not a
    Careline SQLite database."""
    try:
        with closing(sqlite3.connect(_read_only(src), uri=True)) as con:
            return int(con.execute("SELECT count(*) FROM data_keys").fetchone()[0])
    except sqlite3.Error:
        raise ValueError(f"{src} is not a Careline database copy") from None


def restore_sqlite(src: Path, target: Path, progress: Progress | None = None) -> None:
    """Replace the database at ``target`` with the copy ``src`` (the backup API, page by
    page; the target's own WAL is handled by SQLite)."""
    if not target.exists():
        _private(target)
    source = sqlite3.connect(_read_only(src), uri=True)
    with closing(source), closing(sqlite3.connect(target)) as out:
        source.backup(out, pages=256, progress=backup_progress(progress))


def shred(path: Path) -> None:
    """Overwrite a file with zeros, then delete it (a copy of the key store going out of its
    retention; on copy-on-write file systems and SSDs the old blocks may survive)."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.write(b"\0" * size)
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()


def expired_keystore_copies(folder: Path, now: datetime) -> list[Path]:
    """Key-store copies in ``folder`` older than :data:`KEYSTORE_COPY_DAYS` (by the time in
    their name, else their modification time)."""
    out = []
    limit = now - timedelta(days=KEYSTORE_COPY_DAYS)
    for path in sorted(folder.glob(KEYSTORE_COPY.format(stamp="*"))):
        try:
            made = datetime.strptime(path.name[9:-3], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            made = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if made < limit:
            out.append(path)
    return out


@dataclass(frozen=True)
class PgCommand:
    """A pg_dump / pg_restore call: the argv (no password in it), its environment, and the
    line to show the operator (password hidden)."""

    argv: list[str]
    env: dict[str, str]
    shown: str


def pg_command(url: str, action: str, path: Path) -> PgCommand:
    """``action``: "dump" (custom format, to ``path``) or "restore" (from ``path``, replacing
    the tables)."""
    parsed = make_url(url).set(drivername="postgresql", query={})
    conninfo = parsed.set(password=None).render_as_string(hide_password=False)
    if action == "dump":
        argv = ["pg_dump", "--format=custom", "--no-owner", f"--file={path}", conninfo]
    else:
        argv = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction"]
        argv += [f"--dbname={conninfo}", str(path)]
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    shown = shlex.join(argv)
    if parsed.password:
        shown = "PGPASSWORD=… " + shown
    return PgCommand(argv, {str(k): str(v) for k, v in env.items()}, shown)
