"""Resilience of the real bots against the Bot API emulator: SIGKILLs in the middle of a stream,
429 storms, 5xx answers and dropped connections, people who block the bot, graceful SIGTERM.

Every test checks outcomes (what people received, what the database says), never speed.
"""

from __future__ import annotations

import asyncio
import io
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.emulator_faults import FaultDecision, FaultRule
from flows.onboarding import CONSENT_VERSION, Step
from locales import Translator
from storage.models import OutboxMessage
from tests.e2e.conftest import (
    DOCTOR_BOT,
    DOCTOR_TOKEN,
    PATIENT_BOT,
    PATIENT_TOKEN,
    Clinic,
    start_clinic,
    stop_clinic,
)
from tests.e2e.harness_subprocess import (
    BotProcess,
    backlog,
    get_updates_calls,
    pending_updates,
    query,
    wait_drained,
    wait_polling,
)

EN = Translator("en")
LANG_BUTTON = {"en": "English", "zh_Hans": "简体中文", "ru": "Русский"}
# The Bot API methods our sender uses that Telegram flood-limits.
SENDING = ["sendMessage", "editMessageText", "editMessageReplyMarkup"]


# --- helpers -------------------------------------------------------------------------------


@dataclass
class Call:
    """One Bot API call as the emulator's fault injector saw it (before any effect)."""

    at: float  # time.monotonic() of the emulator, which runs in this process
    bot_id: int
    method: str  # lower case
    bucket: tuple[int, str]  # (bot id, "chat:<id>" | "global" | "method:<name>")
    decision: FaultDecision


class CallLog:
    """Spy on the in-process emulator's fault decisions: a per-call log with timestamps.

    The emulator itself keeps only counters; wrapping ``faults.decide`` (every Bot API call
    passes through it once, before its effect) gives the order and time of every call without
    changing the emulator.
    """

    def __init__(self, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Call] = []
        decide = emulator.faults.decide

        def spy(bot_id: int, method: str, bucket: tuple[int, str], now: float) -> FaultDecision:
            decision = decide(bot_id, method, bucket, now)
            self.calls.append(Call(now, bot_id, method, bucket, decision))
            return decision

        monkeypatch.setattr(emulator.faults, "decide", spy)

    def to_chat(self, bot_id: int, chat_id: int) -> list[Call]:
        """Calls addressed to one chat of one bot, in order."""
        key = (bot_id, f"chat:{chat_id}")
        return [c for c in self.calls if c.bucket == key]


def bot_id_of(token: str) -> int:
    """The bot's id, as the emulator derives it from the token."""
    return int(token.split(":", 1)[0])


async def bot_texts(client: EmulatorClient, uid: int, bot: str) -> list[str]:
    """Every text the bot delivered to this person, in order."""
    msgs = (await client.messages(uid, bot))["messages"]
    return [m.get("text") or m.get("caption") or "" for m in msgs if m["from"] == "bot"]


def has_button(label: str) -> Callable[[dict[str, Any]], bool]:
    """A wait_for predicate: a bot message with an inline button labelled ``label``."""

    def predicate(msg: dict[str, Any]) -> bool:
        rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
        return any(b.get("text") == label for row in rows for b in row)

    predicate.__name__ = f"has_button({label!r})"
    return predicate


async def wait_until(
    what: str, check: Callable[[], Any], within: float = 60.0, every: float = 0.05
) -> None:
    """Poll an async ``check`` until it returns true; fail naming ``what``."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within}s waiting for {what}")
        await asyncio.sleep(every)


async def clinic_settled(clinic: Clinic) -> bool:
    """Every update acknowledged and processed, and nothing left to send."""
    if pending_updates(clinic.emulator) != 0:
        return False
    async with clinic.app.db.uow() as uow:
        busy = (
            await uow.inbox.count("pending")
            + await uow.outbox.count("pending")
            + await uow.outbox.count("sending")
        )
    return busy == 0


@dataclass(frozen=True)
class Row:
    """An outbox row, read out of its session."""

    method: str
    status: str
    attempts: int
    error: str | None
    wiped: bool


async def outbox_rows(clinic: Clinic) -> list[Row]:
    """All outbox rows of an in-process clinic, oldest first."""
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [Row(r.method, r.status, r.attempts, r.error, r.payload_enc is None) for r in rows]


@pytest.fixture
async def quiet_clinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """An in-process clinic on SQLite with the emulator's own flood limits off, so every
    429 in a test is one the test injected."""
    clinic, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, limits=RateLimits(enabled=False)
    )
    try:
        yield clinic
    finally:
        await clinic.client.clear_faults()
        await stop_clinic(clinic, schema)


async def doctor_chatter(client: EmulatorClient, uid: int, count: int) -> None:
    """``count`` messages to the doctor bot, back to back, not waiting for answers."""
    for i in range(count):
        await client.send(uid, DOCTOR_BOT, f"hello {i}")


async def patient_first_steps(client: EmulatorClient, uid: int, locale: str) -> None:
    """/start, the language button, then "Continue" — each after its question arrived."""
    tr = Translator(locale)
    await client.send(uid, PATIENT_BOT, "/start")
    await client.wait_for(uid, PATIENT_BOT, has_button(LANG_BUTTON[locale]), timeout=60)
    await client.click_button(uid, PATIENT_BOT, LANG_BUTTON[locale])
    label = tr.plain("onboarding.intro.continue")
    await client.wait_for(uid, PATIENT_BOT, has_button(label), timeout=60)
    await client.click_button(uid, PATIENT_BOT, label)
    await client.wait_for(uid, PATIENT_BOT, has_button(tr.plain("onboarding.consent.accept")))


def patient_first_texts(locale: str) -> list[str]:
    """What a patient sees for :func:`patient_first_steps`."""
    tr = Translator(locale)
    return [
        EN.plain("onboarding.choose_language"),
        tr.plain("onboarding.intro", emergency_number="112"),
        tr.plain("onboarding.consent", version=CONSENT_VERSION),
    ]


async def drive_mixed_crowd(
    clinic: Clinic, doctors: int, messages: int, patients: int
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """People writing at once: doctor-bot chatter and patients' first onboarding steps.

    Returns the expected texts per person for the doctor bot and for the patient bot.
    """
    client = clinic.client
    locales = list(LANG_BUTTON)
    doctor_ids = [await clinic.person(f"Tester D{i}") for i in range(doctors)]
    patient_ids = [await clinic.person(f"Tester P{i}") for i in range(patients)]
    expected_doctor = {uid: [EN.plain("doctor.help")] * messages for uid in doctor_ids}
    expected_patient = {
        uid: patient_first_texts(locales[i % len(locales)]) for i, uid in enumerate(patient_ids)
    }
    await asyncio.gather(
        *(doctor_chatter(client, uid, messages) for uid in doctor_ids),
        *(
            patient_first_steps(client, uid, locales[i % len(locales)])
            for i, uid in enumerate(patient_ids)
        ),
    )
    return expected_doctor, expected_patient


async def delivered(
    clinic: Clinic, expected: dict[int, list[str]], bot: str
) -> dict[int, list[str]]:
    """Wait until each person got at least the expected number of messages; return them."""
    got: dict[int, list[str]] = {}

    async def all_there() -> bool:
        for uid in expected:
            got[uid] = await bot_texts(clinic.client, uid, bot)
        return all(len(got[uid]) >= len(texts) for uid, texts in expected.items())

    await wait_until(f"every reply from @{bot}", all_there, within=60, every=0.2)
    await wait_until("the outbox to drain", lambda: clinic_settled(clinic), within=60)
    for uid in expected:
        got[uid] = await bot_texts(clinic.client, uid, bot)
    return got


def duplicates(expected: list[str], got: list[str]) -> int:
    """Extra copies in ``got``; fails if anything expected is missing, anything else came,
    or the order is off (a repeated message can only directly follow its original)."""
    missing = Counter(expected) - Counter(got)
    assert not missing, f"lost replies: {dict(missing)}; got {got}"
    assert set(got) <= set(expected), f"unexpected replies in {got}"
    assert _collapse(got) == _collapse(expected), f"out of order: {got}"
    return len(got) - len(expected)


def _collapse(texts: list[str]) -> list[str]:
    return [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]


# --- 1. SIGKILL in the middle of a stream ----------------------------------------------------

KILLS = 5
CONCURRENCY = 8  # the sender's default calls in flight
KILL_SEED = 20240611


@pytest.mark.slow
async def test_sigkill_during_a_stream_loses_nothing(tmp_path: Path) -> None:
    """The bot (a subprocess) is SIGKILLed at random moments while 30 people keep writing.
    Their updates pile up in the emulator while it is dead.

    Every update is stored and processed exactly once, every reply is delivered, and a kill
    costs at most one duplicate message.
    """
    rng = random.Random(KILL_SEED)
    emulator = BotApiEmulator(limits=RateLimits(enabled=False))
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    url = await emulator.start("127.0.0.1", 0)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = BotProcess(data_dir, url)
    client = EmulatorClient(url)
    people: asyncio.Future[Any] | None = None
    try:
        doctors = [int((await client.create_user(f"Tester D{i}", "en"))["id"]) for i in range(24)]
        patients = {
            int((await client.create_user(f"Tester P{i}", "en"))["id"]): code
            for i, code in enumerate(["ru", "zh_Hans", "en", "ru", "zh_Hans", "en"])
        }
        # Replies take a few milliseconds at "Telegram", so a kill often finds one in flight:
        # the case where a message may go out twice.
        await client.set_faults(methods=["sendMessage"], delay_ms=[1, 15], seed=KILL_SEED)
        said: Counter[int] = Counter()  # messages each doctor-bot user sent
        sent: dict[str, list[int]] = {"patient": [], "doctor": []}
        kills_done = asyncio.Event()

        async def doctor(uid: int, seed: int) -> None:
            # Writes until the last kill, whatever the bot does: updates pile up while it is dead.
            own = random.Random(seed)
            while not kills_done.is_set():
                await asyncio.sleep(own.uniform(0.8, 5.0))
                result = await client.send(uid, DOCTOR_BOT, f"hello {said[uid]}")
                sent["doctor"].append(result["update_id"])
                said[uid] += 1

        async def patient(uid: int, code: str, seed: int) -> None:
            own = random.Random(seed)
            await asyncio.sleep(own.uniform(0.0, 10.0))
            sent["patient"].append((await client.send(uid, PATIENT_BOT, "/start"))["update_id"])
            # The button exists only once the bot has answered (it may be dead meanwhile).
            await client.wait_for(uid, PATIENT_BOT, has_button(LANG_BUTTON[code]), timeout=90)
            await asyncio.sleep(own.uniform(0.0, 1.0))
            click = await client.click_button(uid, PATIENT_BOT, LANG_BUTTON[code])
            sent["patient"].append(click["update_id"])

        before = get_updates_calls(emulator)
        proc.start()
        await wait_polling(emulator, before, proc)
        people = asyncio.gather(
            *(doctor(uid, KILL_SEED + i) for i, uid in enumerate(doctors)),
            *(
                patient(uid, code, KILL_SEED + 100 + i)
                for i, (uid, code) in enumerate(patients.items())
            ),
        )
        busy_at_kill: list[tuple[int, int]] = []
        try:
            await asyncio.sleep(rng.uniform(1.0, 2.5))  # the stream gets going
            for _ in range(KILLS):
                # A random moment soon after the restart: the updates that piled up while the
                # bot was dead are being stored, processed and answered.
                await asyncio.sleep(rng.uniform(0.0, 0.7))
                busy_at_kill.append(backlog(proc.db_path))
                assert await proc.kill() == -signal.SIGKILL
                # Dead for a while (besides the start-up time).
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                before = get_updates_calls(emulator)
                proc.start()
                await wait_polling(emulator, before, proc)
        finally:
            kills_done.set()
        await people
        await client.clear_faults()  # the rest drains at full speed
        total = len(sent["patient"]) + len(sent["doctor"])
        await wait_drained(emulator, proc, total, within=60)
        assert await proc.terminate(within=15) == 0, proc.log_tail()
        print(  # noqa: T201 - the run's shape, shown with -s or when the test fails
            f"kills={KILLS} starts={proc.starts} updates={total} "
            f"backlog at kills (inbox, outbox)={busy_at_kill}"
        )
        # The kills did land in the middle of work (not only on an idle bot).
        assert any(b != (0, 0) for b in busy_at_kill), busy_at_kill

        # Each update stored exactly once and processed.
        rows = query(proc.db_path, "SELECT bot, update_id, status FROM inbox")
        stored = Counter((bot, uid) for bot, uid, _ in rows)
        assert all(n == 1 for n in stored.values())
        for role in ("patient", "doctor"):
            assert sorted(uid for bot, uid in stored if bot == role) == sorted(sent[role])
        assert {status for _, _, status in rows} == {"done"}, Counter(s for *_, s in rows)

        # Each reply queued exactly once (the processing happened once) and sent.
        outbox = query(proc.db_path, "SELECT bot, chat_id, method, status, attempts FROM outbox")
        queued = Counter((bot, chat, method) for bot, chat, method, _, _ in outbox)
        for uid in doctors:
            assert queued[("doctor", uid, "sendMessage")] == said[uid]
        for uid in patients:
            assert queued[("patient", uid, "sendMessage")] == 2
        assert queued[("patient", 0, "answerCallbackQuery")] == len(patients)
        assert len(queued) == len(doctors) + len(patients) + 1
        for bot, chat, method, status, _ in outbox:
            # A callback answer sent again after a crash is refused as "query too old".
            ok = ("sent", "failed") if method == "answerCallbackQuery" else ("sent",)
            assert status in ok, (bot, chat, method, status)
        # Only a crash makes a second attempt: per kill, at most the calls in flight (one per
        # chat, at most CONCURRENCY), each made once more.
        again: Counter[tuple[str, int]] = Counter()
        for bot, chat, _, _, attempts in outbox:
            again[(bot, chat)] += attempts - 1
        assert all(n <= KILLS for (_, chat), n in again.items() if chat), again
        assert sum(again.values()) <= KILLS * CONCURRENCY, again

        # Patients: the language was applied once.
        state = {
            tg: (locale, step)
            for tg, locale, step in query(
                proc.db_path, "SELECT tg_user_id, locale, onboarding_state FROM patients"
            )
        }
        assert state == {uid: (code, Step.INTRO.value) for uid, code in patients.items()}
        # The choice during onboarding is not audited; a click applied a second time would be
        # a change of language, which is (and is announced: checked with the texts below).
        language_changes = query(
            proc.db_path,
            "SELECT count(*) FROM audit_log WHERE action = 'profile.update' "
            "AND details LIKE '%language%'",
        )
        assert language_changes == [(0,)]

        # Everyone got every reply; extra copies only from crashes: per kill at most one per
        # chat (a chat has one call in flight at a time).
        extra: dict[int, int] = {}
        for uid in doctors:
            got = await bot_texts(client, uid, DOCTOR_BOT)
            extra[uid] = duplicates([EN.plain("doctor.help")] * said[uid], got)
        for uid, code in patients.items():
            got = await bot_texts(client, uid, PATIENT_BOT)
            expected = [
                EN.plain("onboarding.choose_language"),
                Translator(code).plain("onboarding.intro", emergency_number="112"),
            ]
            extra[uid] = duplicates(expected, got)
        total = sum(extra.values())
        print(f"duplicates={total}")  # noqa: T201
        assert all(n <= KILLS for n in extra.values()), extra
        assert total <= KILLS * CONCURRENCY, f"{total} duplicates after {KILLS} kills"
    finally:
        if people is not None and not people.done():
            people.cancel()
        proc.cleanup()
        await client.close()
        await emulator.stop()


# --- 2. 429 storm ---------------------------------------------------------------------------


async def test_429_storm_is_paced_and_loses_nothing(
    quiet_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third of sending calls answer 429 retry_after=1 for 4 s: every reply arrives exactly
    once, and no chat is called again before its retry_after has passed."""
    clinic = quiet_clinic
    log = CallLog(clinic.emulator, monkeypatch)
    await clinic.client.set_faults(
        rate_429=0.3, retry_after=1, methods=SENDING, duration_s=4, seed=429
    )
    rule: FaultRule = clinic.emulator.faults.rules[-1]
    expected_doctor, expected_patient = await drive_mixed_crowd(
        clinic, doctors=14, messages=5, patients=6
    )
    got_doctor = await delivered(clinic, expected_doctor, DOCTOR_BOT)
    got_patient = await delivered(clinic, expected_patient, PATIENT_BOT)
    for uid, texts in expected_doctor.items():
        assert got_doctor[uid] == texts
    for uid, texts in expected_patient.items():
        assert got_patient[uid] == texts

    injected = rule.injected["429"]
    print(  # noqa: T201
        f"429 injected={injected} seen by sender={clinic.app.sender.stats.rate_limited} "
        f"emulator 429s={clinic.emulator.stats()['totals']['429']} calls={len(log.calls)}"
    )
    assert injected > 0, "the storm did not happen"
    assert clinic.app.sender.stats.rate_limited == injected
    # The emulator answers 429 to any call made while a chat still owes its retry_after; so
    # every 429 it counted being an injected one means the sender never came back early.
    assert clinic.emulator.stats()["totals"]["429"] == injected
    # The same, from the call log: after a 429 the next call to that chat waited retry_after.
    checked = 0
    for i, call in enumerate(log.calls):
        if call.decision.retry_after is None:
            continue
        later = [c for c in log.calls[i + 1 :] if c.bucket == call.bucket]
        assert later, f"a 429'd call to {call.bucket} was never retried"
        gap = later[0].at - call.at
        assert gap >= call.decision.retry_after, f"{call.bucket} called again after {gap:.3f}s"
        checked += 1
    assert checked == injected


# --- 3. 5xx and dropped connections -----------------------------------------------------------


async def test_5xx_and_connections_dropped_before_the_effect_lose_and_repeat_nothing(
    quiet_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5xx answers and connections dropped before Telegram acted: retried until every reply
    arrived, exactly once. getUpdates suffers the same and no update is lost or doubled."""
    clinic = quiet_clinic
    log = CallLog(clinic.emulator, monkeypatch)
    await clinic.client.set_faults(
        rate_5xx=0.3, drop_rate=0.2, drop_after_effect=False, duration_s=3, seed=5
    )
    await clinic.client.set_faults(
        methods=["getUpdates"], rate_5xx=0.3, drop_rate=0.2, duration_s=3, seed=4
    )
    send_rule, poll_rule = clinic.emulator.faults.rules[-2:]
    expected_doctor, expected_patient = await drive_mixed_crowd(
        clinic, doctors=14, messages=4, patients=6
    )
    got_doctor = await delivered(clinic, expected_doctor, DOCTOR_BOT)
    got_patient = await delivered(clinic, expected_patient, PATIENT_BOT)
    for uid, texts in expected_doctor.items():
        assert got_doctor[uid] == texts
    for uid, texts in expected_patient.items():
        assert got_patient[uid] == texts
    polls = sum(1 for c in log.calls if c.method == "getupdates")
    print(f"send faults={send_rule.injected} poll faults={poll_rule.injected} {polls=}")  # noqa: T201
    assert send_rule.injected["5xx"] > 0 and send_rule.injected["dropped"] > 0
    assert poll_rule.injected["5xx"] > 0 and poll_rule.injected["dropped"] > 0
    assert clinic.app.sender.stats.retried >= send_rule.injected["5xx"]
    assert any(c.decision.drop_before for c in log.calls)
    async with clinic.app.db.uow() as uow:
        stored = await uow.inbox.count()
        assert stored == await uow.inbox.count("done")
    assert stored == len(expected_doctor) * 4 + len(expected_patient) * 3


async def test_connections_dropped_after_the_effect_repeat_only_those_messages(
    quiet_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections dropped after Telegram acted: the sender cannot know, so it sends again.
    Every reply arrives; the only extra copies are the calls whose answer was lost."""
    clinic = quiet_clinic
    log = CallLog(clinic.emulator, monkeypatch)
    await clinic.client.set_faults(drop_rate=0.2, drop_after_effect=True, duration_s=3, seed=7)
    await clinic.client.set_faults(
        methods=["getUpdates"], drop_rate=0.2, drop_after_effect=True, duration_s=3, seed=8
    )
    send_rule, poll_rule = clinic.emulator.faults.rules[-2:]
    expected_doctor, expected_patient = await drive_mixed_crowd(
        clinic, doctors=14, messages=4, patients=6
    )
    got_doctor = await delivered(clinic, expected_doctor, DOCTOR_BOT)
    got_patient = await delivered(clinic, expected_patient, PATIENT_BOT)
    extra = sum(duplicates(texts, got_doctor[uid]) for uid, texts in expected_doctor.items())
    extra += sum(duplicates(texts, got_patient[uid]) for uid, texts in expected_patient.items())
    dropped = send_rule.injected["dropped"]
    print(  # noqa: T201
        f"duplicates={extra} send faults={send_rule.injected} poll faults={poll_rule.injected}"
    )
    assert dropped > 0, "no connection was dropped"
    assert extra <= dropped
    # More precisely: one extra copy per sendMessage whose answer was lost.
    lost_answers = sum(1 for c in log.calls if c.method == "sendmessage" and c.decision.drop_after)
    assert extra == lost_answers
    # Updates whose getUpdates answer was lost came again and were stored once.
    assert poll_rule.injected["dropped"] > 0
    async with clinic.app.db.uow() as uow:
        stored = await uow.inbox.count()
        assert stored == await uow.inbox.count("done")
    people = len(expected_doctor) * 4 + len(expected_patient) * 3
    assert stored == people


async def test_a_retried_message_is_not_overtaken_by_later_ones(quiet_clinic: Clinic) -> None:
    """Every answer lost for a while: the first reply is retried with backoff while the patient
    (who did get it) goes on. Later replies wait for it, so the chat never reads out of order."""
    clinic = quiet_clinic
    uid = await clinic.person("Tester Order")
    await clinic.client.set_faults(drop_rate=1.0, drop_after_effect=True, duration_s=2, seed=3)
    rule = clinic.emulator.faults.rules[-1]
    await patient_first_steps(clinic.client, uid, "en")
    got = await delivered(clinic, {uid: patient_first_texts("en")}, PATIENT_BOT)
    assert rule.injected["dropped"] > 0
    assert duplicates(patient_first_texts("en"), got[uid]) > 0


# --- 4. 403: the person blocked the bot --------------------------------------------------------


@pytest.mark.parametrize("how", ["block", "deactivated"])
async def test_blocked_recipient_is_flagged_and_not_retried(
    quiet_clinic: Clinic, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Replies already queued when the person blocks the bot end `unreachable` after one try
    each; the patient is flagged. "deactivated" gives the 403 without any my_chat_member update,
    so only the sender can have flagged the patient."""
    clinic = quiet_clinic
    client = clinic.client
    log = CallLog(clinic.emulator, monkeypatch)
    uid = await clinic.person("Tester B")
    await client.send(uid, PATIENT_BOT, "/start")
    await client.wait_for(uid, PATIENT_BOT, has_button("English"))
    first_rows = len(await outbox_rows(clinic))
    seen_before = len(await bot_texts(client, uid, PATIENT_BOT))

    # Hold sendMessage calls in flight long enough for the person to block the bot.
    await client.set_faults(bot=PATIENT_BOT, methods=["sendMessage"], delay_ms=600)
    bot_id = bot_id_of(PATIENT_TOKEN)
    calls_before = len(log.to_chat(bot_id, uid))
    await client.send(uid, PATIENT_BOT, "what is this")  # -> "not understood" + the question

    async def in_flight() -> bool:
        return len(log.to_chat(bot_id, uid)) > calls_before

    await wait_until("the reply to be in flight", in_flight, within=10, every=0.01)
    if how == "block":
        await client.block(uid, PATIENT_BOT)
    else:
        # An account deleted meanwhile: Telegram answers 403 and sends no update.
        clinic.emulator.chat(bot_id, uid).blocked = True

    async def settled_unreachable() -> bool:
        rows = (await outbox_rows(clinic))[first_rows:]
        return len(rows) == 2 and all(r.status == "unreachable" for r in rows)

    await wait_until("both replies to end unreachable", settled_unreachable, within=20)
    await client.clear_faults()
    await wait_until("every update to be handled", lambda: clinic_settled(clinic))
    rows = (await outbox_rows(clinic))[first_rows:]
    assert rows == [Row("sendMessage", "unreachable", 1, "403", wiped=True)] * 2
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None and patient.unreachable is True
        updates = await uow.inbox.count("done")
    # /start and the text, plus my_chat_member when blocked. Without that update (deactivated)
    # the flag can only be the sender's doing.
    assert updates == (3 if how == "block" else 2)
    assert clinic.app.sender.stats.unreachable == 2
    assert len(await bot_texts(client, uid, PATIENT_BOT)) == seen_before

    # Not retried: no call reaches that chat any more.
    calls = len(log.to_chat(bot_id, uid))
    assert calls == calls_before + 2
    await asyncio.sleep(2.0)  # two sender rounds at least (it looks once a second or more)
    assert len(log.to_chat(bot_id, uid)) == calls
    assert [r.status for r in (await outbox_rows(clinic))[first_rows:]] == ["unreachable"] * 2

    if how == "block":
        # Writing again unblocks (Telegram's "Restart bot"): reachable again, and answered.
        await client.send(uid, PATIENT_BOT, "/start")
        await client.wait_for(uid, PATIENT_BOT, has_button("English"))
        await wait_until("the outbox to drain", lambda: clinic_settled(clinic))
        async with clinic.app.db.uow() as uow:
            patient = await uow.patients.by_tg_user(uid)
            assert patient is not None and patient.unreachable is False


# --- 5. Graceful SIGTERM ------------------------------------------------------------------------


async def test_sigterm_after_acknowledgement_keeps_every_reply(tmp_path: Path) -> None:
    """SIGTERM right after the bot acknowledged a burst: it exits 0 promptly, has processed
    every update, and each reply is either delivered or still queued — and is delivered,
    exactly once, after a restart."""
    emulator = BotApiEmulator(limits=RateLimits(enabled=False))
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    url = await emulator.start("127.0.0.1", 0)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # A slower outbox, so replies are still queued when the signal comes.
    proc = BotProcess(data_dir, url, extra_env={"CARELINE_OUTBOX_GLOBAL_PER_S": "100"})
    client = EmulatorClient(url)
    per_doctor = 5
    try:
        doctors = [int((await client.create_user(f"Tester D{i}", "en"))["id"]) for i in range(40)]
        patients = [int((await client.create_user(f"Tester P{i}", "en"))["id"]) for i in range(10)]
        # The burst is waiting when the bot comes up: it is acknowledged within a few
        # getUpdates calls, well before it can all be processed.
        await asyncio.gather(
            *(doctor_chatter(client, uid, per_doctor) for uid in doctors),
            *(client.send(uid, PATIENT_BOT, "/start") for uid in patients),
        )
        total = len(doctors) * per_doctor + len(patients)
        assert pending_updates(emulator) == total
        proc.start()
        deadline = time.monotonic() + 60
        while pending_updates(emulator) != 0:
            assert proc.running(), proc.log_tail()
            assert time.monotonic() < deadline, "updates were never acknowledged"
            await asyncio.sleep(0.002)
        assert await proc.terminate(within=10) == 0, proc.log_tail()

        # Everything acknowledged was processed before exit.
        inbox = query(proc.db_path, "SELECT status, count(*) FROM inbox GROUP BY status")
        assert dict(inbox) == {"done": total}
        outbox = query(proc.db_path, "SELECT bot, chat_id, status FROM outbox")
        assert Counter(s for *_, s in outbox).keys() <= {"sent", "pending"}, outbox
        waiting = sum(1 for *_, s in outbox if s == "pending")
        print(f"updates={total} replies queued at exit={waiting}")  # noqa: T201
        assert waiting > 0, "no reply was still queued: the scenario did not happen"
        expected = {("doctor", uid): EN.plain("doctor.help") for uid in doctors}
        expected |= {("patient", uid): EN.plain("onboarding.choose_language") for uid in patients}
        for (role, uid), text in expected.items():
            rows = [s for bot, chat, s in outbox if (bot, chat) == (role, uid)]
            assert len(rows) == (per_doctor if role == "doctor" else 1)
            got = await bot_texts(client, uid, DOCTOR_BOT if role == "doctor" else PATIENT_BOT)
            # Delivered exactly the ones marked sent; the rest wait in the outbox.
            assert got == [text] * rows.count("sent")

        before = get_updates_calls(emulator)
        proc.start()
        await wait_polling(emulator, before, proc)
        await wait_drained(emulator, proc, total, within=60)
        assert await proc.terminate(within=10) == 0, proc.log_tail()
        for (role, uid), text in expected.items():
            got = await bot_texts(client, uid, DOCTOR_BOT if role == "doctor" else PATIENT_BOT)
            assert got == [text] * (per_doctor if role == "doctor" else 1)
    finally:
        proc.cleanup()
        await client.close()
        await emulator.stop()
