"""Inbound throughput: Careline's patient onboarding against a bare aiogram echo bot.

    python -m benchmarks.inbound [--scenario onboarding|intake] [--patients 50]
                                 [--duration 7 | --onboardings M | --intakes M]
                                 [--db sqlite|postgresql+asyncpg://...] [--seed 1]

N simulated patients go through the full onboarding (/start, language button, Continue,
I agree, name, year of birth, sex button, contact share, time-zone button) over HTTP against
the Bot API emulator, closed loop: a patient sends its next input as soon as the bot's answer
to the previous one reached it (``EmulatorClient.wait_for``, a long poll on ``/client/events``).

With ``--scenario intake`` each patient onboards once (unmeasured), then does full symptom
intakes one after the other (/intake, Me, a complaint, onset, severity, "None of these",
follow-up answers, no other symptoms, history, skip attachments, confirm); only the intake
inputs are measured, and the echo bot gets the same inputs of the same kinds.

Processes (``multiprocessing``, spawn):

* this process: the orchestrator, and the emulator (a fresh one per phase);
* a bot process per kind, started once and running a fresh bot per phase: the real Careline
  app (both bots, poller, processor, sender, SQLite in a temp dir), and the baseline, a bare
  aiogram ``Dispatcher`` with one handler that answers every message and callback with a
  ``sendMessage``, run by aiogram's own ``start_polling``;
* ``--client-procs`` processes (default 1) for the simulated patients.

Phases, each on a fresh emulator, bot and database: baseline closed loop, Careline
closed loop, then (unless ``--fixed-rate 0``) Careline and baseline at a fixed offered rate (a
Poisson stream of inputs at a fraction of Careline's closed-loop maximum), where latency is
not dominated by queueing. Rate limits are off in the emulator and the outbox limits are set
far above the load: this measures our processing, not Telegram's pacing.

Progress goes to stderr; the last stdout line is one JSON object (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import random
import sys
import sysconfig
import tempfile
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.sandbox.client import EmulatorClient
    from bot.sandbox.emulator import BotApiEmulator

PATIENT_TOKEN = "100001:bench-patient-token-0001"  # noqa: S105 - a fake token for the emulator
DOCTOR_TOKEN = "100002:bench-doctor-token-0002"  # noqa: S105 - a fake token for the emulator
PATIENT_BOT = "careline_patient_bot"
DOCTOR_BOT = "careline_doctor_bot"
STEPS = (
    "/start",
    "language",
    "continue",
    "agree",
    "name",
    "birth year",
    "sex",
    "contact",
    "time zone",
)
KINDS = ("start", "click", "click", "click", "text", "text", "click", "contact", "click")
ECHO_BUTTON = "Next"


_T_START = time.monotonic()


def log(text: str) -> None:
    """Human-readable progress on stderr, each line stamped with the seconds since start."""
    lead = len(text) - len(text.lstrip("\n"))
    stamp = f"[{time.monotonic() - _T_START:5.1f}s] "
    print("\n" * lead + stamp + text[lead:], file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan if empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --- CPU accounting from /proc (Linux); None elsewhere ---------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(path: str) -> float | None:
    try:
        with open(path, encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads)."""
    return _stat_cpu(f"/proc/{pid}/stat")


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return (total - idle) / _TICK, total / _TICK


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id of a process."""
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            value = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
            if value is not None:
                out[int(tid)] = value
    return out


# --- the simulated patients ---------------------------------------------------------------


BotMessage = dict[str, Any]  # a bot message as the emulator client sees it


@dataclass
class Action:
    """One patient input: how to send it and which bot message answers it."""

    kind: str  # start | text | click | contact
    value: Callable[[Patient], str]  # text to type, or label of the button to press
    expect: Callable[[Patient], str] | None  # exact text of the answer; None = any message
    name: str = ""  # the step's name in the per-step figures
    # Instead of ``expect``: a test on the answer (used where it is not one fixed text).
    match: Callable[[BotMessage], bool] | None = None


@dataclass
class Patient:
    """A simulated person somewhere in the onboarding (or, in the intake scenario, in one
    of their intakes)."""

    uid: int = 0
    step: int = 0
    phone: str = ""
    name: str = ""
    year: str = ""
    sex: str = ""
    last: dict[str, Any] = field(default_factory=dict)
    index: int = 0  # which simulated patient (varies the intake answers)
    intakes: int = 0  # intakes this person has completed
    plan: list[Action] = field(default_factory=list)  # intake scenario: the current intake


def answer_test(p: Patient, action: Action) -> Callable[[BotMessage], bool] | None:
    """How the client recognises the answer to ``action`` (None: it does not wait for one)."""
    if action.match is not None:
        return action.match
    if action.expect is None:
        return None
    expected = action.expect(p)
    return lambda m: m.get("text") == expected


def careline_script() -> list[Action]:
    """The real onboarding, answered in English, each answer checked word for word."""
    from locales import Translator

    tr = Translator("en")
    emergency = "112"
    ask_phone = tr.plain("onboarding.ask_phone")
    actions = [
        Action("start", lambda p: "/start", lambda p: tr.plain("onboarding.choose_language")),
        Action(
            "click",
            lambda p: tr.plain("language.name"),
            lambda p: tr.plain("onboarding.intro", emergency_number=emergency),
        ),
        Action(
            "click",
            lambda p: tr.plain("onboarding.intro.continue"),
            lambda p: tr.plain("onboarding.consent", version=_consent_version()),
        ),
        Action(
            "click",
            lambda p: tr.plain("onboarding.consent.accept"),
            lambda p: tr.plain("onboarding.ask_name"),
        ),
        Action("text", lambda p: p.name, lambda p: tr.plain("onboarding.ask_birth_year")),
        Action("text", lambda p: p.year, lambda p: tr.plain("onboarding.ask_sex")),
        Action("click", lambda p: tr.plain(f"sex.{p.sex}"), lambda p: ask_phone),
        Action("contact", lambda p: p.phone, lambda p: tr.plain("onboarding.ask_timezone")),
        Action(
            "click",
            lambda p: tr.plain("button.clinic_timezone", timezone="UTC"),
            lambda p: tr.plain("onboarding.done", name=p.name),
        ),
    ]
    for action, name in zip(actions, STEPS, strict=True):
        action.name = name
    return actions


def _consent_version() -> str:
    from flows.onboarding import CONSENT_VERSION

    return str(CONSENT_VERSION)


def echo_script() -> list[Action]:
    """The same inputs (messages and button presses) for the echo bot; any answer will do."""
    typed: dict[int, Callable[[Patient], str]] = {
        0: lambda p: "/start",
        4: lambda p: p.name,
        5: lambda p: p.year,
        7: lambda p: p.phone,
    }
    return [
        Action(kind, typed.get(i, lambda p: ECHO_BUTTON), None, STEPS[i])
        for i, kind in enumerate(KINDS)
    ]


# The intake scenario: complaint categories the patients rotate through, and the onsets.
INTAKE_CATEGORIES = ("cough_cold", "headache", "back_joint", "skin", "fever")
INTAKE_DURATIONS = ("today", "days_1_3", "days_4_7", "weeks_1_4")
INTAKE_STEPS = (
    "/intake",
    "subject",
    "category",
    "duration",
    "severity",
    "red flags",
    "follow-up",
    "associated",
    "conditions",
    "medicines",
    "allergies",
    "attachments",
    "confirm",
)
HISTORY_TEXT = "asthma"  # typed at the first intake's conditions question


def has_button(label: str) -> Callable[[BotMessage], bool]:
    """Answer test: the message has an inline button labelled ``label``."""

    def check(m: BotMessage) -> bool:
        rows = (m.get("reply_markup") or {}).get("inline_keyboard") or []
        return any(b.get("text") == label for row in rows for b in row)

    return check


def has_text(text: str) -> Callable[[BotMessage], bool]:
    """Answer test: the message's text is exactly ``text``."""
    return lambda m: m.get("text") == text


def is_result(m: BotMessage) -> bool:
    """Answer test for the confirmed summary: the disposition, a message without buttons
    (a re-shown question after a stale button, say, would carry its keyboard)."""
    return bool(m.get("text")) and not (m.get("reply_markup") or {}).get("inline_keyboard")


def intake_script(p: Patient, echo: bool) -> list[Action]:
    """One full symptom intake (as in tests/e2e/test_intake.py), each answer checked by the
    button the next step must offer; for the echo bot the same inputs, any answer will do.

    The answers vary with the patient and the intake: the category rotates through
    :data:`INTAKE_CATEGORIES`, then the onset, severity and follow-up options. At the first
    intake the patient types a long-term condition; at later ones Careline shows it back and
    the patient presses "Still correct" (one input of the same kind as the other buttons).
    """
    from flows.questionnaire import load
    from locales import Translator

    tr = Translator("en")
    t = tr.plain
    turn = p.index + p.intakes
    category = INTAKE_CATEGORIES[turn % len(INTAKE_CATEGORIES)]
    duration = INTAKE_DURATIONS[(p.index // len(INTAKE_CATEGORIES) + p.intakes) % 4]
    severity = str((3 * p.index + p.intakes) % 7)
    questions = load().category(category).questions
    options = [q.options[turn % len(q.options)] for q in questions]

    def button(msgid: str) -> Callable[[BotMessage], bool]:
        return has_button(t(msgid))

    def text(msgid: str) -> Callable[[BotMessage], bool]:
        return has_text(t(msgid))

    after_flags = (
        button(f"intake.q.{questions[0].id}.{options[0]}")
        if questions
        else button("intake.associated.none")
    )
    first = p.intakes == 0
    cat, dur = f"intake.category.{category}", f"intake.duration.{duration}"
    # (name, kind, what to type or press, the answer's test)
    steps: list[tuple[str, str, str, Callable[[BotMessage], bool]]] = [
        ("/intake", "text", "/intake", button("intake.subject.self")),
        ("subject", "click", t("intake.subject.self"), button(cat)),
        ("category", "click", t(cat), button(dur)),
        ("duration", "click", t(dur), has_button(severity)),
        ("severity", "click", severity, button("intake.red_flags.none")),
        ("red flags", "click", t("intake.red_flags.none"), after_flags),
    ]
    for i, (question, option) in enumerate(zip(questions, options, strict=True)):
        nxt = (
            button(f"intake.q.{questions[i + 1].id}.{options[i + 1]}")
            if i + 1 < len(questions)
            else button("intake.associated.none")
        )
        steps.append(("follow-up", "click", t(f"intake.q.{question.id}.{option}"), nxt))
    if first:
        ask_conditions = text("intake.ask_conditions")
        conditions = ("conditions", "text", HISTORY_TEXT, text("intake.ask_medicines"))
    else:
        ask_conditions = has_text(t("intake.ask_conditions.known", known=HISTORY_TEXT))
        conditions = (
            "conditions",
            "click",
            t("intake.history.keep"),
            text("intake.ask_medicines"),
        )
    steps += [
        ("associated", "click", t("intake.associated.none"), ask_conditions),
        conditions,
        ("medicines", "click", t("intake.history.none"), text("intake.ask_allergies")),
        ("allergies", "click", t("intake.history.none"), button("intake.attachments.skip")),
        ("attachments", "click", t("intake.attachments.skip"), button("intake.summary.confirm")),
        ("confirm", "click", t("intake.summary.confirm"), is_result),
    ]
    actions = []
    for name, kind, value, match in steps:
        if echo:
            typed = value if kind == "text" else ECHO_BUTTON
            actions.append(Action(kind, functools.partial(_const, typed), None, name))
        else:
            actions.append(Action(kind, functools.partial(_const, value), None, name, match))
    return actions


def _const(value: str, p: Patient) -> str:
    return value


@dataclass
class ClientConfig:
    """What one client process does."""

    base_url: str
    kind: str  # careline | echo
    mode: str  # closed | fixed
    scenario: str  # onboarding | intake
    patients: int
    rate: float  # offered inputs/s of this process (fixed mode)
    seed: int
    index: int
    step_timeout: float
    first_phone: int
    first_patient: int


@dataclass
class ClientResult:
    """What one client process measured (times are time.monotonic(), shared by processes)."""

    done_at: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    step: list[str] = field(default_factory=list)  # the name of each answered input's step
    onboardings_done_at: list[float] = field(default_factory=list)
    intakes_done_at: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # fixed mode: how late inputs left
    pool_extra: int = 0  # fixed mode: patients added because none was idle
    sent_total: int = 0


class LoadClient:
    """Drives simulated patients through a script, closed loop or at a fixed rate."""

    def __init__(
        self,
        cfg: ClientConfig,
        client: EmulatorClient,
        stop_at: Synchronized[float],
        onboard_count: Synchronized[int],
        onboard_target: int,
        t0: float,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.stop_at = stop_at
        self.onboard_count = onboard_count
        self.onboard_target = onboard_target
        self.t0 = t0
        self.rng = random.Random(cfg.seed * 1000 + cfg.index)
        self.script = careline_script() if cfg.kind == "careline" else echo_script()
        self.intake = cfg.scenario == "intake"
        self.result = ClientResult()
        self._phones = cfg.first_phone
        self._next_index = cfg.first_patient + cfg.patients  # for patients added later

    def stopped(self) -> bool:
        """True once the measured phase is over."""
        end = self.stop_at.value
        return end > 0 and time.monotonic() >= end

    async def new_person(self, p: Patient) -> None:
        """Turn ``p`` into a brand-new Telegram user at the first step."""
        self._phones += 1
        letters = "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        p.phone = f"+1555{self._phones:07d}"  # fictional 555 numbers
        p.name = f"Bench Patient {letters.capitalize()}"
        p.year = str(self.rng.randint(1940, 2006))
        p.sex = self.rng.choice(("female", "male", "other"))
        user = await self.client.create_user("Bench", language_code="en", phone_number=p.phone)
        p.uid = int(user["id"])
        p.step = 0
        p.last = {}
        p.intakes = 0
        p.plan = []

    def actions(self, p: Patient) -> list[Action]:
        """The script ``p.step`` points into: the onboarding, or the patient's current intake."""
        return p.plan if self.intake else self.script

    async def reset(self, p: Patient) -> None:
        """A brand-new person at the start of the scenario. In the intake scenario that is an
        onboarded person about to start their first intake: the onboarding is done here,
        unmeasured (no latencies recorded; it is the warm-up of this patient)."""
        from bot.sandbox.client import EmulatorError

        for attempt in range(3):
            await self.new_person(p)
            if not self.intake:
                return
            if self.stopped():  # the phase is over: no need to onboard
                p.plan = intake_script(p, echo=self.cfg.kind == "echo")
                return
            try:
                await self.onboard(p)
            except (TimeoutError, EmulatorError, LookupError) as exc:
                self.result.errors += 1
                if len(self.result.error_samples) < 5:
                    self.result.error_samples.append(
                        f"onboarding before intake (attempt {attempt + 1}): "
                        f"{type(exc).__name__}: {str(exc)[:300]}"
                    )
                continue
            self.result.onboardings_done_at.append(time.monotonic())
            p.plan = intake_script(p, echo=self.cfg.kind == "echo")
            return
        raise RuntimeError("three onboardings in a row failed; see the error samples")

    async def onboard(self, p: Patient) -> None:
        """The whole onboarding script, each answer checked, nothing recorded."""
        for action in self.script:
            test = answer_test(p, action)
            await self._act(p, action)
            p.last = await self.client.wait_for(
                p.uid, PATIENT_BOT, test, timeout=self.cfg.step_timeout
            )

    async def _act(self, p: Patient, action: Action) -> None:
        bot = PATIENT_BOT
        if action.kind == "start":
            await self.client.start(p.uid, bot)
        elif action.kind == "text":
            await self.client.send(p.uid, bot, action.value(p))
        elif action.kind == "contact":
            await self.client.share_contact(p.uid, bot, action.value(p))
        else:
            label = action.value(p)
            rows = (p.last.get("reply_markup") or {}).get("inline_keyboard") or []
            data = next(
                (b["callback_data"] for row in rows for b in row if b.get("text") == label),
                None,
            )
            if data is None:
                raise LookupError(f"no button {label!r} on the last answer")
            await self.client.click(p.uid, bot, int(p.last["message_id"]), str(data))

    async def step(self, p: Patient) -> None:
        """Send the patient's next input and wait for the answer; record the latency."""
        import aiohttp

        from bot.sandbox.client import EmulatorError

        script = self.actions(p)
        action = script[p.step]
        test = answer_test(p, action)
        self.result.sent_total += 1
        sent = time.monotonic()
        try:
            await self._act(p, action)
            answer = await self.client.wait_for(
                p.uid, PATIENT_BOT, test, timeout=self.cfg.step_timeout
            )
        except (TimeoutError, EmulatorError, LookupError, aiohttp.ClientError) as exc:
            if not self.stopped():
                self.result.errors += 1
                if len(self.result.error_samples) < 5:
                    self.result.error_samples.append(
                        f"step {action.name!r}: {type(exc).__name__}: {str(exc)[:300]}"
                    )
            await self.reset(p)
            return
        now = time.monotonic()
        self.result.done_at.append(now)
        self.result.latency.append(now - sent)
        self.result.step.append(action.name)
        p.last = answer
        p.step += 1
        if p.step == len(script):
            done = self.result.intakes_done_at if self.intake else self.result.onboardings_done_at
            done.append(now)
            if now >= self.t0 and self.onboard_target > 0:
                with self.onboard_count.get_lock():
                    self.onboard_count.value += 1
                    if self.onboard_count.value == self.onboard_target:
                        self.stop_at.value = now
            if self.intake:  # the same person starts their next intake
                p.intakes += 1
                p.step = 0
                p.plan = intake_script(p, echo=self.cfg.kind == "echo")
            else:
                await self.new_person(p)

    async def prepare(self, first_index: int) -> list[Patient]:
        """New users, each walked to a different step, so the measured mix covers them all.

        Patient i first completes ``i % 9`` steps (intake scenario: onboards, then completes
        ``i % n`` steps of its first intake of n steps); all patients then start together. In
        a closed loop every patient advances at the same pace, so the steps stay evenly mixed.
        Without this, patients that all start at /start move in lockstep and a short window
        sees only the first few steps.
        """
        patients = [Patient(index=first_index + i) for i in range(self.cfg.patients)]
        await asyncio.gather(*(self.reset(p) for p in patients))

        async def walk(p: Patient, steps: int) -> None:
            for _ in range(steps):
                await self.step(p)

        await asyncio.gather(
            *(walk(p, (first_index + i) % len(self.actions(p))) for i, p in enumerate(patients))
        )
        return patients

    async def closed_loop(self, patients: list[Patient]) -> None:
        """Every patient sends its next input as soon as the previous answer arrived."""

        async def run(p: Patient) -> None:
            while not self.stopped():
                await self.step(p)

        await asyncio.gather(*(run(p) for p in patients))

    async def fixed_rate(self, patients: list[Patient], start: float) -> None:
        """Inputs leave as a Poisson stream at ``rate``, each from an idle patient."""
        idle: deque[Patient] = deque(patients)
        tasks: set[asyncio.Task[None]] = set()

        async def one(p: Patient, fresh: bool) -> None:
            if fresh:  # (intake scenario: onboarded first, unmeasured)
                await self.reset(p)
            await self.step(p)
            idle.append(p)

        due = start
        while not self.stopped():
            due += self.rng.expovariate(self.cfg.rate)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopped():
                break
            self.result.lag.append(time.monotonic() - due)
            fresh = not idle
            if idle:
                p = idle.popleft()
            else:
                p = Patient(index=self._next_index)
                self._next_index += 1
                self.result.pool_extra += 1
            task = asyncio.create_task(one(p, fresh))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=self.cfg.step_timeout)


def _client_process(
    conn: Connection, stop_at: Synchronized[float], onboard_count: Synchronized[int]
) -> None:
    """Entry point of a client process: imports once, then runs one phase per request."""
    try:
        import aiohttp  # noqa: F401 - loaded before the first phase, not during it

        import bot.sandbox.client  # noqa: F401
        import flows.onboarding
        import flows.questionnaire
        import locales  # noqa: F401

        flows.questionnaire.load()  # parsed and checked once, before the first phase

        conn.send(("loaded", os.getpid()))
        while True:
            msg = conn.recv()
            if msg[0] == "exit":
                return
            _, cfg, onboard_target = msg
            asyncio.run(_client_main(cfg, conn, stop_at, onboard_count, onboard_target))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


async def _client_main(
    cfg: ClientConfig,
    conn: Connection,
    stop_at: Synchronized[float],
    onboard_count: Synchronized[int],
    onboard_target: int,
) -> None:
    import aiohttp

    from bot.sandbox.client import EmulatorClient

    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        client = EmulatorClient(cfg.base_url, session=http, request_timeout=60)
        load = LoadClient(cfg, client, stop_at, onboard_count, onboard_target, math.inf)
        conn.send(("ready", os.getpid()))
        await loop.run_in_executor(None, conn.recv)  # "prepare"
        patients = await load.prepare(cfg.first_patient)
        conn.send(("prepared", None))
        _, start, t0 = await loop.run_in_executor(None, conn.recv)  # "go"
        load.t0 = t0
        delay = start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if cfg.mode == "closed":
            await load.closed_loop(patients)
        else:
            await load.fixed_rate(patients, start)
    conn.send(("result", asdict(load.result)))


# --- the bot processes -----------------------------------------------------------------------


@dataclass
class BotSpec:
    """What one bot process runs."""

    kind: str  # careline | echo
    base_url: str
    db: str  # "sqlite" or a PostgreSQL URL
    work_dir: str
    profile: bool
    stages: bool
    profile_out: str | None
    outbox_concurrency: int | None


class StageTimer:
    """Wall time spent in named stages (a cheap wrapper around awaited calls)."""

    def __init__(self) -> None:
        self.active = False
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.items: dict[str, int] = {}

    def add(self, name: str, seconds: float, items: int = 0) -> None:
        """Record one timed call while the window is open."""
        if not self.active:
            return
        self.total[name] = self.total.get(name, 0.0) + seconds
        self.count[name] = self.count.get(name, 0) + 1
        self.items[name] = self.items.get(name, 0) + items

    def wrap(self, obj: Any, attr: str, name: str, count_result: bool = False) -> None:
        """Replace the coroutine method ``obj.attr`` with a timed one."""
        inner = getattr(obj, attr)

        @functools.wraps(inner)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                result = await inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t
            self.add(name, elapsed, int(result) if count_result and result else 0)
            return result

        setattr(obj, attr, timed)


class TimedGate:
    """Wraps the SQLite writer gate: time waiting for it and holding it, per task name."""

    def __init__(self, inner: Any, timer: StageTimer) -> None:
        self.inner = inner
        self.timer = timer
        self._held: dict[int, float] = {}

    async def __aenter__(self) -> None:
        t = time.perf_counter()
        await self.inner.__aenter__()
        now = time.perf_counter()
        self.timer.add(f"gate wait ({_task_name()})", now - t)
        self._held[id(asyncio.current_task())] = now

    async def __aexit__(self, *exc: object) -> None:
        start = self._held.pop(id(asyncio.current_task()), None)
        await self.inner.__aexit__(*exc)
        if start is not None:
            self.timer.add(f"transaction ({_task_name()})", time.perf_counter() - start)


# The process-wide hooks below are installed once per bot process and report to the timer
# of the bot instance currently running (one at a time).
_CURRENT_TIMER: list[StageTimer] = [StageTimer()]
_INSTALLED: set[str] = set()


def _time_aiosqlite(timer: StageTimer) -> None:
    """Time every aiosqlite call: wall time seen by the event loop vs time in its thread."""
    _CURRENT_TIMER[0] = timer
    if "aiosqlite" in _INSTALLED:
        return
    _INSTALLED.add("aiosqlite")
    import aiosqlite.core

    original = aiosqlite.core.Connection._execute

    async def execute(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        in_thread = [0.0]

        def run() -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                in_thread[0] = time.perf_counter() - t

        t = time.perf_counter()
        try:
            return await original(self, run)
        finally:
            current = _CURRENT_TIMER[0]
            current.add("sqlite call, event loop wall", time.perf_counter() - t)
            current.add("sqlite call, run in its thread", in_thread[0])

    aiosqlite.core.Connection._execute = execute  # type: ignore[method-assign]


def _time_event_loop(timer: StageTimer) -> None:
    """Charge each event-loop callback's run time to its task (by coroutine) or callback.

    This splits the main thread's busy time between the processor, the sender, the poller
    and I/O callbacks without a profiler's distortion (cProfile's cumulative times are not
    reliable for coroutines suspended when it was switched on).
    """
    _CURRENT_TIMER[0] = timer
    if "loop" in _INSTALLED:
        return
    _INSTALLED.add("loop")
    import asyncio.events

    original = asyncio.events.Handle._run

    def label(callback: Any) -> str:
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            return f"loop: task {getattr(coro, '__qualname__', type(coro).__name__)}"
        name = getattr(callback, "__qualname__", type(callback).__name__)
        return f"loop: callback {name}"

    def run(self: asyncio.events.Handle) -> None:
        current = _CURRENT_TIMER[0]
        if not current.active:
            original(self)
            return
        t = time.perf_counter()
        try:
            original(self)
        finally:
            current.add(label(self._callback), time.perf_counter() - t)  # type: ignore[attr-defined]

    asyncio.events.Handle._run = run  # type: ignore[method-assign]


def _count_rows(timer: StageTimer) -> None:
    """Rows loaded by the inbox and outbox queries (each row is an ORM object with its blob)."""
    _CURRENT_TIMER[0] = timer
    if "rows" in _INSTALLED:
        return
    _INSTALLED.add("rows")
    from storage.repositories import InboxRepository, OutboxRepository

    for cls, name in ((InboxRepository, "pending"), (OutboxRepository, "due")):
        inner = getattr(cls, name)

        def make(inner: Any, label: str) -> Any:
            @functools.wraps(inner)
            async def counted(*args: Any, **kwargs: Any) -> Any:
                t = time.perf_counter()
                rows = await inner(*args, **kwargs)
                _CURRENT_TIMER[0].add(label, time.perf_counter() - t, len(rows))
                return rows

            return counted

        setattr(cls, name, make(inner, f"query {cls.__name__}.{name}"))


def _count_statements(engine: Any, timer: StageTimer) -> None:
    """Count SQL statements by their shape (the SQL text only, never the parameters)."""
    import re

    from sqlalchemy import event

    def shape(sql: str) -> str:
        words = re.sub(r"\s+", " ", sql).strip()
        for kind in ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"):
            if words.upper().startswith(kind):
                return kind
        m = re.match(r"(SELECT)\b.*?\bFROM (\w+)", words, re.IGNORECASE)
        if m:
            return f"SELECT {m.group(2)}"
        m = re.match(r"(INSERT INTO|UPDATE|DELETE FROM) (\w+)", words, re.IGNORECASE)
        if m:
            return f"{m.group(1).upper()} {m.group(2)}"
        return " ".join(words.split(" ")[:2]).upper()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        timer.add(f"sql: {shape(statement)}", 0.0)

    event.listen(engine, "before_cursor_execute", before)

    def on_begin(conn: Any) -> None:
        timer.add("txn: begun", 0.0)

    def on_commit(conn: Any) -> None:
        timer.add("txn: committed", 0.0)

    def on_rollback(conn: Any) -> None:
        timer.add("txn: rolled back", 0.0)

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "commit", on_commit)
    event.listen(engine, "rollback", on_rollback)


def _task_name() -> str:
    task = asyncio.current_task()
    name = task.get_name() if task is not None else "-"
    return "sender call" if name.startswith("Task-") else name


class BotTarget:
    """A started bot (Careline or echo) with counters and a stop method."""

    def __init__(
        self,
        counters: Callable[[], dict[str, int]],
        stop: Callable[[], Awaitable[None]],
        timer: StageTimer,
    ) -> None:
        self.counters = counters
        self.stop = stop
        self.timer = timer


async def _start_careline(spec: BotSpec) -> BotTarget:
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
    default_concurrency = int(Settings.model_fields["outbox_concurrency"].default)
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
        # Far above the load: the benchmark measures our processing, not Telegram's pacing.
        outbox_global_per_s=100_000.0,
        outbox_per_chat_per_s=10_000.0,
        outbox_per_chat_burst=10_000,
        log_level="WARNING",
        outbox_concurrency=spec.outbox_concurrency or default_concurrency,
    )
    app = await Careline.build(settings, db)
    timer = StageTimer()
    if spec.stages:
        timer.wrap(app.processor, "process_pending", "processor batch", count_result=True)
        timer.wrap(app.processor, "store", "poller store", count_result=True)
        timer.wrap(app.sender, "step", "sender step")
        timer.wrap(app.sender, "_send", "sender Bot API call")
        db.gate = TimedGate(db.gate, timer)  # type: ignore[assignment]
        if spec.db == "sqlite":
            _time_aiosqlite(timer)
        _count_statements(db.engine.sync_engine, timer)
        _time_event_loop(timer)
        _count_rows(timer)
    await app.start()
    if mp.parent_process() is not None:  # a bot process, not inline
        freeze_heap()  # as bot.py run does after starting

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

    return BotTarget(counters, stop, timer)


async def _start_echo(spec: BotSpec) -> BotTarget:
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import (
        CallbackQuery,
        InlineKeyboardButton,
        InlineKeyboardMarkup,
        Message,
    )

    bot = Bot(
        PATIENT_TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(spec.base_url)),
    )
    dp = Dispatcher()
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=ECHO_BUTTON, callback_data="next")]]
    )
    handled = {"updates": 0}

    async def echo(event: Message | CallbackQuery, bot: Bot) -> None:
        """Answer every message and every button press with one message."""
        chat_id = event.chat.id if isinstance(event, Message) else event.from_user.id
        await bot.send_message(chat_id, "echo", reply_markup=markup)
        handled["updates"] += 1

    dp.message.register(echo)
    dp.callback_query.register(echo)
    await bot.delete_webhook()
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False))

    async def stop() -> None:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.gather(polling, return_exceptions=True)
        await bot.session.close()

    return BotTarget(lambda: dict(handled), stop, StageTimer())


def _bot_process(kind: str, conn: Connection) -> None:
    """Entry point of a bot process: imports once, then runs one fresh bot per request."""
    try:
        if kind == "careline":
            import bot.app  # noqa: F401 - loaded before the first phase, not during it
            import storage.migrate  # noqa: F401
        else:
            import aiogram  # noqa: F401
        conn.send(("loaded", os.getpid()))
        while True:
            msg = conn.recv()
            if msg[0] == "exit":
                return
            asyncio.run(_bot_main(msg[1], conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


async def _bot_main(spec: BotSpec, conn: Connection) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def readable() -> None:
        while conn.poll():
            commands.put_nowait(conn.recv())

    loop.add_reader(conn.fileno(), readable)
    target = await (_start_careline(spec) if spec.kind == "careline" else _start_echo(spec))
    conn.send(("ready", os.getpid()))
    profiler = cProfile.Profile() if spec.profile else None
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    while True:
        cmd = await commands.get()
        if cmd == "window_start":
            before = target.counters()
            target.timer.active = True
            if profiler is not None:
                profiler.enable()
        elif cmd == "window_end":
            if profiler is not None:
                profiler.disable()
            target.timer.active = False
            after = target.counters()
        elif cmd == "stop":
            break
    loop.remove_reader(conn.fileno())
    await target.stop()
    result: dict[str, Any] = {
        "counters": {k: after.get(k, 0) - before.get(k, 0) for k in after},
        "stages": {
            name: {
                "seconds": target.timer.total[name],
                "calls": target.timer.count[name],
                "items": target.timer.items[name],
            }
            for name in target.timer.total
        },
    }
    if profiler is not None:
        result["profile"] = summarize_profile(profiler)
        if spec.profile_out:
            profiler.dump_stats(spec.profile_out)
    conn.send(("result", result))


# --- profile summary ---------------------------------------------------------------------------

CATEGORIES: tuple[tuple[str, str], ...] = (
    # (substring of "file:function" in pstats, category), first match wins
    ("select.epoll", "idle (waiting in epoll)"),
    ("benchmarks/inbound.py", "benchmark instrumentation (--stages)"),
    ("_queue.SimpleQueue", "aiosqlite thread hand-off (queue put, GIL)"),
    ("greenlet", "SQLAlchemy"),
    ("_socket.socket", "socket I/O"),
    ("_contextvars", "asyncio"),
    ("/bot/telegram/processor.py", "processor"),
    ("/bot/telegram/sender.py", "sender"),
    ("/bot/telegram/sources.py", "poller"),
    ("/bot/telegram/", "bot glue (middleware, replier)"),
    ("/storage/crypto.py", "crypto (ours)"),
    ("/storage/vault.py", "crypto (ours)"),
    ("cryptography", "crypto (AES-GCM, cryptography)"),
    ("AESGCM", "crypto (AES-GCM, cryptography)"),
    ("_hashlib", "crypto (hashlib/hmac)"),
    ("hmac", "crypto (hashlib/hmac)"),
    ("/storage/", "storage (repositories, audit)"),
    ("/flows/", "flows"),
    ("/handlers/", "handlers"),
    ("/locales/", "locales"),
    ("transitions", "transitions (state machine)"),
    ("babel", "locales"),
    ("aiogram", "aiogram"),
    ("magic_filter", "aiogram"),
    ("sqlalchemy", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite / sqlite3"),
    ("sqlite3", "aiosqlite / sqlite3"),
    ("asyncpg", "asyncpg"),
    ("pydantic", "pydantic"),
    ("aiohttp", "aiohttp"),
    ("yarl", "aiohttp"),
    ("multidict", "aiohttp"),
    ("json", "json"),
    ("asyncio", "asyncio"),
    ("selectors", "asyncio"),
)


def categorize(key: str) -> str:
    """The category of a pstats entry (``file:line(function)``)."""
    for needle, category in CATEGORIES:
        if needle in key:
            return category
    return "other (builtins, stdlib)"


def summarize_profile(profiler: cProfile.Profile, top: int = 30) -> dict[str, Any]:
    """Self time per category and the hottest functions, as plain data."""
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_cat: dict[str, float] = {}
    rows: list[tuple[float, float, int, str]] = []
    root = str(Path(__file__).resolve().parent.parent)
    stdlib = sysconfig.get_paths()["stdlib"]
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        key = f"{filename}:{line}({func})"
        by_cat[categorize(key)] = by_cat.get(categorize(key), 0.0) + tottime
        shown = key.replace(root + "/", "").replace(stdlib + "/", "stdlib/")
        if "site-packages/" in shown:
            shown = shown.split("site-packages/", 1)[1]
        rows.append((tottime, cumtime, ncalls, shown))
    rows.sort(reverse=True)
    return {
        "categories": by_cat,
        "top_self": [
            {"self_s": r[0], "cum_s": r[1], "calls": r[2], "function": r[3]} for r in rows[:top]
        ],
    }


# --- the orchestrator ----------------------------------------------------------------------------


@dataclass
class Options:
    """Command-line options."""

    scenario: str  # onboarding | intake
    patients: int
    duration: float
    onboardings: int
    intakes: int
    warmup: float
    db: str
    seed: int
    client_procs: int
    fixed_rate: list[float]
    step_timeout: float
    profile: bool
    profile_out: str | None
    stages: bool
    report: str | None
    outbox_concurrency: int | None
    bot_cpu: int | None


@dataclass
class PhaseResult:
    """One measured phase."""

    label: str
    kind: str
    mode: str
    offered_rate: float | None
    window_s: float
    updates: int
    updates_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    onboardings: int
    intakes: int
    errors: int
    error_samples: list[str]
    cpu: dict[str, float | None]  # seconds in the window per process (and bot threads)
    bot: dict[str, Any]
    per_step_p50_ms: dict[str, float]
    lag_p99_ms: float | None
    pool_extra: int


def _recv(conn: Connection, timeout: float) -> tuple[str, Any]:
    if not conn.poll(timeout):
        raise TimeoutError("a child process did not answer in time")
    msg: tuple[str, Any] = conn.recv()
    if msg[0] == "error":
        raise RuntimeError(f"child process failed:\n{msg[1]}")
    return msg


async def arecv(conn: Connection, wait_s: float = 120.0) -> tuple[str, Any]:
    """Receive one message from a child without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, _recv, conn, wait_s)


def _fresh_emulator(seed: int) -> BotApiEmulator:
    from bot.sandbox.emulator import BotApiEmulator, RateLimits

    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=seed)
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    return emulator


class Workers:
    """The child processes, started once (imports are slow) and reused by every phase: one
    bot process per kind, each running a fresh bot per phase, and the client processes."""

    def __init__(self, opts: Options) -> None:
        self.ctx = mp.get_context("spawn")
        self.opts = opts
        self.stop_at = self.ctx.Value("d", 0.0)
        self.onboard_count = self.ctx.Value("i", 0)
        self.bots: dict[str, tuple[Any, Connection, int]] = {}
        self.clients: list[tuple[Any, Connection, int]] = []

    async def start(self, kinds: list[str]) -> None:
        """Spawn the bot processes and the clients together; wait until they are loaded."""
        pending: list[tuple[str, Any, Connection]] = []
        for kind in kinds:
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=_bot_process, args=(kind, child), daemon=True)
            proc.start()
            pending.append((kind, proc, parent))
        for _ in range(self.opts.client_procs):
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(
                target=_client_process,
                args=(child, self.stop_at, self.onboard_count),
                daemon=True,
            )
            proc.start()
            pending.append(("client", proc, parent))
        for kind, proc, conn in pending:
            _, pid = await arecv(conn)
            if kind == "client":
                self.clients.append((proc, conn, int(pid)))
            else:
                self.bots[kind] = (proc, conn, int(pid))
                if self.opts.bot_cpu is not None:
                    # Threads started later (aiosqlite's) inherit the affinity.
                    os.sched_setaffinity(int(pid), {self.opts.bot_cpu})

    async def close(self) -> None:
        """Ask every child to exit; terminate the ones that do not."""
        loop = asyncio.get_running_loop()
        everyone = [*self.bots.values(), *self.clients]
        for _proc, conn, _ in everyone:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("exit",))
        for proc, _, _ in everyone:
            await loop.run_in_executor(None, proc.join, 10.0)
            if proc.is_alive():
                proc.terminate()


async def run_phase(
    opts: Options,
    workers: Workers,
    kind: str,
    mode: str,
    rate: float | None,
    phase_no: int,
) -> PhaseResult:
    """Fresh emulator, bot and database; patients spread over the steps; warm up, measure."""
    label = f"{'careline' if kind == 'careline' else 'baseline'} {mode}" + (
        f" @ {rate:.0f}/s" if rate else ""
    )
    log(f"\n== phase {phase_no}: {label} ==")
    emulator = _fresh_emulator(opts.seed + phase_no)
    base_url = await emulator.start("127.0.0.1", 0)
    patient_bot = emulator.find_bot(PATIENT_BOT)
    tmp = tempfile.TemporaryDirectory(prefix="careline-bench-")
    stop_at, onboard_count = workers.stop_at, workers.onboard_count
    stop_at.value = 0.0
    onboard_count.value = 0
    _, bot_conn, bot_pid = workers.bots[kind]
    clients = workers.clients
    target = opts.intakes if opts.scenario == "intake" else opts.onboardings
    unit = "intakes" if opts.scenario == "intake" else "onboardings"
    try:
        spec = BotSpec(
            kind,
            base_url,
            opts.db,
            tmp.name,
            profile=opts.profile and mode == "closed",
            stages=opts.stages and kind == "careline",
            profile_out=opts.profile_out if kind == "careline" else None,
            outbox_concurrency=opts.outbox_concurrency,
        )
        bot_conn.send(("start", spec))
        first = 0
        for i, (_, conn, _) in enumerate(clients):
            share = opts.patients // len(clients) + (i < opts.patients % len(clients))
            cfg = ClientConfig(
                base_url=base_url,
                kind=kind,
                mode=mode,
                scenario=opts.scenario,
                patients=share,
                rate=(rate or 0.0) / len(clients),
                seed=opts.seed + 7919 * phase_no,
                index=i,
                step_timeout=opts.step_timeout,
                first_phone=1_000_000 * (i + 1),
                first_patient=first,
            )
            first += share
            conn.send(("phase", cfg, target))
        await arecv(bot_conn)
        for _, conn, _ in clients:
            await arecv(conn)
        prep = time.monotonic()
        for _, conn, _ in clients:
            conn.send(("prepare",))
        for _, conn, _ in clients:
            await arecv(conn, 300.0)
        if opts.scenario == "intake":
            log(
                f"bot ready; {opts.patients} patients created, onboarded (unmeasured) and "
                f"spread over the steps of their first intake in {time.monotonic() - prep:.1f} "
                f"s; warm-up {opts.warmup:g} s"
            )
        else:
            log(
                f"bot ready; {opts.patients} patients created and spread over the {len(STEPS)} "
                f"steps in {time.monotonic() - prep:.1f} s; warm-up {opts.warmup:g} s"
            )
        start = time.monotonic() + 0.1
        t0 = start + opts.warmup
        if target <= 0:
            stop_at.value = t0 + opts.duration
        for _, conn, _ in clients:
            conn.send(("go", start, t0))
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        client_pids = [pid for _, _, pid in clients]
        cpu0 = _cpu_snapshot(bot_pid, client_pids)
        delivered0 = patient_bot.stats["updates_delivered"]
        bot_conn.send("window_start")
        t_begin = time.monotonic()
        next_report = t_begin + 2.0
        limit = t0 + (opts.duration if target <= 0 else 600.0)
        while True:
            end = stop_at.value
            now = time.monotonic()
            if (end > 0 and now >= end) or now >= limit:
                break
            if now >= next_report:
                done = patient_bot.stats["updates_delivered"] - delivered0
                log(
                    f"  {now - t_begin:5.1f} s: {done} updates delivered to the bot, "
                    f"{done / (now - t_begin):.0f}/s; {onboard_count.value} {unit}"
                )
                next_report += 2.0
            await asyncio.sleep(0.02)
        if stop_at.value <= 0:
            stop_at.value = limit
        t1 = stop_at.value
        cpu1 = _cpu_snapshot(bot_pid, client_pids)
        bot_conn.send("window_end")
        results = [ClientResult(**(await arecv(conn, 120.0))[1]) for _, conn, _ in clients]
        bot_conn.send("stop")
        _, bot_result = await arecv(bot_conn, 120.0)
    finally:
        await emulator.stop()
        tmp.cleanup()
    return _phase_result(label, kind, mode, rate, t0, t1, results, cpu0, cpu1, bot_result)


def _cpu_snapshot(bot_pid: int, client_pids: list[int]) -> dict[str, Any]:
    return {
        "emulator": process_cpu(os.getpid()),
        "bot": process_cpu(bot_pid),
        "bot_threads": thread_cpu(bot_pid),
        "bot_pid": bot_pid,
        "clients": [process_cpu(pid) for pid in client_pids],
        "machine": machine_cpu(),
        "wall": time.monotonic(),
    }


def _cpu_delta(cpu0: dict[str, Any], cpu1: dict[str, Any]) -> dict[str, float | None]:
    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    main_tid = cpu0["bot_pid"]
    t0, t1 = cpu0["bot_threads"], cpu1["bot_threads"]
    main = diff(t0.get(main_tid), t1.get(main_tid))
    others = sum(v - t0.get(tid, 0.0) for tid, v in t1.items() if tid != main_tid)
    clients = [diff(a, b) for a, b in zip(cpu0["clients"], cpu1["clients"], strict=True)]
    ours = [diff(cpu0["emulator"], cpu1["emulator"]), diff(cpu0["bot"], cpu1["bot"]), *clients]
    foreign: float | None = None
    if cpu0["machine"] and cpu1["machine"] and all(v is not None for v in ours):
        busy = cpu1["machine"][0] - cpu0["machine"][0]
        foreign = max(0.0, busy - sum(v or 0.0 for v in ours))
    return {
        "other_processes": foreign,
        "emulator": diff(cpu0["emulator"], cpu1["emulator"]),
        "bot": diff(cpu0["bot"], cpu1["bot"]),
        "bot_main_thread": main,
        "bot_other_threads": others if t1 else None,
        "clients": None if any(c is None for c in clients) else sum(c or 0.0 for c in clients),
    }


def _phase_result(
    label: str,
    kind: str,
    mode: str,
    rate: float | None,
    t0: float,
    t1: float,
    results: list[ClientResult],
    cpu0: dict[str, Any],
    cpu1: dict[str, Any],
    bot_result: dict[str, Any],
) -> PhaseResult:
    lat: list[float] = []
    by_step: dict[str, list[float]] = {}
    onboardings = intakes = 0
    for r in results:
        for done, latency, step in zip(r.done_at, r.latency, r.step, strict=True):
            if t0 <= done <= t1:
                lat.append(latency * 1000)
                by_step.setdefault(step, []).append(latency * 1000)
        onboardings += sum(1 for d in r.onboardings_done_at if t0 <= d <= t1)
        intakes += sum(1 for d in r.intakes_done_at if t0 <= d <= t1)
    order = [*STEPS, *INTAKE_STEPS]
    lat.sort()
    window = t1 - t0
    lags = sorted(x * 1000 for r in results for x in r.lag)
    return PhaseResult(
        label=label,
        kind=kind,
        mode=mode,
        offered_rate=rate,
        window_s=window,
        updates=len(lat),
        updates_per_s=len(lat) / window if window > 0 else 0.0,
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        max_ms=lat[-1] if lat else math.nan,
        onboardings=onboardings,
        intakes=intakes,
        errors=sum(r.errors for r in results),
        error_samples=[s for r in results for s in r.error_samples][:5],
        cpu=_cpu_delta(cpu0, cpu1),
        bot=bot_result,
        per_step_p50_ms={
            s: percentile(sorted(by_step[s]), 50)
            for s in sorted(by_step, key=lambda s: order.index(s) if s in order else len(order))
        },
        lag_p99_ms=percentile(lags, 99) if lags else None,
        pool_extra=sum(r.pool_extra for r in results),
    )


def _pct(cpu_s: float | None, window: float) -> str:
    return "-" if cpu_s is None or window <= 0 else f"{100 * cpu_s / window:.0f}%"


def _per_update(cpu_s: float | None, updates: int) -> str:
    return "-" if cpu_s is None or updates <= 0 else f"{1000 * cpu_s / updates:.2f}"


def describe_phase(r: PhaseResult) -> None:
    """Print one phase's figures to stderr."""
    c = r.cpu
    log(
        f"{r.label}: {r.updates} updates in {r.window_s:.2f} s = {r.updates_per_s:.1f} "
        f"updates/s; latency p50 {r.p50_ms:.1f} ms, p90 {r.p90_ms:.1f} ms, "
        f"p99 {r.p99_ms:.1f} ms, max {r.max_ms:.1f} ms; {r.onboardings} onboardings; "
        + (f"{r.intakes} intakes; " if r.intakes else "")
        + f"{r.errors} errors"
    )
    log(
        f"  CPU (of one core) bot {_pct(c['bot'], r.window_s)} "
        f"[main thread {_pct(c['bot_main_thread'], r.window_s)}, other threads "
        f"{_pct(c['bot_other_threads'], r.window_s)}], emulator {_pct(c['emulator'], r.window_s)}"
        f", clients {_pct(c['clients'], r.window_s)}; bot CPU per update "
        f"{_per_update(c['bot'], r.updates)} ms"
    )
    foreign = c.get("other_processes")
    if foreign is not None:
        log(
            f"  other processes on this machine used {_pct(foreign, r.window_s)} of a core"
            + (
                " -- WARNING: the machine was not quiet; figures are depressed"
                if foreign > 0.15 * r.window_s
                else ""
            )
        )
    log("  p50 per step (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in r.per_step_p50_ms.items()))
    counters = r.bot.get("counters", {})
    if counters:
        log("  bot counters in the window: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    if r.lag_p99_ms is not None:
        log(f"  input scheduling lag p99 {r.lag_p99_ms:.1f} ms; extra patients {r.pool_extra}")
    for sample in r.error_samples:
        log(f"  error: {sample}")
    all_stages = r.bot.get("stages") or {}
    stages = {
        k: v for k, v in all_stages.items() if not k.startswith(("sql: ", "loop: ", "txn: "))
    }
    loop_time = {k[6:]: v for k, v in all_stages.items() if k.startswith("loop: ")}
    sql = {k[5:]: v["calls"] for k, v in all_stages.items() if k.startswith("sql: ")}
    if sql:
        per = max(1, r.updates)
        log(
            f"  SQL statements per update: {sum(sql.values()) / per:.1f} ("
            + ", ".join(
                f"{k} {v / per:.2f}" for k, v in sorted(sql.items(), key=lambda kv: -kv[1])
            )
            + ")"
        )
    txn = {k[5:]: v["calls"] for k, v in all_stages.items() if k.startswith("txn: ")}
    if txn:
        log(
            "  transactions per update: "
            + ", ".join(f"{k} {v / max(1, r.updates):.2f}" for k, v in sorted(txn.items()))
        )
    if stages:
        log("  wall time per stage (share of the window; per update):")
        for name, s in sorted(stages.items(), key=lambda kv: -kv[1]["seconds"]):
            items = f", {s['items'] / s['calls']:.1f} items/call" if s["items"] else ""
            log(
                f"    {name:32s} {100 * s['seconds'] / r.window_s:5.1f}%  "
                f"{1000 * s['seconds'] / max(1, r.updates):6.2f} ms  "
                f"({s['calls']} calls, {1000 * s['seconds'] / s['calls']:.2f} ms/call{items})"
            )
    if loop_time:
        busy = sum(v["seconds"] for v in loop_time.values())
        log(
            f"  event loop busy {100 * busy / r.window_s:.0f}% of the window, "
            f"{1000 * busy / max(1, r.updates):.2f} ms per update; by task/callback:"
        )
        for name, v in sorted(loop_time.items(), key=lambda kv: -kv[1]["seconds"])[:12]:
            log(
                f"    {name:58s} {1000 * v['seconds'] / max(1, r.updates):6.2f} ms "
                f"({v['calls'] / max(1, r.updates):.1f} runs)"
            )
    profile = r.bot.get("profile")
    if profile:
        log("  cProfile, main thread, self time per update by category (profiler overhead incl.):")
        cats = sorted(profile["categories"].items(), key=lambda kv: -kv[1])
        for name, seconds in cats:
            if seconds * 1000 / max(1, r.updates) >= 0.005:
                log(f"    {name:34s} {1000 * seconds / max(1, r.updates):6.3f} ms")
        log("  hottest functions by self time (per update):")
        for row in profile["top_self"][:20]:
            log(
                f"    {1000 * row['self_s'] / max(1, r.updates):6.3f} ms self "
                f"{1000 * row['cum_s'] / max(1, r.updates):7.3f} ms cum "
                f"{row['calls'] / max(1, r.updates):6.1f} calls  {row['function']}"
            )


def code_version() -> str:
    """The commit measured, and whether the application code differs from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot", "flows", "handlers", "storage"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes to the application code" if dirty else "")


async def run_all(opts: Options) -> dict[str, Any]:
    """All phases; returns the full report."""
    from importlib.metadata import version

    db_name = "sqlite" if opts.db == "sqlite" else "postgresql"
    log(
        f"Careline inbound benchmark, {opts.scenario} scenario: {opts.patients} patients, "
        f"{os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, aiogram {version('aiogram')}, {db_name}, "
        f"seed {opts.seed}; code {code_version()}"
    )
    log(
        "emulator rate limits off, outbox limits 100000/s global and 10000/s per chat, "
        + (
            f"outbox concurrency {opts.outbox_concurrency} (experiment)"
            if opts.outbox_concurrency
            else "outbox concurrency at the app default"
        )
        + (f"; bot processes pinned to CPU {opts.bot_cpu}" if opts.bot_cpu is not None else "")
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        log(f"note: load average {load:.1f} at start; other work on this machine skews results")
    phase = 0
    workers = Workers(opts)

    async def go(kind: str, mode: str, rate: float | None = None) -> PhaseResult:
        nonlocal phase
        phase += 1
        result = await run_phase(opts, workers, kind, mode, rate, phase)
        describe_phase(result)
        return result

    fixed: list[PhaseResult] = []
    fixed_line: list[dict[str, Any]] = []
    try:
        await workers.start(["echo", "careline"])
        log(f"bot and client processes started ({opts.client_procs} client process(es))")
        base = await go("echo", "closed")
        care = await go("careline", "closed")
        for fraction in opts.fixed_rate if care.updates_per_s > 0 else []:
            rate = care.updates_per_s * fraction
            care_fixed = await go("careline", "fixed", rate)
            base_fixed = await go("echo", "fixed", rate)
            fixed += [care_fixed, base_fixed]
            fixed_line.append(
                {
                    "fraction": fraction,
                    "offered_per_s": round(rate, 1),
                    "updates_per_s": round(care_fixed.updates_per_s, 1),
                    "p50_ms": round(care_fixed.p50_ms, 1),
                    "p99_ms": round(care_fixed.p99_ms, 1),
                    "baseline_updates_per_s": round(base_fixed.updates_per_s, 1),
                    "baseline_p50_ms": round(base_fixed.p50_ms, 1),
                    "baseline_p99_ms": round(base_fixed.p99_ms, 1),
                    **(
                        {"intakes": care_fixed.intakes, "baseline_intakes": base_fixed.intakes}
                        if opts.scenario == "intake"
                        else {}
                    ),
                }
            )
    finally:
        await workers.close()
    ratio = care.updates_per_s / base.updates_per_s if base.updates_per_s > 0 else 0.0
    log("\n== summary ==")
    if opts.scenario == "intake":
        log(
            f"intake scenario: inputs of full symptom intakes (onboarding unmeasured); "
            f"intakes completed in the closed-loop window: careline {care.intakes}, baseline "
            f"{base.intakes} (the echo bot's 'intakes' are the same inputs)"
        )
    log(
        f"closed loop, {opts.patients} patients: careline {care.updates_per_s:.1f} updates/s "
        f"(p50 {care.p50_ms:.1f} ms, p99 {care.p99_ms:.1f} ms), baseline "
        f"{base.updates_per_s:.1f} updates/s (p50 {base.p50_ms:.1f} ms, p99 "
        f"{base.p99_ms:.1f} ms); ratio {ratio:.3f}"
    )
    bot_care, bot_base = care.cpu["bot"], base.cpu["bot"]
    if bot_care and bot_base and care.updates and base.updates:
        care_ms = 1000 * bot_care / care.updates
        base_ms = 1000 * bot_base / base.updates
        log(
            f"bot CPU per update: careline {care_ms:.2f} ms, baseline {base_ms:.2f} ms "
            f"(CPU-efficiency ratio {base_ms / care_ms:.3f})"
        )
    for r in fixed:
        share = (r.offered_rate or 0.0) / care.updates_per_s
        log(
            f"fixed offered rate {r.offered_rate:.1f}/s ({share:.0%} of careline's "
            f"closed-loop max): {r.label.split()[0]} {r.updates_per_s:.1f} updates/s, "
            f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms"
        )
    errors = sum(r.errors for r in [base, care, *fixed])
    if errors:
        log(f"WARNING: {errors} steps failed (see the error lines above)")
    line: dict[str, Any] = {
        "scenario": opts.scenario,
        "updates_per_s": round(care.updates_per_s, 1),
        "baseline_updates_per_s": round(base.updates_per_s, 1),
        "ratio": round(ratio, 3),
        "p50_ms": round(care.p50_ms, 1),
        "p99_ms": round(care.p99_ms, 1),
        "baseline_p50_ms": round(base.p50_ms, 1),
        "baseline_p99_ms": round(base.p99_ms, 1),
        "patients": opts.patients,
        "updates": care.updates,
        "db": db_name,
    }
    if opts.scenario == "intake":
        line["intakes"] = care.intakes
        line["baseline_intakes"] = base.intakes
    else:
        line["onboardings"] = care.onboardings
    line["fixed"] = fixed_line
    return {
        "line": line,
        "options": {**asdict(opts), "db": db_name},
        "code": code_version(),
        "cpus": os.cpu_count(),
        "phases": [asdict(r) for r in [base, care, *fixed]],
    }


def parse_args(argv: list[str] | None) -> Options:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.inbound",
        description="Onboarding (or symptom intake) throughput of Careline vs a bare aiogram "
        "echo bot.",
    )
    ap.add_argument(
        "--scenario",
        choices=("onboarding", "intake"),
        default="onboarding",
        help="what the patients do: onboard over and over (default), or onboard once "
        "(unmeasured) and then do full symptom intakes",
    )
    ap.add_argument("--patients", type=int, default=50, help="simulated patients (default 50)")
    length = ap.add_mutually_exclusive_group()
    length.add_argument(
        "--duration", type=float, default=7.0, help="measured seconds per phase (default 7)"
    )
    length.add_argument(
        "--onboardings",
        type=int,
        default=0,
        help="instead of --duration: end each phase after this many completed onboardings",
    )
    length.add_argument(
        "--intakes",
        type=int,
        default=0,
        help="--scenario intake, instead of --duration: end each phase after this many "
        "completed intakes",
    )
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    ap.add_argument(
        "--db", default="sqlite", help="'sqlite' (temp dir, default) or a PostgreSQL URL"
    )
    ap.add_argument("--seed", type=int, default=1, help="seed for names, choices and arrivals")
    ap.add_argument(
        "--client-procs", type=int, default=1, help="processes for the simulated patients"
    )
    ap.add_argument(
        "--fixed-rate",
        default="0.6",
        help="also measure both bots at these fractions of careline's closed-loop rate, "
        "comma-separated (default 0.6; 0 = skip)",
    )
    ap.add_argument("--step-timeout", type=float, default=10.0, help="seconds per answer")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile careline's bot process in the closed-loop window (slows it down)",
    )
    ap.add_argument(
        "--profile-out", help="with --profile: also save the raw cProfile stats to this file"
    )
    ap.add_argument(
        "--stages", action="store_true", help="time careline's stages (processor, sender, DB)"
    )
    ap.add_argument(
        "--outbox-concurrency",
        type=int,
        help="experiment: CARELINE_OUTBOX_CONCURRENCY for careline (default: the app's own)",
    )
    ap.add_argument(
        "--bot-cpu",
        type=int,
        help="experiment: pin the bot processes (all their threads) to this CPU number",
    )
    ap.add_argument("--report", help="write the full report (all phases) as JSON to this file")
    a = ap.parse_args(argv)
    if a.patients < 1 or a.client_procs < 1 or a.client_procs > a.patients:
        ap.error("need 1 <= --client-procs <= --patients")
    try:
        fractions = [float(f) for f in str(a.fixed_rate).split(",") if float(f) > 0]
    except ValueError:
        ap.error("--fixed-rate takes fractions like 0.6 or 0.2,0.6")
    if a.db != "sqlite" and not a.db.startswith("postgresql"):
        ap.error("--db is 'sqlite' or a postgresql+asyncpg:// URL")
    if a.scenario == "intake" and a.onboardings:
        ap.error("--scenario intake counts intakes: use --intakes M")
    if a.scenario == "onboarding" and a.intakes:
        ap.error("--intakes needs --scenario intake")
    return Options(
        scenario=a.scenario,
        patients=a.patients,
        duration=a.duration,
        onboardings=a.onboardings,
        intakes=a.intakes,
        warmup=a.warmup,
        db=a.db,
        seed=a.seed,
        client_procs=a.client_procs,
        fixed_rate=fractions,
        step_timeout=a.step_timeout,
        profile=a.profile,
        profile_out=str(Path(a.profile_out).resolve()) if a.profile_out else None,
        stages=a.stages,
        report=a.report,
        outbox_concurrency=a.outbox_concurrency,
        bot_cpu=a.bot_cpu,
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
