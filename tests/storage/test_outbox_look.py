"""The sender's one-statement look at the outbox and its one-statement claim, on each backend:
the same answers as the separate queries they replace."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from storage.models import OutboxMessage, utcnow
from storage.uow import Database


async def test_look_matches_due_keys_heads_and_wakeup(db: Database) -> None:
    now = utcnow()
    async with db.uow() as uow:
        a = await uow.outbox.enqueue("doctor", 10, "sendMessage", {"text": "a"}, priority=5)
        b = await uow.outbox.enqueue("doctor", 11, "sendMessage", {"text": "b"}, priority=3)
        c = await uow.outbox.enqueue("doctor", 10, "sendMessage", {"text": "c"}, priority=5)
        later = await uow.outbox.enqueue(
            "patient", 20, "sendMessage", {"text": "d"}, not_before=now + timedelta(seconds=30)
        )
        sooner = await uow.outbox.enqueue(
            "patient", 20, "sendMessage", {"text": "e"}, not_before=now + timedelta(seconds=5)
        )
        done = await uow.outbox.enqueue("doctor", 12, "sendMessage", {"text": "f"})
        await uow.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == done.id).values(status="sent")
        )
        await uow.commit()
    async with db.uow() as uow:
        keys, heads, wakeup = await uow.outbox.look(now, 100)
        assert keys == await uow.outbox.due_keys(now, 100)
        assert [k.id for k in keys] == [b.id, a.id, c.id]
        assert heads == await uow.outbox.deferred_heads(now) == {("patient", 20): later.id}
        assert wakeup is not None and sooner.not_before is not None
        gap = wakeup.replace(tzinfo=None) - sooner.not_before.replace(tzinfo=None)
        assert abs(gap) < timedelta(milliseconds=1)  # the earliest deferred call
        keys, _, _ = await uow.outbox.look(now, 1, exclude=[b.id])
        assert [k.id for k in keys] == [a.id]


async def test_claim_counts_the_attempt_and_returns_the_payload(db: Database) -> None:
    async with db.uow() as uow:
        row = await uow.outbox.enqueue("doctor", 10, "sendMessage", {"text": "Hi"})
        await uow.commit()
    async with db.uow() as uow:
        claimed = await uow.outbox.claim(row.id)
        assert claimed is not None
        attempts, blob = claimed
        assert attempts == 1 and blob is not None
        assert await uow.outbox.open_payload(row.id, blob) == {"text": "Hi"}
        await uow.commit()
    async with db.uow() as uow:
        got = await uow.session.get(OutboxMessage, row.id)
        assert got is not None and got.status == "sending" and got.attempts == 1
        await uow.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(status="sent")
        )
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.outbox.claim(row.id) is None  # no longer waiting
        assert await uow.outbox.claim(987654) is None


async def test_a_row_being_sent_is_not_taken_by_another_sender_until_its_lease_ends(
    db: Database,
) -> None:
    """Two senders (two processes on PostgreSQL): the second neither sees nor claims a row
    the first is sending; once the first's lease ran out (it died), the row is due again."""
    from datetime import timedelta

    from storage.models import utcnow

    now = utcnow()
    async with db.uow() as uow:
        row = await uow.outbox.enqueue("patient", 10, "sendMessage", {"text": "Hi"})
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.outbox.claim(row.id, now, timedelta(seconds=60)) is not None
        await uow.commit()
    async with db.uow() as uow:
        keys, _, _ = await uow.outbox.look(now + timedelta(seconds=5), 100)
        assert keys == []
        assert await uow.outbox.claim(row.id, now + timedelta(seconds=5)) is None
        later = now + timedelta(seconds=61)
        keys, _, _ = await uow.outbox.look(later, 100)
        assert [k.id for k in keys] == [row.id]
        claimed = await uow.outbox.claim(row.id, later)
        assert claimed is not None and claimed[0] == 2  # the second attempt
        await uow.commit()
    async with db.uow() as uow:  # a restart of the one SQLite sender releases at once
        assert await uow.outbox.release_leases() == 1
        keys, _, _ = await uow.outbox.look(later, 100)
        assert [k.id for k in keys] == [row.id]
