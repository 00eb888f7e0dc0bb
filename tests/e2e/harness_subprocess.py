"""The real bot as a separate process (`python bot.py run`) against an in-process emulator,
plus read-only looks at its SQLite database. Used by the kill and graceful-stop tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from bot.sandbox.emulator import BotApiEmulator
from tests.e2e.conftest import DOCTOR_BOT, DOCTOR_TOKEN, PATIENT_BOT, PATIENT_TOKEN

REPO_ROOT = Path(__file__).resolve().parents[2]
BOTS = (PATIENT_BOT, DOCTOR_BOT)


class BotProcess:
    """Starts, kills and stops `python bot.py run`; output goes to one log file."""

    def __init__(
        self, data_dir: Path, api_url: str, *, extra_env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "bot.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARELINE_")}
        env.update(
            {
                "CARELINE_PATIENT_BOT_TOKEN": PATIENT_TOKEN,
                "CARELINE_DOCTOR_BOT_TOKEN": DOCTOR_TOKEN,
                "CARELINE_TELEGRAM_API_URL": api_url,
                "CARELINE_DATA_DIR": str(data_dir),
                "CARELINE_OUTBOX_PER_CHAT_PER_S": "200",
                "CARELINE_OUTBOX_PER_CHAT_BURST": "50",
                "CARELINE_OUTBOX_GLOBAL_PER_S": "1000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def db_path(self) -> Path:
        """The SQLite database the bot writes."""
        return self.data_dir / "careline.db"

    def start(self) -> None:
        """Spawn a new bot process (the previous one must be gone)."""
        assert self.proc is None or self.proc.poll() is not None, "bot still running"
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.time():.3f} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "bot.py", "run"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def running(self) -> bool:
        """Is the current process alive?"""
        return self.proc is not None and self.proc.poll() is None

    async def wait_exit(self, within: float) -> int:
        """Wait (without blocking the event loop, which also serves the emulator) for the
        process to exit; returns its exit code."""
        assert self.proc is not None
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"bot did not exit within {within}s:\n{self.log_tail()}")
            await asyncio.sleep(0.01)
        return code

    async def kill(self) -> int:
        """SIGKILL the process and reap it; returns its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return await self.wait_exit(10.0)

    async def terminate(self, within: float = 15.0) -> int:
        """SIGTERM the process and wait for it to exit; returns its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(within)

    def cleanup(self) -> None:
        """Make sure no process is left behind (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the bot's output, for assertion messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])


def get_updates_calls(emulator: BotApiEmulator) -> dict[str, int]:
    """How many getUpdates calls each bot has made so far."""
    stats = emulator.stats()["bots"]
    return {
        name: int(stats[name]["methods"].get("getUpdates", {}).get("calls", 0)) for name in BOTS
    }


async def wait_polling(
    emulator: BotApiEmulator, before: dict[str, int], proc: BotProcess, within: float = 90.0
) -> None:
    """Wait until both bots made a getUpdates call after ``before`` (the process is up)."""
    deadline = time.monotonic() + within
    while True:
        now = get_updates_calls(emulator)
        if all(now[b] > before[b] for b in BOTS):
            return
        if not proc.running():
            raise AssertionError(f"bot process exited during start-up:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"bot did not start polling in {within}s:\n{proc.log_tail()}")
        await asyncio.sleep(0.02)


def pending_updates(emulator: BotApiEmulator) -> int:
    """Updates the emulator still holds (not yet acknowledged by the bots)."""
    stats = emulator.stats()["bots"]
    return sum(int(stats[name]["pending_updates"]) for name in BOTS)


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one read-only query against the bot's SQLite database."""
    uri = f"{db_path.as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        return list(conn.execute(sql, params).fetchall())


def backlog(db_path: Path) -> tuple[int, int]:
    """(inbox rows still pending, outbox rows pending or sending)."""
    if not db_path.exists():
        return (1, 1)
    inbox = query(db_path, "SELECT count(*) FROM inbox WHERE status = 'pending'")[0][0]
    outbox = query(db_path, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")[
        0
    ][0]
    return int(inbox), int(outbox)


async def wait_drained(
    emulator: BotApiEmulator, proc: BotProcess, expected_updates: int, within: float = 40.0
) -> None:
    """Wait until every update is acknowledged and processed and the outbox is empty."""
    deadline = time.monotonic() + within
    while True:
        stored = 0
        if proc.db_path.exists():
            stored = int(query(proc.db_path, "SELECT count(*) FROM inbox")[0][0])
        if (
            pending_updates(emulator) == 0
            and stored >= expected_updates
            and backlog(proc.db_path) == (0, 0)
        ):
            return
        if not proc.running():
            raise AssertionError(f"bot process died while draining:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not drained after {within}s: emulator pending={pending_updates(emulator)}, "
                f"inbox rows={stored}/{expected_updates}, backlog={backlog(proc.db_path)}\n"
                f"{proc.log_tail()}"
            )
        await asyncio.sleep(0.1)
