"""Several workers sharing one PostgreSQL inbox and outbox (issue 19): each chat's updates
are processed in order and once, whichever worker received them; a worker killed while it
holds a chat gives it up at once (its connection dies with it) and another worker processes
that chat's updates, the interrupted one included, in order; a graceful stop leaves no chat
held; a chat's calls are sent in order across senders, an urgent one still passing routine
ones. Plus the checks that keep a shared inbox off SQLite and polling."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Message
from sqlalchemy import func, select, text

from bot.cli import main as cli_main
from bot.settings import Settings
from bot.telegram.processor import BotRuntime, UpdateProcessor
from storage.crypto import KeyRing
from storage.models import InboxUpdate, utcnow
from storage.uow import Database
from tests.conftest import PG_URL, drop_database, make_database
from tests.e2e.shared_worker import TOKEN

REPO_ROOT = Path(__file__).resolve().parents[2]
pg_only = pytest.mark.skipif(
    PG_URL is None, reason="CARELINE_TEST_POSTGRES_URL is not set (no PostgreSQL)"
)


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Database]:
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    db, name = await make_database("postgres", tmp_path, ring)
    try:
        yield db
    finally:
        await drop_database(db, name)


def update(update_id: int, chat: int, words: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "Tess"},
            "text": words,
        },
    }


def worker(db: Database, name: str, seen: list[tuple[str, int, str]]) -> UpdateProcessor:
    """A shared-inbox processor whose only handler records (worker, chat, text)."""
    dp = Dispatcher()

    @dp.message()
    async def on_message(message: Message) -> None:
        await asyncio.sleep(0)  # let the other workers in between
        seen.append((name, message.chat.id, message.text or ""))

    return UpdateProcessor(db, {"patient": BotRuntime("patient", Bot(TOKEN), dp)}, shared=True)


async def until(check: Callable[[], Any], within: float = 30.0) -> None:
    """Wait (polling) until ``check()`` is true."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def pending(db: Database) -> int:
    async with db.uow() as uow:
        return int(
            await uow.session.scalar(
                select(func.count())
                .select_from(InboxUpdate)
                .where(InboxUpdate.status == "pending")
            )
            or 0
        )


async def advisory_locks(db: Database) -> int:
    async with db.uow() as uow:
        return int(
            await uow.session.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            )
            or 0
        )


@pg_only
async def test_three_workers_keep_each_chats_order_and_process_every_update_once(
    pg: Database,
) -> None:
    seen: list[tuple[str, int, str]] = []
    workers = [worker(pg, f"w{i}", seen) for i in range(3)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    chats = [5000 + c for c in range(12)]
    uid = 0
    for i in range(15):
        batch = []
        for c in chats:
            uid += 1
            # any worker may receive any update (Telegram's connections, the proxy)
            batch.append(workers[(i + c) % 3].store("patient", [update(uid, c, f"m{i}")]))
        assert sum(await asyncio.gather(*batch)) == len(chats)
    await until(lambda: _done(seen, len(chats) * 15))
    for w in workers:
        await w.stop()
    await asyncio.gather(*tasks)

    for c in chats:
        said = [t for _, chat, t in seen if chat == c]
        assert said == [f"m{i}" for i in range(15)], f"chat {c}: {said}"
    assert len({name for name, _, _ in seen}) >= 2  # the work was shared
    assert await pending(pg) == 0
    assert await advisory_locks(pg) == 0  # a stop leaves no chat held
    # A replay of a stored update is still ignored by every worker.
    assert await workers[1].store("patient", [update(1, chats[0], "m0")]) == 0


async def _done(seen: list[Any], n: int) -> bool:
    return len(seen) >= n


@pg_only
async def test_a_killed_worker_gives_up_its_chat_and_another_processes_it_in_order(
    pg: Database, tmp_path: Path
) -> None:
    record, marker = tmp_path / "killed.txt", tmp_path / "blocked"
    url = pg.engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the test awaits it
        [sys.executable, "-m", "tests.e2e.shared_worker", url, str(tmp_path / "keys.json"),
         str(record), str(marker)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    seen: list[tuple[str, int, str]] = []
    survivor = worker(pg, "survivor", seen)
    try:
        # The other worker receives the chat's updates first and holds the chat on "block".
        assert await survivor.store("patient", [update(1, 77, "a"), update(2, 77, "block"),
                                                update(3, 77, "c")]) == 3  # fmt: skip
        await until(lambda: _exists(marker))
        # Meanwhile this worker processes other chats, never chat 77.
        await survivor.store("patient", [update(4, 88, "other")])
        assert await survivor.process_pending() == 1
        assert await survivor.process_pending() == 0  # 77 is held
        assert seen == [("survivor", 88, "other")]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # Its connection died with it: the chat is free and nothing it did was committed.
        await until(lambda: _processes(survivor))
        assert [t for _, chat, t in seen if chat == 77] == ["a", "block", "c"]
        assert record.read_text().split("\n")[:2] == ["77 a", "77 block"]  # it got that far
        assert await pending(pg) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _exists(path: Path) -> bool:
    return path.exists()  # noqa: ASYNC240 - a stat in a test's wait


async def _processes(p: UpdateProcessor) -> bool:
    return await p.process_pending() > 0


@pg_only
async def test_a_chats_calls_are_claimed_in_order_across_senders(pg: Database) -> None:
    now = utcnow()
    async with pg.uow() as uow:
        first = await uow.outbox.enqueue(
            "patient", 42, "sendMessage", {"chat_id": 42, "text": "1"}
        )
        second = await uow.outbox.enqueue(
            "patient", 42, "sendMessage", {"chat_id": 42, "text": "2"}
        )
        urgent = await uow.outbox.enqueue(
            "patient", 42, "sendMessage", {"chat_id": 42, "text": "call 112"}, priority=0
        )
        other = await uow.outbox.enqueue(
            "patient", 43, "sendMessage", {"chat_id": 43, "text": "x"}
        )
        await uow.commit()
    lease = timedelta(seconds=60)
    async with pg.uow() as uow:
        # Another sender may not take the second call while the first still waits...
        got = await uow.outbox.claim_many([second.id, urgent.id, other.id], now, lease,
                                          in_order=True)  # fmt: skip
        # ...but the urgent one passes routine calls, and other chats are not held up.
        assert set(got) == {urgent.id, other.id}
        assert set(await uow.outbox.claim_many([first.id], now, lease, in_order=True)) == {
            first.id
        }
        # While the first is in flight (another sender's), the second still waits.
        assert await uow.outbox.claim_many([second.id], now, lease, in_order=True) == {}
        # Calls without a chat (callback answers, chat 0) are not one chat: never held back.
        answers = [
            await uow.outbox.enqueue("patient", 0, "answerCallbackQuery", {"callback_query_id": q})
            for q in ("a", "b")
        ]
        got = await uow.outbox.claim_many([a.id for a in answers], now, lease, in_order=True)
        assert set(got) == {a.id for a in answers}
        await uow.outbox.record([{"id": first.id, "status": "sent", "at": now}])
        assert set(await uow.outbox.claim_many([second.id], now, lease, in_order=True)) == {
            second.id
        }
        await uow.commit()


def test_a_shared_inbox_needs_postgres_and_webhooks(tmp_path: Path) -> None:
    base: dict[str, Any] = {"_env_file": None, "data_dir": tmp_path, "shared_inbox": True}
    with pytest.raises(ValueError, match="PostgreSQL"):
        Settings(**base, webhook_url="https://clinic.example.org", webhook_secret="s" * 20)
    with pytest.raises(ValueError, match="webhook"):
        Settings(**base, database_url="postgresql+asyncpg://careline@db/careline")
    Settings(**base, database_url="postgresql+asyncpg://careline@db/careline",
             webhook_url="https://clinic.example.org", webhook_secret="s" * 20)  # fmt: skip


def test_run_with_workers_refuses_polling_and_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in [k for k in os.environ if k.startswith("CARELINE_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CARELINE_PATIENT_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("CARELINE_DOCTOR_BOT_TOKEN", "100002:shared-worker-token-0002")
    assert cli_main(["run", "--workers", "2"]) == 2
    assert "polling is one worker" in capsys.readouterr().err
    monkeypatch.setenv("CARELINE_WEBHOOK_URL", "https://clinic.example.org")
    monkeypatch.setenv("CARELINE_WEBHOOK_SECRET", "s" * 20)
    assert cli_main(["run", "--workers", "2"]) == 2
    assert "SQLite serves one process" in capsys.readouterr().err


@pg_only
async def test_one_worker_leads_the_bulk_calls_and_another_takes_over_when_it_goes(
    pg: Database,
) -> None:
    from bot.telegram.sender import BulkLeader

    leaders = [BulkLeader(pg) for _ in range(3)]
    try:
        assert [await x.try_once() for x in leaders] == [True, False, False]
        assert [await x.try_once() for x in leaders] == [True, False, False]  # held
        await leaders[0].stop()  # a graceful stop (a kill closes the connection the same way)
        assert [await x.try_once() for x in leaders[1:]] == [True, False]
    finally:
        for x in leaders:
            await x.stop()
