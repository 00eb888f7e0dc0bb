"""Erasure that holds for backups (issue 14, docs/SECURITY.md "Erasure and backups"), played as
attacks on SQLite and PostgreSQL: a database copy taken before a patient's erasure, opened with
the current keys file and the current key store, yields 0 bytes of the erased patient (every
ciphertext of the copy tried with the vault and with the raw data key under every master key)
while another patient in the same copy still opens; the erased share is gone from the key
store's files; the backup / restore commands round-trip with progress and re-apply the
erasure; a legacy owner (from before the key store) is moved under a share by
``keys migrate-shares`` while another process keeps using it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from flows import privacy
from storage import keys
from storage.crypto import (
    CryptoError,
    KeyRing,
    decrypt_field,
    encrypt_field,
    field_key_version,
    new_data_key,
)
from storage.keystore import SHARE_VERSION, KeyStore, KeyStoreError, field_key
from storage.models import Base, DataKey, Intake, MedicationPlan, Patient, new_id
from storage.uow import Database
from tests.cli_runner import run_cli_async
from tests.conftest import _pg_admin, _pg_url

ALICE = ("Alice Testpatient", "+15550100123", "crushing chest pain since noon", "Nitrolingual")
BOB = ("Bob Testpatient", "+15550100456", "itchy rash on both arms", "Cetirizine")


@dataclass(frozen=True)
class Seeded:
    """A patient and the plaintexts stored for them."""

    id: str
    texts: tuple[str, ...]


async def _patient(db: Database, tg: int, who: tuple[str, str, str, str]) -> Seeded:
    """A patient with a name, a phone, an intake and a medication plan."""
    name, phone, complaint, medicine = who
    async with db.uow() as uow:
        p = await uow.patients.add(Patient(tg_user_id=tg, locale="en", onboarding_state="done"))
        await uow.patients.set_field(p, "name", name)
        await uow.patients.set_field(p, "phone", phone)
        await uow.intakes.add(
            Intake(patient_id=p.id, state="done", questionnaire_version="v1"),
            {"complaint": complaint},
        )
        plan = MedicationPlan(id=new_id(), patient_id=p.id, doctor_id="d" * 32, schedule="{}")
        plan.details_enc = await uow.vault.seal(
            p.id, "med_plans", "details_enc", plan.id, json.dumps({"name": medicine})
        )
        uow.session.add(plan)
        await uow.commit()
        return Seeded(p.id, who)


async def _legacy_patient(db: Database, tg: int, who: tuple[str, str, str, str]) -> Seeded:
    """A patient as the bot stored them before the key store: a version 1 data key, fields
    encrypted under it directly."""
    name, phone, complaint, medicine = who
    pid, plan_id, intake_id = new_id(), new_id(), new_id()
    raw = new_data_key()
    master, wrapped = db.ring.wrap(raw, pid)

    def seal(table: str, column: str, row_id: str, value: str) -> bytes:
        return encrypt_field(raw, 1, table, column, row_id, value.encode())

    async with db.uow() as uow:
        uow.session.add(
            DataKey(owner_id=pid, key_version=1, master_key_id=master, wrapped=wrapped)
        )
        uow.session.add(
            Patient(
                id=pid,
                tg_user_id=tg,
                locale="en",
                onboarding_state="done",
                name_enc=seal("patients", "name_enc", pid, name),
                phone_enc=seal("patients", "phone_enc", pid, phone),
            )
        )
        uow.session.add(
            Intake(
                id=intake_id,
                patient_id=pid,
                state="done",
                questionnaire_version="v1",
                answers_enc=seal(
                    "intakes", "answers_enc", intake_id, json.dumps({"c": complaint})
                ),
            )
        )
        details = json.dumps({"name": medicine})
        uow.session.add(
            MedicationPlan(
                id=plan_id,
                patient_id=pid,
                doctor_id="d" * 32,
                schedule="{}",
                details_enc=seal("med_plans", "details_enc", plan_id, details),
            )
        )
        await uow.commit()
    return Seeded(pid, who)


async def _erase(db: Database, patient_id: str) -> None:
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        await privacy.erase(uow, patient, bot="patient")
        await uow.commit()


# -- copies of the database ---------------------------------------------------------------


def _copy_files(src: Path, dest: Path) -> None:
    """The operator's plain copy of a SQLite database: its file and its WAL."""
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dest}{suffix}")


def _bytes_of(*paths: Path) -> bytes:
    """The raw bytes of the files that exist among ``paths``."""
    return b"".join(p.read_bytes() for p in paths if p.exists())


def _tool(argv: list[str], env: dict[str, str]) -> bytes:
    """Run a PostgreSQL client tool; its stdout."""
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Copies:
    """Database copies made during a test (PostgreSQL ones are dropped at the end)."""

    db: Database
    folder: Path
    made: list[str]

    async def take(self) -> str:
        """A copy of the database as it is now; returns its URL. SQLite: the operator's plain
        file copy (database and WAL). PostgreSQL: pg_dump, restored into a new database (a
        TEMPLATE copy where pg_dump is not installed)."""
        n = len(self.made) + 1
        if self.db.sqlite:
            src = Path(str(make_url(self.db.url).database))
            dest = self.folder / f"copy{n}.db"
            _copy_files(src, dest)
            self.made.append("")
            return f"sqlite+aiosqlite:///{dest}"
        name = f"c_{uuid.uuid4().hex[:12]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        if shutil.which("pg_dump") and shutil.which("pg_restore"):
            dump = self.folder / f"copy{n}.dump"
            for cmd in (
                keys.pg_command(self.db.url, "dump", dump),
                keys.pg_command(_pg_url(name), "restore", dump),
            ):
                _tool(cmd.argv, cmd.env)
        else:  # pragma: no cover - PostgreSQL without its client tools
            await _pg_admin(f'DROP DATABASE "{name}"')
            await self.db.engine.dispose()
            source = make_url(self.db.url).database
            await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        return _pg_url(name)


@pytest.fixture
async def copies(db: Database, tmp_path: Path) -> AsyncIterator[Copies]:
    """Take copies of ``db``."""
    folder = tmp_path / "copies"
    folder.mkdir()
    made = Copies(db, folder, [])
    yield made
    for name in made.made:
        if name:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the attack ----------------------------------------------------------------------------


def _row_ids(table: str, row: dict[str, object]) -> list[str]:
    ids = [str(row["id"])]
    if table == "inbox":
        ids.append(f"{row['bot']}:{row['update_id']}")
    return ids


async def _recover(url: str, ring_path: Path, store_path: Path, owner: str) -> tuple[int, int]:
    """Open the copy at ``url`` with the keys file and key store as they are now and try every
    ciphertext of every table: through the vault as ``owner``, and with ``owner``'s data key
    unwrapped under every master key of the ring (raw, and combined with the owner's share if
    the store still has one). Returns (ciphertexts of the owner's rows tried, bytes
    recovered)."""
    ring = KeyRing.load(ring_path)
    store = KeyStore.open(store_path)
    copy = Database(url, ring, keystore=store)
    tried = recovered = 0
    try:
        async with copy.uow() as uow:
            row = await uow.session.get(DataKey, owner)
            raw: list[bytes] = []
            for master in ring.key_ids:
                if row is not None and row.wrapped is not None:
                    with contextlib.suppress(CryptoError):
                        raw.append(ring.unwrap(master, row.wrapped, owner))
            share = store.share(owner)
            candidates = raw + ([field_key(k, share, owner) for k in raw] if share else [])
            for table in Base.metadata.sorted_tables:
                columns = [c.name for c in table.columns if c.name.endswith("_enc")]
                if not columns:
                    continue
                for found in (await uow.session.execute(select(table))).mappings():
                    mine = owner in (found.get("id"), found.get("patient_id"))
                    for column in columns:
                        blob = found[column]
                        if not blob:
                            continue
                        tried += mine
                        for row_id in _row_ids(table.name, dict(found)):
                            if mine:
                                try:
                                    plain = await uow.vault.open_bytes(
                                        owner, table.name, column, row_id, bytes(blob)
                                    )
                                    recovered += len(plain)
                                except CryptoError:
                                    pass
                            for key in candidates:
                                try:
                                    plain = decrypt_field(
                                        key, table.name, column, row_id, bytes(blob)
                                    )
                                    recovered += len(plain)
                                except CryptoError:
                                    pass
    finally:
        await copy.dispose()
    return tried, recovered


async def _profile(url: str, ring_path: Path, store_path: Path, tg: int) -> str | None:
    """The name of the patient ``tg`` read from the copy at ``url`` through the bot's vault."""
    copy = Database(url, KeyRing.load(ring_path), keystore=KeyStore.open(store_path))
    try:
        async with copy.uow() as uow:
            patient = await uow.patients.by_tg_user(tg)
            return None if patient is None else await uow.patients.get_field(patient, "name")
    finally:
        await copy.dispose()


def _store_path(db: Database) -> Path:
    return db.keystore.path


# -- tests -------------------------------------------------------------------------------


async def test_backup_taken_before_erasure_yields_nothing_of_the_erased_patient(
    db: Database, copies: Copies
) -> None:
    alice = await _patient(db, 501, ALICE)
    await _patient(db, 502, BOB)
    before = await copies.take()
    # Ciphertexts the attack will meet: profile (name, phone), intake, medication plan.
    tried, recovered = await _recover(before, db.ring.path, _store_path(db), alice.id)
    assert tried == 4 and recovered > 0  # before erasure, the harness opens everything

    db.ring.add_master_key()  # a rotation since the backup: every master key gets tried
    await _erase(db, alice.id)

    tried, recovered = await _recover(before, db.ring.path, _store_path(db), alice.id)
    assert tried == 4, "the copy still holds the patient's ciphertexts"
    assert recovered == 0
    assert await _profile(before, db.ring.path, _store_path(db), 502) == "Bob Testpatient"
    with pytest.raises(CryptoError):
        await _profile(before, db.ring.path, _store_path(db), 501)


async def test_the_erased_share_leaves_no_trace_in_the_key_store_files(
    db: Database, copies: Copies
) -> None:
    alice = await _patient(db, 511, ALICE)
    bob = await _patient(db, 512, BOB)
    share = db.keystore.share(alice.id)
    assert share is not None and len(share) == 32
    store = _store_path(db)
    assert share in store.read_bytes()
    assert store.stat().st_mode & 0o777 == 0o600
    # The share never reaches the database (nor its dumps).
    if db.sqlite:
        src = Path(str(make_url(db.url).database))
        assert share not in _bytes_of(src, Path(f"{src}-wal"))
    elif shutil.which("pg_dump"):
        conninfo = keys.pg_command(db.url, "dump", Path("-")).argv[-1]
        dump = _tool(["pg_dump", "--data-only", conninfo], {})
        assert share.hex().encode() not in dump and b"data_keys" in dump

    await _erase(db, alice.id)

    assert db.keystore.share(alice.id) is None
    assert alice.id in db.keystore.erased()
    for suffix in ("", "-journal", "-wal"):
        assert share not in _bytes_of(store.with_name(store.name + suffix)), suffix
    assert db.keystore.share(bob.id) is not None


async def test_a_rolled_back_erasure_keeps_the_share(db: Database) -> None:
    alice = await _patient(db, 521, ALICE)
    async with db.uow() as uow:
        savepoint = await uow.session.begin_nested()
        await uow.vault.destroy(alice.id)
        await savepoint.rollback()  # e.g. the update failed after the erasure started
        await uow.commit()
    async with db.uow() as uow:
        await uow.vault.destroy(alice.id)  # never committed
    assert db.keystore.share(alice.id) is not None
    async with db.uow() as uow:
        patient = await uow.patients.get(alice.id)
        assert patient is not None
        assert await uow.patients.get_field(patient, "name") == ALICE[0]


async def test_a_stop_between_commit_and_key_store_is_repaired_at_start(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await _patient(db, 531, ALICE)

    def broken(owners: object) -> int:
        raise KeyStoreError("key store: disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(db.keystore, "forget", broken)
        await _erase(db, alice.id)
    assert "key shares not deleted" in caplog.text
    assert db.keystore.share(alice.id) is not None  # lingering until the next start
    settled = await keys.settle_keystore(db)
    assert settled.forgotten == 1
    assert db.keystore.share(alice.id) is None
    assert (await keys.settle_keystore(db)).forgotten == 0


async def test_start_refuses_a_key_store_that_does_not_belong(
    db: Database, tmp_path: Path
) -> None:
    await _patient(db, 541, ALICE)
    other = Database(db.url, db.ring, keystore=KeyStore.open(tmp_path / "lost" / "keystore.db"))
    try:
        with pytest.raises(KeyStoreError, match="lacks the key shares"):
            await keys.settle_keystore(other)
    finally:
        await other.engine.dispose()
        other.keystore.close()


def test_every_ciphertext_column_has_an_owner_for_the_migration() -> None:
    covered = {(spec.table, c) for spec in keys.SEALED for c in spec.columns}
    every = {
        (t.name, c.name)
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if c.name.endswith("_enc")
    }
    assert every == covered


def _lose(store: Path) -> None:
    """The key store's files are gone (a lost disk)."""
    for suffix in ("", "-journal", ".lock"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)


async def _cli(args: list[str], data_dir: Path, db: Database) -> subprocess.CompletedProcess[str]:
    """``python bot.py ARGS`` against the test's data dir and database (tests/cli_runner.py: in
    this process, beside the test's own open database as beside a running bot)."""
    env = {} if db.sqlite else {"CARELINE_DATABASE_URL": db.url}
    return await run_cli_async(args, data_dir, **env)


async def test_legacy_owner_is_migrated_while_another_process_uses_it(
    db: Database, copies: Copies, tmp_path: Path
) -> None:
    legacy = await _legacy_patient(db, 551, ALICE)
    await _patient(db, 552, BOB)
    async with db.uow() as uow:  # the running bot reads the legacy owner (and caches the key)
        patient = await uow.patients.get(legacy.id)
        assert patient is not None
        assert await uow.patients.get_field(patient, "name") == ALICE[0]
    unprotected = await copies.take()

    out = await _cli(["keys", "migrate-shares"], tmp_path, db)
    assert out.returncode == 0, out.stderr
    assert "1 owner(s) moved under key shares (4 fields re-encrypted)" in out.stdout
    assert "1/1 100%" in out.stderr

    # The bot's cached legacy key is stale: it writes (first) and reads the migrated owner
    # correctly.
    async with db.uow() as uow:
        patient = await uow.patients.get(legacy.id)
        assert patient is not None
        await uow.patients.set_field(patient, "name", "Alice Renamed")
        assert await uow.patients.get_field(patient, "phone") == ALICE[1]
        await uow.commit()
    async with db.uow() as uow:
        key = await uow.session.get(DataKey, legacy.id)
        assert key is not None and key.key_version == SHARE_VERSION
        patient = await uow.patients.get(legacy.id)
        assert patient is not None and patient.name_enc is not None
        assert field_key_version(patient.name_enc) == SHARE_VERSION
        assert await uow.patients.get_field(patient, "name") == "Alice Renamed"
    protected = await copies.take()
    again = await _cli(["keys", "migrate-shares"], tmp_path, db)
    assert again.stdout.startswith("0 owner(s)")

    await _erase(db, legacy.id)
    tried, recovered = await _recover(protected, db.ring.path, _store_path(db), legacy.id)
    assert tried == 4 and recovered == 0
    # The limit, measured: a copy from before the migration still opens the owner.
    tried, recovered = await _recover(unprotected, db.ring.path, _store_path(db), legacy.id)
    assert tried == 4 and recovered > 0


async def test_backup_and_restore_round_trip(db: Database, tmp_path: Path) -> None:
    if not db.sqlite and not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("PostgreSQL client tools are not installed")
    alice = await _patient(db, 561, ALICE)
    await _patient(db, 562, BOB)
    backups = tmp_path / "backups"
    backups.mkdir()
    expired = backups / "keystore-20000101T000000Z.db"
    expired.write_bytes(b"an old key-store copy")

    plain = await _cli(["backup", str(backups)], tmp_path, db)
    assert plain.returncode == 0, plain.stderr
    assert "written" in plain.stdout and "holds no key shares" in plain.stdout
    assert "deleted key-store copy keystore-20000101T000000Z.db" in plain.stdout
    assert not list(backups.glob("keystore-*.db")), "no key-store copy without the flag"
    if db.sqlite:
        assert "copying database pages" in plain.stderr and "100%" in plain.stderr
    (copy,) = [*backups.glob("careline-*.db"), *backups.glob("careline-*.dump")]
    assert copy.stat().st_mode & 0o777 == 0o600

    with_store = await _cli(["backup", str(tmp_path / "secret"), "--with-keystore"], tmp_path, db)
    assert with_store.returncode == 0, with_store.stderr
    assert "WARNING" in with_store.stdout and "at most 7 days" in with_store.stdout
    (store_copy,) = (tmp_path / "secret").glob("keystore-*.db")
    assert store_copy.stat().st_mode & 0o777 == 0o600
    share = db.keystore.share(alice.id)
    assert share is not None and share in store_copy.read_bytes()

    await _erase(db, alice.id)

    busy = await _cli(["restore", str(backups)], tmp_path, db)
    assert busy.returncode == 1
    assert "refused" in busy.stderr and "stop the bot" in busy.stderr
    await db.dispose()  # the bot stops

    done = await _cli(["restore", str(backups)], tmp_path, db)
    assert done.returncode == 0, done.stderr
    assert "1 erased since the backup: unreadable, as promised" in done.stdout
    assert "checking 2 live data keys" in done.stdout
    assert "re-applying erasures" in done.stderr and "1/1 100%" in done.stderr
    if db.sqlite:
        assert "restoring database pages" in done.stderr

    async with db.uow() as uow:  # the pool reconnects to the restored database
        assert await uow.patients.get(alice.id) is None
        key = await uow.session.get(DataKey, alice.id)
        assert key is not None and key.wrapped is None
        bob = await uow.patients.by_tg_user(562)
        assert bob is not None and await uow.patients.get_field(bob, "name") == BOB[0]
        assert (
            await uow.session.scalar(
                text("SELECT count(*) FROM intakes WHERE patient_id = :p"), {"p": alice.id}
            )
            == 0
        )

    # The data dir's key store is lost: the key-store copy (taken before the erasure) goes back
    # in, and the erasure the database records is applied to it again at once.
    await db.dispose()
    _lose(tmp_path / "keystore.db")
    back = await _cli(["restore", "--keystore", str(store_copy)], tmp_path, db)
    assert back.returncode == 0, back.stderr
    assert "key store put back" in back.stdout and "0 erased since the backup" in back.stdout
    assert db.keystore.share(alice.id) is None
    async with db.uow() as uow:
        bob = await uow.patients.by_tg_user(562)
        assert bob is not None and await uow.patients.get_field(bob, "name") == BOB[0]


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
def test_the_erasure_promise_names_the_key_store_retention(locale: str) -> None:
    from locales import Translator

    tr = Translator(locale)
    for said in (tr.plain("delete.confirm"), tr.plain("delete.confirm_kept", kept="")):
        assert f"{keys.KEYSTORE_COPY_DAYS} " in said, said
