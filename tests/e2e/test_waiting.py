"""Waiting for a doctor, end to end (both bots over the Bot API emulator): a patient can add
words and photos while their case waits - kept for the doctor who takes it, without restarting
the department's time limit - and can cancel from the same message; their place is told again
when it moves forward, never more often than every 15 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows import consultation as flow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, case_of, starts
from tests.e2e.test_intake import new_patient

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def _has(token: str) -> Any:
    return lambda m: token in (m.get("text") or m.get("caption") or "")


async def _gp_case(clinic: Clinic) -> tuple[Any, Any]:
    p = await new_patient(clinic, "en")
    await p.to_red_flags("headache", "days_1_3", 5)  # neurology, unstaffed: general practice
    await p.after_red_flags("headache")
    await p.confirm()
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Your request is case"))
    return p, await case_of(clinic, p.uid)


async def _updates(clinic: Clinic, uid: int, since: int) -> list[str]:
    msgs = (await clinic.client.messages(uid, PATIENT_BOT, since))["messages"]
    return [m["text"] for m in msgs if m["from"] == "bot" and "Update on" in (m.get("text") or "")]


async def _sweep_until(clinic: Clinic, moment: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(moment):
        pass


async def test_words_and_a_photo_added_while_waiting_reach_the_doctor_who_accepts(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    p, case = await _gp_case(clinic)
    assert case.state == "waiting"
    since = await clinic.seq(p.uid)
    await clinic.client.send(p.uid, PATIENT_BOT, "It is worse when I bend down to tie my shoes")
    added = await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Added to your case"), since)
    assert f"#{case.number}" in added["text"] and "112" in added["text"]
    [[cancel]] = added["reply_markup"]["inline_keyboard"]
    assert cancel["text"] == p.t("consult.button.cancel")
    since = await clinic.seq(p.uid)
    await clinic.client.send_photo(p.uid, PATIENT_BOT, PNG, "knee.png", caption="the swelling")
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Added to your case"), since)
    after = await case_of(clinic, p.uid)
    assert after.state == "waiting"
    # Adding words does not restart the department's time limit.
    assert after.queued_at == case.queued_at
    since_gp = await clinic.seq(gp.uid, DOCTOR_BOT)
    await gp.accept(case.number)
    notes = await gp.wait(_has("added while waiting:"), since_gp)
    assert "It is worse when I bend down to tie my shoes" in notes["text"]
    photo = await gp.wait(lambda m: bool(m.get("photo")), since_gp)
    assert "added while waiting" in photo["caption"] and "the swelling" in photo["caption"]
    # Once the case is taken, words go to the doctor as usual (not as waiting notes).
    since_gp = await clinic.seq(gp.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, "Thank you doctor")
    relayed = await gp.wait(_has("Thank you doctor"), since_gp)
    assert "added while waiting" not in relayed["text"]
    assert clinic.app.processor.failed == 0


async def test_cancel_from_the_waiting_message(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    p, case = await _gp_case(clinic)
    opened = (await clinic.client.messages(p.uid, PATIENT_BOT))["messages"][-1]
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, p.t("consult.button.cancel"))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Cancel your consultation"), since)
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, p.t("consult.cancel.yes"))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, _has(p.t("consult.cancelled", number=case.number)[:20]), since
    )
    assert (await case_of(clinic, p.uid)).state == "cancelled"
    assert opened["reply_markup"]["inline_keyboard"][0][0]["text"] == p.t("consult.button.cancel")


async def test_empty_and_too_many_additions_get_a_clear_answer(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    p, case = await _gp_case(clinic)
    # A caption-less photo is fine; whitespace is not a message.
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        live = await uow.consultations.get(case.id)
        assert patient is not None and live is not None
        with pytest.raises(flow.NotAllowed, match="empty"):
            await flow.add_while_waiting(uow, patient, live, "   ", now=datetime.now(UTC))
        for i in range(flow.WAITING_NOTES_MAX):
            await flow.add_while_waiting(uow, patient, live, f"detail {i}", now=datetime.now(UTC))
        with pytest.raises(flow.NotAllowed, match="too_many"):
            await flow.add_while_waiting(uow, patient, live, "one more", now=datetime.now(UTC))
        await uow.commit()
    # Over the limit by chat: a clear answer (the per-minute limit speaks first here), the
    # case still waiting with what it holds.
    since = await clinic.seq(p.uid)
    await clinic.client.send(p.uid, PATIENT_BOT, "one more detail about my head")
    told = await clinic.client.wait_for(p.uid, PATIENT_BOT, lambda m: m["from"] == "bot", since)
    assert "already holds" in told["text"] or "very quickly" in told["text"]
    async with clinic.app.db.uow() as uow:
        live = await uow.consultations.get(case.id)
        assert live is not None and live.state == "waiting"
        assert len(await flow.waiting_notes(uow, live)) == flow.WAITING_NOTES_MAX
    assert clinic.app.processor.failed == 0


async def test_the_place_is_told_again_when_it_moves_at_most_every_15_minutes(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    first, case1 = await _gp_case(clinic)
    second, case2 = await _gp_case(clinic)
    opened = (await clinic.bot_texts(second.uid))[-1]
    assert second.t("consult.wait.place", place=2) in opened
    start = datetime.now(UTC)
    since = await clinic.seq(second.uid)
    # Nothing moved: no update at the first look.
    await _sweep_until(clinic, start + flow.PLACE_EVERY + timedelta(minutes=1))
    assert not await _updates(clinic, second.uid, since)
    # The first case is taken: at the next look the second patient hears they are next.
    await gp.accept(case1.number)
    await _sweep_until(clinic, start + 2 * flow.PLACE_EVERY + timedelta(minutes=2))
    update = await clinic.client.wait_for(second.uid, PATIENT_BOT, _has("Update on"), since)
    assert second.t("consult.wait.place", place=1) in update["text"]
    assert f"#{case2.number}" in update["text"]
    # Still first later on: nothing more is sent.
    since = await clinic.seq(second.uid)
    await _sweep_until(clinic, start + 5 * flow.PLACE_EVERY)
    assert not await _updates(clinic, second.uid, since)
    assert clinic.app.processor.failed == 0
    del first


def test_a_meaningful_move() -> None:
    assert not flow.moved_meaningfully(None, 1)
    assert not flow.moved_meaningfully(3, 3) and not flow.moved_meaningfully(3, 4)
    assert flow.moved_meaningfully(2, 1) and flow.moved_meaningfully(6, 5)
    assert not flow.moved_meaningfully(40, 38)  # far back: two places is not news
    assert flow.moved_meaningfully(40, 32)
    assert starts("x")({"text": "xy"})
