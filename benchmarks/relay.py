"""Relay latency: a patient's message in an active case, to the doctor's copy.

    python -m benchmarks.relay [--cases 20,100,500] [--duration 30] [--interval 5]
                               [--max-rate 20] [--db sqlite|postgresql+asyncpg://...]

For each level of N concurrent active cases: N patients and a few verified doctors are
seeded through the project's own flows and repositories (patient records, a triaged intake,
``flows.consultation.request_for_intake`` and ``flows.consultation.accept``), then the real
Careline app (both bots, our getUpdates poller, the processor, the outbox sender, the
sweeper) runs against the Bot API emulator, and every patient sends text messages over HTTP
through the emulator's client API, open loop, at a fixed mean rate with jitter.

Latency of one message = from the moment the emulator accepted the patient's message (stored
it and queued the update for the patient bot) to the moment the emulator handled the doctor
bot's ``sendMessage`` carrying the copy (both timestamps taken inside the emulator, in this
process). Each copy is matched by a unique token in the text, and checked: it must arrive in
the chat of the case's doctor, under the case's tag ``#N``.

Baseline beside it: a bare aiogram ``Dispatcher`` polling the patient bot that relays each
text with one ``sendMessage`` through the doctor bot to the case's doctor (an in-memory map,
no database), against a fresh emulator, with the same message pattern.

Processes: this one (orchestrator, emulator, simulated patients) and one bot process per kind
(spawned once, one fresh bot per level). Progress goes to stderr; the last stdout line is one
JSON object (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import heapq
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks.inbound import (
    DOCTOR_BOT,
    DOCTOR_TOKEN,
    PATIENT_BOT,
    PATIENT_TOKEN,
    arecv,
    code_version,
    log,
    machine_cpu,
    percentile,
    process_cpu,
)
from bot.sandbox.emulator import BotApiEmulator

if TYPE_CHECKING:
    from bot.sandbox.emulator_state import BotRecord, ChatState, SimUser, StoredMessage
    from storage.uow import Database

GOAL_CASES = 100
GOAL_P99_MS = 200.0
# The text every simulated patient sends, after its unique token; checked to raise no red flag
# (a red flag would turn the relay into an urgent alert, another path).
MESSAGE_TAIL = "the cough is about the same as this morning"
_TOKEN = re.compile(r"\bbench-([a-z0-9]+)\b")
_TAG = re.compile(r"^#(\d+) · ")
FIRST_NAMES = ("Avel", "Brin", "Corra", "Dovel", "Elsin", "Farro", "Gisla", "Halden", "Ivra")


def token_of(text: str | None) -> str | None:
    """The benchmark token in a message text, if any."""
    m = _TOKEN.search(text or "")
    return m.group(1) if m else None


# --- what happened to each message, seen from inside the emulator ----------------------------


@dataclass
class Sent:
    """One patient message: who sent it, where its copy must arrive, and when things happened."""

    case: int  # index of the case (0..N-1)
    client_at: float  # the client started the HTTP request
    accepted_at: float | None = None  # the emulator stored the message and queued the update
    delivered_at: float | None = None  # the emulator handled the doctor bot's sendMessage
    copies: int = 0
    misrouted: bool = False


@dataclass
class Route:
    """Where the copy of a case's patient messages must go."""

    patient_uid: int
    number: int  # the case tag #N
    doctor_uid: int


class Probe:
    """Receives the emulator's events; matches each doctor-bot copy to the patient message."""

    def __init__(self) -> None:
        self.sent: dict[str, Sent] = {}
        self.routes: list[Route] = []
        self.doctor_bot_id = 0
        self.patient_bot_id = 0
        self.misroutes: list[str] = []
        self.unknown_copies = 0  # doctor-bot messages with a token nobody sent
        self.other_doctor_messages = 0  # doctor-bot messages without a token (e.g. /start replies)
        self.patient_replies: list[str] = []  # patient-bot messages to patients while loading
        self.loading = False

    def expect(self, token: str, case: int) -> None:
        """Called by the client just before it sends the message with ``token``."""
        self.sent[token] = Sent(case=case, client_at=time.monotonic())

    def on_user_message(self, bot_id: int, text: str | None, now: float) -> None:
        """A simulated user's message was accepted by the emulator."""
        token = token_of(text)
        if bot_id == self.patient_bot_id and token is not None and token in self.sent:
            self.sent[token].accepted_at = now

    def on_bot_message(self, bot_id: int, chat_user: int, text: str | None, now: float) -> None:
        """A bot's message was stored by the emulator (sendMessage and friends)."""
        if bot_id == self.patient_bot_id:
            if self.loading and len(self.patient_replies) < 1000:
                self.patient_replies.append((text or "")[:120])
            return
        if bot_id != self.doctor_bot_id:
            return
        token = token_of(text)
        if token is None:
            self.other_doctor_messages += 1
            return
        record = self.sent.get(token)
        if record is None:
            self.unknown_copies += 1
            return
        record.copies += 1
        if record.copies == 1:
            record.delivered_at = now
        route = self.routes[record.case]
        tag = _TAG.match(text or "")
        if chat_user != route.doctor_uid or tag is None or int(tag.group(1)) != route.number:
            record.misrouted = True
            if len(self.misroutes) < 1000:
                self.misroutes.append(
                    f"token {token}: expected #{route.number} to {route.doctor_uid}, got "
                    f"{tag.group(0).strip() if tag else 'no tag'} to {chat_user}"
                )


class Stamps(Protocol):
    """What :class:`TimedEmulator` tells (this module's :class:`Probe`, benchmarks.scale's)."""

    def on_user_message(self, bot_id: int, text: str | None, now: float) -> None: ...

    def on_bot_message(
        self, bot_id: int, chat_user: int, text: str | None, now: float
    ) -> None: ...


class TimedEmulator(BotApiEmulator):
    """The project's emulator, telling a probe when a user's message was accepted and when a
    bot's message was stored."""

    def __init__(self, probe: Stamps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    def user_message(
        self, bot: BotRecord, user: SimUser, msg: StoredMessage
    ) -> tuple[int, StoredMessage, int]:
        """Accept the message (store it, queue the update), then stamp it."""
        result = super().user_message(bot, user, msg)
        self.probe.on_user_message(bot.id, msg.text, time.monotonic())
        return result

    def add_bot_message(self, bot: BotRecord, chat: ChatState, msg: StoredMessage) -> None:
        """Store the bot's message, then stamp it."""
        super().add_bot_message(bot, chat, msg)
        self.probe.on_bot_message(bot.id, chat.user_id, msg.text or msg.caption, time.monotonic())


# --- the bots ----------------------------------------------------------------------------------


@dataclass
class SeedPatient:
    """A simulated patient to seed: Telegram id, name, and the doctor (index) of the case."""

    uid: int
    name: str
    doctor: int


@dataclass
class BotSpec:
    """What a bot process runs for one level."""

    kind: str  # careline | echo
    base_url: str
    db: str  # "sqlite" or a PostgreSQL URL
    work_dir: str
    limits: str  # telegram | off
    outbox_concurrency: int | None
    doctors: list[int]  # Telegram ids
    patients: list[SeedPatient]
    gate_stats: bool = False


@dataclass
class Target:
    """A started bot: its counters, per-token stage stamps, and how to stop it."""

    counters: Callable[[], dict[str, int]]
    stop: Callable[[], Awaitable[None]]
    info: dict[str, Any]
    stamps: dict[str, dict[str, float]] = field(default_factory=dict)
    timer: Any = None  # benchmarks.inbound.StageTimer of the writer gate, with --gate-stats


async def seed_cases(db: Database, doctors: list[int], patients: list[SeedPatient]) -> list[int]:
    """Verified doctors, onboarded patients, and one active case per patient, through the
    project's own repositories and flows (as the end-to-end tests' fixtures do: doctors
    inserted as verified, the case from a triaged intake by ``request_for_intake``, taken by
    its doctor with ``accept``). Returns the case numbers, in patient order."""
    from datetime import timedelta

    from flows import consultation as flow
    from flows.intake import State as IntakeState
    from flows.onboarding import CONSENT_VERSION, Step
    from flows.questionnaire import load
    from storage.models import Doctor, Intake, Patient, utcnow

    version = load().version
    now = utcnow()
    doctor_ids: list[str] = []
    async with db.uow() as uow:
        for i, uid in enumerate(doctors):
            doctor = await uow.doctors.add(
                Doctor(
                    tg_user_id=uid,
                    locale="en",
                    status="verified",
                    verified_until=now + timedelta(days=300),
                    departments="general",
                )
            )
            await uow.doctors.set_field(doctor, "name", f"Dr Bench {i + 1}")
            await uow.doctors.set_field(doctor, "title", "Attending physician")
            await uow.doctors.set_field(doctor, "hospital", "Bench Clinic")
            await uow.doctors.set_field(doctor, "phone", f"+1555020{i:04d}")
            doctor_ids.append(doctor.id)
        await uow.commit()
    numbers: list[int] = []
    answers: dict[str, Any] = {
        "subject": "self",
        "category": "cough_cold",
        "duration": "days_1_3",
        "severity": 4,
        "red_flags": [],
    }
    for start in range(0, len(patients), 50):
        async with db.uow() as uow:
            for seed in patients[start : start + 50]:
                patient = await uow.patients.add(
                    Patient(
                        tg_user_id=seed.uid,
                        locale="en",
                        onboarding_state=Step.DONE.value,
                        consent_version=CONSENT_VERSION,
                        timezone="UTC",
                    )
                )
                await uow.patients.set_field(patient, "name", seed.name)
                await uow.patients.set_field(patient, "birth_year", "1980")
                await uow.patients.set_field(patient, "sex", "female")
                intake = await uow.intakes.add(
                    Intake(
                        patient_id=patient.id,
                        state=IntakeState.TRIAGED.value,
                        questionnaire_version=version,
                        disposition="consultation",
                        department="general",
                        completed_at=now,
                    ),
                    answers,
                )
                case = await flow.request_for_intake(uow, patient, intake, answers, now=now)
                assert case is not None
                taker = await uow.doctors.get(doctor_ids[seed.doctor])
                assert taker is not None
                await flow.accept(uow, taker, case.id, now=now, jurisdiction="generic")
                numbers.append(case.number)
            await uow.commit()
    return numbers


async def _settle(db: Database, limit_s: float = 120.0) -> None:
    """Wait until the sweeper has handled the scheduled events that are due (each seeded
    case's "opened" notice, which sends nothing for a case that is already active)."""
    from sqlalchemy import func, select

    from storage.models import ScheduledEvent, utcnow

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        async with db.uow() as uow:
            due = await uow.session.scalar(
                select(func.count(ScheduledEvent.id)).where(
                    ScheduledEvent.status == "pending", ScheduledEvent.due_at <= utcnow()
                )
            )
        if not due:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the sweeper did not finish the seeded cases' events")


def _stamp_stages(app: Any, stamps: dict[str, dict[str, float]]) -> None:
    """Record, per benchmark token, when the update was stored in the inbox, handled,
    committed, and when the sender started the Bot API call (time.monotonic(), the same clock
    in every process). A regex per update and per call; nothing else changes."""
    processor, sender = app.processor, app.sender
    store, process_one, pending, send = (
        processor.store,
        processor._process_one,
        processor.process_pending,
        sender._send,
    )
    batch: list[str] = []

    def mark(token: str | None, stage: str) -> None:
        if token is not None:
            stamps.setdefault(token, {})[stage] = time.monotonic()

    def text_of(raw: dict[str, Any]) -> str | None:
        message = raw.get("message")
        return message.get("text") if isinstance(message, dict) else None

    @functools.wraps(store)
    async def stored(role: str, updates: list[dict[str, Any]]) -> int:
        n = int(await store(role, updates))
        for raw in updates:
            mark(token_of(text_of(raw)), "stored")
        return n

    @functools.wraps(process_one)
    async def handled(uow: Any, role: str, row_id: int, raw: dict[str, Any]) -> bool:
        token = token_of(text_of(raw))
        mark(token, "picked")
        ok = bool(await process_one(uow, role, row_id, raw))
        mark(token, "handled")
        if token is not None:
            batch.append(token)
        return ok

    @functools.wraps(pending)
    async def committed(limit: int | None = None) -> int:
        n = int(await pending(limit))
        for token in batch:
            mark(token, "committed")
        batch.clear()
        return n

    @functools.wraps(send)
    async def sending(
        row_id: int,
        bot_role: str,
        chat_id: int,
        method: str,
        params: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        mark(token_of(str(params.get("text") or "")), "call")
        await send(row_id, bot_role, chat_id, method, params, *args, **kwargs)

    processor.store = stored
    processor._process_one = handled
    processor.process_pending = committed
    sender._send = sending


async def _start_careline(spec: BotSpec) -> Target:
    from pydantic import SecretStr

    from bot.app import Careline, freeze_heap
    from bot.settings import Settings
    from storage.crypto import KeyRing
    from storage.migrate import upgrade
    from storage.uow import Database

    work = Path(spec.work_dir)
    ring, _ = KeyRing.load_or_create(work / "keys.json")
    schema = ""
    if spec.db == "sqlite":
        url = f"sqlite+aiosqlite:///{work / 'careline.db'}"
        db = Database(url, ring)
    else:
        url = spec.db
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = Database(url, ring)
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        await admin.dispose()
        db = Database(url, ring, connect_args={"server_settings": {"search_path": schema}})
    await upgrade(db.engine)
    extra: dict[str, Any] = {}
    if spec.limits == "off":
        extra = {
            "outbox_global_per_s": 100_000.0,
            "outbox_per_chat_per_s": 10_000.0,
            "outbox_per_chat_burst": 10_000,
        }
    if spec.outbox_concurrency:
        extra["outbox_concurrency"] = spec.outbox_concurrency
    settings = Settings(
        _env_file=None,  # pydantic-settings: ignore any .env in the working directory
        patient_bot_token=SecretStr(PATIENT_TOKEN),
        doctor_bot_token=SecretStr(DOCTOR_TOKEN),
        telegram_api_url=spec.base_url,
        data_dir=work,
        database_url=url,
        keys_file=work / "keys.json",
        redis_url=None,
        webhook_url=None,
        timezone="UTC",
        default_locale="en",
        log_level="WARNING",
        **extra,
    )
    app = await Careline.build(settings, db)
    # The app's own Database (and so its key cache) seeds the cases: like a server that has
    # been running while these cases were opened and accepted.
    t = time.monotonic()
    numbers = await seed_cases(db, spec.doctors, spec.patients)
    seeded_s = time.monotonic() - t
    target_stamps: dict[str, dict[str, float]] = {}
    _stamp_stages(app, target_stamps)
    timer = None
    if spec.gate_stats:
        from benchmarks.inbound import StageTimer, TimedGate

        timer = StageTimer()
        db.gate = TimedGate(db.gate, timer)  # type: ignore[assignment]
    await app.start()
    if mp.parent_process() is not None:  # a bot process, not inline
        freeze_heap()  # as bot.py run does after starting
    t = time.monotonic()
    await _settle(db)
    settled_s = time.monotonic() - t

    def counters() -> dict[str, int]:
        return {
            "processed": app.processor.processed,
            "failed": app.processor.failed,
            "sent": app.sender.stats.sent,
            "retried": app.sender.stats.retried,
            "rate_limited": app.sender.stats.rate_limited,
        }

    async def stop() -> None:
        await app.stop()
        if schema:
            admin = Database(url, ring)
            async with admin.engine.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.dispose()
        else:
            await db.dispose()

    info = {
        "numbers": numbers,
        "seeded_s": seeded_s,
        "settled_s": settled_s,
        "outbox": {
            "global_per_s": settings.outbox_global_per_s,
            "per_chat_per_s": settings.outbox_per_chat_per_s,
            "per_chat_burst": settings.outbox_per_chat_burst,
            "concurrency": settings.outbox_concurrency,
        },
    }
    return Target(counters, stop, info, target_stamps, timer)


async def _start_echo(spec: BotSpec) -> Target:
    """The baseline: a bare aiogram dispatcher on the patient bot that relays each text with
    one sendMessage through the doctor bot (an in-memory map, no database, no outbox)."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    api = TelegramAPIServer.from_base(spec.base_url)
    patient_bot = Bot(PATIENT_TOKEN, session=AiohttpSession(api=api))
    doctor_bot = Bot(DOCTOR_TOKEN, session=AiohttpSession(api=api))
    numbers = list(range(1, len(spec.patients) + 1))
    routes = {
        p.uid: (number, spec.doctors[p.doctor], p.name.split()[0])
        for p, number in zip(spec.patients, numbers, strict=True)
    }
    handled = {"processed": 0, "sent": 0}
    dp = Dispatcher()

    async def relay(message: Message) -> None:
        """Forward the patient's text to the case's doctor, with the case tag."""
        handled["processed"] += 1
        route = routes.get(message.from_user.id if message.from_user else 0)
        if route is None or not message.text:
            return
        number, doctor, name = route
        await doctor_bot.send_message(doctor, f"#{number} · {name}\n{message.text}")
        handled["sent"] += 1

    dp.message.register(relay)
    await patient_bot.delete_webhook()
    polling = asyncio.create_task(dp.start_polling(patient_bot, handle_signals=False))

    async def stop() -> None:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.gather(polling, return_exceptions=True)
        await patient_bot.session.close()
        await doctor_bot.session.close()

    return Target(lambda: dict(handled), stop, {"numbers": numbers})


async def serve(
    spec: BotSpec, commands: asyncio.Queue[Any], emit: Callable[[tuple[str, Any]], None]
) -> None:
    """Run one fresh bot until "stop": window marks for the counters, then the results."""
    try:
        target = await (_start_careline(spec) if spec.kind == "careline" else _start_echo(spec))
        emit(("ready", target.info))
        before: dict[str, int] = {}
        after: dict[str, int] = {}
        while True:
            cmd = await commands.get()
            if cmd == "window_start":
                before = target.counters()
                if target.timer is not None:
                    target.timer.active = True
            elif cmd == "window_end":
                after = target.counters()
                if target.timer is not None:
                    target.timer.active = False
            elif cmd == "stop":
                break
        await target.stop()
        emit(
            (
                "result",
                {
                    "counters": {k: after.get(k, 0) - before.get(k, 0) for k in after},
                    "stamps": target.stamps,
                    "gate": {
                        name: {"seconds": seconds, "calls": target.timer.count[name]}
                        for name, seconds in target.timer.total.items()
                    }
                    if target.timer is not None
                    else {},
                },
            )
        )
    except Exception:  # noqa: BLE001 - reported to the orchestrator, which stops
        emit(("error", traceback.format_exc()))


def _bot_process(kind: str, conn: Connection) -> None:
    """Entry point of a bot process: imports once, then runs one fresh bot per level."""
    try:
        if kind == "careline":
            import bot.app  # noqa: F401 - loaded before the first level, not during it
            import storage.migrate  # noqa: F401
        else:
            import aiogram  # noqa: F401
        conn.send(("loaded", os.getpid()))
        while True:
            msg = conn.recv()
            if msg[0] == "exit":
                return
            asyncio.run(_process_serve(msg[1], conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


async def _process_serve(spec: BotSpec, conn: Connection) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        while conn.poll():
            commands.put_nowait(conn.recv())

    loop.add_reader(conn.fileno(), readable)
    try:
        await serve(spec, commands, conn.send)
    finally:
        loop.remove_reader(conn.fileno())


class BotLink:
    """The orchestrator's handle on a bot: in its own process (the benchmark), or as a task in
    this event loop (``inline``, for the smoke test: no CPU figures)."""

    def __init__(self, kind: str, inline: bool) -> None:
        self.kind = kind
        self.inline = inline
        self.pid: int | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._commands: asyncio.Queue[Any] = asyncio.Queue()
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Spawn the process (imports take seconds) unless inline."""
        if self.inline:
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_bot_process, args=(self.kind, child), daemon=True)
        self._proc.start()
        self._conn = parent
        _, pid = await arecv(parent, 120.0)
        self.pid = int(pid)

    def start(self, spec: BotSpec) -> None:
        """Start a fresh bot."""
        if self._conn is not None:
            self._conn.send(("start", spec))
            return
        self._commands = asyncio.Queue()
        self._task = asyncio.create_task(serve(spec, self._commands, self._events.put_nowait))

    def send(self, cmd: str) -> None:
        """window_start | window_end | stop."""
        if self._conn is not None:
            self._conn.send(cmd)
        else:
            self._commands.put_nowait(cmd)

    async def recv(self, wait_s: float) -> tuple[str, Any]:
        """The bot's next message ("ready" or "result"); raises on "error"."""
        if self._conn is not None:
            return await arecv(self._conn, wait_s)
        msg = await asyncio.wait_for(self._events.get(), wait_s)
        if msg[0] == "error":
            raise RuntimeError(f"bot failed:\n{msg[1]}")
        return msg

    async def close(self) -> None:
        """Ask the process to exit (terminate it if it does not)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is None or self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("exit",))
        await asyncio.get_running_loop().run_in_executor(None, self._proc.join, 10.0)
        if self._proc.is_alive():
            self._proc.terminate()


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """One level: how many cases and doctors, and the offered load."""

    cases: int
    doctors: int
    rate: float  # messages/s offered, all cases together
    interval: float  # mean seconds between two messages of one patient

    @property
    def per_doctor_rate(self) -> float:
        """Mean messages/s into one doctor's chat."""
        return self.rate / self.doctors


def make_plan(cases: int, opts: Options) -> Plan:
    """Rate = N / interval, capped at ``--max-rate`` (below the outbox's global 30/s); enough
    doctors that each doctor's chat gets at most ``--doctor-rate`` messages/s (below the
    per-chat 1/s), and at most ``--cases-per-doctor`` cases each."""
    rate = min(cases / opts.interval, opts.max_rate)
    doctors = max(
        math.ceil(cases / opts.cases_per_doctor), math.ceil(rate / opts.doctor_rate - 1e-9)
    )
    if opts.doctors:
        doctors = opts.doctors
    return Plan(cases, max(1, min(doctors, cases)), rate, cases / rate)


@dataclass
class LoadStats:
    """What the simulated patients did."""

    sent: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # how late each message left, seconds


async def drive(
    client: Any,
    probe: Probe,
    plan: Plan,
    rng: random.Random,
    start: float,
    end: float,
    stats: LoadStats,
) -> None:
    """Open loop: patient i sends at a random phase, then every ``interval`` x U(0.5, 1.5)
    seconds, whatever happened to its earlier messages; no message leaves after ``end``."""
    heap = [(start + rng.uniform(0, plan.interval), i) for i in range(plan.cases)]
    heapq.heapify(heap)
    tasks: set[asyncio.Task[None]] = set()
    seq = 0

    async def one(case: int, token: str) -> None:
        probe.expect(token, case)
        text = f"bench-{token} {MESSAGE_TAIL}"
        try:
            await client.send(probe.routes[case].patient_uid, PATIENT_BOT, text)
        except Exception as exc:  # noqa: BLE001 - counted and shown; the load goes on
            stats.errors += 1
            if len(stats.error_samples) < 5:
                stats.error_samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    while heap:
        due, case = heapq.heappop(heap)
        if due >= end:
            break
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        stats.lag.append(time.monotonic() - due)
        seq += 1
        token = f"{seq:06d}{''.join(rng.choice('abcdefghjkmnpqrstuvwxyz') for _ in range(3))}"
        task = asyncio.create_task(one(case, token))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        stats.sent += 1
        heapq.heappush(heap, (due + plan.interval * rng.uniform(0.5, 1.5), case))
    if tasks:
        await asyncio.gather(*tasks)


# --- one level, one bot ------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """One bot at one level."""

    label: str
    kind: str
    cases: int
    doctors: int
    offered_per_s: float
    interval_s: float
    window_s: float
    messages: int  # accepted by the emulator inside the window
    delivered: int  # of those, copies that reached a doctor
    missing: int  # of those, no copy after the drain
    delivered_per_s: float  # copies delivered inside the window / window
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    misroutes: int  # all messages of the run (warm-up too): copy in the wrong chat or tag
    duplicates: int
    unknown_copies: int
    misroute_samples: list[str]
    patient_replies: int
    patient_reply_samples: list[str]
    send_errors: int
    send_error_samples: list[str]
    lag_p99_ms: float
    client_to_accept_p50_ms: float
    cpu: dict[str, float | None]
    bot: dict[str, Any]
    stages_ms: dict[str, dict[str, float]]
    setup: dict[str, Any]


def _names(rng: random.Random, n: int) -> list[str]:
    return [
        f"{rng.choice(FIRST_NAMES)}{''.join(rng.choice('aeiou') for _ in range(2))} Benchpatient"
        for _ in range(n)
    ]


async def run_phase(
    opts: Options, link: BotLink, plan: Plan, phase_no: int, level_no: int
) -> PhaseResult:
    """Fresh emulator and bot, seeded cases, doctors started, warm-up, window, drain."""
    import aiohttp

    from bot.sandbox.client import EmulatorClient
    from bot.sandbox.emulator import RateLimits

    kind = link.kind
    label = f"{'careline' if kind == 'careline' else 'baseline'} {plan.cases} cases"
    log(
        f"\n== phase {phase_no}: {label}, {plan.doctors} doctors, {plan.rate:.1f} msg/s offered "
        f"(one per patient every {plan.interval:.1f} s on average), "
        f"{plan.per_doctor_rate:.2f} msg/s per doctor chat =="
    )
    probe = Probe()
    emulator = TimedEmulator(probe, limits=RateLimits(enabled=False), seed=opts.seed + phase_no)
    probe.patient_bot_id = int(
        emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")["id"]
    )
    probe.doctor_bot_id = int(
        emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")[
            "id"
        ]
    )
    base_url = await emulator.start("127.0.0.1", 0)
    tmp = tempfile.TemporaryDirectory(prefix="careline-relay-")
    # The same people, names and message pattern for both bots at a level.
    rng = random.Random(opts.seed * 1_000_003 + level_no)
    doctors = [emulator.create_user("Doc", language_code="en").id for _ in range(plan.doctors)]
    names = _names(rng, plan.cases)
    patients = [
        SeedPatient(
            emulator.create_user(names[i].split()[0], language_code="en").id,
            names[i],
            i % plan.doctors,
        )
        for i in range(plan.cases)
    ]
    stats = LoadStats()
    try:
        t = time.monotonic()
        link.start(
            BotSpec(
                kind,
                base_url,
                opts.db,
                tmp.name,
                opts.limits,
                opts.outbox_concurrency,
                doctors,
                patients,
                opts.gate_stats,
            )
        )
        _, info = await link.recv(1800.0)
        setup = {k: v for k, v in info.items() if k != "numbers"}
        probe.routes = [
            Route(p.uid, int(n), doctors[p.doctor])
            for p, n in zip(patients, info["numbers"], strict=True)
        ]
        log(
            f"bot ready in {time.monotonic() - t:.1f} s"
            + (
                f" ({plan.cases} cases seeded in {info['seeded_s']:.1f} s, their scheduled "
                f"events handled in {info['settled_s']:.1f} s)"
                if "seeded_s" in info
                else ""
            )
        )
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            client = EmulatorClient(base_url, session=http, request_timeout=60)
            # A bot cannot write first: every doctor has started the doctor bot.
            await asyncio.gather(*(client.start(uid, DOCTOR_BOT) for uid in doctors))
            if kind == "careline":
                await asyncio.gather(
                    *(client.wait_for(uid, DOCTOR_BOT, timeout=60) for uid in doctors)
                )
            start = time.monotonic() + 0.2
            t_begin = start + opts.warmup
            t_end = t_begin + opts.duration
            probe.loading = True
            load = asyncio.create_task(drive(client, probe, plan, rng, start, t_end, stats))
            await asyncio.sleep(max(0.0, t_begin - time.monotonic()))
            cpu0 = _cpu_snapshot(link.pid)
            link.send("window_start")
            next_report = t_begin + 5.0
            while time.monotonic() < t_end:
                await asyncio.sleep(min(0.05, max(0.0, t_end - time.monotonic())))
                if time.monotonic() >= next_report:
                    _progress(probe, t_begin)
                    next_report += 5.0
            cpu1 = _cpu_snapshot(link.pid)
            link.send("window_end")
            await load
            await _drain(probe, t_begin, t_end, opts.drain)
            probe.loading = False
        link.send("stop")
        _, bot_result = await link.recv(300.0)
    finally:
        await emulator.stop()
        tmp.cleanup()
    result = _phase_result(label, kind, plan, probe, stats, t_begin, t_end, cpu0, cpu1, bot_result)
    result.setup = setup
    return result


def _in_window(probe: Probe, t_begin: float, t_end: float) -> list[tuple[str, Sent]]:
    return [
        (token, s)
        for token, s in probe.sent.items()
        if s.accepted_at is not None and t_begin <= s.accepted_at < t_end
    ]


def _progress(probe: Probe, t_begin: float) -> None:
    now = time.monotonic()
    window = _in_window(probe, t_begin, now)
    done = [s for _, s in window if s.delivered_at is not None]
    late = sorted(1000 * (s.delivered_at - s.accepted_at) for s in done if s.accepted_at)  # type: ignore[operator]
    log(
        f"  {now - t_begin:5.1f} s: {len(window)} messages, {len(done)} copies delivered; "
        f"p50 {percentile(late, 50):.0f} ms, max {late[-1] if late else math.nan:.0f} ms"
    )


async def _drain(probe: Probe, t_begin: float, t_end: float, limit_s: float) -> None:
    """After the window: wait (at most ``limit_s``) for the copies still on their way."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        waiting = [s for _, s in _in_window(probe, t_begin, t_end) if s.delivered_at is None]
        unaccepted = [s for s in probe.sent.values() if s.accepted_at is None]
        if not waiting and not unaccepted:
            return
        await asyncio.sleep(0.05)


def _cpu_snapshot(pid: int | None) -> dict[str, Any]:
    return {
        "bot": process_cpu(pid) if pid else None,
        "orchestrator": process_cpu(os.getpid()),
        "machine": machine_cpu(),
    }


def _cpu_delta(cpu0: dict[str, Any], cpu1: dict[str, Any]) -> dict[str, float | None]:
    def diff(key: str) -> float | None:
        a, b = cpu0[key], cpu1[key]
        return None if a is None or b is None else float(b - a)

    bot, orch = diff("bot"), diff("orchestrator")
    foreign: float | None = None
    if cpu0["machine"] and cpu1["machine"] and bot is not None and orch is not None:
        foreign = max(0.0, cpu1["machine"][0] - cpu0["machine"][0] - bot - orch)
    return {"bot": bot, "orchestrator": orch, "other_processes": foreign}


STAGES = (
    ("poll + inbox commit", "accepted", "stored"),
    ("wait for the processor", "stored", "picked"),
    ("handler", "picked", "handled"),
    ("rest of batch + commit", "handled", "committed"),
    ("sender wake-up + step", "committed", "call"),
    ("Bot API call", "call", "delivered"),
)


def _stage_summary(
    window: list[tuple[str, Sent]], stamps: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """p50/p99/mean of each stage over the window's delivered messages (Careline only)."""
    if not stamps:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, a, b in STAGES:
        values: list[float] = []
        for token, s in window:
            marks = {**stamps.get(token, {})}
            if s.accepted_at is not None:
                marks["accepted"] = s.accepted_at
            if s.delivered_at is not None:
                marks["delivered"] = s.delivered_at
            if a in marks and b in marks:
                values.append(1000 * (marks[b] - marks[a]))
        values.sort()
        if values:
            out[name] = {
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
                "max": values[-1],
                "mean": sum(values) / len(values),
            }
    return out


def _phase_result(
    label: str,
    kind: str,
    plan: Plan,
    probe: Probe,
    stats: LoadStats,
    t_begin: float,
    t_end: float,
    cpu0: dict[str, Any],
    cpu1: dict[str, Any],
    bot_result: dict[str, Any],
) -> PhaseResult:
    window = _in_window(probe, t_begin, t_end)
    lat = sorted(
        1000 * (s.delivered_at - s.accepted_at)
        for _, s in window
        if s.delivered_at is not None and s.accepted_at is not None
    )
    window_s = t_end - t_begin
    delivered_in_window = sum(
        1 for s in probe.sent.values() if s.delivered_at and t_begin <= s.delivered_at < t_end
    )
    client = sorted(
        1000 * (s.accepted_at - s.client_at) for _, s in window if s.accepted_at is not None
    )
    lags = sorted(1000 * x for x in stats.lag)
    return PhaseResult(
        label=label,
        kind=kind,
        cases=plan.cases,
        doctors=plan.doctors,
        offered_per_s=plan.rate,
        interval_s=plan.interval,
        window_s=window_s,
        messages=len(window),
        delivered=len(lat),
        missing=len(window) - len(lat),
        delivered_per_s=delivered_in_window / window_s if window_s > 0 else 0.0,
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        max_ms=lat[-1] if lat else math.nan,
        misroutes=sum(1 for s in probe.sent.values() if s.misrouted),
        duplicates=sum(1 for s in probe.sent.values() if s.copies > 1),
        unknown_copies=probe.unknown_copies,
        misroute_samples=probe.misroutes[:5],
        patient_replies=len(probe.patient_replies),
        patient_reply_samples=probe.patient_replies[:3],
        send_errors=stats.errors,
        send_error_samples=stats.error_samples,
        lag_p99_ms=percentile(lags, 99),
        client_to_accept_p50_ms=percentile(client, 50),
        cpu=_cpu_delta(cpu0, cpu1),
        bot={"counters": bot_result.get("counters", {}), "gate": bot_result.get("gate", {})},
        stages_ms=_stage_summary(window, bot_result.get("stamps") or {}),
        setup={},
    )


def describe(r: PhaseResult) -> None:
    """One phase's figures, on stderr."""
    log(
        f"{r.label}: {r.messages} messages in {r.window_s:.1f} s ({r.messages / r.window_s:.1f}"
        f"/s), {r.delivered} delivered ({r.delivered_per_s:.1f}/s), {r.missing} missing; "
        f"latency p50 {r.p50_ms:.1f} ms, p90 {r.p90_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
        f"max {r.max_ms:.1f} ms"
    )
    log(
        f"  misroutes {r.misroutes}, duplicates {r.duplicates}, copies nobody sent "
        f"{r.unknown_copies}, replies to patients {r.patient_replies}, send errors "
        f"{r.send_errors}; client send lag p99 {r.lag_p99_ms:.1f} ms, client -> emulator "
        f"accepted p50 {r.client_to_accept_p50_ms:.1f} ms"
    )
    for sample in [*r.misroute_samples, *r.patient_reply_samples, *r.send_error_samples]:
        log(f"  sample: {sample}")
    c = r.cpu
    if c.get("bot") is not None and r.messages:
        log(
            f"  CPU (of one core): bot {100 * (c['bot'] or 0) / r.window_s:.0f}% "
            f"({1000 * (c['bot'] or 0) / r.messages:.2f} ms per message), orchestrator "
            f"(emulator + patients) {100 * (c['orchestrator'] or 0) / r.window_s:.0f}%"
        )
    foreign = c.get("other_processes")
    if foreign is not None:
        log(
            f"  other processes on this machine used {100 * foreign / r.window_s:.0f}% of a core"
            + (" -- WARNING: not a quiet machine" if foreign > 0.15 * r.window_s else "")
        )
    if r.bot.get("counters"):
        log(
            "  bot counters in the window: "
            + ", ".join(f"{k} {v}" for k, v in r.bot["counters"].items())
        )
    gate = r.bot.get("gate") or {}
    if gate and r.messages:
        log("  SQLite writer gate, per message (ms) [acquisitions per message]:")
        for name, g in sorted(gate.items(), key=lambda kv: -kv[1]["seconds"]):
            log(
                f"    {name:34s} {1000 * g['seconds'] / r.messages:7.2f} "
                f"[{g['calls'] / r.messages:.2f}]"
            )
    if r.stages_ms:
        log("  where the time goes (ms; p50 / p99 / max / mean):")
        for name, s in r.stages_ms.items():
            log(f"    {name:26s} {s['p50']:7.1f} {s['p99']:8.1f} {s['max']:8.1f} {s['mean']:7.1f}")


# --- the orchestrator ----------------------------------------------------------------------------


@dataclass
class Options:
    """Command-line options."""

    cases: list[int]
    duration: float = 30.0
    warmup: float = 3.0
    drain: float = 15.0
    interval: float = 5.0
    max_rate: float = 10.0
    doctor_rate: float = 0.5
    cases_per_doctor: int = 25
    doctors: int = 0
    db: str = "sqlite"
    seed: int = 1
    limits: str = "telegram"
    outbox_concurrency: int | None = None
    baseline: bool = True
    report: str | None = None
    gate_stats: bool = False


async def run_levels(opts: Options, *, inline: bool = False) -> dict[str, Any]:
    """Every level, Careline then the baseline; returns the full report (``line`` is the
    JSON result line). ``inline`` runs the bots in this event loop (smoke test)."""
    from importlib.metadata import version

    db_name = "sqlite" if opts.db == "sqlite" else "postgresql"
    log(
        f"Careline relay benchmark: cases {','.join(map(str, opts.cases))}, {os.cpu_count()} "
        f"CPUs, Python {platform.python_version()}, aiogram {version('aiogram')}, {db_name}, "
        f"seed {opts.seed}; code {code_version()}"
    )
    log(
        "emulator rate limits off; Careline's outbox limits "
        + (
            "at the app defaults (Telegram's: 30 calls/s per bot, 1/s per chat, burst 3)"
            if opts.limits == "telegram"
            else "raised far above the load (--limits off)"
        )
        + f"; latency = emulator accepted the patient's message -> emulator handled the doctor "
        f"bot's sendMessage with the copy; window {opts.duration:g} s after {opts.warmup:g} s "
        f"warm-up"
    )
    links = {"careline": BotLink("careline", inline)}
    if opts.baseline:
        links["echo"] = BotLink("echo", inline)
    results: list[PhaseResult] = []
    levels: list[dict[str, Any]] = []
    phase = 0
    try:
        await asyncio.gather(*(link.open() for link in links.values()))
        for level_no, cases in enumerate(opts.cases):
            plan = make_plan(cases, opts)
            pair: dict[str, PhaseResult] = {}
            for kind, link in links.items():
                phase += 1
                r = await run_phase(opts, link, plan, phase, level_no)
                describe(r)
                results.append(r)
                pair[kind] = r
            levels.append(_level_line(plan, pair))
    finally:
        for link in links.values():
            await link.close()
    log("\n== summary ==")
    for lv in levels:
        log(
            f"{lv['cases']:4d} cases, {lv['doctors']} doctors, {lv['offered_per_s']} msg/s: "
            f"careline p50 {lv['p50_ms']} ms, p99 {lv['p99_ms']} ms, max {lv['max_ms']} ms"
            + (
                f"; baseline p50 {lv['baseline_p50_ms']} ms, p99 {lv['baseline_p99_ms']} ms; "
                f"ratio p50 {lv['ratio_p50']}, p99 {lv['ratio_p99']}"
                if "baseline_p99_ms" in lv
                else ""
            )
            + f"; misroutes {lv['misroutes']}, missing {lv['missing']}"
        )
    line: dict[str, Any] = {"levels": levels, "db": db_name, "limits": opts.limits}
    goal = next((lv for lv in levels if lv["cases"] == GOAL_CASES), None)
    if goal is not None:
        line["goal"] = {
            "cases": GOAL_CASES,
            "p99_ms": goal["p99_ms"],
            "target_p99_ms": GOAL_P99_MS,
            "met": bool(goal["p99_ms"] <= GOAL_P99_MS and not goal["misroutes"]),
        }
        log(
            f"goal (p99 <= {GOAL_P99_MS:.0f} ms at {GOAL_CASES} cases): "
            + ("met" if line["goal"]["met"] else "NOT met")
        )
    line["misroutes"] = sum(lv["misroutes"] for lv in levels) + sum(
        lv.get("baseline_misroutes", 0) for lv in levels
    )
    return {
        "line": line,
        "options": {**asdict(opts), "db": db_name},
        "code": code_version(),
        "cpus": os.cpu_count(),
        "phases": [asdict(r) for r in results],
    }


def _r(x: float, digits: int = 1) -> float | None:
    return None if math.isnan(x) else round(x, digits)


def _level_line(plan: Plan, pair: dict[str, PhaseResult]) -> dict[str, Any]:
    care = pair["careline"]
    out: dict[str, Any] = {
        "cases": plan.cases,
        "doctors": plan.doctors,
        "offered_per_s": round(plan.rate, 2),
        "interval_s": round(plan.interval, 2),
        "messages": care.messages,
        "delivered_per_s": _r(care.delivered_per_s),
        "p50_ms": _r(care.p50_ms),
        "p99_ms": _r(care.p99_ms),
        "max_ms": _r(care.max_ms),
        "misroutes": care.misroutes,
        "missing": care.missing,
    }
    base = pair.get("echo")
    if base is not None:
        out.update(
            baseline_messages=base.messages,
            baseline_p50_ms=_r(base.p50_ms),
            baseline_p99_ms=_r(base.p99_ms),
            baseline_misroutes=base.misroutes,
            baseline_missing=base.missing,
            ratio_p50=_r(care.p50_ms / base.p50_ms, 2) if base.p50_ms > 0 else None,
            ratio_p99=_r(care.p99_ms / base.p99_ms, 2) if base.p99_ms > 0 else None,
        )
    return out


def parse_args(argv: list[str] | None) -> Options:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.relay",
        description="Patient -> doctor relay latency of Careline at N active cases, vs a bare "
        "aiogram relay bot.",
    )
    ap.add_argument(
        "--cases", default="20,100,500", help="levels of concurrent active cases (20,100,500)"
    )
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per level")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (3)")
    ap.add_argument(
        "--drain", type=float, default=15.0, help="max seconds to wait for late copies (15)"
    )
    ap.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="mean seconds between two messages of one patient (5), jittered x U(0.5,1.5)",
    )
    ap.add_argument(
        "--max-rate",
        type=float,
        default=10.0,
        help="cap on the total rate, messages/s (10; the outbox sends at most 30/s per bot): "
        "above it the per-patient interval grows to N / max-rate",
    )
    ap.add_argument(
        "--doctor-rate",
        type=float,
        default=0.5,
        help="at most this many messages/s into one doctor's chat on average (0.5; the outbox "
        "sends at most 1/s per chat): sets the number of doctors",
    )
    ap.add_argument(
        "--cases-per-doctor", type=int, default=25, help="at most this many cases per doctor"
    )
    ap.add_argument("--doctors", type=int, default=0, help="override: exactly this many doctors")
    ap.add_argument("--db", default="sqlite", help="'sqlite' (temp dir) or a PostgreSQL URL")
    ap.add_argument("--seed", type=int, default=1, help="seed for names and the message pattern")
    ap.add_argument(
        "--limits",
        choices=("telegram", "off"),
        default="telegram",
        help="Careline's outbox rate limits: the app defaults (telegram) or raised (off)",
    )
    ap.add_argument(
        "--outbox-concurrency", type=int, help="experiment: CARELINE_OUTBOX_CONCURRENCY"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline runs")
    ap.add_argument(
        "--gate-stats",
        action="store_true",
        help="also time waits for and holds of the SQLite writer gate, per task",
    )
    ap.add_argument("--report", help="write the full report as JSON to this file")
    a = ap.parse_args(argv)
    try:
        cases = [int(c) for c in str(a.cases).split(",") if c.strip()]
    except ValueError:
        ap.error("--cases takes numbers like 20 or 20,100,500")
    if not cases or min(cases) < 1:
        ap.error("--cases needs at least one level of 1 or more cases")
    if a.db != "sqlite" and not a.db.startswith("postgresql"):
        ap.error("--db is 'sqlite' or a postgresql+asyncpg:// URL")
    if min(a.interval, a.max_rate, a.doctor_rate, a.duration) <= 0 or a.cases_per_doctor < 1:
        ap.error("--interval, --max-rate, --doctor-rate, --duration must be positive")
    return Options(
        cases=cases,
        duration=a.duration,
        warmup=a.warmup,
        drain=a.drain,
        interval=a.interval,
        max_rate=a.max_rate,
        doctor_rate=a.doctor_rate,
        cases_per_doctor=a.cases_per_doctor,
        doctors=a.doctors,
        db=a.db,
        seed=a.seed,
        limits=a.limits,
        outbox_concurrency=a.outbox_concurrency,
        baseline=not a.no_baseline,
        report=a.report,
        gate_stats=a.gate_stats,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last stdout line is the JSON result."""
    opts = parse_args(argv)
    report = asyncio.run(run_levels(opts))
    if opts.report:
        Path(opts.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report["line"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
