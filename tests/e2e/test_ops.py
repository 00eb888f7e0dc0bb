"""The operator's view end to end (both bots over the Bot API emulator): an admin's /ops shows
each department's doctors, queue, waits, SLA breaches and stranded cases with the figures the
clinic's cases give, and Refresh edits it in place; a doctor who is not an admin and a
stranger are refused, and the refusals are audited."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.consultation import disposition_of
from handlers.doctor.ops import OpsCB
from locales import Translator
from storage.models import Consultation, utcnow
from tests.conftest import BACKENDS
from tests.e2e.conftest import DOCTOR_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import add_doctor, audit_actions, case_of, consult
from tests.e2e.test_intake import new_patient
from tests.e2e.test_trust import click_data

ADMIN_ID = 700000001  # the emulator numbers users from 700000001: create the admin first
EN = Translator("en")


@pytest.fixture(params=BACKENDS)
async def oclinic(
    request: pytest.FixtureRequest, tmp_path: Path, log_capture: io.StringIO
) -> AsyncIterator[Clinic]:
    """A clinic with one admin, on each backend."""
    c, schema = await start_clinic(tmp_path, request.param, log_capture, admin_ids=(ADMIN_ID,))
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


def _rows(text: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (the department's short name, or Total)."""
    return {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}


def _is_ops(m: dict[str, Any]) -> bool:
    return (m.get("text") or "").startswith("Queues and waits")


async def _backdate(clinic: Clinic, number: int, **times: timedelta) -> None:
    """Move a case's times into the past: ``requested``/``accepted`` = before now."""
    async with clinic.app.db.uow() as uow:
        case = await uow.consultations.by_number(number)
        assert case is not None
        now = utcnow()
        if "accepted" in times:
            case.accepted_at = now - times["accepted"]
        if "requested" in times:
            case.requested_at = now - times["requested"]
        await uow.commit()


async def test_an_admin_sees_the_figures_and_refreshes_them(oclinic: Clinic) -> None:
    clinic = oclinic
    admin = await clinic.person("Sam Opsworth")
    assert admin == ADMIN_ID
    await clinic.say(admin, "/start", DOCTOR_BOT)
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    await add_doctor(clinic, "Dr Cor Imaginary", departments="cardiology", on_duty=False)
    first, second = await new_patient(clinic, "en"), await new_patient(clinic, "en")
    taken = await consult(first)  # cough and cold: general practice
    waiting = await consult(second)
    assert disposition_of(await case_of(clinic, second.uid)) == "consultation"  # limit 4 h
    await gp.accept(taken)
    # Known times: the first case waited 50 minutes for the GP; the second has waited for
    # five hours (a breach of the 4-hour limit); and one case waits in neurology, where no
    # verified doctor works (stranded: routing would never put it there).
    await _backdate(clinic, taken, requested=timedelta(minutes=55), accepted=timedelta(minutes=5))
    await _backdate(clinic, waiting, requested=timedelta(hours=5, seconds=5))
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(second.uid)
        assert patient is not None
        await uow.consultations.add(
            Consultation(
                patient_id=patient.id, department="neurology", priority=3, state="waiting",
                requested_at=utcnow() - timedelta(minutes=10),
            )
        )  # fmt: skip
        await uow.commit()

    since = await clinic.seq(admin, DOCTOR_BOT)
    await clinic.client.send(admin, DOCTOR_BOT, "/ops")
    shown = await clinic.client.wait_for(admin, DOCTOR_BOT, _is_ops, since=since)
    rows = _rows(shown["text"])
    #                 Drs  Duty Wait Oldest   p50    p90    SLA  Strand
    assert rows["GP"] == ["1", "1", "1", "5h00m", "50m", "50m", "1", "0"]
    assert rows["Cardiology"] == ["1", "0", "0", "-", "-", "-", "0", "0"]
    assert rows["Neurology"] == ["0", "0", "1", "10m", "-", "-", "0", "1"]
    assert rows["Total"] == ["2", "1", "2", "5h00m", "50m", "50m", "1", "1"]
    assert "Pulmonology" not in rows  # idle departments are listed below the table
    assert "Stranded cases: 1 (Neurology)" in shown["text"]
    assert any(e["type"] == "pre" for e in shown.get("entities") or [])
    [[refresh, week]] = shown["reply_markup"]["inline_keyboard"]
    assert refresh["text"] == EN.plain("ops.refresh")
    assert week["text"] == EN.plain("ops.week.button")

    # The GP takes the five-hour case: Refresh edits the same message with the new figures.
    await gp.accept(waiting)
    since = await clinic.seq(admin, DOCTOR_BOT)
    await clinic.client.click(admin, DOCTOR_BOT, shown["message_id"], refresh["callback_data"])
    edited = await clinic.client.wait_for(
        admin, DOCTOR_BOT, lambda m: _is_ops(m) and m["message_id"] == shown["message_id"],
        since=since,
    )  # fmt: skip
    rows = _rows(edited["text"])
    assert rows["GP"] == ["1", "1", "0", "-", "50m", "5h00m", "1", "0"]
    assert rows["Total"] == ["2", "1", "1", "10m", "50m", "5h00m", "1", "1"]
    assert edited["reply_markup"]["inline_keyboard"][0][0]["text"] == EN.plain("ops.refresh")
    answers = (await clinic.client.messages(admin, DOCTOR_BOT))["callback_answers"]
    assert answers[-1].get("text") == EN.plain("ops.refreshed")
    assert clinic.app.processor.failed == 0


async def test_a_doctor_and_a_stranger_are_refused(oclinic: Clinic) -> None:
    clinic = oclinic
    admin = await clinic.person("Sam Opsworth")
    assert admin == ADMIN_ID
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    stranger = await clinic.person("Nemo Nobody")
    refusal = EN.plain("doctor.admin.not_admin")
    assert (await gp.say("/ops"))["text"] == refusal
    assert (await clinic.say(stranger, "/ops", DOCTOR_BOT))["text"] == refusal
    # A forged Refresh (no /ops message of theirs to press it on) is refused too.
    last = (await gp.history())["messages"][-1]
    answer = await click_data(
        clinic, gp.uid, DOCTOR_BOT, last["message_id"], OpsCB(action="refresh").pack()
    )
    assert answer.get("text") == refusal
    texts = await gp.texts() + await clinic.bot_texts(stranger, DOCTOR_BOT)
    assert not any(t.startswith("Queues and waits") for t in texts)
    async with clinic.app.db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(gp.uid)
        assert doctor is not None
        doctor_actor = f"doctor:{doctor.id}"
    denied = [a for a in await audit_actions(clinic) if a[1] == "doctor.decision_denied"]
    assert denied == [
        (doctor_actor, "doctor.decision_denied"),
        (f"tg:{stranger}", "doctor.decision_denied"),
        (doctor_actor, "doctor.decision_denied"),
    ]
