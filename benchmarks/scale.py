"""Workers on one machine: ``bot.py run --workers N`` on PostgreSQL behind one webhook port.

    python -m benchmarks.scale [--levels 1,2,4] [--patients 500] [--chaos] [--wave 3000]
    python -m benchmarks.scale --quick            # about 3 minutes
    python -m benchmarks.scale --patients 10000 --wave 100000   # the full run of issue 19

Per level of N workers: a fresh PostgreSQL database (``CREATE DATABASE`` on the local server,
migrated once with ``bot.py migrate``), verified doctors and one active case per relaying
patient seeded through the project's flows (benchmarks/relay.py ``seed_cases``), then the real
``python bot.py run --workers N`` (N = 1: ``bot.py run`` with ``CARELINE_SHARED_INBOX`` on, the
same code path as each worker) in webhook mode on one shared port, against the Bot API
emulator in this process. The emulator posts each update on a new connection, so the kernel
(``SO_REUSEPORT``) spreads them over the workers as it spreads Telegram's connections.

Simulated patients (``--patients``, at most ``--concurrency`` at once): most go through the
whole onboarding (benchmarks/inbound.py's script, each answer checked), some then a full
intake; the others (``--relay-share``) write to their doctor in an active case, in bursts, each
message carrying its place in the chat (``scale-<patient>-r<seq>``), so the order of the
doctor's copies shows whether the chat's updates were processed in order. Counted: updates
processed per second (the inbox's done rows over the load), step latency (input -> answer, at
the client), relay latency (emulator accepted -> copy stored, both in the emulator), order
violations, lost messages (never relayed, or a step never answered) and duplicates (a copy or
an answer stored twice), and CPU seconds of the workers (the supervisor's process tree) and
of the PostgreSQL server's processes, per update. ``--chaos``: SIGKILL a random worker every
``--chaos-interval`` seconds (the supervisor starts it again).

The reminder wave (``--wave``): ``--wave-workers`` workers with Careline's default outbox
limits (30/s bulk) against the emulator with Telegram's limits on; due dose reminders seeded as
benchmarks/reminders.py does; a few talkers send /help before and during the wave. Figures:
reminders sent per second, 429s, reminders missing or doubled, reply p50/p99 before vs during.

Progress on stderr; the last stdout line is one JSON object (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.inbound import (
    DOCTOR_BOT,
    DOCTOR_TOKEN,
    PATIENT_BOT,
    PATIENT_TOKEN,
    Action,
    Patient,
    answer_test,
    careline_script,
    code_version,
    intake_script,
    log,
    machine_cpu,
    percentile,
)
from benchmarks.relay import TimedEmulator
from bot.sandbox.emulator import BotApiEmulator

if TYPE_CHECKING:
    from bot.sandbox.client import EmulatorClient
    from storage.uow import Database

REPO = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
MESSAGE_TAIL = "the cough is about the same as this morning"  # raises no red flag (relay.py)
_SEQ = re.compile(r"\bscale-(\d+)-r(\d+)\b")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
GOAL_EFFICIENCY = 0.8
TELEGRAM_PER_S = 30.0


def relay_text(patient: int, seq: int) -> str:
    """The text of relaying patient ``patient``'s ``seq``-th message (1-based)."""
    return f"scale-{patient}-r{seq} {MESSAGE_TAIL}"


def parse_relay(text: str | None) -> tuple[int, int] | None:
    """(patient, seq) of a benchmark relay text or its copy, else None."""
    m = _SEQ.search(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


# --- accounting (pure; tests/test_benchmark_scale.py) ------------------------------------------


def relay_accounting(sent: dict[int, int], copies: Sequence[tuple[int, int]]) -> dict[str, int]:
    """Order, losses and duplicates of relayed messages.

    ``sent``: patient -> how many messages it sent (seq 1..n, in that order); ``copies``: the
    (patient, seq) of each copy the doctors received, in the order they arrived. A copy whose
    seq is below one already received from the same patient is an order violation (a repeat of
    an already received seq counts as a duplicate, not as a violation); a sent seq never
    received is lost; a copy for a seq nobody sent is unknown."""
    counts: Counter[tuple[int, int]] = Counter()
    highest: dict[int, int] = {}
    violations = unknown = 0
    for patient, seq in copies:
        if not 1 <= seq <= sent.get(patient, 0):
            unknown += 1
            continue
        counts[(patient, seq)] += 1
        if counts[(patient, seq)] > 1:
            continue
        if seq < highest.get(patient, 0):
            violations += 1
        highest[patient] = max(highest.get(patient, 0), seq)
    lost = sum(1 for p, n in sent.items() for s in range(1, n + 1) if counts[(p, s)] == 0)
    duplicated = sum(c - 1 for c in counts.values())
    return {
        "order_violations": violations,
        "lost": lost,
        "duplicated": duplicated,
        "unknown": unknown,
        "received": sum(counts.values()),
    }


def duplicate_answers(chats: dict[int, list[str]]) -> int:
    """Bot messages stored twice: in a chat where every answer differs (one onboarding and
    at most one intake), a text seen k times is k - 1 duplicates."""
    return sum(c - 1 for texts in chats.values() for c in Counter(texts).values() if c > 1)


def efficiencies(throughput: dict[int, float], cores: int) -> dict[int, dict[str, float | None]]:
    """Scaling efficiency of each level against 1 worker: throughput(N) / (N x throughput(1)),
    and the same against the cores there are: throughput(N) / (min(N, cores) x throughput(1))."""
    base = throughput.get(1)
    out: dict[int, dict[str, float | None]] = {}
    for n, tp in throughput.items():
        if not base:
            out[n] = {"efficiency": None, "efficiency_per_core": None}
            continue
        out[n] = {
            "efficiency": round(tp / (n * base), 3),
            "efficiency_per_core": round(tp / (min(n, cores) * base), 3),
        }
    return out


def project(cpu_ms_per_update: float, pg_ms_per_update: float, cores: Sequence[int]) -> list[Any]:
    """On paper: updates/s on a machine with k cores if every core were busy with workers and
    PostgreSQL at the measured CPU per update (linear: lock waits and polling not modelled)."""
    total = cpu_ms_per_update + pg_ms_per_update
    if total <= 0:
        return []
    return [{"cores": k, "updates_per_s": round(k * 1000.0 / total, 1)} for k in cores]


# --- CPU from /proc ----------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of a process, its reaped children (cutime) and its live descendants."""
    fields = _stat(pid)
    if fields is None:
        return None
    total = sum(int(v) for v in fields[11:15]) / _TICK
    for child in children(pid):
        total += tree_cpu(child) or 0.0
    return total


def postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL server: its processes, plus the backends that exited
    (the postmaster's cutime). Other clients of the server count too."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm", encoding="ascii", errors="replace") as fh:
                if fh.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        fields = _stat(int(name))
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
        if fields[1] == "1" or _comm(int(fields[1])) != "postgres":  # the postmaster
            total += (int(fields[13]) + int(fields[14])) / _TICK
    return total


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class CpuMark:
    """One reading of every clock the figures need."""

    at: float
    workers: float
    pg: float
    own: float
    machine: tuple[float, float] | None

    @classmethod
    def now(cls, supervisor: int) -> CpuMark:
        """Read the clocks now."""
        return cls(
            time.monotonic(), tree_cpu(supervisor) or 0.0, postgres_cpu(), _own_cpu(),
            machine_cpu(),
        )  # fmt: skip


# --- the workers -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Workers:
    """``bot.py run --workers N`` as a real process (its stderr in a log file)."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env = env
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work / "workers.log"
        self.seen: set[int] = set()

    def migrate(self) -> None:
        """``bot.py migrate`` once for the database."""
        out = subprocess.run(
            [sys.executable, str(REPO / "bot.py"), "migrate"], env=self.env, cwd=self.work,
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"bot.py migrate failed: {out.stderr.decode()[-2000:]}")

    def start(self, n: int) -> None:
        """Start the supervisor (or, for one worker, the one shared-inbox process)."""
        cmd = [sys.executable, str(REPO / "bot.py"), "run"]
        if n > 1:
            cmd += ["--workers", str(n)]
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.work, stdout=subprocess.DEVNULL, stderr=err
            )

    @property
    def pid(self) -> int:
        """The supervisor's pid."""
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The live worker processes (the supervisor's spawned children; or, with one
        worker, the process itself)."""
        if self.proc is None:
            return []
        out = []
        for c in children(self.pid):
            try:
                with open(f"/proc/{c}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                out.append(c)
        self.seen.update(out)
        return out or [self.pid]

    def alive(self) -> bool:
        """Whether the supervisor still runs."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The end of the workers' log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM, wait; then kill what is left of what we started, by pid."""
        if self.proc is None:
            return
        left = set(self.worker_pids()) | self.seen
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in left - {self.proc.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def worker_env(
    base_url: str, db_url: str, work: Path, port: int, *, raised: bool
) -> dict[str, str]:
    """The workers' environment: webhook mode on a shared loopback port, our database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELINE_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "CARELINE_PATIENT_BOT_TOKEN": PATIENT_TOKEN,
            "CARELINE_DOCTOR_BOT_TOKEN": DOCTOR_TOKEN,
            "CARELINE_TELEGRAM_API_URL": base_url,
            "CARELINE_DATA_DIR": str(work),
            "CARELINE_KEYS_FILE": str(work / "keys.json"),
            "CARELINE_DATABASE_URL": db_url,
            "CARELINE_WEBHOOK_URL": f"http://127.0.0.1:{port}",
            "CARELINE_WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "CARELINE_WEBHOOK_HOST": "127.0.0.1",
            "CARELINE_WEBHOOK_PORT": str(port),
            "CARELINE_SHARED_INBOX": "true",
            "CARELINE_TIMEZONE": "UTC",
            "CARELINE_DEFAULT_LOCALE": "en",
            "CARELINE_LOG_LEVEL": "WARNING",
        }
    )
    if raised:  # as benchmarks/relay.py --limits off: measure processing, not pacing
        env.update(
            {
                "CARELINE_OUTBOX_GLOBAL_PER_S": "100000",
                "CARELINE_OUTBOX_PER_CHAT_PER_S": "10000",
                "CARELINE_OUTBOX_PER_CHAT_BURST": "10000",
            }
        )
    return env


async def _admin_sql(admin: str, sql: str) -> None:
    """One statement on the local server's admin connection (trust auth)."""
    import asyncpg  # type: ignore[import-untyped]  # no stubs; one call

    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(admin: str, name: str) -> None:
    """CREATE DATABASE on the local server."""
    await _admin_sql(admin, f'CREATE DATABASE "{name}"')


async def drop_database(admin: str, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE)."""
    await _admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def db_url_for(admin: str, name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the admin URL's server."""
    base = admin.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{base}/{name}"


async def pg_counters(db: Database) -> tuple[int, int]:
    """(transactions, rows read) of this database so far (pg_stat_database; every client)."""
    from sqlalchemy import text

    async with db.uow() as uow:
        row = (
            await uow.session.execute(
                text(
                    "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched "
                    "FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def inbox_done(db: Database) -> int:
    """Updates processed so far (the inbox's done rows)."""
    from sqlalchemy import func, select

    from storage.models import InboxUpdate

    async with db.uow() as uow:
        return int(
            await uow.session.scalar(
                select(func.count()).select_from(InboxUpdate).where(InboxUpdate.status == "done")
            )
            or 0
        )


# --- the load: emulator probe and simulated patients ------------------------------------------


class LoadProbe:
    """Sees, inside the emulator, relay messages accepted and their copies to the doctors, and
    every answer in the onboarding patients' chats."""

    def __init__(self) -> None:
        self.patient_bot_id = 0
        self.doctor_bot_id = 0
        self.doctor_of: dict[int, int] = {}  # relaying patient -> doctor's Telegram id
        self.accepted: dict[tuple[int, int], float] = {}
        self.delivered: dict[tuple[int, int], float] = {}
        self.copies: list[tuple[int, int]] = []
        self.misrouted = 0
        self.arrived: dict[int, asyncio.Event] = {}
        self.watch: set[int] = set()  # onboarding patients' Telegram ids
        self.answers: dict[int, list[str]] = {}

    def on_user_message(self, bot_id: int, text: str | None, now: float) -> None:
        """A simulated user's message was accepted."""
        got = parse_relay(text) if bot_id == self.patient_bot_id else None
        if got is not None:
            self.accepted.setdefault(got, now)

    def on_bot_message(self, bot_id: int, uid: int, text: str | None, now: float) -> None:
        """A bot's message was stored."""
        if bot_id == self.patient_bot_id:
            if uid in self.watch:
                self.answers.setdefault(uid, []).append(text or "")
            return
        got = parse_relay(text) if bot_id == self.doctor_bot_id else None
        if got is None:
            return
        self.copies.append(got)
        self.delivered.setdefault(got, now)
        if self.doctor_of.get(got[0]) != uid:
            self.misrouted += 1
        event = self.arrived.get(got[0])
        if event is not None:
            event.set()


def spread_webhooks(emulator: BotApiEmulator) -> None:
    """One connection per webhook post (no keep-alive), as Telegram's several connections
    would: the kernel then spreads the posts over the workers sharing the port. With one
    kept-alive connection every update would reach the same worker."""
    import aiohttp

    emulator._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


@dataclass
class LoadStats:
    """What the simulated patients saw."""

    steps: int = 0
    step_latency: list[float] = field(default_factory=list)
    unanswered: int = 0  # steps whose answer never came (lost)
    errors: list[str] = field(default_factory=list)
    onboardings: int = 0
    intakes: int = 0
    relay_sent: dict[int, int] = field(default_factory=dict)


async def act(client: EmulatorClient, p: Patient, action: Action) -> None:
    """Send one input of the script (as benchmarks/inbound.py's LoadClient does)."""
    if action.kind == "start":
        await client.start(p.uid, PATIENT_BOT)
    elif action.kind == "text":
        await client.send(p.uid, PATIENT_BOT, action.value(p))
    elif action.kind == "contact":
        await client.share_contact(p.uid, PATIENT_BOT, action.value(p))
    else:
        label = action.value(p)
        rows = (p.last.get("reply_markup") or {}).get("inline_keyboard") or []
        data = next(
            (b["callback_data"] for row in rows for b in row if b.get("text") == label), None
        )
        if data is None:
            raise LookupError(f"no button {label!r} on the last answer")
        await client.click(p.uid, PATIENT_BOT, int(p.last["message_id"]), str(data))


async def onboarder(
    client: EmulatorClient,
    probe: LoadProbe,
    stats: LoadStats,
    index: int,
    intake: bool,
    rng: random.Random,
    wait_s: float,
) -> None:
    """A new person: the whole onboarding, then perhaps one intake, each answer checked."""
    p = Patient(index=index)
    p.phone = f"+1555{index:07d}"  # fictional 555 numbers
    p.name = "Bench Patient " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    p.year = str(rng.randint(1940, 2006))
    p.sex = rng.choice(("female", "male", "other"))
    user = await client.create_user("Bench", language_code="en", phone_number=p.phone)
    p.uid = int(user["id"])
    probe.watch.add(p.uid)
    scripts = [careline_script()] + ([intake_script(p, echo=False)] if intake else [])
    for n, script in enumerate(scripts):
        for action in script:
            # The intake's last answer (the disposition) differs with the answers: any will do.
            test = None if action.name == "confirm" else answer_test(p, action)
            t = time.monotonic()
            try:
                await act(client, p, action)
                p.last = await client.wait_for(p.uid, PATIENT_BOT, test, timeout=wait_s)
            except TimeoutError as exc:
                stats.unanswered += 1
                stats.errors.append(f"step {action.name!r}: {str(exc)[:200]}")
                return
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                stats.errors.append(f"step {action.name!r}: {type(exc).__name__}: {exc}"[:300])
                return
            stats.steps += 1
            stats.step_latency.append(time.monotonic() - t)
        if n == 0:
            stats.onboardings += 1
        else:
            stats.intakes += 1


async def relayer(
    client: EmulatorClient,
    probe: LoadProbe,
    stats: LoadStats,
    r: int,
    uid: int,
    messages: int,
    burst: int,
    wait_s: float,
    rng: random.Random,
) -> None:
    """A patient in an active case writing to the doctor: bursts of ``burst`` messages sent
    back to back, then a wait for their copies, then a pause."""
    event = probe.arrived.setdefault(r, asyncio.Event())
    seq = 0
    while seq < messages:
        last = min(messages, seq + burst)
        while seq < last:
            seq += 1
            await client.send(uid, PATIENT_BOT, relay_text(r, seq))
            stats.relay_sent[r] = seq
        deadline = time.monotonic() + wait_s
        while (r, seq) not in probe.delivered and time.monotonic() < deadline:
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(0.0, deadline - time.monotonic()))
        await asyncio.sleep(rng.uniform(0.5, 1.5))


# --- one level ---------------------------------------------------------------------------------


@dataclass
class Options:
    """Command-line options."""

    levels: tuple[int, ...] = (1, 2, 4)
    patients: int = 500
    concurrency: int = 100
    relay_share: float = 0.3
    intake_share: float = 0.3
    relay_messages: int = 6
    burst: int = 3
    duration: float = 240.0  # no new patient starts after this
    drain: float = 150.0  # longer than the outbox lease (a killed worker's calls: 120 s)
    step_timeout: float = 150.0
    chaos: bool = False
    chaos_interval: float = 30.0
    wave: int = 3000
    wave_workers: tuple[int, ...] = (2,)
    talkers: int = 5
    talk_interval: float = 2.0
    talk_before: float = 15.0
    admin_url: str = ADMIN_URL
    seed: int = 1
    quick: bool = False
    report: str | None = None


async def _start_bench(
    opts: Options, n: int, emulator: BotApiEmulator, label: str, *, raised: bool
) -> tuple[Workers, Database, str, Path, tempfile.TemporaryDirectory[str]]:
    """A fresh database (migrated) and a work dir with the key file; workers not started."""
    from storage.crypto import KeyRing
    from storage.uow import Database

    base_url = await emulator.start("127.0.0.1", 0)
    spread_webhooks(emulator)
    tmp = tempfile.TemporaryDirectory(prefix="careline-scale-")
    work = Path(tmp.name)
    name = f"careline_scale_{label}_{n}_{secrets.token_hex(4)}"
    await create_database(opts.admin_url, name)
    url = db_url_for(opts.admin_url, name)
    ring, _ = KeyRing.load_or_create(work / "keys.json")
    workers = Workers(worker_env(base_url, url, work, free_port(), raised=raised), work)
    await asyncio.to_thread(workers.migrate)
    return workers, Database(url, ring), name, work, tmp


async def _wait_webhooks(emulator: BotApiEmulator, workers: Workers, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        bots = [emulator.find_bot(u) for u in (PATIENT_BOT, DOCTOR_BOT)]
        if all(b.webhook is not None for b in bots):
            return
        if not workers.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not set their webhooks:\n{workers.tail()}")
        await asyncio.sleep(0.2)


async def chaos_monkey(
    workers: Workers, interval: float, rng: random.Random, kills: list[dict[str, Any]]
) -> None:
    """SIGKILL a random worker every ``interval`` seconds."""
    while True:
        await asyncio.sleep(interval)
        pids = [p for p in workers.worker_pids() if p != workers.pid]
        if not pids:
            continue
        victim = rng.choice(pids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
            kills.append({"pid": victim, "at": time.monotonic()})
            log(f"  chaos: killed worker pid {victim} ({len(kills)} kills)")


async def run_level(opts: Options, n: int, level_no: int) -> dict[str, Any]:
    """One level: N workers, the patients, the figures."""
    import aiohttp

    from benchmarks.relay import SeedPatient, _settle, seed_cases
    from bot.sandbox.client import EmulatorClient
    from bot.sandbox.emulator import RateLimits

    rng = random.Random(opts.seed * 1009)  # the same patients and mix at every level
    probe = LoadProbe()
    emulator = TimedEmulator(probe, limits=RateLimits(enabled=False), seed=opts.seed + level_no)
    probe.patient_bot_id = int(
        emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")["id"]
    )
    probe.doctor_bot_id = int(
        emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")[
            "id"
        ]
    )
    n_relay = round(opts.patients * opts.relay_share)
    n_doctors = max(2, n_relay // 25)
    log(
        f"\n== {n} worker{'s' if n > 1 else ''}{' with chaos' if opts.chaos else ''}: "
        f"{opts.patients} patients ({n_relay} relaying to {n_doctors} doctors), "
        f"{opts.concurrency} at once =="
    )
    workers, db, name, _, tmp = await _start_bench(opts, n, emulator, "load", raised=True)
    out: dict[str, Any] = {"workers": n, "chaos": opts.chaos}
    try:
        doctors = [emulator.create_user("Doc", language_code="en").id for _ in range(n_doctors)]
        seeds = [
            SeedPatient(emulator.create_user("Relay", language_code="en").id,
                        f"Relay Patient {i}", i % n_doctors)
            for i in range(n_relay)
        ]  # fmt: skip
        t = time.monotonic()
        await seed_cases(db, doctors, seeds)
        for r, s in enumerate(seeds):
            probe.doctor_of[r] = doctors[s.doctor]
        log(f"seeded {n_relay} active cases in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        workers.start(n)
        await _wait_webhooks(emulator, workers, 120.0)
        await _settle(db)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            client = EmulatorClient(str(emulator.base_url), session=http, request_timeout=120)
            await asyncio.gather(*(client.start(uid, DOCTOR_BOT) for uid in doctors))
            await asyncio.gather(
                *(client.wait_for(uid, DOCTOR_BOT, timeout=120) for uid in doctors)
            )
            log(f"workers up in {time.monotonic() - t:.1f} s: pids {workers.worker_pids()}")
            out.update(await _load(opts, client, probe, workers, db, seeds, rng))
    except Exception:
        log(f"level {n} failed; the workers' log ends:\n{workers.tail()}")
        raise
    finally:
        await asyncio.to_thread(workers.stop)
        await emulator.stop()
        await db.dispose()
        await drop_database(opts.admin_url, name)
        tmp.cleanup()
    return out


async def _load(
    opts: Options,
    client: EmulatorClient,
    probe: LoadProbe,
    workers: Workers,
    db: Database,
    seeds: list[Any],
    rng: random.Random,
) -> dict[str, Any]:
    stats = LoadStats()
    roles = ["relay"] * len(seeds) + ["onboard"] * (opts.patients - len(seeds))
    rng.shuffle(roles)
    every = round(1 / opts.intake_share) if opts.intake_share > 0 else 0
    sem = asyncio.Semaphore(opts.concurrency)
    kills: list[dict[str, Any]] = []
    done0 = await inbox_done(db)
    m0 = CpuMark.now(workers.pid)
    load0 = os.getloadavg()
    t_stop = m0.at + opts.duration

    async def one(i: int, role: str, r: int) -> None:
        async with sem:
            if time.monotonic() > t_stop:
                return
            if role == "relay":
                await relayer(client, probe, stats, r, seeds[r].uid, opts.relay_messages,
                              opts.burst, opts.step_timeout, rng)  # fmt: skip
            else:
                intake = bool(every) and i % every == 0
                await onboarder(client, probe, stats, i, intake, rng,
                                opts.step_timeout)  # fmt: skip

    monkey = (
        asyncio.create_task(chaos_monkey(workers, opts.chaos_interval, rng, kills))
        if opts.chaos
        else None
    )
    tasks = []
    r = 0
    for i, role in enumerate(roles):
        tasks.append(asyncio.create_task(one(i, role, r)))
        r += role == "relay"
    samples: list[tuple[int, CpuMark, tuple[int, int]]] = [(done0, m0, await pg_counters(db))]
    sampler = asyncio.create_task(_sample(stats, probe, db, workers.pid, samples))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [r for r in results if isinstance(r, BaseException)]
    for exc in crashed[:3]:
        stats.errors.append("".join(traceback.format_exception(exc))[-400:])
    # Drain: copies still on their way (a killed worker's calls come back after their lease).
    t_loaded = time.monotonic()
    deadline = t_loaded + opts.drain
    while time.monotonic() < deadline:
        acc = relay_accounting(stats.relay_sent, probe.copies)
        if acc["lost"] == 0:
            break
        await asyncio.sleep(0.5)
    drained_s = time.monotonic() - t_loaded
    if monkey is not None:
        monkey.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monkey
    await asyncio.sleep(2.0)  # answers that may still be stored twice; a last sample
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    # The window ends at the first sample that saw the final count: the load's own length,
    # not the time its last patient spent waiting for an answer that never came.
    done1 = samples[-1][0]
    _, m1, pg1 = next(x for x in samples if x[0] == done1)
    pg0 = samples[0][2]
    window = m1.at - m0.at
    updates = done1 - done0
    acc = relay_accounting(stats.relay_sent, probe.copies)
    relay_lat = sorted(
        (probe.delivered[k] - probe.accepted[k]) * 1000
        for k in probe.delivered
        if k in probe.accepted
    )
    steps = sorted(x * 1000 for x in stats.step_latency)
    busy = (
        (m1.machine[0] - m0.machine[0]) / (m1.machine[1] - m0.machine[1])
        if m0.machine and m1.machine and m1.machine[1] > m0.machine[1]
        else None
    )
    worker_cpu, pg_cpu, own_cpu = m1.workers - m0.workers, m1.pg - m0.pg, m1.own - m0.own
    res = {
        "updates": updates,
        "window_s": round(window, 1),
        "updates_per_s": round(updates / window, 1) if window > 0 else 0.0,
        "step_p50_ms": _r(percentile(steps, 50)),
        "step_p99_ms": _r(percentile(steps, 99)),
        "relay_p50_ms": _r(percentile(relay_lat, 50)),
        "relay_p99_ms": _r(percentile(relay_lat, 99)),
        # the longest waits: a killed worker's calls wait out their lease (120 s)
        "step_max_ms": _r(steps[-1] if steps else None),
        "relay_max_ms": _r(relay_lat[-1] if relay_lat else None),
        "onboardings": stats.onboardings,
        "intakes": stats.intakes,
        "relay_messages": sum(stats.relay_sent.values()),
        "order_violations": acc["order_violations"],
        "lost": acc["lost"] + stats.unanswered,
        "lost_relay": acc["lost"],
        "unanswered_steps": stats.unanswered,
        "duplicated": acc["duplicated"] + duplicate_answers(probe.answers),
        "duplicated_relay": acc["duplicated"],
        "duplicated_answers": duplicate_answers(probe.answers),
        "unknown_copies": acc["unknown"],
        "misrouted": probe.misrouted,
        "kills": len(kills),
        # False: the supervisor gave up (5 deaths within a minute: --chaos-interval too short)
        "workers_alive": workers.alive(),
        "errors": len(stats.errors),
        "error_samples": stats.errors[:5],
        "drain_s": round(drained_s, 1),
        "cpu_s": {
            "workers": round(worker_cpu, 1),
            "postgres": round(pg_cpu, 1),
            "bench": round(own_cpu, 1),
        },
        "worker_ms_per_update": _r(1000 * worker_cpu / updates if updates else None, 2),
        "pg_ms_per_update": _r(1000 * pg_cpu / updates if updates else None, 2),
        "bench_ms_per_update": _r(1000 * own_cpu / updates if updates else None, 2),
        "machine_busy": round(busy, 3) if busy is not None else None,
        # the samplers' own two queries a second are in these too (a few per second)
        "pg_transactions_per_update": _r((pg1[0] - pg0[0]) / updates if updates else None, 1),
        "pg_rows_read_per_update": _r((pg1[1] - pg0[1]) / updates if updates else None, 0),
        "loadavg_at_start": [round(x, 2) for x in load0],
    }
    log(
        f"  {updates} updates in {window:.1f} s = {res['updates_per_s']}/s; steps p50 "
        f"{res['step_p50_ms']} ms p99 {res['step_p99_ms']} ms; relay p50 {res['relay_p50_ms']} "
        f"ms p99 {res['relay_p99_ms']} ms; order violations {res['order_violations']}, lost "
        f"{res['lost']}, duplicated {res['duplicated']}, kills {res['kills']}, errors "
        f"{res['errors']}\n  CPU per update: workers {res['worker_ms_per_update']} ms, "
        f"PostgreSQL {res['pg_ms_per_update']} ms, emulator+patients "
        f"{res['bench_ms_per_update']} ms; machine busy {res['machine_busy']}; PostgreSQL "
        f"transactions per update {res['pg_transactions_per_update']}, rows read per update "
        f"{res['pg_rows_read_per_update']}"
    )
    for sample in stats.errors[:3]:
        log(f"  error: {sample}")
    return res


async def _sample(
    stats: LoadStats,
    probe: LoadProbe,
    db: Database,
    pid: int,
    samples: list[tuple[int, CpuMark, tuple[int, int]]],
) -> None:
    """Every second: updates processed and the CPU clocks; progress every 10 s."""
    done0, m0, _ = samples[0]
    while True:
        await asyncio.sleep(1.0)
        samples.append((await inbox_done(db), CpuMark.now(pid), await pg_counters(db)))
        if len(samples) % 10 == 0:
            log(
                f"  +{time.monotonic() - m0.at:5.0f} s: {samples[-1][0] - done0} updates "
                f"processed, {stats.onboardings} onboardings, {stats.intakes} intakes, "
                f"{len(probe.copies)} relay copies"
            )  # fmt: skip


def _r(x: float | None, digits: int = 1) -> float | None:
    if x is None or x != x:  # nan
        return None
    return round(x, digits)


# --- the reminder wave -------------------------------------------------------------------------


async def run_wave(opts: Options, count: int) -> dict[str, Any]:
    """Due reminders for ``opts.wave`` patients at once, at Telegram's limits; talkers' replies
    before and during."""
    import aiohttp

    from benchmarks.reminders import (
        Probe,
        ReminderEmulator,
        floor_minute,
        help_prefix,
        seed_base,
        seed_due,
        talk,
    )
    from bot.sandbox.client import EmulatorClient
    from storage.crypto import KeyRing

    n = opts.wave
    log(f"\n== reminder wave: {n} due reminders, {count} workers, Telegram's limits on ==")
    probe = Probe(n)
    emulator = ReminderEmulator(probe, seed=opts.seed)  # Telegram's limits (RateLimits())
    probe.patient_bot_id = int(
        emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")["id"]
    )
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    probe.help_prefix = help_prefix()
    workers, db, name, _, tmp = await _start_bench(opts, count, emulator, "wave", raised=False)
    out: dict[str, Any] = {"reminders": n, "workers": count}
    stop_talk = asyncio.Event()
    try:
        talkers = [
            emulator.create_user("Talk", language_code="en").id for _ in range(opts.talkers)
        ]
        probe.talkers = set(talkers)
        ring = KeyRing.load_or_create(workers.work / "keys.json")[0]
        seeded = await seed_base(db, ring, n, 0, talkers, opts.seed)
        t = time.monotonic()
        workers.start(count)
        await _wait_webhooks(emulator, workers, 120.0)
        log(f"workers up in {time.monotonic() - t:.1f} s")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            client = EmulatorClient(str(emulator.base_url), session=http, request_timeout=120)
            talk_rng = random.Random(opts.seed)
            tasks = [
                asyncio.create_task(talk(client, probe, uid, opts.talk_interval, stop_talk,
                                         talk_rng))
                for uid in talkers
            ]  # fmt: skip
            await asyncio.sleep(opts.talk_before)
            t_seed = time.monotonic()
            # The minute before: every jittered event is already due (as reminders --quick).
            await seed_due(
                db, ring, seeded, floor_minute(datetime.now(UTC)) - timedelta(minutes=1)
            )
            t_due = time.monotonic()
            log(f"seeded {n} due reminders in {t_due - t_seed:.1f} s")
            limit = t_due + n / TELEGRAM_PER_S * 2 + 60
            m0 = CpuMark.now(workers.pid)
            next_report = t_due + 10
            while probe.delivered < n and time.monotonic() < limit:
                await asyncio.sleep(0.5)
                if time.monotonic() >= next_report:
                    log(f"  {probe.delivered} reminders delivered, "
                        f"{emulator.rate_limited()} 429s")  # fmt: skip
                    next_report += 10
            t_end = time.monotonic()
            m1 = CpuMark.now(workers.pid)
            await asyncio.sleep(3.0)  # a late duplicate still shows
            stop_talk.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        times = sorted(probe.delivered_times)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None
        before = sorted(
            (s.replied_at - s.accepted_at) * 1000 for s in probe.samples
            if s.replied_at is not None and s.accepted_at < t_seed
        )  # fmt: skip
        during = sorted(
            (s.replied_at - s.accepted_at) * 1000 for s in probe.samples
            if s.replied_at is not None and t_due <= s.accepted_at <= t_end
        )  # fmt: skip
        unanswered = sum(1 for s in probe.samples if s.replied_at is None)
        out.update(
            {
                "delivered": probe.delivered,
                "missing": sum(1 for c in probe.count if c == 0),
                "doubled": sum(c - 1 for c in probe.count if c > 1),
                "wrong_chat": probe.wrong_count,
                "send_per_s": _r(rate, 2),
                "send_ratio_to_30": _r(rate / TELEGRAM_PER_S, 3) if rate else None,
                "first_after_due_s": _r(times[0] - t_due if times else None, 1),
                "wave_s": _r(times[-1] - times[0] if len(times) > 1 else None, 1),
                "http_429": emulator.rate_limited(),
                "refused_by": dict(emulator.refusals),
                "reply_p50_before_ms": _r(percentile(before, 50)),
                "reply_p99_before_ms": _r(percentile(before, 99)),
                "reply_p50_during_ms": _r(percentile(during, 50)),
                "reply_p99_during_ms": _r(percentile(during, 99)),
                "replies_before": len(before),
                "replies_during": len(during),
                "replies_unanswered": unanswered,
                "worker_cpu_s": round(m1.workers - m0.workers, 1),
                "pg_cpu_s": round(m1.pg - m0.pg, 1),
            }
        )
        log(
            f"  {out['delivered']} of {n} delivered at {out['send_per_s']}/s "
            f"({out['send_ratio_to_30']} of 30/s), {out['http_429']} 429s "
            f"{out['refused_by']}, missing {out['missing']}, doubled {out['doubled']}; reply "
            f"p50/p99 before {out['reply_p50_before_ms']}/{out['reply_p99_before_ms']} ms, "
            f"during {out['reply_p50_during_ms']}/{out['reply_p99_during_ms']} ms"
        )
    except Exception:
        log(f"the wave failed; the workers' log ends:\n{workers.tail()}")
        raise
    finally:
        stop_talk.set()
        await asyncio.to_thread(workers.stop)
        await emulator.stop()
        await db.dispose()
        await drop_database(opts.admin_url, name)
        tmp.cleanup()
    return out


# --- all of it ---------------------------------------------------------------------------------


async def run(opts: Options) -> dict[str, Any]:
    """Every level, then the wave; returns the JSON line's object."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    log(
        f"scale benchmark: levels {list(opts.levels)}, {opts.patients} patients, chaos "
        f"{opts.chaos}, wave {opts.wave}; {cores} cores, load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other processes share this machine)"
    )
    levels = []
    for i, n in enumerate(opts.levels):
        levels.append(await run_level(opts, n, i))
    tp = {lv["workers"]: lv["updates_per_s"] for lv in levels}
    eff = efficiencies(tp, cores)
    for lv in levels:
        lv.update(eff[lv["workers"]])
    line: dict[str, Any] = {
        "levels": levels,
        "cores": cores,
        "patients": opts.patients,
        "chaos": opts.chaos,
        "loadavg_at_start": [round(x, 2) for x in load],
        "order_violations": sum(lv["order_violations"] for lv in levels),
        "lost": sum(lv["lost"] for lv in levels),
        "duplicated": sum(lv["duplicated"] for lv in levels),
        "kills": sum(lv["kills"] for lv in levels),
        "code": code_version(),
    }
    if 2 in eff:
        line["scaling_efficiency_1_2"] = eff[2]["efficiency"]
        line["goal_efficiency"] = GOAL_EFFICIENCY
    one = next((lv for lv in levels if lv["workers"] == 1), None)
    if one and one["worker_ms_per_update"] and one["pg_ms_per_update"] is not None:
        line["projection"] = project(
            one["worker_ms_per_update"], one["pg_ms_per_update"], (2, 4, 8, 16)
        )
    if opts.wave:
        line["waves"] = [await run_wave(opts, count) for count in opts.wave_workers]
    return line


def _counts(ap: argparse.ArgumentParser, name: str, value: str) -> tuple[int, ...]:
    """Comma-separated worker counts (1..64)."""
    try:
        counts = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        ap.error(f"{name}: comma-separated worker counts")
    if not counts or any(not 1 <= n <= 64 for n in counts):
        ap.error(f"{name}: worker counts between 1 and 64")
    return counts


def parse_args(argv: list[str] | None) -> Options:
    """Options from the command line (``--quick``: small enough for about 3 minutes)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    ap.add_argument("--levels", default="1,2,4", help="worker counts, comma-separated")
    ap.add_argument("--patients", type=int, default=500, help="simulated patients per level")
    ap.add_argument("--concurrency", type=int, default=100, help="patients active at once")
    ap.add_argument("--relay-share", type=float, default=0.3)
    ap.add_argument("--intake-share", type=float, default=0.3,
                    help="share of the onboarding patients who then do an intake")  # fmt: skip
    ap.add_argument("--relay-messages", type=int, default=6)
    ap.add_argument("--burst", type=int, default=3)
    ap.add_argument("--duration", type=float, default=240.0,
                    help="seconds after which no new patient starts")  # fmt: skip
    ap.add_argument("--drain", type=float, default=150.0)
    ap.add_argument("--step-timeout", type=float, default=150.0)
    ap.add_argument("--chaos", action="store_true", help="SIGKILL a random worker now and then")
    ap.add_argument("--chaos-interval", type=float, default=30.0)
    ap.add_argument("--wave", type=int, default=3000, help="due reminders (0: no wave)")
    ap.add_argument("--wave-workers", default="2", help="worker counts for the wave, e.g. 1,2")
    ap.add_argument("--talkers", type=int, default=5)
    ap.add_argument("--talk-before", type=float, default=15.0)
    ap.add_argument("--admin-url", default=ADMIN_URL,
                    help="a database on the server where fresh ones are created")  # fmt: skip
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report", help="write every figure as JSON to this file")
    a = ap.parse_args(argv)
    levels = _counts(ap, "--levels", a.levels)
    wave_workers = _counts(ap, "--wave-workers", a.wave_workers)
    if not 0 <= a.relay_share <= 1 or not 0 <= a.intake_share <= 1:
        ap.error("--relay-share and --intake-share are fractions")
    if a.patients < 1 or a.concurrency < 1 or a.burst < 1 or a.relay_messages < 1:
        ap.error("--patients, --concurrency, --burst and --relay-messages must be positive")
    opts = Options(
        levels=levels, patients=a.patients, concurrency=a.concurrency,
        relay_share=a.relay_share, intake_share=a.intake_share,
        relay_messages=a.relay_messages, burst=a.burst, duration=a.duration, drain=a.drain,
        step_timeout=a.step_timeout, chaos=a.chaos, chaos_interval=a.chaos_interval,
        wave=a.wave, wave_workers=wave_workers, talkers=a.talkers,
        talk_before=a.talk_before, admin_url=a.admin_url, seed=a.seed, quick=a.quick,
        report=a.report,
    )  # fmt: skip
    if a.quick:
        given = {x.split("=", 1)[0] for x in (sys.argv[1:] if argv is None else argv)}
        if "--levels" not in given:
            opts.levels = (1, 2)
        if "--patients" not in given:
            opts.patients = 60
        if "--concurrency" not in given:
            opts.concurrency = 30
        if "--wave" not in given:
            opts.wave = 300
        if "--talk-before" not in given:
            opts.talk_before = 6.0
        if "--chaos-interval" not in given:
            opts.chaos_interval = 20.0  # the supervisor gives up at 5 deaths a minute
    return opts


def main(argv: list[str] | None = None) -> int:
    """Run; the JSON line last on stdout."""
    opts = parse_args(argv)
    try:
        line = asyncio.run(run(opts))
    except KeyboardInterrupt:
        return 130
    if opts.report:
        Path(opts.report).write_text(json.dumps({"options": asdict(opts), **line}, indent=2))
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
