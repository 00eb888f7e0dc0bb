"""The audit log against an insider (issue 14): every tamper case of the security review,
played on SQLite and PostgreSQL, is reported by ``python bot.py audit verify`` — exit 1 and
the kind named — while an untouched log verifies. Also: the keyed chain's writer (checkpoint
cadence, savepoints, the file's mode), records from before keyed chaining, and the
regulator's export."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Executable, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import audit_checkpoints as checkpoints
from storage import clock
from storage.audit import KEYED, checkpoint_now, link_hash, verify_chain, verify_log
from storage.crypto import KeyRing
from storage.models import AuditRecord
from storage.uow import Database
from tests.cli_runner import run_cli_async
from tests.e2e.conftest import start_clinic, stop_clinic

RECORDS = 10
COMMITS = ((1, 4), (5, 7), (8, 10))  # three transactions, as a working day writes them


async def _write(db: Database, first: int, last: int) -> None:
    async with db.uow() as uow:
        for n in range(first, last + 1):
            await uow.audit.record("doctor:d0c7", "record.view", "patient", f"p{n}", {"n": n})
        await uow.commit()


async def _log(db: Database) -> None:
    """Ten records in three commits, then the shutdown checkpoint."""
    for first, last in COMMITS:
        await _write(db, first, last)
    await checkpoint_now(db)


async def _rows(db: Database) -> list[AuditRecord]:
    async with db.uow() as uow:
        rows = list(await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
        uow.session.expunge_all()  # plain values, kept after the unit ends
        return rows


async def _unguard(conn: AsyncConnection, sqlite: bool) -> None:
    """What an insider does first: take away the append-only triggers."""
    if sqlite:
        await conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        await conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
    else:
        await conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")


Statement = tuple[str, dict[str, object]] | Executable


async def _sql(db: Database, *statements: Statement) -> None:
    async with db.engine.begin() as conn:
        await _unguard(conn, db.sqlite)
        for statement in statements:
            if isinstance(statement, tuple):
                await conn.execute(text(statement[0]), statement[1])
            else:
                await conn.execute(statement)


def _row(seq: int, at: datetime, prev: str, digest: str, actor: str = "doctor:f00d") -> Statement:
    """A row written straight into the table, as an insider would."""
    return insert(AuditRecord).values(
        seq=seq,
        at=at,
        actor=actor,
        action="record.view",
        record_type="patient",
        record_id="p99",
        details="{}",
        prev_hash=prev,
        hash=digest,
    )


def _shift(first: int, by: int) -> list[Statement]:
    """Renumber records from ``first`` on by ``by`` (through negatives: no key collisions)."""
    return [
        (
            "UPDATE audit_log SET seq = -(seq + :by) WHERE seq >= :first",
            {"by": by, "first": first},
        ),
        ("UPDATE audit_log SET seq = -seq WHERE seq < 0", {}),
    ]


def _head(seq: int, digest: str) -> Statement:
    return ("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1", {"s": seq, "h": digest})


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


# -- the tamper cases: each takes the database and its data dir -----------------------------


async def edit_details(db: Database, data: Path) -> None:
    await _sql(db, ("UPDATE audit_log SET details = :d WHERE seq = 4", {"d": '{"n":40}'}))


async def _rehash(db: Database, first: int, last: int | None = None) -> None:
    """Edit record ``first`` and recompute its hash and the later ones (up to ``last``) with
    plain SHA-256, the links and the head too: the old chain's perfect forgery."""
    rows = await _rows(db)
    prev = rows[first - 2].hash if first > 1 else "0" * 64
    statements: list[Statement] = []
    for row in rows[first - 1 : last]:
        details = '{"n":40}' if row.seq == first else row.details
        digest = link_hash(
            row.seq,
            _utc(row.at),
            row.actor,
            row.action,
            row.record_type,
            row.record_id,
            details,
            prev,
        )
        statements.append(
            (
                "UPDATE audit_log SET details = :d, prev_hash = :p, hash = :h WHERE seq = :s",
                {"d": details, "p": prev, "h": digest, "s": row.seq},
            )
        )
        prev = digest
    if last is None:
        statements.append(_head(rows[-1].seq, prev))
    await _sql(db, *statements)


async def edit_and_rehash(db: Database, data: Path) -> None:
    await _rehash(db, 4)


async def rehash_everything(db: Database, data: Path) -> None:
    await _rehash(db, 1)


async def delete_middle(db: Database, data: Path) -> None:
    await _sql(db, ("DELETE FROM audit_log WHERE seq = 5", {}))


async def delete_and_renumber(db: Database, data: Path) -> None:
    rows = await _rows(db)
    await _sql(
        db,
        ("DELETE FROM audit_log WHERE seq = 5", {}),
        *_shift(6, -1),
        _head(RECORDS - 1, rows[-1].hash),
    )


async def swap(db: Database, data: Path) -> None:
    await _sql(
        db,
        ("UPDATE audit_log SET seq = -1 WHERE seq = 3", {}),
        ("UPDATE audit_log SET seq = 3 WHERE seq = 4", {}),
        ("UPDATE audit_log SET seq = 4 WHERE seq = -1", {}),
    )


async def cut_tail(db: Database, data: Path) -> None:
    await _sql(db, ("DELETE FROM audit_log WHERE seq > 7", {}))


async def cut_tail_reset_head(db: Database, data: Path) -> None:
    rows = await _rows(db)
    await _sql(db, ("DELETE FROM audit_log WHERE seq > 7", {}), _head(7, rows[6].hash))


async def wipe(db: Database, data: Path) -> None:
    await _sql(db, ("DELETE FROM audit_log", {}), ("DELETE FROM audit_head", {}))


async def insert_forged(db: Database, data: Path) -> None:
    rows = await _rows(db)
    fake = KEYED + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    await _sql(
        db,
        *_shift(5, 1),
        _row(5, datetime.now(UTC), rows[3].hash, fake),
        _head(RECORDS + 1, rows[-1].hash),
    )


async def append_forged(db: Database, data: Path) -> None:
    rows = await _rows(db)
    at = datetime.now(UTC).replace(microsecond=0)
    digest = link_hash(11, at, "doctor:f00d", "record.view", "patient", "p99", "{}", rows[-1].hash)
    await _sql(db, _row(11, at, rows[-1].hash, digest), _head(11, digest))


async def edit_checkpoint_file(db: Database, data: Path) -> None:
    """Cut the tail, reset the head, and rewrite the last checkpoint to match."""
    rows = await _rows(db)
    await cut_tail_reset_head(db, data)
    path = data / checkpoints.CHECKPOINT_FILE
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    last.update(seq=7, count=7, mac=rows[6].hash)
    lines[-1] = json.dumps(last, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")


async def delete_checkpoint_file(db: Database, data: Path) -> None:
    (data / checkpoints.CHECKPOINT_FILE).unlink()


Tamper = Callable[[Database, Path], Awaitable[None]]

CASES: list[tuple[Tamper, str, int | None]] = [
    (edit_details, "edited", 4),
    (edit_and_rehash, "rewritten", 4),
    (rehash_everything, "rewritten", 4),
    (delete_middle, "deleted", 5),
    (delete_and_renumber, "renumbered", 5),
    (swap, "reordered", 3),
    (cut_tail, "truncated", 8),
    (cut_tail_reset_head, "head-reset", 8),
    (wipe, "wiped", None),
    (insert_forged, "inserted", 5),
    (append_forged, "forged", 11),
    (edit_checkpoint_file, "checkpoint-edited", None),
    (delete_checkpoint_file, "checkpoint-missing", None),
]


@pytest.fixture
def cli(db: Database, tmp_path: Path) -> Callable[..., Awaitable[tuple[int, str]]]:
    """``python bot.py audit ...`` through the CLI's entry point (tests/cli_runner.py), on the
    test's database and data dir (the keys file and the checkpoints are the fixture's)."""
    env = {} if db.sqlite else {"CARELINE_DATABASE_URL": db.url}

    async def run(*args: str) -> tuple[int, str]:
        done = await run_cli_async(["audit", *args], tmp_path, **env)
        return done.returncode, done.stdout

    return run


async def test_an_untouched_log_verifies(
    db: Database, tmp_path: Path, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    await _log(db)
    code, out = await cli("verify")
    assert code == 0, out
    assert f"audit chain intact: {RECORDS} records verified ({RECORDS} with keyed MACs)" in out
    assert f"covers {RECORDS} records" in out
    assert all(row.hash.startswith(KEYED) for row in await _rows(db))


@pytest.mark.parametrize(("tamper", "kind", "seq"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_each_tamper_case_is_named_by_verify(
    db: Database,
    tmp_path: Path,
    cli: Callable[..., Awaitable[tuple[int, str]]],
    tamper: Tamper,
    kind: str,
    seq: int | None,
) -> None:
    await _log(db)
    assert (await cli("verify"))[0] == 0
    await tamper(db, tmp_path)
    code, out = await cli("verify")
    assert code == 1, out
    assert f"[{kind}]" in out, out
    if seq is not None:
        assert f"BROKEN at record {seq} [{kind}]" in out, out


async def test_the_old_plain_chain_would_have_passed(db: Database, tmp_path: Path) -> None:
    """The review's finding, kept as a contrast: after re-hashing with plain SHA-256 every
    link recomputes and chains (what the old check looked at); the keyed MAC catches it."""
    await _log(db)
    await edit_and_rehash(db, tmp_path)
    rows = await _rows(db)
    for before, row in itertools.pairwise(rows[3:]):
        assert row.prev_hash == before.hash
    for row in rows[3:]:
        fields = (row.actor, row.action, row.record_type, row.record_id, row.details)
        assert row.hash == link_hash(row.seq, _utc(row.at), *fields, row.prev_hash)
    async with db.uow() as uow:
        result = await verify_chain(uow.session)
    assert not result.ok and result.kind == "rewritten" and result.broken_seq == 4


# -- the writer ------------------------------------------------------------------------------


def _lines(data: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (data / checkpoints.CHECKPOINT_FILE).read_text().splitlines()]


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def moved_clock() -> Iterator[_Clock]:
    fixed = _Clock()
    restore = clock.use(fixed)
    yield fixed
    restore()


async def test_checkpoints_every_n_records_and_hourly(
    db: Database, tmp_path: Path, moved_clock: _Clock
) -> None:
    for n in range(1, 251):
        await _write(db, n, n)
    assert [line["seq"] for line in _lines(tmp_path)] == [1, 101, 201]
    moved_clock.now += timedelta(minutes=59)
    await _write(db, 251, 251)
    assert len(_lines(tmp_path)) == 3
    moved_clock.now += timedelta(minutes=2)  # the last checkpoint is now over an hour old
    await _write(db, 252, 252)
    assert [line["seq"] for line in _lines(tmp_path)] == [1, 101, 201, 252]
    assert (tmp_path / checkpoints.CHECKPOINT_FILE).stat().st_mode & 0o777 == 0o600
    line = _lines(tmp_path)[-1]
    assert set(line) == {"seq", "mac", "at", "count", "kid", "chain", "signature"}
    assert line["count"] == 252 and line["at"] == moved_clock.now.isoformat(timespec="seconds")


async def test_a_rolled_back_savepoint_is_never_checkpointed(
    db: Database, tmp_path: Path, moved_clock: _Clock
) -> None:
    await _write(db, 1, 1)
    moved_clock.now += timedelta(hours=2)  # a checkpoint is due at the next commit
    async with db.uow() as uow:
        savepoint = await uow.session.begin_nested()
        await uow.audit.record("doctor:d0c7", "record.view", "patient", "p2")
        await savepoint.rollback()  # the handler failed: its record is gone
        await uow.commit()
    assert [line["seq"] for line in _lines(tmp_path)] == [1]
    async with db.uow() as uow:
        assert (await verify_chain(uow.session)).ok
    # A record in a savepoint that holds is checkpointed with its commit.
    async with db.uow() as uow:
        async with uow.session.begin_nested():
            await uow.audit.record("doctor:d0c7", "record.view", "patient", "p2")
        await uow.commit()
    assert [line["seq"] for line in _lines(tmp_path)] == [1, 2]


async def test_a_lost_checkpoint_file_is_started_again_at_the_next_commit(
    db: Database, tmp_path: Path, moved_clock: _Clock
) -> None:
    await _write(db, 1, 3)
    (tmp_path / checkpoints.CHECKPOINT_FILE).unlink()
    await _write(db, 4, 4)
    assert [line["seq"] for line in _lines(tmp_path)] == [4]


async def test_records_from_before_keyed_chaining_still_verify(
    db: Database, tmp_path: Path, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    """An installation upgraded with plain SHA-256 records in its table: they verify, the
    keyed chain continues from the last of them, and re-hashing them is caught."""
    prev = "0" * 64
    statements: list[Statement] = []
    for seq in (1, 2, 3):
        at = datetime(2029, 1, seq, 8, 30, 0, 250_000, tzinfo=UTC)
        digest = link_hash(seq, at, "system", "record.view", "patient", "p99", "{}", prev)
        statements.append(_row(seq, at, prev, digest, actor="system"))
        prev = digest
    statements.append(("INSERT INTO audit_head (id, seq, hash) VALUES (1, 3, :h)", {"h": prev}))
    await _sql(db, *statements)
    code, out = await cli("verify")
    assert code == 0 and "no checkpoints yet" in out, out
    await _write(db, 4, 6)
    code, out = await cli("verify")
    assert code == 0, out
    assert "6 records verified (3 with keyed MACs)" in out
    rows = await _rows(db)
    assert rows[3].prev_hash == rows[2].hash  # the keyed chain continues the plain one
    await _rehash(db, 2, 3)  # the plain records re-hashed: the first keyed one disowns them
    code, out = await cli("verify")
    assert code == 1 and "BROKEN at record 4 [rewritten]" in out, out


async def test_another_keys_file_is_told_apart_from_tampering(
    db: Database, tmp_path: Path
) -> None:
    """Verifying with a keys file whose secret differs (the same signing keys): the
    checkpoints say which chain key wrote the log, so this is not reported as an edit."""
    await _log(db)
    raw = json.loads(db.ring.path.read_text())
    raw["blind_index_key"] = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keys.json").write_text(json.dumps(raw))
    other = KeyRing.load(tmp_path / "other" / "keys.json")
    found = checkpoints.read(tmp_path / checkpoints.CHECKPOINT_FILE)
    async with db.uow() as uow:
        assert (await verify_log(uow.session, db.ring, found)).ok
        report = await verify_log(uow.session, other, found)
    assert [p.kind for p in report.problems] == ["wrong-key"]


# -- the regulator's copy --------------------------------------------------------------------


async def test_exported_checkpoints_prove_a_cut_the_data_dir_no_longer_shows(
    db: Database, tmp_path: Path, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    await _log(db)
    export = tmp_path / "regulator" / "checkpoints.json"
    export.parent.mkdir()
    code, out = await cli("checkpoints", "--export", str(export))
    assert code == 0, out
    assert "exported 2 checkpoint(s) and 1 public key(s)" in out
    doc = json.loads(export.read_text())
    # The regulator checks the signatures with nothing but the export and the documented
    # message format.
    for item in doc["checkpoints"]:
        public = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(doc["public_keys"][item["kid"]])
        )
        body = {k: v for k, v in item.items() if k != "signature"}
        message = (
            b"careline-audit-checkpoint/1\n"
            + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        )
        public.verify(base64.b64decode(item["signature"]), message)  # raises if not genuine
    assert doc["checkpoints"][-1]["seq"] == RECORDS

    # An insider with the database and the data dir: cut, reset, drop the checkpoint file.
    await cut_tail_reset_head(db, tmp_path)
    await delete_checkpoint_file(db, tmp_path)
    code, out = await cli("verify", "--checkpoints", str(export))
    assert code == 1 and "[head-reset]" in out, out

    doc["checkpoints"][-1].update(seq=7, count=7)  # and an edited copy is caught
    export.write_text(json.dumps(doc))
    code, out = await cli("verify", "--checkpoints", str(export))
    assert code == 1 and "[checkpoint-edited]" in out, out

    code, out = await cli("verify", "--checkpoints", str(tmp_path / "nowhere.json"))
    assert code == 2


# -- shutdown ------------------------------------------------------------------------------


async def test_a_graceful_stop_checkpoints_the_head(tmp_path: Path) -> None:
    """The records written since the last checkpoint are pinned when the bot stops."""
    clinic, schema = await start_clinic(tmp_path, "sqlite", io.StringIO())
    try:
        await _write(clinic.app.db, 1, 1)
        await _write(clinic.app.db, 2, 3)
        assert [line["seq"] for line in _lines(tmp_path)] == [1]
    finally:
        await stop_clinic(clinic, schema)
    assert [line["seq"] for line in _lines(tmp_path)] == [1, 3]
