"""Storage on SQLite and PostgreSQL: encryption at rest, crypto-shredding, key rotation,
blind index, audit chain, inbox and outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from storage.audit import verify_chain
from storage.crypto import CryptoError, KeyRing
from storage.keys import rotate_master_key
from storage.models import AuditRecord, DataKey, Patient, utcnow
from storage.uow import Database


async def _patient(db: Database, tg: int = 42, name: str = "Alice Testpatient") -> str:
    async with db.uow() as uow:
        p = await uow.patients.add(Patient(tg_user_id=tg, locale="en", onboarding_state="done"))
        await uow.patients.set_field(p, "name", name)
        await uow.patients.set_field(p, "phone", "+15550100123")
        await uow.commit()
        return p.id


async def test_profile_round_trip_is_ciphertext_at_rest(db: Database) -> None:
    pid = await _patient(db)
    async with db.uow() as uow:
        raw = (
            await uow.session.execute(
                text("SELECT name_enc FROM patients WHERE id = :i"), {"i": pid}
            )
        ).scalar_one()
        assert b"Alice" not in bytes(raw)
        p = await uow.patients.get(pid)
        assert p is not None
        assert await uow.patients.get_field(p, "name") == "Alice Testpatient"


async def test_ciphertext_moved_to_another_row_fails(db: Database) -> None:
    a = await _patient(db, 1, "Alice Testpatient")
    b = await _patient(db, 2, "Bob Testpatient")
    async with db.uow() as uow:
        pa, pb = await uow.patients.get(a), await uow.patients.get(b)
        assert pa is not None and pb is not None
        pb.name_enc = pa.name_enc  # same key? no: different owners, and the row id is bound
        with pytest.raises(CryptoError):
            await uow.patients.get_field(pb, "name")
        pa.phone_enc, pa.name_enc = pa.name_enc, pa.phone_enc  # same row, other column
        with pytest.raises(CryptoError):
            await uow.patients.get_field(pa, "name")


async def test_blind_index_finds_phone_without_plaintext(db: Database) -> None:
    pid = await _patient(db)
    async with db.uow() as uow:
        found = await uow.patients.by_phone("+15550100123")
        assert found is not None and found.id == pid
        assert await uow.patients.by_phone("+15550100999") is None
        assert found.phone_index is not None and "5550100123" not in found.phone_index


async def test_erasure_destroys_the_data_key(db: Database) -> None:
    pid = await _patient(db)
    async with db.uow() as uow:
        p = await uow.patients.get(pid)
        assert p is not None
        saved = p.name_enc
        await uow.vault.destroy(pid)
        await uow.commit()
    async with db.uow() as uow:
        key = await uow.session.get(DataKey, pid)
        assert key is not None and key.wrapped is None and key.destroyed_at is not None
        assert saved is not None
        with pytest.raises(CryptoError):
            await uow.vault.open(pid, "patients", "name_enc", pid, saved)


async def test_rotation_rewraps_and_a_running_reader_follows(db: Database) -> None:
    ids = [await _patient(db, 100 + i, f"Patient Number{i}") for i in range(5)]
    # A second process (the CLI) holds its own copy of the ring and rotates.
    cli_ring = KeyRing.load(db.ring.path)
    cli = Database(db.url, cli_ring, **db.options)
    seen: list[tuple[int, int]] = []
    new_id, count = await rotate_master_key(
        cli, batch=2, progress=lambda d, t: seen.append((d, t))
    )
    await cli.dispose()
    assert new_id == 2
    assert count == 5
    assert seen[-1] == (5, 5)
    db.cache._keys.clear()  # the running bot meets keys wrapped under a master it never saw
    async with db.uow() as uow:
        rows = list(await uow.session.scalars(select(DataKey)))
        assert {r.master_key_id for r in rows} == {2}
        for pid in ids:
            p = await uow.patients.get(pid)
            assert p is not None
            assert (await uow.patients.get_field(p, "name") or "").startswith("Patient Number")


async def test_audit_chain_verifies_and_detects_tampering(db: Database) -> None:
    pid = await _patient(db)
    async with db.uow() as uow:
        for i in range(5):
            await uow.audit.record(f"patient:{pid}", "profile.update", "patient", pid, {"n": i})
        await uow.commit()
    async with db.uow() as uow:
        result = await verify_chain(uow.session)
        assert result.ok and result.checked == 5
    # The database itself refuses edits...
    async with db.uow() as uow:
        with pytest.raises(DBAPIError):
            await uow.session.execute(text("UPDATE audit_log SET actor = 'x' WHERE seq = 3"))
    # ...so an attacker must first remove the guard; the chain still gives them away.
    async with db.engine.begin() as conn:
        if db.sqlite:
            await conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        else:
            await conn.exec_driver_sql(
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"
            )
        await conn.exec_driver_sql("UPDATE audit_log SET action = 'record.view' WHERE seq = 3")
    async with db.uow() as uow:
        result = await verify_chain(uow.session)
    assert not result.ok
    assert result.broken_seq == 3


async def test_audit_detects_deleted_tail(db: Database) -> None:
    async with db.uow() as uow:
        for i in range(3):
            await uow.audit.record("system", "test", "x", str(i))
        await uow.commit()
    async with db.engine.begin() as conn:
        if db.sqlite:
            await conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        else:
            await conn.exec_driver_sql(
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"
            )
        await conn.exec_driver_sql("DELETE FROM audit_log WHERE seq = 3")
    async with db.uow() as uow:
        result = await verify_chain(uow.session)
        assert not result.ok and result.broken_seq == 3
        assert (
            await uow.session.scalar(select(AuditRecord.seq).order_by(AuditRecord.seq.desc()))
        ) == 2


async def test_inbox_ignores_replayed_update_ids(db: Database) -> None:
    updates = [{"update_id": i, "message": {"text": f"secret {i}"}} for i in (1, 2, 3)]
    async with db.uow() as uow:
        assert len(await uow.inbox.store("patient", updates)) == 3
        await uow.commit()
    async with db.uow() as uow:
        assert len(await uow.inbox.store("patient", [*updates[1:], {"update_id": 4}])) == 1
        assert len(await uow.inbox.store("doctor", updates[:1])) == 1  # per bot
        await uow.commit()
    async with db.uow() as uow:
        rows = await uow.inbox.pending(10)
        assert [(r.bot, r.update_id) for r in rows] == [
            ("patient", 1),
            ("patient", 2),
            ("patient", 3),
            ("patient", 4),
            ("doctor", 1),
        ]
        assert await uow.inbox.payload(rows[0]) == updates[0]
        assert all(b"secret" not in (r.payload_enc or b"") for r in rows)
        await uow.inbox.finish([r.id for r in rows], "done")
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.inbox.count("pending") == 0


async def test_outbox_payload_is_encrypted(db: Database) -> None:
    async with db.uow() as uow:
        row = await uow.outbox.enqueue(
            "patient", 5, "sendMessage", {"chat_id": 5, "text": "Hi Alice"}
        )
        await uow.commit()
        rid = row.id
    async with db.uow() as uow:
        [due] = await uow.outbox.due(utcnow(), 10)
        assert due.id == rid
        assert b"Alice" not in (due.payload_enc or b"")
        assert (await uow.outbox.params(due))["text"] == "Hi Alice"


async def test_update_id_reused_after_a_week_is_a_new_update(db: Database) -> None:
    from datetime import timedelta

    from sqlalchemy import update as sql_update

    from storage.models import InboxUpdate

    async with db.uow() as uow:
        [rid] = await uow.inbox.store("patient", [{"update_id": 7, "message": {"text": "a"}}])
        await uow.inbox.finish([rid], "done")
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.inbox.store("patient", [{"update_id": 7}]) == []  # a replay
        await uow.session.execute(
            sql_update(InboxUpdate).values(received_at=utcnow() - timedelta(days=8))
        )
        await uow.commit()
    async with db.uow() as uow:
        assert len(await uow.inbox.store("patient", [{"update_id": 7, "message": {}}])) == 1
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.inbox.count() == 1
        assert await uow.inbox.count("pending") == 1


async def test_two_transactions_creating_the_same_data_key_agree(db: Database) -> None:
    """The first key of an owner, created by two transactions at once (PostgreSQL; SQLite
    has one writer): the second reads the first's key instead of failing."""
    import asyncio

    from storage.vault import KeyCache, Vault

    created = asyncio.Event()
    if db.sqlite:
        # One writer at a time: the second transaction starts after the first committed, and
        # (with an empty cache, like another process) must find and use that key.
        created.set()

    async def first() -> bytes:
        async with db.uow() as uow:
            blob = await uow.vault.seal("race-owner", "t", "c", "r", "one")
            created.set()
            await asyncio.sleep(0.3)  # hold the uncommitted key while the other one tries
            await uow.commit()
            return blob

    async def second() -> str:
        await created.wait()
        if db.sqlite:
            await asyncio.sleep(0.5)  # let first() commit (it holds the only writer slot)
        async with db.uow() as uow:
            uow.vault = Vault(uow.session, db.ring, KeyCache())  # no shared cache: a new process
            blob = await uow.vault.seal("race-owner", "t", "c", "r2", "two")
            await uow.commit()
        async with db.uow() as uow:
            fresh = Vault(uow.session, db.ring, KeyCache())
            return await fresh.open("race-owner", "t", "c", "r2", blob)

    blob1, text2 = await asyncio.gather(first(), second())
    assert text2 == "two"
    async with db.uow() as uow:
        fresh = Vault(uow.session, db.ring, KeyCache())
        assert await fresh.open("race-owner", "t", "c", "r", blob1) == "one"
