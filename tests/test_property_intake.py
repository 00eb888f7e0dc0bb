"""Property test: random walks through the symptom intake, through the real patient dispatcher.

Each Hypothesis example is one onboarded patient who sends /intake and then, step after step,
presses one of the buttons the bot really showed last (mostly forward, sometimes back), presses
an old or forged button, types anything (numbers, words, emoji, 4,000 characters, mixed
languages), or sends a photo, a voice note or a sticker. After every update:

- nothing was logged at ERROR and the update is ``done`` (no handler raised);
- the intake's state is a :class:`flows.intake.State`, its answers decrypt, and what they
  hold is consistent with the state (a complaint from the complaint step on, a severity from
  the checklist on, a disposition exactly when triaged or stopped).

Every walk ends in a disposition, an emergency or a clean cancel: a walk that has not ended
after the step budget presses "Cancel", which must end it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from bot.app import Careline
from flows.intake import FINAL, State
from flows.onboarding import CONSENT_VERSION, Step
from flows.questionnaire import DISPOSITIONS
from handlers.patient.intake_render import IntakeCB
from storage.models import InboxUpdate, Intake, OutboxMessage, Patient
from tests.test_property_updates import NOW, Builder, ErrorRecords, build_app

# CARELINE_PROPERTY_WALKS walks (Hypothesis examples): 12 in CI (~10 s on a 2-core VM), 100 or
# more nightly. The same number always plays the same walks (Hypothesis is derandomised).
EXAMPLES = int(os.environ.get("CARELINE_PROPERTY_WALKS", "12"))
STEPS = 50
BASE_UID = 8_000_000_000

TEXTS = st.one_of(
    st.sampled_from(
        [
            "7", "10", "0", "eleven", "七", "семь", "a lot", "😭😭😭", "asthma", "高血压",
            "аллергия на пенициллин", "x" * 4000, "I have had a cough for three days",
            "no chest pain", "<b>bold</b> & <i>", "\u202eevil\u202c", "/intake", "/history",
            "/help", "headache 头痛 головная боль",
        ]
    ),
    st.text(max_size=60),
)  # fmt: skip
MEDIA: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [
        {"photo": [{"file_id": "ph1", "file_unique_id": "u1", "width": 9, "height": 9}]},
        {"voice": {"file_id": "vo1", "file_unique_id": "u2", "duration": 3}},
        {"sticker": {"file_id": "st1", "file_unique_id": "u3", "type": "regular",
                     "width": 9, "height": 9, "is_animated": False, "is_video": False}},
        {"document": {"file_id": "dc1", "file_unique_id": "u4", "file_name": "scan.pdf"}},
    ]
)  # fmt: skip
FORGED = st.sampled_from(
    [
        IntakeCB(tag="deadbeef", action="sev", value="5").pack(),
        IntakeCB(tag="", action="cat", value="fever").pack(),
        "ik:zz:sev:99",
        "ik:",
        "ik:12345678:flag:not_a_flag",
    ]
)


def _intake_cb(data: str) -> IntakeCB | None:
    """The intake's own buttons (the safety question's "Yes" is another kind)."""
    return IntakeCB.unpack(data) if data.startswith("ik:") else None


def _forward(data: str) -> bool:
    """A button that moves on: not back, cancel, a correction or a symptom tick (those loop),
    not a ticked red flag (that ends the walk at once). The others come as "any" button."""
    cb = _intake_cb(data)
    if cb is None:
        return False
    if cb.action == "begin":
        return True  # "No, describe my problem" after the safety question: back to the step
    if cb.action in ("back", "cancel", "fix"):
        return False
    if cb.action == "flag":
        return cb.value == "none"
    if cb.action == "sym":
        return cb.value in ("done", "none")
    return True


def _buttons(params: dict[str, Any]) -> list[str]:
    rows = (params.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


async def _setup_patient(app: Careline, uid: int) -> None:
    async with app.db.uow() as uow:
        patient = await uow.patients.add(
            Patient(
                tg_user_id=uid,
                locale="en",
                onboarding_state=Step.DONE.value,
                consent_version=CONSENT_VERSION,
                timezone="UTC",
            )
        )
        await uow.patients.set_field(patient, "birth_year", "1950")
        await uow.commit()


def _consistent(state: State, intake: Intake, answers: dict[str, Any]) -> None:
    order = list(State)
    if state not in FINAL and order.index(state) > order.index(State.COMPLAINT):
        assert answers.get("category"), (state, answers)
    if state in (State.RED_FLAGS, State.FOLLOW_UP, State.ASSOCIATED):
        assert answers.get("severity") is not None or answers.get("returning"), answers
    if state is State.TRIAGED:
        assert intake.disposition in DISPOSITIONS and intake.department
        assert answers["triage"]["disposition"] == intake.disposition
    elif state is State.EMERGENCY:
        assert intake.disposition in ("emergency_ambulance", "emergency")
    else:
        assert intake.disposition is None


def test_random_walks_through_the_intake_end_cleanly(tmp_path: Path) -> None:
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    loop = asyncio.new_event_loop()
    app = loop.run_until_complete(build_app(tmp_path))
    builder = Builder()
    counter = {"update": 1, "example": 0}
    ends: dict[str, int] = {}

    async def send(uid: int, body: dict[str, Any]) -> None:
        update = {"update_id": counter["update"], **body}
        counter["update"] += 1
        assert await app.processor.store("patient", [update]) == 1
        await app.processor.process_pending()
        assert not errors.records, [r.getMessage() for r in errors.records]
        async with app.db.uow() as uow:
            statuses = list(await uow.session.scalars(select(InboxUpdate.status)))
            assert statuses and all(s == "done" for s in statuses), statuses
            await uow.session.execute(delete(InboxUpdate))
            await uow.commit()

    async def last_buttons(uid: int) -> list[str]:
        async with app.db.uow() as uow:
            rows = await uow.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.chat_id == uid)
                .order_by(OutboxMessage.id.desc())
                .limit(5)
            )
            for row in rows:
                params = await uow.outbox.params(row)
                if _buttons(params):
                    return _buttons(params)
        return []

    async def current(uid: int) -> tuple[Intake | None, dict[str, Any]]:
        async with app.db.uow() as uow:
            patient = await uow.patients.by_tg_user(uid)
            assert patient is not None
            found = await uow.intakes.for_patient(patient.id, limit=1)
            if not found:
                return None, {}
            answers = await uow.intakes.answers(found[0])
            uow.session.expunge_all()
            return found[0], answers

    def press(uid: int, data: str) -> dict[str, Any]:
        me = builder.user(uid)
        chat = builder.private(uid)
        message = builder.message(
            chat,
            {"id": 100001, "is_bot": True, "first_name": "Careline"},
            {"text": "question", "date": NOW - 5},
        )
        query = {"id": f"q{builder.next_mid()}", "from": me, "chat_instance": "ci"}
        return {"callback_query": {**query, "message": message, "data": data}}

    def say(uid: int, content: dict[str, Any]) -> dict[str, Any]:
        return {"message": builder.message(builder.private(uid), builder.user(uid), content)}

    async def walk(data: st.DataObject) -> None:
        uid = BASE_UID + counter["example"]
        counter["example"] += 1
        await _setup_patient(app, uid)
        await send(uid, say(uid, {"text": "/intake"}))
        for _ in range(STEPS):
            intake, answers = await current(uid)
            assert intake is not None
            state = State(intake.state)
            _consistent(state, intake, answers)
            if state in FINAL:
                break
            shown = await last_buttons(uid)
            forward = [b for b in shown if _forward(b)]
            kind = data.draw(st.sampled_from(["forward"] * 12 + ["any", "forged", "text",
                                                                  "media"]))  # fmt: skip
            if kind == "forward" and forward:
                await send(uid, press(uid, data.draw(st.sampled_from(forward))))
            elif kind == "any" and shown:
                await send(uid, press(uid, data.draw(st.sampled_from(shown))))
            elif kind == "forged":
                await send(uid, press(uid, data.draw(FORGED)))
            elif kind == "media":
                await send(uid, say(uid, data.draw(MEDIA)))
            else:
                await send(uid, say(uid, {"text": data.draw(TEXTS)}))
        intake, answers = await current(uid)
        assert intake is not None
        if State(intake.state) not in FINAL:
            shown = await last_buttons(uid)
            resume = [b for b in shown if (cb := _intake_cb(b)) and cb.action == "begin"]
            if resume:  # the safety question was last: "No" shows the open step again
                await send(uid, press(uid, resume[0]))
                shown = await last_buttons(uid)
            cancel = [b for b in shown if (cb := _intake_cb(b)) and cb.action == "cancel"]
            assert cancel, "every open step offers Cancel"
            await send(uid, press(uid, cancel[0]))
            intake, answers = await current(uid)
            assert intake is not None
        state = State(intake.state)
        assert state in FINAL, state
        _consistent(state, intake, answers)
        ends[state.value] = ends.get(state.value, 0) + 1

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        loop.run_until_complete(walk(data))

    try:
        run()
    finally:
        loop.run_until_complete(app.stop())
        loop.close()
        logging.getLogger().removeHandler(errors)
    print(f"intake walks ended: {ends}")  # noqa: T201
    assert sum(ends.values()) >= EXAMPLES
    assert ends.get("triaged", 0) > 0, ends
