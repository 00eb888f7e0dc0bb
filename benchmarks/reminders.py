"""A reminder burst: N patients whose dose reminders fall due within the same minute.

    python -m benchmarks.reminders [--patients 100000] [--stored 1000000] [--window 120]
                                   [--db sqlite|postgresql+asyncpg://...] [--skip-baseline]
                                   [--quick]

What runs:

* **Seeding** (this process, before the bot touches the data): per-patient data keys,
  onboarded patients, ``--stored`` future scheduled events spread over the next six weeks
  (none falls due during the run), then, once the bot is up, N active medication plans with
  one due ``Dose`` and its keyed ``dose`` event each, exactly as :func:`flows.doses.start`
  would write them (the same occurrence key, local label and jitter), for a local time that
  maps to the same UTC minute ``T0`` in six time zones. Core INSERTs in big transactions;
  the plan's details are sealed under each patient's own data key (AES-GCM, as the vault
  does), which is most of the seeding cost.
* **Careline** (its own process): the real app (``Careline.build`` + ``start``: pollers,
  processor, outbox sender, the sweeper's APScheduler job and the real ``dose`` handler)
  against the Bot API emulator **with Telegram's limits on** (30 messages/s per bot, 1/s per
  chat); Careline's outbox runs with its defaults (30/s, 1/s per chat).
* **Talkers**: a few simulated patients send ``/help`` every few seconds before and during
  the burst; reply latency = emulator accepted the message -> emulator stored the bot's
  answer (both stamped inside the emulator, in this process).
* **Baseline** (its own process, before Careline): one APScheduler 3 job per reminder
  (``AsyncIOScheduler``, ``add_job(func, "date", run_date=...)``, default
  ``misfire_grace_time`` of 1 s, ``MemoryJobStore``) due at the same offsets within a minute;
  the job only records when it ran (a best case: no database, no sending).

Figures: due -> enqueued (outbox ``created_at`` minus the event's ``due_at``), reminders
dropped or doubled (per due dose exactly one outbox row), every delivered reminder checked
for the right patient (the medicine name carries the patient's number), send rate over a
window after the burst is enqueued, 429s, reply latency, and peak RSS of the bot process
(``VmHWM`` from /proc). Progress on stderr; the last stdout line is one JSON object (see
benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import random
import re
import resource
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.sandbox.emulator_state import BotRecord, ChatState, SimUser, StoredMessage
    from storage.crypto import KeyRing
    from storage.uow import Database

# Telegram ids of the seeded patients: TG_BASE + i (outside the emulator's own id ranges).
TG_BASE = 810_000_000
# Patients live in these zones; the same UTC minute is a different local time in each.
ZONES = (
    "UTC",
    "Europe/Moscow",
    "Asia/Shanghai",
    "America/New_York",
    "Asia/Kolkata",
    "Europe/Berlin",
)
LOCALES = ("en", "zh_Hans", "ru")
# The medicine name of patient i carries i, so a reminder in the wrong chat is noticed.
_MED = re.compile(r"Benchmed-(\d{6,7})\b")
# The ladder waits longer than any run: this benchmark is about the first reminder.
AGAIN_MIN, CAREGIVER_MIN, DOCTOR_MIN = 600, 900, 1200
GOAL_SEND_PER_S = 29.0
GOAL_RSS_MB = 300.0
TELEGRAM_PER_S = 30.0
# Figures of the core issue's benchmark (benchmarks/README.md, "Results" of
# benchmarks.inbound): reply p99 at a fixed offered rate of 60% of Careline's maximum.
INBOUND_P99_MS = 202.0


def med_name(i: int) -> str:
    """The (made-up) medicine of patient i."""
    return f"Benchmed-{i:06d} 10 mg"


def help_prefix() -> str:
    """The first line of the English /help answer, as the emulator stores it (no tags)."""
    from locales import Translator

    return Translator("en").plain("help.patient", emergency_number="0").split("\n", 1)[0]


def floor_minute(at: datetime) -> datetime:
    """The start of the minute ``at`` is in."""
    return at.replace(second=0, microsecond=0)


def ceil_minute(at: datetime) -> datetime:
    """The first minute boundary at or after ``at``."""
    down = floor_minute(at)
    return down if down == at else down + timedelta(minutes=1)


def vm_kb(pid: int, field_name: str) -> int | None:
    """A ``Vm*`` line of /proc/<pid>/status in kB (VmHWM = peak RSS, VmRSS = now)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# --- the emulator side ---------------------------------------------------------------------------


@dataclass
class TalkSample:
    """One /help of a talker: when the emulator accepted it and when the answer came."""

    uid: int
    accepted_at: float
    replied_at: float | None = None


class Probe:
    """Sees every message the patient bot sends: counts each seeded patient's reminders,
    checks they carry that patient's medicine, and times the talkers' answers."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.patient_bot_id = 0
        self.first_at = [0.0] * n  # monotonic time of the patient's first reminder
        self.count = [0] * n
        self.delivered_times: list[float] = []  # every reminder message, in arrival order
        self.all_times: list[float] = []  # every patient-bot message (replies too)
        self.wrong: list[str] = []  # a reminder without the patient's own medicine
        self.wrong_count = 0
        self.unknown = 0  # patient-bot messages to nobody we know
        self.talkers: set[int] = set()
        self.talk: dict[int, TalkSample] = {}  # the talker's /help waiting for its answer
        self.talk_events: dict[int, asyncio.Event] = {}
        self.samples: list[TalkSample] = []
        self.arrived = asyncio.Event()  # set at every reminder
        self.help_prefix = ""  # how the /help answer starts (the talkers speak English)
        self.talk_wrong: list[str] = []

    def on_user_message(self, bot_id: int, uid: int, text: str | None, now: float) -> None:
        """A simulated user's message was accepted by the emulator."""
        if bot_id == self.patient_bot_id and uid in self.talkers and (text or "") == "/help":
            sample = TalkSample(uid, now)
            self.talk[uid] = sample
            self.samples.append(sample)

    def on_bot_message(self, bot_id: int, uid: int, text: str | None, now: float) -> None:
        """The patient bot's message was stored by the emulator."""
        if bot_id != self.patient_bot_id:
            return
        self.all_times.append(now)
        if uid in self.talkers:
            sample = self.talk.pop(uid, None)
            if sample is not None:
                sample.replied_at = now
                if not (text or "").startswith(self.help_prefix):
                    self.talk_wrong.append((text or "")[:120])
                event = self.talk_events.get(uid)
                if event is not None:
                    event.set()
            return
        i = uid - TG_BASE
        if not 0 <= i < self.n:
            self.unknown += 1
            return
        self.count[i] += 1
        if self.count[i] == 1:
            self.first_at[i] = now
        self.delivered_times.append(now)
        self.arrived.set()
        m = _MED.search(text or "")
        if m is None or int(m.group(1)) != i:
            self.wrong_count += 1
            if len(self.wrong) < 5:
                self.wrong.append(f"patient {i}: {(text or '')[:160]!r}")

    @property
    def delivered(self) -> int:
        """Reminder messages the emulator stored."""
        return len(self.delivered_times)


class ReminderEmulator(BotApiEmulator):
    """The project's emulator, stamping messages for a :class:`Probe`; the seeded patients
    exist on demand (a user and a chat that has "started" the bot are made the first time the
    bot writes to them), so 100,000 of them cost nothing until a reminder reaches them."""

    def __init__(self, probe: Probe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe
        self.refusals: dict[str, int] = {}  # 429s by the bucket that refused

    def chat_for_bot(
        self, bot: BotRecord, chat_id: Any, *, sending: bool
    ) -> tuple[ChatState, SimUser]:
        """Resolve a chat, creating a seeded patient's on first use."""
        from bot.sandbox.emulator_state import SimUser

        with contextlib.suppress(TypeError, ValueError):
            cid = int(str(chat_id).strip())
            if 0 <= cid - TG_BASE < self.probe.n and cid not in self.users:
                self.users[cid] = SimUser(id=cid, first_name="Benchpatient", language_code="en")
                self.chat(bot.id, cid).seen = True
        return super().chat_for_bot(bot, chat_id, sending=sending)

    def user_message(
        self, bot: BotRecord, user: SimUser, msg: StoredMessage
    ) -> tuple[int, StoredMessage, int]:
        """Accept the message, then stamp it."""
        result = super().user_message(bot, user, msg)
        self.probe.on_user_message(bot.id, user.id, msg.text, time.monotonic())
        return result

    def add_bot_message(self, bot: BotRecord, chat: ChatState, msg: StoredMessage) -> None:
        """Store the bot's message, then stamp it."""
        super().add_bot_message(bot, chat, msg)
        self.probe.on_bot_message(bot.id, chat.user_id, msg.text or msg.caption, time.monotonic())

    def _rate_limit(self, bot: BotRecord, method: str, params: Any) -> None:
        """Telegram's limits; a 429 is counted by the bucket that refused (chat or bot)."""
        try:
            super()._rate_limit(bot, method, params)
        except Exception:
            chat = self._chat_key(params)
            bucket = self.limiter._chat.get((bot.id, chat)) if chat is not None else None
            which = "chat" if bucket is not None and bucket.tokens < 1.0 else "bot"
            self.refusals[which] = self.refusals.get(which, 0) + 1
            raise

    def rate_limited(self) -> int:
        """429s the patient bot got."""
        bot = self._bots_by_username.get(PATIENT_BOT.lower())
        if bot is None:
            return 0
        return sum(c.get("429", 0) for c in bot.stats["methods"].values())


# --- seeding -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What was seeded: the patients' ids, the due time and each event's due time."""

    patient_ids: list[str]
    talker_ids: list[str]
    t0: datetime | None = None
    event_due: list[datetime] = field(default_factory=list)
    base_s: float = 0.0
    due_s: float = 0.0
    stored_events: int = 0


def _chunks(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [rows[k : k + size] for k in range(0, len(rows), size)]


async def _insert(db: Database, table: Any, rows: list[dict[str, Any]], chunk: int) -> None:
    from sqlalchemy import insert

    for part in _chunks(rows, chunk):
        async with db.engine.begin() as conn:
            await conn.execute(insert(table), part)


async def seed_base(
    db: Database, ring: KeyRing, n: int, stored: int, talker_uids: list[int], seed: int
) -> Seeded:
    """Data keys and onboarded patients (N seeded ones, then the talkers), and ``stored``
    future events of the registered kinds spread over the next six weeks."""
    from flows import checkback, retention
    from flows import doses as flow_doses
    from flows.onboarding import CONSENT_VERSION, Step
    from storage.crypto import new_data_key
    from storage.models import DataKey, Patient, ScheduledEvent, new_id, utcnow

    t = time.monotonic()
    now = utcnow()
    rng = random.Random(seed)
    uids = [TG_BASE + i for i in range(n)] + list(talker_uids)
    ids = [new_id() for _ in uids]
    keys: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    for k, (pid, uid) in enumerate(zip(ids, uids, strict=True)):
        master, wrapped = ring.wrap(new_data_key(), pid)
        keys.append(
            {
                "owner_id": pid,
                "key_version": 1,
                "master_key_id": master,
                "wrapped": wrapped,
                "created_at": now,
            }
        )
        patients.append(
            {
                "id": pid,
                "tg_user_id": uid,
                "locale": "en" if k >= n else LOCALES[k % len(LOCALES)],
                "onboarding_state": Step.DONE.value,
                "consent_version": CONSENT_VERSION,
                "timezone": "UTC" if k >= n else ZONES[k % len(ZONES)],
                "unreachable": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    await _insert(db, DataKey.__table__, keys, 20_000)
    await _insert(db, Patient.__table__, patients, 20_000)
    del keys, patients
    log(f"seeded {len(uids)} patients with their data keys in {time.monotonic() - t:.1f} s")
    t2 = time.monotonic()
    kinds = (flow_doses.KIND,) * 8 + (checkback.KIND, retention.PURGE)
    horizon = 42 * 86400 - 3600
    done = 0
    while done < stored:
        rows: list[dict[str, Any]] = []
        for _ in range(min(50_000, stored - done)):
            kind = kinds[rng.randrange(len(kinds))]
            due = now + timedelta(seconds=3600 + rng.random() * horizon)
            subject = new_id()
            key = None
            if kind == flow_doses.KIND:
                local = due.strftime("%Y-%m-%d %H:%M")
                key = flow_doses.occurrence_key(new_id(), local)
            rows.append(
                {
                    "kind": kind,
                    "subject": subject,
                    "patient_id": ids[rng.randrange(n)] if n else subject,
                    "due_at": due,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "key": key,
                    "priority": 5,
                }
            )
        await _insert(db, ScheduledEvent.__table__, rows, 50_000)
        done += len(rows)
        if stored >= 200_000 and done % 200_000 == 0:
            log(f"  {done} stored events")
    log(f"seeded {stored} future scheduled events in {time.monotonic() - t2:.1f} s")
    return Seeded(ids[:n], ids[n:], base_s=time.monotonic() - t, stored_events=stored)


def plan_rows(
    ring_key: Callable[[str], bytes], seeded: Seeded, t0: datetime, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[datetime]]:
    """One active plan per patient whose daily time is T0 in the patient's zone, its due dose
    and the dose's keyed event, as :func:`flows.doses.schedule_occurrence` writes them."""
    from zoneinfo import ZoneInfo

    from flows import doses as flow_doses
    from flows import timing
    from flows.medication import COLUMN, DONE, TABLE
    from storage.crypto import encrypt_field
    from storage.models import new_id

    plans: list[dict[str, Any]] = []
    dose_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    due: list[datetime] = []
    locals_ = {}
    for z in ZONES:
        wall = t0.astimezone(ZoneInfo(z))
        locals_[z] = (wall.strftime("%Y-%m-%d %H:%M"), wall.strftime("%H:%M"), wall.date())
    for i, pid in enumerate(seeded.patient_ids):
        zone = ZONES[i % len(ZONES)]
        label, hhmm, day = locals_[zone]
        plan_id, dose_id = new_id(), new_id()
        doc = {"name": med_name(i), "dose": "1 tablet", "food": "with"}
        details = encrypt_field(
            ring_key(pid),
            1,
            TABLE,
            COLUMN,
            plan_id,
            json.dumps(doc, ensure_ascii=False).encode("utf-8"),
        )
        schedule = timing.Schedule(times=(hhmm,), every_hours=None, start=day - timedelta(days=1))
        plans.append(
            {
                "id": plan_id,
                "patient_id": pid,
                "doctor_id": "benchdoctor",
                "consultation_id": None,
                "status": "active",
                "step": DONE,
                "version": 1,
                "details_enc": details,
                "schedule": schedule.to_json(),
                "shift_minutes": 0,
                "again_after_min": AGAIN_MIN,
                "caregiver_after_min": CAREGIVER_MIN,
                "doctor_after_min": DOCTOR_MIN,
                "created_at": now,
                "confirmed_at": now,
            }
        )
        dose_rows.append(
            {
                "id": dose_id,
                "plan_id": plan_id,
                "patient_id": pid,
                "plan_version": 1,
                "local": label,
                "due_at": t0,
                "status": flow_doses.PENDING,
                "late": False,
                "step": 0,
            }
        )
        key = flow_doses.occurrence_key(plan_id, label)
        when = t0 + timedelta(seconds=timing.jitter_seconds(key))
        due.append(when)
        events.append(
            {
                "kind": flow_doses.KIND,
                "subject": dose_id,
                "patient_id": pid,
                "due_at": when,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "key": key,
                "priority": flow_doses.PRIORITY_ROUTINE,
            }
        )
    return plans, dose_rows, events, due


async def seed_due(db: Database, ring: KeyRing, seeded: Seeded, t0: datetime) -> None:
    """The plans, due doses and due events, for the UTC minute ``t0`` (one transaction per
    table chunk of 20,000 rows)."""
    from sqlalchemy import select

    from storage.models import DataKey, Dose, MedicationPlan, ScheduledEvent, utcnow

    t = time.monotonic()
    async with db.engine.connect() as conn:
        wrapped = {
            owner: (master, blob)
            for owner, master, blob in (
                await conn.execute(
                    select(DataKey.owner_id, DataKey.master_key_id, DataKey.wrapped)
                )
            ).all()
        }

    def key_of(owner: str) -> bytes:
        master, blob = wrapped[owner]
        assert blob is not None
        return ring.unwrap(master, blob, owner)

    plans, dose_rows, events, due = plan_rows(key_of, seeded, t0, utcnow())
    await _insert(db, MedicationPlan.__table__, plans, 20_000)
    await _insert(db, Dose.__table__, dose_rows, 20_000)
    await _insert(db, ScheduledEvent.__table__, events, 20_000)
    seeded.t0 = t0
    seeded.event_due = due
    seeded.due_s = time.monotonic() - t


# --- the bot processes ---------------------------------------------------------------------------


@dataclass
class BotSpec:
    """What the Careline process runs."""

    base_url: str
    url: str
    schema: str
    work_dir: str


async def open_db(url: str, schema: str, ring: KeyRing) -> Database:
    """The benchmark's database (a schema of its own on PostgreSQL)."""
    from storage.uow import Database

    if schema:
        return Database(url, ring, connect_args={"server_settings": {"search_path": schema}})
    return Database(url, ring)


class _SkippedTicks(logging.Filter):
    """Counts (and keeps off stderr) APScheduler's warning for each sweep tick skipped
    while the previous one still drains: one a second during a long burst."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the skipped-tick warning."""
        if "maximum number of running instances" in record.getMessage():
            self.count += 1
            return False
        return True


async def serve_careline(
    spec: BotSpec, commands: asyncio.Queue[Any], emit: Callable[[tuple[str, Any]], None]
) -> None:
    """Run the real app until "stop"; then report its counters and peak RSS."""
    try:
        from pydantic import SecretStr

        from bot.app import Careline, freeze_heap
        from bot.settings import Settings
        from storage.crypto import KeyRing

        work = Path(spec.work_dir)
        ring = KeyRing.load(work / "keys.json")
        db = await open_db(spec.url, spec.schema, ring)
        settings = Settings(
            _env_file=None,  # pydantic-settings: ignore any .env in the working directory
            patient_bot_token=SecretStr(PATIENT_TOKEN),
            doctor_bot_token=SecretStr(DOCTOR_TOKEN),
            telegram_api_url=spec.base_url,
            data_dir=work,
            database_url=spec.url,
            keys_file=work / "keys.json",
            redis_url=None,
            webhook_url=None,
            timezone="UTC",
            default_locale="en",
            log_level="WARNING",
        )
        app = await Careline.build(settings, db)
        skips = _SkippedTicks()
        logging.getLogger("apscheduler.scheduler").addFilter(skips)
        await app.start()
        if mp.parent_process() is not None:  # a bot process, not inline
            freeze_heap()  # as bot.py run does after starting
        emit(
            (
                "ready",
                {
                    "outbox": {
                        "global_per_s": settings.outbox_global_per_s,
                        "per_chat_per_s": settings.outbox_per_chat_per_s,
                        "concurrency": settings.outbox_concurrency,
                    },
                    "sweeper": {"batch": app.sweeper.batch, "interval_s": app.sweeper.interval},
                },
            )
        )
        while (await commands.get()) != "stop":
            pass
        counters = {
            "swept": app.sweeper.ran,
            "sweep_failed": app.sweeper.failed,
            "sent": app.sender.stats.sent,
            "retried": app.sender.stats.retried,
            "rate_limited": app.sender.stats.rate_limited,
            "failed": app.sender.stats.failed,
            "processed": app.processor.processed,
            "sweep_ticks_skipped": skips.count,
        }
        await app.stop()
        logging.getLogger("apscheduler.scheduler").removeFilter(skips)
        await db.dispose()
        maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        emit(("result", {"counters": counters, "maxrss_kb": maxrss_kb}))
    except Exception:  # noqa: BLE001 - reported to the orchestrator, which stops
        emit(("error", traceback.format_exc()))


@dataclass
class BaselineSpec:
    """The APScheduler run: one date job per reminder at ``offsets`` after a minute start."""

    offsets: list[float]
    lead_s: float


async def serve_baseline(spec: BaselineSpec) -> dict[str, Any]:
    """One APScheduler 3 job per reminder, default settings; how many ran, and how late."""
    from apscheduler.events import EVENT_JOB_MISSED
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    # One warning per missed job otherwise (100,000 lines); the settings stay the defaults.
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    n = len(spec.offsets)
    lags: list[float] = []
    missed = [0]

    async def remind(due_ts: float) -> None:
        lags.append(time.time() - due_ts)

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_listener(lambda _e: missed.__setitem__(0, missed[0] + 1), EVENT_JOB_MISSED)
    scheduler.start()
    start = datetime.now(UTC) + timedelta(seconds=spec.lead_s)
    t0 = ceil_minute(start) if spec.lead_s >= 10 else start
    t = time.monotonic()
    for off in spec.offsets:
        due = t0 + timedelta(seconds=off)
        scheduler.add_job(remind, "date", run_date=due, args=(due.timestamp(),))
    add_s = time.monotonic() - t
    added_late = max(0.0, datetime.now(UTC).timestamp() - t0.timestamp())
    end = t0.timestamp() + max(spec.offsets, default=0.0)
    deadline = end + 60.0 + n / 2000
    while time.time() < deadline:
        if len(lags) + missed[0] >= n and time.time() > end:
            break
        await asyncio.sleep(0.2)
    scheduler.shutdown(wait=False)
    ordered = sorted(1000 * x for x in lags)
    return {
        "jobs": n,
        "ran": len(lags),
        "missed": missed[0],
        "neither": n - len(lags) - missed[0],
        "lag_p50_ms": percentile(ordered, 50),
        "lag_p99_ms": percentile(ordered, 99),
        "lag_max_ms": ordered[-1] if ordered else math.nan,
        "add_s": add_s,
        "first_due_passed_while_adding_s": added_late,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _child(kind: str, conn: Connection) -> None:
    """Entry point of a spawned process: imports once, then one run."""
    try:
        if kind == "careline":
            import bot.app  # noqa: F401 - loaded before the run, not during it
        else:
            import apscheduler.schedulers.asyncio  # noqa: F401
        conn.send(("loaded", os.getpid()))
        msg = conn.recv()
        if msg[0] == "exit":
            return
        if kind == "careline":
            asyncio.run(_careline_main(msg[1], conn))
        else:
            conn.send(("result", asyncio.run(serve_baseline(msg[1]))))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


async def _careline_main(spec: BotSpec, conn: Connection) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        while conn.poll():
            commands.put_nowait(conn.recv())

    loop.add_reader(conn.fileno(), readable)
    try:
        await serve_careline(spec, commands, conn.send)
    finally:
        loop.remove_reader(conn.fileno())


class Link:
    """A child process (or, ``inline``, a task in this event loop for the smoke test)."""

    def __init__(self, kind: str, inline: bool) -> None:
        self.kind = kind
        self.inline = inline
        self.pid: int | None = os.getpid() if inline else None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._commands: asyncio.Queue[Any] = asyncio.Queue()
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = None

    async def open(self) -> None:
        """Spawn the process (imports take seconds) unless inline."""
        if self.inline:
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(self.kind, child), daemon=True)
        self._proc.start()
        self._conn = parent
        _, pid = await arecv(parent, 120.0)
        self.pid = int(pid)

    def start(self, spec: Any) -> None:
        """Start the run."""
        if self._conn is not None:
            self._conn.send(("start", spec))
        elif self.kind == "careline":
            self._task = asyncio.create_task(
                serve_careline(spec, self._commands, self._events.put_nowait)
            )
        else:

            async def one() -> None:
                self._events.put_nowait(("result", await serve_baseline(spec)))

            self._task = asyncio.create_task(one())

    def send(self, cmd: str) -> None:
        """ "stop" (Careline)."""
        if self._conn is not None:
            self._conn.send(cmd)
        else:
            self._commands.put_nowait(cmd)

    async def recv(self, wait_s: float) -> tuple[str, Any]:
        """The next message ("ready" or "result"); raises on "error"."""
        if self._conn is not None:
            msg = await arecv(self._conn, wait_s)
        else:
            msg = await asyncio.wait_for(self._events.get(), wait_s)
        if msg[0] == "error":
            raise RuntimeError(f"{self.kind} failed:\n{msg[1]}")
        return msg

    async def close(self) -> None:
        """Wait for the task, or ask the process to exit (terminate it if it does not)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is None or self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError, BrokenPipeError):
            self._conn.send(("exit",))
        await asyncio.get_running_loop().run_in_executor(None, self._proc.join, 10.0)
        if self._proc.is_alive():
            self._proc.terminate()


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Options:
    """Command-line options."""

    patients: int = 100_000
    stored: int = 1_000_000
    window: float = 120.0
    db: str = "sqlite"
    baseline: bool = True
    quick: bool = False
    talkers: int = 4
    talk_interval: float = 3.0
    enqueue_timeout: float = 3600.0
    index_experiment: bool = False
    drain_all: bool = False
    seed: int = 1
    report: str | None = None


def quick_options(**overrides: Any) -> Options:
    """The smoke test's size: 200 patients, 2,000 stored events, a 3-second window, every
    reminder waited for."""
    base: dict[str, Any] = {
        "patients": 200,
        "stored": 2000,
        "window": 3.0,
        "quick": True,
        "talkers": 2,
        "talk_interval": 1.5,
        "enqueue_timeout": 60.0,
        "drain_all": True,
    }
    base.update(overrides)
    return Options(**base)


async def run_baseline(opts: Options, inline: bool, offsets: list[float]) -> dict[str, Any]:
    """The APScheduler baseline, in a process of its own."""
    link = Link("baseline", inline)
    await link.open()
    try:
        lead = 2.0 if opts.quick else 30.0 + 200e-6 * len(offsets)
        log(
            f"\n== baseline: {len(offsets)} APScheduler date jobs (AsyncIOScheduler, defaults: "
            f"misfire_grace_time 1 s, MemoryJobStore) due within "
            f"{max(offsets, default=0):.0f} s =="
        )
        link.start(BaselineSpec(offsets, lead))
        _, result = await link.recv(600.0 + len(offsets) / 500)
    finally:
        await link.close()
    log(
        f"baseline: {result['ran']} of {result['jobs']} jobs ran, {result['missed']} missed "
        f"(misfire), {result['neither']} neither; lag p50 {result['lag_p50_ms']:.0f} ms, p99 "
        f"{result['lag_p99_ms']:.0f} ms, max {result['lag_max_ms']:.0f} ms; adding the jobs took "
        f"{result['add_s']:.1f} s"
    )
    return result


async def _due_left(engine: AsyncEngine, t0: datetime) -> int:
    """Due events of the burst not yet run."""
    from sqlalchemy import func, select

    from storage.models import ScheduledEvent

    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count(ScheduledEvent.id)).where(
                    ScheduledEvent.status.in_(("pending", "leased")),
                    ScheduledEvent.due_at >= t0,
                    ScheduledEvent.due_at < t0 + timedelta(seconds=60),
                )
            )
            or 0
        )


async def talk(
    client: Any, probe: Probe, uid: int, interval: float, stop: asyncio.Event, rng: random.Random
) -> None:
    """A patient sending /help every ``interval`` x U(0.5, 1.5) seconds, waiting for each
    answer (at most 60 s)."""
    event = probe.talk_events.setdefault(uid, asyncio.Event())
    await asyncio.sleep(rng.uniform(0, interval))
    while not stop.is_set():
        event.clear()
        with contextlib.suppress(Exception):
            await client.send(uid, PATIENT_BOT, "/help")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 60.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval * rng.uniform(0.5, 1.5))


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def verify(engine: AsyncEngine, seeded: Seeded) -> dict[str, Any]:
    """From the database after the run: the burst's events and doses by status, and per due
    dose its outbox rows (exactly one expected) and how long after the event's due time the
    first was created."""
    from sqlalchemy import func, select

    from storage.models import Dose, OutboxMessage, Patient, ScheduledEvent

    assert seeded.t0 is not None
    t0 = seeded.t0
    n = len(seeded.patient_ids)
    index = {pid: i for i, pid in enumerate(seeded.patient_ids)}
    async with engine.connect() as conn:
        unrun = [
            index[pid]
            for (pid,) in (
                await conn.execute(
                    select(ScheduledEvent.patient_id).where(
                        ScheduledEvent.status.in_(("pending", "leased")),
                        ScheduledEvent.due_at >= t0,
                        ScheduledEvent.due_at < t0 + timedelta(seconds=60),
                    )
                )
            ).all()
            if pid in index
        ]
        events = dict(
            (
                await conn.execute(
                    select(ScheduledEvent.status, func.count())
                    .where(
                        ScheduledEvent.due_at >= t0,
                        ScheduledEvent.due_at < t0 + timedelta(seconds=60),
                    )
                    .group_by(ScheduledEvent.status)
                )
            ).all()
        )
        doses = [
            {"status": s, "late": bool(late), "step": step, "count": c}
            for s, late, step, c in (
                await conn.execute(
                    select(Dose.status, Dose.late, Dose.step, func.count())
                    .where(Dose.due_at == t0)
                    .group_by(Dose.status, Dose.late, Dose.step)
                )
            ).all()
        ]
        next_doses = int(
            await conn.scalar(
                select(func.count(Dose.id)).where(Dose.due_at > t0 + timedelta(hours=1))
            )
            or 0
        )
        rows = (
            await conn.execute(
                select(
                    OutboxMessage.chat_id, OutboxMessage.created_at, OutboxMessage.status
                ).where(
                    OutboxMessage.bot == "patient",
                    OutboxMessage.chat_id >= TG_BASE,
                    OutboxMessage.chat_id < TG_BASE + n,
                )
            )
        ).all()
        sent_db = int(
            await conn.scalar(
                select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.bot == "patient",
                    OutboxMessage.chat_id >= TG_BASE,
                    OutboxMessage.chat_id < TG_BASE + n,
                    OutboxMessage.status == "sent",
                )
            )
            or 0
        )
        unreachable = int(
            await conn.scalar(select(func.count(Patient.id)).where(Patient.unreachable)) or 0
        )
    per = [0] * n
    first: list[datetime | None] = [None] * n
    statuses: dict[str, int] = {}
    for chat_id, created, status in rows:
        i = int(chat_id) - TG_BASE
        per[i] += 1
        at = _aware(created)
        if first[i] is None or at < first[i]:  # type: ignore[operator]
            first[i] = at
        statuses[status] = statuses.get(status, 0) + 1
    lags = sorted(
        1000 * (at - seeded.event_due[i]).total_seconds()
        for i, at in enumerate(first)
        if at is not None
    )
    last = max((at for at in first if at is not None), default=None)
    return {
        "events": events,
        "doses": doses,
        "next_occurrences": next_doses,
        "outbox_rows": len(rows),
        "outbox_status": statuses,
        "sent_in_db": sent_db,
        # Not run yet when the run stopped (--enqueue-timeout): neither sent nor dropped.
        "not_run": len(unrun),
        "dropped": sum(1 for c in per if c == 0) - sum(1 for i in set(unrun) if per[i] == 0),
        "doubled": sum(1 for c in per if c > 1),
        "lag_p50_ms": percentile(lags, 50),
        "lag_p99_ms": percentile(lags, 99),
        "lag_max_ms": lags[-1] if lags else math.nan,
        "lag_min_ms": lags[0] if lags else math.nan,
        "last_enqueued_after_t0_s": (last - t0).total_seconds() if last else math.nan,
        "late_doses": sum(d["count"] for d in doses if d["late"]),
        "unreachable": unreachable,
    }


async def run_careline(opts: Options, inline: bool) -> dict[str, Any]:
    """Seed, start the app, add the burst, time it, verify it."""
    import aiohttp
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.sandbox.client import EmulatorClient
    from bot.sandbox.emulator import RateLimits
    from storage.crypto import KeyRing
    from storage.migrate import upgrade
    from storage.uow import Database

    n = opts.patients
    probe = Probe(n)
    emulator = ReminderEmulator(probe, limits=RateLimits(), seed=opts.seed)
    probe.patient_bot_id = int(
        emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")["id"]
    )
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    base_url = await emulator.start("127.0.0.1", 0)
    talker_uids = [
        emulator.create_user(f"Talker{k}", language_code="en").id for k in range(opts.talkers)
    ]
    probe.talkers = set(talker_uids)
    probe.help_prefix = help_prefix()
    tmp = tempfile.TemporaryDirectory(prefix="careline-reminders-")
    work = Path(tmp.name)
    ring, _ = KeyRing.load_or_create(work / "keys.json")
    schema = ""
    if opts.db == "sqlite":
        url = f"sqlite+aiosqlite:///{work / 'careline.db'}"
    else:
        url = opts.db
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = Database(url, ring)
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        await admin.dispose()
    db = await open_db(url, schema, ring)
    # Progress and the checks read through an engine of their own: on SQLite without the
    # app's BEGIN IMMEDIATE (a reader must not take the write lock from the bot).
    reader = db.engine if schema else create_async_engine(url)
    link = Link("careline", inline)
    out: dict[str, Any] = {}
    stop_talk = asyncio.Event()
    try:
        open_task = asyncio.create_task(link.open())
        await upgrade(db.engine)
        if opts.index_experiment:
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql(
                    "CREATE INDEX ix_bench_events_kind_subject ON scheduled_events (kind, subject)"
                )
        log(
            f"\n== Careline: seeding {n} patients, {opts.stored} stored events "
            f"({'sqlite' if not schema else 'postgresql'}) =="
        )
        seeded = await seed_base(db, ring, n, opts.stored, talker_uids, opts.seed)
        await open_task
        t = time.monotonic()
        link.start(BotSpec(base_url, url, schema, str(work)))
        _, info = await link.recv(600.0)
        out["setup"] = info
        out["start_s"] = time.monotonic() - t
        rss_idle = vm_kb(link.pid, "VmRSS") if link.pid else None
        log(
            f"bot started in {out['start_s']:.1f} s; RSS {(rss_idle or 0) / 1024:.0f} MB with "
            f"{opts.stored} stored events"
        )
        # The due minute: far enough ahead for the plans to be sealed and inserted (full
        # runs); in --quick, the minute before, so every jittered event is already due.
        now = datetime.now(UTC)
        if opts.quick:
            t0 = floor_minute(now) - timedelta(minutes=1)
        else:
            t0 = ceil_minute(now + timedelta(seconds=20 + 200e-6 * n))
        await seed_due(db, ring, seeded, t0)
        ready_at = datetime.now(UTC)
        log(
            f"seeded {n} active plans with one due dose each in {seeded.due_s:.1f} s; "
            f"T0 = {t0:%H:%M:%S} UTC, events due T0 + 0..59 s (jitter); "
            f"{(t0 - ready_at).total_seconds():+.1f} s from now"
        )
        out["seed_s"] = {"patients_and_stored": seeded.base_s, "plans_doses_events": seeded.due_s}
        out["t0"] = t0.isoformat()
        out["seed_done_before_t0_s"] = (t0 - ready_at).total_seconds()
        t0_mono = time.monotonic() + (t0 - datetime.now(UTC)).total_seconds()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            client = EmulatorClient(base_url, session=http, request_timeout=60)
            rng = random.Random(opts.seed)
            talkers = [
                asyncio.create_task(talk(client, probe, uid, opts.talk_interval, stop_talk, rng))
                for uid in talker_uids
            ]
            cpu0 = (process_cpu(link.pid) if link.pid else None, machine_cpu(), time.monotonic())
            orch0 = process_cpu(os.getpid()) or 0.0
            load0 = os.getloadavg()
            # The burst: wait until every due event has run (its outbox row written).
            deadline = time.monotonic() + max(0.0, t0_mono - time.monotonic()) + 60
            deadline += opts.enqueue_timeout
            next_report = time.monotonic()
            left = n
            while time.monotonic() < deadline:
                now_m = time.monotonic()
                if now_m > t0_mono + 60 or opts.quick:
                    left = await _due_left(reader, t0)
                    if left == 0:
                        break
                if now_m >= next_report:
                    log(
                        f"  T0 {now_m - t0_mono:+6.1f} s: {left if now_m > t0_mono else n} due "
                        f"events not run yet; {probe.delivered} reminders delivered, "
                        f"{emulator.rate_limited()} 429s"
                    )
                    next_report = now_m + (2.0 if opts.quick else 15.0)
                await asyncio.sleep(0.2 if opts.quick else 1.0)
            if now_m <= t0_mono + 60 and not opts.quick:
                left = await _due_left(reader, t0)
            enqueued_m = time.monotonic()
            out["burst_not_run"] = left
            log(
                f"burst enqueued {enqueued_m - t0_mono:.1f} s after T0 "
                f"({left} due events not run); {probe.delivered} reminders delivered so far"
            )
            # The window: messages the emulator accepted from the patient bot, at its limits.
            w0 = time.monotonic()
            delivered0, limited0 = probe.delivered, emulator.rate_limited()
            emptied = probe.delivered >= n
            next_log = w0 + 15.0
            while not emptied and time.monotonic() < w0 + opts.window:
                probe.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(probe.arrived.wait(), 5.0)
                if probe.delivered >= n:
                    emptied = True  # nothing left to send: the window ends here
                    break
                if not opts.quick and time.monotonic() >= next_log:
                    next_log += 15.0
                    log(
                        f"  window {time.monotonic() - w0:5.1f} s: "
                        f"{probe.delivered - delivered0} reminders delivered"
                    )
            w1 = probe.delivered_times[-1] if emptied else time.monotonic()
            in_window = sum(1 for x in probe.delivered_times if w0 <= x <= w1)
            ran_out = " (the backlog ran out: the window ends at the last reminder)"
            log(
                f"window: {in_window} reminders delivered in {w1 - w0:.1f} s"
                + (ran_out if emptied else "")
            )
            cpu1 = (process_cpu(link.pid) if link.pid else None, machine_cpu(), time.monotonic())
            orch1 = process_cpu(os.getpid()) or 0.0
            out["window"] = {
                "seconds": w1 - w0,
                "delivered": in_window,
                "per_s": in_window / (w1 - w0) if w1 > w0 else math.nan,
                "backlog_ran_out": emptied,
                # The limit is per bot: the talkers' answers share it with the reminders.
                "all_per_s": sum(1 for x in probe.all_times if w0 <= x <= w1) / (w1 - w0)
                if w1 > w0
                else math.nan,
                "rate_limited_429": emulator.rate_limited() - limited0,
            }
            stop_talk.set()
            await asyncio.gather(*talkers)
            if opts.drain_all:
                limit = time.monotonic() + 60 + n / 20
                while probe.delivered < n and time.monotonic() < limit:
                    probe.arrived.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(probe.arrived.wait(), 1.0)
            peak = vm_kb(link.pid, "VmHWM") if link.pid else None
            link.send("stop")
            _, result = await link.recv(300.0)
        out["bot"] = result
        out["rss_kb"] = {
            "idle_with_stored": rss_idle,
            "peak": peak or result.get("maxrss_kb"),
            "inline": inline,
        }
        first = [x for x in probe.first_at if x]
        out["delivery"] = {
            "delivered": probe.delivered,
            "patients_reached": sum(1 for c in probe.count if c),
            "twice": sum(1 for c in probe.count if c > 1),
            "wrong_patient": probe.wrong_count,
            "wrong_samples": probe.wrong,
            "unknown_chats": probe.unknown,
            "rate_limited_429": emulator.rate_limited(),
            "refused_by": dict(emulator.refusals),
            "first_after_t0_s": min(first) - t0_mono if first else math.nan,
            "run_per_s": (
                probe.delivered / (max(first) - min(first)) if len(first) > 1 else math.nan
            ),
        }
        out["replies"] = _replies(probe, t0_mono, enqueued_m, w1)
        cpu_s = None if cpu0[0] is None or cpu1[0] is None else cpu1[0] - cpu0[0]
        span = cpu1[2] - cpu0[2]
        other = None
        if cpu0[1] and cpu1[1] and cpu_s is not None:
            # This process (emulator, talkers, progress queries) is not "other" either.
            mine = orch1 - orch0 if not inline else 0.0
            other = max(0.0, cpu1[1][0] - cpu0[1][0] - cpu_s - mine)
        out["cpu"] = {
            "span_s": span,
            "bot_s": cpu_s,
            "orchestrator_s": orch1 - orch0,
            "other_processes_s": other,
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg(),
        }
        out["verify"] = await verify(reader, seeded)
    finally:
        stop_talk.set()
        await link.close()
        await emulator.stop()
        if schema:
            await db.dispose()
            admin = Database(url, ring)
            async with admin.engine.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.dispose()
        else:
            await reader.dispose()
            await db.dispose()
        tmp.cleanup()
    return out


def _replies(probe: Probe, t0_mono: float, enqueued_m: float, w1: float) -> dict[str, Any]:
    def between(a: float, b: float) -> list[float]:
        return sorted(
            1000 * (s.replied_at - s.accepted_at)
            for s in probe.samples
            if s.replied_at is not None and a <= s.accepted_at < b
        )

    before, during = between(0.0, t0_mono), between(t0_mono, w1)
    sweeping, sending = between(t0_mono, enqueued_m), between(enqueued_m, w1)
    return {
        "while_enqueueing": {
            "n": len(sweeping),
            "p50_ms": percentile(sweeping, 50),
            "p99_ms": percentile(sweeping, 99),
        },
        "while_only_sending": {
            "n": len(sending),
            "p50_ms": percentile(sending, 50),
            "p99_ms": percentile(sending, 99),
        },
        "asked": len(probe.samples),
        "answered": sum(1 for s in probe.samples if s.replied_at is not None),
        "wrong": len(probe.talk_wrong),
        "wrong_samples": probe.talk_wrong[:3],
        "before": {
            "n": len(before),
            "p50_ms": percentile(before, 50),
            "p99_ms": percentile(before, 99),
        },
        "during": {
            "n": len(during),
            "p50_ms": percentile(during, 50),
            "p99_ms": percentile(during, 99),
            "max_ms": during[-1] if during else math.nan,
        },
    }


def _r(x: float | None, digits: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def summary_line(
    opts: Options,
    care: dict[str, Any],
    base: dict[str, Any] | None,
    same: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one JSON line."""
    v, w, d, rep = care["verify"], care["window"], care["delivery"], care["replies"]
    peak_kb = care["rss_kb"]["peak"]
    line: dict[str, Any] = {
        "patients": opts.patients,
        "stored_events": opts.stored,
        "db": "sqlite" if opts.db == "sqlite" else "postgresql",
        "enqueue_p50_ms": _r(v["lag_p50_ms"]),
        "enqueue_p99_ms": _r(v["lag_p99_ms"]),
        "enqueue_max_ms": _r(v["lag_max_ms"]),
        "dropped": v["dropped"],
        "not_run": v["not_run"],
        "doubled": v["doubled"],
        "late_wording": v["late_doses"],
        "delivered": d["delivered"],
        "wrong_patient": d["wrong_patient"],
        "window_s": _r(w["seconds"]),
        "send_per_s": _r(w["per_s"], 2),
        "send_per_s_with_replies": _r(w["all_per_s"], 2),
        "rate_limited_429": d["rate_limited_429"],
        "reply_p99_ms": _r(rep["during"]["p99_ms"]),
        "reply_p99_before_ms": _r(rep["before"]["p99_ms"]),
        "reply_n": rep["during"]["n"],
        "peak_rss_mb": _r(peak_kb / 1024 if peak_kb else None),
        "seed_s": _r(sum(care["seed_s"].values())),
        "index_experiment": opts.index_experiment,
    }
    if base is not None:
        line.update(
            baseline_jobs=base["jobs"],
            baseline_ran=base["ran"],
            baseline_missed=base["missed"],
            baseline_lag_p50_ms=_r(base["lag_p50_ms"]),
            baseline_lag_p99_ms=_r(base["lag_p99_ms"]),
            baseline_lag_max_ms=_r(base["lag_max_ms"]),
            ran_ratio=_r((opts.patients - v["dropped"]) / base["ran"] if base["ran"] else None, 2),
            enqueue_p99_ratio=_r(
                v["lag_p99_ms"] / base["lag_p99_ms"] if base["lag_p99_ms"] > 0 else None, 1
            ),
        )
    if same is not None:
        line.update(
            baseline_same_second_ran=same["ran"],
            baseline_same_second_missed=same["missed"],
            baseline_same_second_lag_p99_ms=_r(same["lag_p99_ms"]),
        )
    line["goals"] = {
        "dropped_0": v["dropped"] == 0 and v["doubled"] == 0 and d["wrong_patient"] == 0,
        "send_per_s_29": bool(w["all_per_s"] >= GOAL_SEND_PER_S),
        "zero_429": d["rate_limited_429"] == 0,
        "rss_300mb": bool(peak_kb and peak_kb / 1024 <= GOAL_RSS_MB),
        "reply_p99_within_inbound": bool(
            rep["during"]["n"] and rep["during"]["p99_ms"] <= INBOUND_P99_MS
        ),
    }
    return line


def describe(opts: Options, care: dict[str, Any], line: dict[str, Any]) -> None:
    """The figures, on stderr."""
    v, w, d, rep = care["verify"], care["window"], care["delivery"], care["replies"]
    log("\n== results ==")
    log(
        f"burst: {opts.patients} dose events due T0..T0+59 s; events by status {v['events']}; "
        f"doses {v['doses']}; next occurrences scheduled {v['next_occurrences']}"
    )
    log(
        f"due -> enqueued (outbox created_at - event due_at): p50 {v['lag_p50_ms']:.0f} ms, "
        f"p99 {v['lag_p99_ms']:.0f} ms, max {v['lag_max_ms']:.0f} ms (min {v['lag_min_ms']:.0f});"
        f" last row {v['last_enqueued_after_t0_s']:.1f} s after T0"
    )
    log(
        f"dropped {v['dropped']}, not run when stopped {v['not_run']}, doubled {v['doubled']}, "
        f"'late' wording {v['late_doses']}; "
        f"outbox rows {v['outbox_rows']} {v['outbox_status']}"
    )
    log(
        f"send rate over a {w['seconds']:.0f} s window after the burst was enqueued: "
        f"{w['per_s']:.2f}/s, {w['all_per_s']:.2f}/s with the /help answers (limit "
        f"{TELEGRAM_PER_S:.0f}/s per bot), 429s in the window "
        f"{w['rate_limited_429']}, in the run {d['rate_limited_429']}"
    )
    log(
        f"delivered {d['delivered']} reminders to {d['patients_reached']} patients "
        f"({d['twice']} twice, {d['wrong_patient']} with another patient's medicine, "
        f"{d['unknown_chats']} to unknown chats); sent per the database {v['sent_in_db']}"
    )
    for sample in d["wrong_samples"]:
        log(f"  sample: {sample}")
    log(
        f"429s by the bucket that refused: {d['refused_by'] or 'none'}; bot counters "
        f"{care['bot'].get('counters')}"
    )
    for sample in rep["wrong_samples"]:
        log(f"  a /help answer that is not the help text: {sample!r}")
    log(
        f"/help answers: before T0 p50 {rep['before']['p50_ms']:.0f} ms p99 "
        f"{rep['before']['p99_ms']:.0f} ms (n={rep['before']['n']}); during the burst and "
        f"window p50 {rep['during']['p50_ms']:.0f} ms p99 {rep['during']['p99_ms']:.0f} ms "
        f"(n={rep['during']['n']}); {rep['answered']} of {rep['asked']} answered"
    )
    a, b = rep["while_enqueueing"], rep["while_only_sending"]
    log(
        f"  of which while the sweeper was enqueueing: p50 {a['p50_ms']:.0f} ms p99 "
        f"{a['p99_ms']:.0f} ms (n={a['n']}); in the window (sending only): p50 "
        f"{b['p50_ms']:.0f} ms p99 {b['p99_ms']:.0f} ms (n={b['n']})"
    )
    rss = care["rss_kb"]
    log(
        f"bot RSS: {(rss['idle_with_stored'] or 0) / 1024:.0f} MB idle with the stored events, "
        f"peak {(rss['peak'] or 0) / 1024:.0f} MB"
        + (" (inline: the test process, not a bot process)" if rss["inline"] else "")
    )
    c = care["cpu"]
    if c["bot_s"] is not None:
        log(
            f"CPU over {c['span_s']:.0f} s: bot {100 * c['bot_s'] / c['span_s']:.0f}% of a core; "
            + (
                f"other processes {100 * c['other_processes_s'] / c['span_s']:.0f}%"
                if c["other_processes_s"] is not None
                else ""
            )
            + f"; load average {c['loadavg_before'][0]:.2f} -> {c['loadavg_after'][0]:.2f}"
        )
    log(
        "goals: "
        + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in line["goals"].items())
    )


async def run_all(opts: Options, *, inline: bool = False) -> dict[str, Any]:
    """Baseline then Careline; returns the full report (``line`` is the JSON result line)."""
    from importlib.metadata import version

    from flows import doses as flow_doses
    from flows import timing

    log(
        f"Careline reminder benchmark: {opts.patients} patients, {opts.stored} stored events, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, aiogram "
        f"{version('aiogram')}, APScheduler {version('apscheduler')}, "
        f"{'sqlite' if opts.db == 'sqlite' else 'postgresql'}; code {code_version()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    # The baseline's jobs are due at the same offsets in their minute as Careline's events.
    spread = 60.0 if not opts.quick else 2.0
    offsets = [
        timing.jitter_seconds(flow_doses.occurrence_key(f"{i:032x}", "2026-01-01 08:00"))
        * spread
        / 60.0
        for i in range(opts.patients)
    ]
    base = same = None
    if opts.baseline:
        base = await run_baseline(opts, inline, offsets)
        # And as the design brief measured it: every job due in the same second.
        same = await run_baseline(opts, inline, [0.0] * opts.patients)
    care = await run_careline(opts, inline)
    line = summary_line(opts, care, base, same)
    describe(opts, care, line)
    return {
        "line": line,
        "options": asdict(opts),
        "code": code_version(),
        "cpus": os.cpu_count(),
        "careline": care,
        "baseline": base,
        "baseline_same_second": same,
    }


def parse_args(argv: list[str] | None) -> Options:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.reminders",
        description="N dose reminders due in the same minute: due -> enqueued, drops, send rate "
        "at Telegram's limits, reply latency during the burst, peak RSS with many stored events; "
        "vs one APScheduler job per reminder.",
    )
    ap.add_argument("--patients", type=int, default=100_000, help="reminders due (100000)")
    ap.add_argument(
        "--stored", type=int, default=1_000_000, help="future events stored besides (1000000)"
    )
    ap.add_argument(
        "--window", type=float, default=120.0, help="seconds of sending measured (120)"
    )
    ap.add_argument("--db", default="sqlite", help="'sqlite' (temp dir) or a PostgreSQL URL")
    ap.add_argument("--skip-baseline", action="store_true", help="no APScheduler baseline")
    ap.add_argument(
        "--quick", action="store_true", help="smoke size: 200 patients, 2000 stored, 3 s window"
    )
    ap.add_argument("--talkers", type=int, help="patients sending /help during the run (4)")
    ap.add_argument(
        "--enqueue-timeout",
        type=float,
        default=3600.0,
        help="stop waiting for the burst this many seconds after T0 + 60 s (3600); what has "
        "not run by then is reported as not run",
    )
    ap.add_argument(
        "--index-experiment",
        action="store_true",
        help="experiment, not the app's schema: add an index on scheduled_events (kind, "
        "subject) to the benchmark's database before the run",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", help="write the full report as JSON to this file")
    a = ap.parse_args(argv)
    if a.db != "sqlite" and not a.db.startswith("postgresql"):
        ap.error("--db is 'sqlite' or a postgresql+asyncpg:// URL")
    if a.patients < 1 or a.stored < 0 or a.window <= 0:
        ap.error("--patients must be >= 1, --stored >= 0, --window > 0")
    if a.patients >= 1_000_000:
        ap.error("--patients must be below 1,000,000")
    common: dict[str, Any] = {
        "db": a.db,
        "baseline": not a.skip_baseline,
        "seed": a.seed,
        "report": a.report,
        "index_experiment": a.index_experiment,
    }
    if a.talkers is not None:
        common["talkers"] = max(0, a.talkers)
    if a.quick:
        return quick_options(**common)
    return Options(
        patients=a.patients,
        stored=a.stored,
        window=a.window,
        enqueue_timeout=a.enqueue_timeout,
        **common,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last stdout line is the JSON result."""
    opts = parse_args(argv)
    report = asyncio.run(run_all(opts))
    if opts.report:
        Path(opts.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report["line"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
