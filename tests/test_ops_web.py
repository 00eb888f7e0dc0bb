"""The pieces of the operations endpoints that need no running clinic (bot/ops_web.py):
the bounded ``kind`` label, the correlation id in log lines, and the queue figures read
from the database on both backends. tests/e2e/test_ops_web.py runs them in a clinic."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.logging import CURRENT_UPDATE, JsonFormatter
from bot.ops_web import kind_of, read_figures
from storage.models import utcnow
from storage.uow import Database


def test_the_kind_label_names_known_update_types_only() -> None:
    assert kind_of({"update_id": 1, "message": {}}) == "message"
    assert kind_of({"update_id": 2, "pre_checkout_query": {}}) == "pre_checkout_query"
    assert kind_of({"update_id": 3, "made_up_by_a_forger": {}}) == "other"
    assert kind_of({"update_id": 4}) == "other"


def _line(msg: str) -> dict[str, object]:
    record = logging.LogRecord("careline.test", logging.INFO, __file__, 1, msg, None, None)
    loaded: dict[str, object] = json.loads(JsonFormatter().format(record))
    return loaded


def test_log_lines_carry_the_update_being_processed() -> None:
    assert "update" not in _line("outside")
    token = CURRENT_UPDATE.set("patient:4711")
    try:
        assert _line("inside")["update"] == "patient:4711"
    finally:
        CURRENT_UPDATE.reset(token)
    assert "update" not in _line("after")


async def test_queue_figures_count_what_waits_and_for_how_long(db: Database) -> None:
    async def figures(later: timedelta = timedelta(0)) -> tuple[float, ...]:
        async with AsyncSession(db.engine) as session:
            f = await read_figures(session, utcnow() + later)
        return (
            f.inbox,
            f.inbox_oldest_s,
            f.outbox,
            f.outbox_oldest_s,
            f.events_due,
            f.scheduler_lag_s,
            f.imports_running,
        )

    assert await figures() == (0, 0, 0, 0, 0, 0, 0)
    now = utcnow()
    async with db.uow() as uow:
        await uow.inbox.store("patient", [{"update_id": 7, "message": {"text": "-"}}])
        await uow.outbox.enqueue("patient", 42, "sendMessage", {"chat_id": 42, "text": "-"})
        # deferred on purpose: waiting, but not yet due, so it does not age
        await uow.outbox.enqueue(
            "patient",
            43,
            "sendMessage",
            {"chat_id": 43, "text": "-"},
            not_before=now + timedelta(hours=1),
        )
        await uow.events.add("ops.test", "due", "p", now - timedelta(minutes=3))
        await uow.events.add("ops.test", "later", "p", now + timedelta(hours=1))
        await uow.commit()
    inbox, inbox_age, outbox, outbox_age, due, lag, imports = await figures(timedelta(minutes=1))
    assert (inbox, outbox, due, imports) == (1, 2, 1, 0)
    # a minute on: the update and the due call waited at least that long, the event 4 minutes
    assert 60 <= inbox_age < 3600
    assert 60 <= outbox_age < 3600
    assert 240 <= lag < 3600
