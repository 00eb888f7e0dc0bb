"""Tap on a time -> invoice: how long a patient waits for the invoice after choosing a slot.

    python -m benchmarks.booking_tap [--taps 100] [--concurrency 10] [--warmup 5] [--seed 1]
    python -m benchmarks.booking_tap --quick            # a smoke-test size

Goal (the issue): p99 tap -> invoice <= 300 ms on SQLite.

What runs, all in this process and one event loop: a temp dir, a migrated SQLite database, the
Bot API emulator (``bot/sandbox/emulator.py``) on 127.0.0.1 with the two Careline bots and a
third bot for the baseline, and the real Careline app (``Careline.build(settings, db)`` +
``start()``: both bots, our getUpdates poller, the processor, the outbox sender, the sweeper)
polling it over HTTP. Seeded with the project's own flows: one verified doctor
(general), the phone service at 150 XTR (``flows.services.add``), the doctor's hours
"phone mon-sun 00:00-23:45 slot 15" (``flows.booking.add_rule``, slots laid out 14 days
ahead), and one onboarded patient (``onboarding_state="done"``, locale en) per simulated user.

Settings: as ``tests/e2e/conftest.clinic_settings`` (the two tokens, the emulator's URL, the
temp dir) but with the app's DEFAULT outbox settings: ``outbox_global_per_s`` 30,
``outbox_per_chat_per_s`` 1, ``outbox_per_chat_burst`` 3, ``outbox_concurrency`` 8 (no
test pacing, no concurrency 1). Everything else is ``Settings()``'s default. The emulator's
own rate limits are off (as in the other benchmarks and the e2e tests): Careline paces itself.
Python logging stays at WARNING.

Unmeasured setup: every simulated user sends "/bookings" to the patient bot and waits for the
answer (so the chat has a bot message to hang a button on) and "/start" to the baseline bot
(answered with one message); then ``--warmup`` taps per bot, by users of their own.

Measured, per bot, two phases, each user tapping once and on a DIFFERENT free slot:

* sequential: ``--taps`` taps, one at a time (the next after the previous one's invoice);
* concurrent: the same number of taps in bursts of ``--concurrency`` at once (the next burst
  when the whole burst has its invoices).

A tap is a forged callback (``EmulatorClient.click(..., force=True)``) on the bot message
from the setup, with Careline's slot button data ``BookCB(action="slot", value=<slot id>)``:
Careline answers the callback, holds the slot, opens the booking and queues "... is held for
you ..." and the ``sendInvoice`` call through the outbox.

Latency (the headline figures): emulator-side, ``time.monotonic()`` when the emulator queued
the callback_query update for the bot (right after ``BotApiEmulator.click``) -> when it stored
the bot's invoice message for that user (``add_bot_message`` of the ``sendInvoice`` call,
before its HTTP answer goes back). Both stamps come from a subclass of the emulator (as
``benchmarks/relay.py`` does), so they exclude the simulated client's HTTP legs. The
client-side figure is printed beside it: from just before the click request to the moment
``wait_for_invoice`` (a long poll on /client/events) returned the invoice.

Baseline beside it (same run, same emulator, same users, the same forged callback): a bare
aiogram 3 ``Dispatcher`` run by aiogram's own ``start_polling`` (pointed at the emulator with
``TelegramAPIServer.from_base``, as in ``benchmarks/inbound.py``) whose callback_query handler
at once calls ``bot.send_invoice(chat, ..., currency="XTR", prices=[LabeledPrice(150)])``:
no database, no outbox, no pacing, no answerCallbackQuery. Ratios are Careline's p99 / the
baseline's p99 per phase.

Where the time goes (per phase, p50 / p99 / max ms after the callback update was queued,
all emulator-side): ``delivered`` (getUpdates handed it to the bot), ``answered``
(answerCallbackQuery accepted; Careline only), ``first_text`` (the first other message:
Careline's "held for you"), ``invoice``. ``--report FILE`` also writes every tap's stamps.

CPU: ``resource.getrusage`` of this process over each measured phase, i.e. the bot, the
emulator and the simulated clients together (they share the process), as cores used.

Garbage collection: a full (generation-2) collection stops everything in the process for as
long as it takes to walk every tracked object (~335,000 here: ~200-330 ms on the 2-core VM).
Left alone, one fires when enough long-lived objects have piled up, i.e. in whichever phase
runs then, and its pause lands on that phase's bot at random (in early versions of this
benchmark it fell on the baseline's bursts, making it look slower than Careline). So each
measured phase starts with one full collection, unmeasured and timed: ``full_gc_ms`` is the
pause any tap can meet in this process when one does fire (in production: every time the
long-lived objects grow by a quarter), ``gc_full_in_phases`` counts the ones that still fell
inside a phase, and each phase lists its collections (``gc.callbacks``). As ``bot.py run``
does, the heap is frozen right after ``app.start()`` (``bot.app.freeze_heap``), so full
collections skip what the app holds from its start; ``--no-gc-freeze`` measures without.

Progress goes to stderr, then one human summary line; the last stdout line is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.emulator_state import BotRecord, ChatState, SimUser, StoredMessage
from bot.settings import Settings
from storage.crypto import KeyRing
from storage.uow import Database

PATIENT_TOKEN = "100001:bench-patient-token-0001"  # noqa: S105 - a fake token for the emulator
DOCTOR_TOKEN = "100002:bench-doctor-token-0002"  # noqa: S105 - a fake token for the emulator
BASELINE_TOKEN = "100003:bench-baseline-token-0003"  # noqa: S105 - a fake token for the emulator
PATIENT_BOT = "careline_patient_bot"
DOCTOR_BOT = "careline_doctor_bot"
BASELINE_BOT = "bare_aiogram_bot"
GOAL_P99_MS = 300.0
PRICE_XTR = 150
INVOICE_TIMEOUT_S = 30.0  # a tap without its invoice by then counts as missing
SETUP_PARALLEL = 16  # users doing their unmeasured setup at once

_T_START = time.monotonic()


def log(text: str) -> None:
    """Progress on stderr, stamped with the seconds since start."""
    print(f"[{time.monotonic() - _T_START:5.1f}s] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of unsorted values; nan if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


# --- the emulator's own stamps ------------------------------------------------------------------


@dataclass
class Tap:
    """One measured tap: the stamps (time.monotonic(), this process)."""

    user_id: int
    client_start: float = 0.0  # just before the click request
    clicked: float | None = None  # the emulator queued the callback_query update
    delivered: float | None = None  # getUpdates handed that update to the bot
    answered: float | None = None  # answerCallbackQuery accepted
    texted: float | None = None  # the first other bot message stored (Careline: "held")
    invoiced: float | None = None  # the emulator stored the invoice message
    client_done: float | None = None  # wait_for_invoice returned it to the client

    @property
    def emulator_ms(self) -> float | None:
        """Emulator-side latency, callback update queued -> sendInvoice stored."""
        if self.clicked is None or self.invoiced is None:
            return None
        return (self.invoiced - self.clicked) * 1000

    def stage_ms(self, stamp: float | None) -> float | None:
        """Milliseconds from the callback update to ``stamp`` (None if either is missing)."""
        if self.clicked is None or stamp is None:
            return None
        return (stamp - self.clicked) * 1000

    @property
    def client_ms(self) -> float | None:
        """Client-side latency, before the click request -> invoice seen by the client."""
        if self.client_done is None:
            return None
        return (self.client_done - self.client_start) * 1000


class Probe:
    """Matches the emulator's events to the tap in progress for each (bot, user)."""

    def __init__(self) -> None:
        self.open: dict[tuple[int, int], Tap] = {}
        self.unexpected_invoices = 0

    def expect(self, bot_id: int, user_id: int) -> Tap:
        """The client is about to tap as ``user_id`` on ``bot_id``."""
        tap = Tap(user_id)
        self.open[(bot_id, user_id)] = tap
        return tap

    def on_click(self, bot_id: int, user_id: int, now: float) -> None:
        """The emulator queued a callback_query update."""
        tap = self.open.get((bot_id, user_id))
        if tap is not None and tap.clicked is None:
            tap.clicked = now

    def on_delivered(self, bot_id: int, user_id: int, now: float) -> None:
        """getUpdates returned a callback query of this user to the bot."""
        tap = self.open.get((bot_id, user_id))
        if tap is not None and tap.clicked is not None and tap.delivered is None:
            tap.delivered = now

    def on_answer(self, bot_id: int, user_id: int, now: float) -> None:
        """The bot answered a callback query of this user."""
        tap = self.open.get((bot_id, user_id))
        if tap is not None and tap.clicked is not None and tap.answered is None:
            tap.answered = now

    def on_text(self, bot_id: int, user_id: int, now: float) -> None:
        """The bot sent this user a message that is not an invoice."""
        tap = self.open.get((bot_id, user_id))
        if tap is not None and tap.clicked is not None and tap.texted is None:
            tap.texted = now

    def on_invoice(self, bot_id: int, user_id: int, now: float) -> None:
        """The emulator stored an invoice message from ``bot_id`` to ``user_id``."""
        tap = self.open.get((bot_id, user_id))
        if tap is None or tap.clicked is None or tap.invoiced is not None:
            self.unexpected_invoices += 1
            return
        tap.invoiced = now


class TimedEmulator(BotApiEmulator):
    """The project's emulator, telling a :class:`Probe` when a callback update was queued,
    handed to the bot and answered, and when the bot's messages were stored."""

    def __init__(self, probe: Probe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    def click(
        self, bot: BotRecord, user: SimUser, message_id: int, data: str, *, force: bool
    ) -> tuple[int, str, int]:
        """Queue the callback update, then stamp it."""
        result = super().click(bot, user, message_id, data, force=force)
        self.probe.on_click(bot.id, user.id, time.monotonic())
        return result

    def add_bot_message(self, bot: BotRecord, chat: ChatState, msg: StoredMessage) -> None:
        """Store the bot's message, then stamp it if it is an invoice."""
        super().add_bot_message(bot, chat, msg)
        if msg.invoice is not None:
            self.probe.on_invoice(bot.id, chat.user_id, time.monotonic())
        else:
            self.probe.on_text(bot.id, chat.user_id, time.monotonic())

    async def get_updates(
        self, bot: BotRecord, *, offset: int, limit: int, poll_s: int, allowed_updates: Any
    ) -> list[dict[str, Any]]:
        """Hand out updates, then stamp the callback queries among them."""
        updates = await super().get_updates(
            bot, offset=offset, limit=limit, poll_s=poll_s, allowed_updates=allowed_updates
        )
        now = time.monotonic()
        for update in updates:
            query = update.get("callback_query")
            if isinstance(query, dict):
                self.probe.on_delivered(bot.id, int(query["from"]["id"]), now)
        return updates

    def answer_callback(
        self, bot: BotRecord, qid: str, text: str | None, show_alert: bool, url: str | None
    ) -> None:
        """Record the answer, then stamp it."""
        rec = self.callbacks.get(qid)
        super().answer_callback(bot, qid, text, show_alert, url)
        if rec is not None:
            self.probe.on_answer(bot.id, rec.user_id, time.monotonic())


# --- the bots -------------------------------------------------------------------------------


def careline_settings(data_dir: Path, base_url: str) -> Settings:
    """As tests/e2e/conftest.clinic_settings, but the app's default outbox settings."""
    values: dict[str, Any] = {
        "patient_bot_token": SecretStr(PATIENT_TOKEN),
        "doctor_bot_token": SecretStr(DOCTOR_TOKEN),
        "telegram_api_url": base_url,
        "data_dir": data_dir,
    }
    return Settings.model_construct(**{**Settings().model_dump(), **values})


@dataclass
class Baseline:
    """The bare aiogram bot: its counters and how to stop it."""

    stop: Callable[[], Awaitable[None]]
    handled: dict[str, int] = field(default_factory=dict)


async def start_baseline(base_url: str) -> Baseline:
    """A bare aiogram Dispatcher polling the emulator: a message gets one message back, a
    callback query one Stars invoice, sent at once from the handler."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import CallbackQuery, LabeledPrice, Message

    bot = Bot(BASELINE_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))
    dp = Dispatcher()
    handled = {"messages": 0, "callbacks": 0}

    async def on_message(message: Message, bot: Bot) -> None:
        """Answer any message (the setup's /start), so the chat has a bot message."""
        handled["messages"] += 1
        await bot.send_message(message.chat.id, "Hello")

    async def on_callback(query: CallbackQuery, bot: Bot) -> None:
        """Any button: the invoice, at once."""
        handled["callbacks"] += 1
        await bot.send_invoice(
            query.from_user.id,
            title="Phone consultation",
            description="A 15-minute phone call with a doctor",
            payload=f"bench:{query.id}",
            currency="XTR",
            prices=[LabeledPrice(label="Phone call", amount=PRICE_XTR)],
            provider_token="",
        )

    dp.message.register(on_message)
    dp.callback_query.register(on_callback)
    await bot.delete_webhook()
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False))

    async def stop() -> None:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.gather(polling, return_exceptions=True)
        await bot.session.close()

    return Baseline(stop, handled)


# --- seeding --------------------------------------------------------------------------------


async def seed(db: Database, user_ids: list[int], slots_needed: int) -> list[str]:
    """The doctor, the phone service, the hours, one onboarded patient per user; returns the
    ids of the first ``slots_needed`` free slots starting at least an hour from now."""
    from flows import booking, services
    from storage.models import Doctor, Patient, utcnow

    now = utcnow()
    async with db.uow() as uow:
        doctor = await uow.doctors.add(
            Doctor(
                tg_user_id=900_000_001,
                locale="en",
                status="verified",
                verified_until=now + timedelta(days=300),
                departments="general",
            )
        )
        await services.add(uow, "admin:bench", "phone", minutes=15, price=f"{PRICE_XTR} XTR")
        await booking.add_rule(uow, doctor, "phone mon-sun 00:00-23:45 slot 15", "UTC", now)
        for uid in user_ids:
            await uow.patients.add(Patient(tg_user_id=uid, locale="en", onboarding_state="done"))
        await uow.commit()
        doctor_id = doctor.id
    async with db.uow() as uow:
        free = [
            s.id
            for s in await uow.bookings.free_slots(
                doctor_id, "phone", utcnow() + timedelta(hours=1), slots_needed
            )
        ]
    if len(free) < slots_needed:
        raise SystemExit(f"only {len(free)} free slots for {slots_needed} taps")
    return free


# --- the taps -------------------------------------------------------------------------------


@dataclass
class Target:
    """One bot under test, as the simulated users see it."""

    name: str  # careline | baseline
    username: str
    bot_id: int
    anchor: dict[int, int]  # user id -> the bot message id the forged button hangs on
    data: Callable[[int], str]  # tap number -> callback data


async def tap_once(
    client: EmulatorClient, probe: Probe, target: Target, uid: int, data: str
) -> Tap:
    """One forged button press and the wait for its invoice."""
    tap = probe.expect(target.bot_id, uid)
    tap.client_start = time.monotonic()
    await client.click(uid, target.username, target.anchor[uid], data, force=True)
    with contextlib.suppress(TimeoutError):
        await client.wait_for_invoice(uid, target.username, timeout=INVOICE_TIMEOUT_S)
        tap.client_done = time.monotonic()
    return tap


class GcWatch:
    """Pauses of the garbage collector in this process (all of it: bot, emulator, client)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks hook."""
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._start))

    def figures(self) -> dict[str, Any]:
        """Collections and their pauses since the last call."""
        pauses, self.pauses = self.pauses, []
        return {
            "gc_collections": len(pauses),
            "gc_gen2": sum(1 for g, _ in pauses if g == 2),
            "gc_total_ms": round(sum(p for _, p in pauses) * 1000, 1),
            "gc_max_ms": round(max((p for _, p in pauses), default=0.0) * 1000, 1),
        }


GC = GcWatch()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run_phase(
    client: EmulatorClient,
    probe: Probe,
    target: Target,
    phase: str,
    users: list[int],
    first_tap: int,
    concurrency: int,
) -> dict[str, Any]:
    """Tap once per user, ``concurrency`` at a time (1: sequential); returns the figures."""
    # A full collection first (unmeasured, timed): otherwise one lands in whichever phase
    # happens to be running when enough long-lived objects have piled up, and its pause
    # (everything in this shared process: both bots, the emulator, the client) is charged to
    # that phase's bot at random. Its cost is reported on its own (full_gc_ms).
    t = time.perf_counter()
    gc.collect()
    full_gc_ms = round((time.perf_counter() - t) * 1000, 1)
    GC.figures()
    cpu0, wall0 = _cpu_s(), time.monotonic()
    taps: list[Tap] = []
    for start in range(0, len(users), concurrency):
        burst = users[start : start + concurrency]
        taps += await asyncio.gather(
            *(
                tap_once(client, probe, target, uid, target.data(first_tap + start + i))
                for i, uid in enumerate(burst)
            )
        )
    wall = time.monotonic() - wall0
    cpu = _cpu_s() - cpu0
    emu = [ms for t in taps if (ms := t.emulator_ms) is not None]
    cli = [ms for t in taps if (ms := t.client_ms) is not None]
    figures: dict[str, Any] = {
        "bot": target.name,
        "phase": phase,
        "concurrency": concurrency,
        "taps": len(taps),
        "invoices": len(emu),
        "missing": len(taps) - len(emu),
        "client_missing": len(taps) - len(cli),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_cores": round(cpu / wall, 3) if wall > 0 else None,
        **GC.figures(),
        "full_gc_before_ms": full_gc_ms,
    }
    for q in (50, 90, 99):
        figures[f"p{q}_ms"] = _round(percentile(emu, q))
    figures["max_ms"] = _round(max(emu) if emu else math.nan)
    figures["mean_ms"] = _round(sum(emu) / len(emu) if emu else math.nan)
    for q in (50, 99):
        figures[f"client_p{q}_ms"] = _round(percentile(cli, q))
    figures["client_max_ms"] = _round(max(cli) if cli else math.nan)
    # where the time goes: callback update queued -> each stamp (p50 / p99 / max, ms)
    stages: dict[str, list[float | None]] = {}
    for stage, pick in (
        ("delivered", lambda t: t.delivered),
        ("answered", lambda t: t.answered),
        ("first_text", lambda t: t.texted),
        ("invoice", lambda t: t.invoiced),
    ):
        got = [ms for t in taps if (ms := t.stage_ms(pick(t))) is not None]
        if got:
            stages[stage] = [
                _round(percentile(got, 50)),
                _round(percentile(got, 99)),
                _round(max(got)),
            ]
    figures["stages_p50_p99_max_ms"] = stages
    # every tap's stamps, ms after the phase began (for --report only; popped from the line)
    figures["tap_stamps_ms"] = [
        {
            "user": t.user_id,
            **{
                k: None if v is None else round((v - wall0) * 1000, 2)
                for k, v in (
                    ("client_start", t.client_start),
                    ("clicked", t.clicked),
                    ("delivered", t.delivered),
                    ("answered", t.answered),
                    ("first_text", t.texted),
                    ("invoiced", t.invoiced),
                    ("client_done", t.client_done),
                )
            },
        }
        for t in taps
    ]
    log(
        f"{target.name:8} {phase:10} x{concurrency:<3} {len(emu)}/{len(taps)} invoices  "
        f"p50 {figures['p50_ms']} p90 {figures['p90_ms']} p99 {figures['p99_ms']} "
        f"max {figures['max_ms']} ms (client p50 {figures['client_p50_ms']} p99 "
        f"{figures['client_p99_ms']} ms)  {wall:.1f} s, cpu {figures['cpu_cores']} cores, "
        f"gc {figures['gc_collections']} ({figures['gc_gen2']} full) max "
        f"{figures['gc_max_ms']} ms"
    )
    return figures


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


async def _bounded(items: list[int], work: Callable[[int], Awaitable[None]]) -> None:
    sem = asyncio.Semaphore(SETUP_PARALLEL)

    async def one(item: int) -> None:
        async with sem:
            await work(item)

    await asyncio.gather(*(one(i) for i in items))


# --- the run --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--quick`` overrides the sizes)."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.booking_tap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--taps", type=int, default=100, help="taps per phase and bot (100)")
    ap.add_argument("--concurrency", type=int, default=10, help="taps per burst (10)")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured taps per bot first (5)")
    ap.add_argument("--seed", type=int, default=1, help="which free slot each tap takes (1)")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 6 taps, bursts of 3")
    ap.add_argument("--report", help="also write the figures with every tap's stamps here")
    ap.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="do not gc.freeze() once the app has started (bot.py run does; see bot.app)",
    )
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.taps, opts.concurrency, opts.warmup = 6, 3, 1
    if opts.taps < 1 or opts.concurrency < 1 or opts.warmup < 0:
        ap.error("--taps and --concurrency must be at least 1, --warmup at least 0")
    return opts


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns the figures (the JSON line)."""
    from bot.app import Careline, freeze_heap
    from handlers.patient.booking import BookCB
    from storage.migrate import upgrade

    load_before = os.getloadavg()
    if GC not in gc.callbacks:
        gc.callbacks.append(GC)
    probe = Probe()
    emulator = TimedEmulator(probe, limits=RateLimits(enabled=False), seed=opts.seed)
    patient = emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    base = emulator.register_bot(BASELINE_TOKEN, username=BASELINE_BOT, first_name="Baseline")
    # users: warm-up, sequential, concurrent; every tap has a user (and a slot) of its own
    n_users = opts.warmup + 2 * opts.taps
    users = [
        emulator.create_user(f"Patient {i + 1}", language_code="en").id for i in range(n_users)
    ]
    warm, seq_users, conc_users = (
        users[: opts.warmup],
        users[opts.warmup : opts.warmup + opts.taps],
        users[opts.warmup + opts.taps :],
    )
    url = await emulator.start("127.0.0.1", 0)
    tmp = tempfile.TemporaryDirectory(prefix="booking-tap-")
    data_dir = Path(tmp.name)
    ring, _ = KeyRing.load_or_create(data_dir / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{data_dir}/careline.db", ring)
    app: Careline | None = None
    baseline: Baseline | None = None
    client = EmulatorClient(url)
    await client.__aenter__()
    try:
        await upgrade(db.engine)
        tracked: dict[str, int] = {"before_seed": len(gc.get_objects())}
        slots = await seed(db, users, n_users)
        random.Random(opts.seed).shuffle(slots)
        log(f"seeded: 1 doctor, {n_users} patients, {len(slots)} free slots; {url}")
        app = await Careline.build(careline_settings(data_dir, url), db)
        await app.start()
        if opts.gc_freeze:
            freeze_heap()  # as bot.py run does: a full collection skips what is alive now
        tracked["careline_started"] = len(gc.get_objects())
        baseline = await start_baseline(url)
        careline = Target(
            "careline",
            PATIENT_BOT,
            int(patient["id"]),
            {},
            lambda i: BookCB(action="slot", value=slots[i]).pack(),
        )
        bare = Target("baseline", BASELINE_BOT, int(base["id"]), {}, lambda i: f"slot:{i}")

        async def setup(uid: int) -> None:
            await client.send(uid, PATIENT_BOT, "/bookings")
            careline.anchor[uid] = int((await client.wait_for(uid, PATIENT_BOT))["message_id"])
            await client.send(uid, BASELINE_BOT, "/start")
            bare.anchor[uid] = int((await client.wait_for(uid, BASELINE_BOT))["message_id"])

        t = time.monotonic()
        await _bounded(users, setup)
        log(
            f"setup: {n_users} users have a bot message in both chats "
            f"({time.monotonic() - t:.1f} s)"
        )
        # Let the per-chat buckets of the setup answers refill (1/s, burst 3): a tap should
        # not wait for pacing left over from the unmeasured setup.
        await asyncio.sleep(2.0)

        phases: list[dict[str, Any]] = []
        for target in (careline, bare):
            if warm:
                await run_phase(client, probe, target, "warmup", warm, 0, 1)
            first = len(warm)
            phases.append(
                await run_phase(client, probe, target, "sequential", seq_users, first, 1)
            )
            first += len(seq_users)
            phases.append(
                await run_phase(
                    client, probe, target, "concurrent", conc_users, first, opts.concurrency
                )
            )
        async with db.uow() as uow:
            held = [b.slot_id for b in await uow.bookings.all_bookings() if b.status == "pending"]
        sender = app.sender.stats
        tracked["end"] = len(gc.get_objects())
        full_gc = [p["full_gc_before_ms"] for p in phases]
        log(
            f"objects tracked by gc: {tracked}; a full collection before each phase took "
            f"{full_gc} ms"
        )
        extra = {
            "careline_sender": {
                "sent": sender.sent,
                "retried": sender.retried,
                "rate_limited": sender.rate_limited,
                "failed": sender.failed,
            },
            "baseline_handled": dict(baseline.handled),
            # every Careline tap held its own slot: warm-up + 2 x taps pending bookings
            "careline_bookings_held": len(held),
            "careline_slots_held": len(set(held)),
            "gc_tracked_objects": tracked,
            "full_gc_ms": max(full_gc),
            "gc_full_in_phases": sum(p["gc_gen2"] for p in phases),
            "gc_freeze": bool(opts.gc_freeze),
        }
    finally:
        await client.__aexit__(None, None, None)
        if baseline is not None:
            await baseline.stop()
        if app is not None:
            await app.stop()
        await emulator.stop()
        await db.dispose()
        tmp.cleanup()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(GC)
        if opts.gc_freeze:
            gc.unfreeze()
    return _result(opts, phases, probe, extra, load_before)


def _result(
    opts: argparse.Namespace,
    phases: list[dict[str, Any]],
    probe: Probe,
    extra: dict[str, Any],
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    by = {(p["bot"], p["phase"]): p for p in phases}
    out: dict[str, Any] = {
        "taps": opts.taps,
        "concurrency": opts.concurrency,
        "warmup": opts.warmup,
        "seed": opts.seed,
        "db": "sqlite",
        "goal_p99_ms": GOAL_P99_MS,
    }
    for phase in ("sequential", "concurrent"):
        c, b = by[("careline", phase)], by[("baseline", phase)]
        for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            out[f"{phase}_{key}"] = c[key]
        for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            out[f"baseline_{phase}_{key}"] = b[key]
        out[f"{phase}_p99_ratio"] = (
            round(c["p99_ms"] / b["p99_ms"], 2) if c["p99_ms"] and b["p99_ms"] else None
        )
    out["missing"] = sum(by[("careline", p)]["missing"] for p in ("sequential", "concurrent"))
    out["baseline_missing"] = sum(
        by[("baseline", p)]["missing"] for p in ("sequential", "concurrent")
    )
    p99s = [out["sequential_p99_ms"], out["concurrent_p99_ms"]]
    out["goal_met"] = out["missing"] == 0 and all(p is not None and p <= GOAL_P99_MS for p in p99s)
    out["unexpected_invoices"] = probe.unexpected_invoices
    out["loadavg_before"] = [round(x, 2) for x in load_before]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["phases"] = phases
    out.update(extra)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (the last stdout line is JSON)."""
    opts = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)
    log(
        f"booking_tap: {opts.taps} taps per phase, bursts of {opts.concurrency}, "
        f"warm-up {opts.warmup}, seed {opts.seed}; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    result = asyncio.run(run(opts))
    if opts.report:
        Path(opts.report).write_text(json.dumps(result, indent=1))
    for phase in result["phases"]:
        phase.pop("tap_stamps_ms", None)
    print(
        f"tap -> invoice (emulator-side), Careline vs bare aiogram: sequential p50 "
        f"{result['sequential_p50_ms']} / p99 {result['sequential_p99_ms']} ms vs "
        f"{result['baseline_sequential_p50_ms']} / {result['baseline_sequential_p99_ms']} ms "
        f"(p99 x{result['sequential_p99_ratio']}); bursts of {result['concurrency']}: p50 "
        f"{result['concurrent_p50_ms']} / p99 {result['concurrent_p99_ms']} ms vs "
        f"{result['baseline_concurrent_p50_ms']} / {result['baseline_concurrent_p99_ms']} ms "
        f"(p99 x{result['concurrent_p99_ratio']}); missing {result['missing']} / "
        f"{result['baseline_missing']}; goal p99 <= {GOAL_P99_MS:g} ms "
        f"{'met' if result['goal_met'] else 'NOT met'}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0 if result["missing"] == 0 and result["baseline_missing"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
