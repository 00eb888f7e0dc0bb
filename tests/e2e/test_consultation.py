"""Consultations end to end: patients do a real intake, verified doctors (inserted directly)
take cases from their department's queue, and messages go both ways through both bots.

Several patients and doctors at once: accept races, expiry through the scheduler, transfer,
terminate, cancel, messages after the end, forged buttons, unverified people, red flags in a
live case, a suspended doctor's cases going back to the queue, the cn record and follow-up
rules, and a seeded random interleaving in which every message must reach exactly the other
party of its own case.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select

from flows import doctors as doctors_flow
from flows.consultation import State
from locales import Translator
from storage.models import AuditRecord, CaseMessage, Consultation, Doctor, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_intake import Patient, has_button, new_patient
from tests.e2e.test_onboarding import NAMES

Pred = Any


def starts(prefix: str) -> Pred:
    """wait_for predicate: a bot message whose text starts with ``prefix``."""
    return lambda m: (m.get("text") or "").startswith(prefix)


def contains(token: str) -> Pred:
    """wait_for predicate: a bot message whose text contains ``token``."""
    return lambda m: token in (m.get("text") or "")


def is_text(text: str) -> Pred:
    return lambda m: (m.get("text") or "") == text


class Doc:
    """A simulated verified doctor talking to the doctor bot."""

    def __init__(self, clinic: Clinic, uid: int, name: str, locale: str) -> None:
        self.clinic, self.uid, self.name, self.tr = clinic, uid, name, Translator(locale)

    def t(self, msgid: str, **params: Any) -> str:
        return self.tr.plain(msgid, **params)

    async def say(self, text: str, then: Pred = None, reply_to: int | None = None) -> Any:
        since = await self.clinic.seq(self.uid, DOCTOR_BOT)
        await self.clinic.client.send(self.uid, DOCTOR_BOT, text, reply_to_message_id=reply_to)
        return await self.clinic.client.wait_for(self.uid, DOCTOR_BOT, then, since=since)

    async def press(self, label: str, then: Pred = None) -> Any:
        since = await self.clinic.seq(self.uid, DOCTOR_BOT)
        await self.clinic.client.click_button(self.uid, DOCTOR_BOT, label)
        return await self.clinic.client.wait_for(self.uid, DOCTOR_BOT, then, since=since)

    async def wait(self, then: Pred, since: int = 0) -> Any:
        return await self.clinic.client.wait_for(self.uid, DOCTOR_BOT, then, since=since)

    async def history(self) -> dict[str, Any]:
        return await self.clinic.client.messages(self.uid, DOCTOR_BOT)

    async def texts(self) -> list[str]:
        return await self.clinic.bot_texts(self.uid, DOCTOR_BOT)

    async def click_on_case(
        self, number: int, label: str, *, force_data: str | None = None
    ) -> int:
        """Press ``label`` on the queue message of case #number; returns the seq before."""
        since = await self.clinic.seq(self.uid, DOCTOR_BOT)
        for msg in reversed((await self.history())["messages"]):
            if msg["from"] != "bot" or not (msg.get("text") or "").startswith(f"#{number} ·"):
                continue
            rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
            for button in (b for row in rows for b in row):
                if button["text"] == label:
                    await self.clinic.client.click(
                        self.uid, DOCTOR_BOT, msg["message_id"], button["callback_data"]
                    )
                    return since
        raise LookupError(f"no queue message for #{number} with {label!r}")

    async def accept(self, number: int, name: str = "Alice") -> None:
        """/queue, then Accept on case #number; waits for the confirmation."""
        await self.say("/queue", starts(f"#{number} ·"))
        since = await self.click_on_case(number, self.t("consult.doctor.accept"))
        done = {
            self.t(msgid, number=number, name=name)
            for msgid in ("consult.doctor.accepted", "consult.doctor.accepted_cn")
        }
        await self.wait(lambda m: m.get("text") in done, since)

    async def message_id_of(self, prefix: str) -> int:
        for msg in reversed((await self.history())["messages"]):
            if msg["from"] == "bot" and (msg.get("text") or "").startswith(prefix):
                return int(msg["message_id"])
        raise LookupError(prefix)

    async def callback_answers(self) -> list[str]:
        return [a.get("text") or "" for a in (await self.history())["callback_answers"]]


async def add_doctor(
    clinic: Clinic,
    name: str,
    departments: str = "general,cardiology",
    locale: str = "en",
    **fields: Any,
) -> Doc:
    """A verified doctor inserted directly (the application flow is another part's)."""
    uid = await clinic.person(name.split()[-1], {"en": "en", "ru": "ru"}.get(locale, "zh-hans"))
    async with clinic.app.db.uow() as uow:
        values: dict[str, Any] = {
            "tg_user_id": uid,
            "locale": locale,
            "status": "verified",
            "verified_until": utcnow() + timedelta(days=300),
            "departments": departments,
        }
        values.update(fields)
        doctor = await uow.doctors.add(Doctor(**values))
        await uow.doctors.set_field(doctor, "name", name)
        await uow.doctors.set_field(doctor, "title", "Attending physician")
        await uow.doctors.set_field(doctor, "hospital", "Riverside Clinic")
        await uow.doctors.set_field(doctor, "phone", "+15550199001")
        await uow.commit()
    # A doctor has talked to the doctor bot before (a bot cannot write first).
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.start(uid, DOCTOR_BOT)
    await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    return Doc(clinic, uid, name, locale)


async def case_of(clinic: Clinic, uid: int) -> Consultation:
    """The newest case of the patient with this Telegram id."""
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        [case, *_] = await uow.consultations.for_patient(patient.id)
        uow.session.expunge_all()
        return case


async def consult(p: Patient, category: str = "cough_cold", urgent: bool = False) -> int:
    """Intake to a consultation; waits for the case number message; returns the number."""
    if urgent:
        await p.to_red_flags(category, "today", 8)
    else:
        await p.to_red_flags(category, "days_1_3", 5)
    await p.after_red_flags(category)
    since = await p.clinic.seq(p.uid)
    await p.confirm()
    case = await case_of(p.clinic, p.uid)
    department = p.t(f"dept.{case.department}")
    opened = p.t(
        "consult.opened", number=case.number, department=department, wait="",
        emergency_number="112",
    )  # fmt: skip
    first_line = opened.split("\n")[0]
    await p.clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: (m.get("text") or "").startswith(first_line), since=since
    )
    return case.number


async def card(clinic: Clinic, tr: Translator, doc: Doc, department: str = "general") -> str:
    return tr.plain(
        "consult.doctor_card",
        name=doc.name,
        title="Attending physician",
        department=tr.plain(f"dept.{department}"),
        hospital="Riverside Clinic",
    )


async def audit_actions(clinic: Clinic) -> list[tuple[str, str]]:
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        return [(r.actor, r.action) for r in rows]


async def test_consultation_from_intake_to_advice(clinic: Clinic) -> None:
    """Intake -> queue -> accept -> text both ways -> close with advice; after the close the
    patient and the doctor are told it is over. Runs on SQLite and PostgreSQL."""
    doc = await add_doctor(clinic, "Dr Mira Holt")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    # The department's doctor is told: tag and level only.
    notice = doc.t(
        "consult.doctor.new_case",
        number=number,
        department=doc.t("dept.general"),
        level=doc.t("disposition.consultation"),
    )
    await doc.wait(is_text(notice))
    # The queue shows the intake summary with the first name, never the phone.
    shown = await doc.say("/queue", starts(f"#{number} ·"))
    assert shown["text"].startswith(f"#{number} · {NAMES['en'].split()[0]} ·")
    assert doc.t("intake.category.cough_cold") in shown["text"]
    assert "5550100777" not in shown["text"]
    assert shown.get("protect_content") is True
    since_p = await clinic.seq(p.uid)
    since = await doc.click_on_case(number, doc.t("consult.doctor.accept"))
    await doc.wait(starts(f"#{number} ·"), since)
    accepted = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, starts(f"#{number}"), since=since_p
    )
    assert accepted["text"] == p.t(
        "consult.accepted", number=number, card=await card(clinic, p.tr, doc)
    )
    assert "5550199001" not in accepted["text"]
    # Patient -> doctor.
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, "The cough is worse at night")
    relayed = await doc.wait(starts(f"#{number} ·"), since_d)
    first = NAMES["en"].split()[0]
    assert relayed["text"] == f"#{number} · {first}: The cough is worse at night"
    # Emoji sequences (a joiner, tag characters) arrive whole.
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, f"all of us {family} are ill")
    emoji = await doc.wait(starts(f"#{number}"), since_doc)
    assert f"all of us {family} are ill" in emoji["text"]
    # Doctor -> patient, replying to the relayed message.
    since_p = await clinic.seq(p.uid)
    await clinic.client.send(
        doc.uid, DOCTOR_BOT, "Drink warm fluids", reply_to_message_id=relayed["message_id"]
    )
    got = await clinic.client.wait_for(p.uid, PATIENT_BOT, starts("Dr Mira Holt:"), since=since_p)
    assert got["text"] == "Dr Mira Holt: Drink warm fluids"  # the card came with the acceptance
    # Close with advice.
    await doc.say("/close", starts(doc.t("consult.doctor.close_ask", number=number, name=first)))
    since_p = await clinic.seq(p.uid)
    await doc.say(
        "Rest and fluids; see a doctor if fever",
        starts(doc.t("consult.doctor.closed", number=number)),
    )
    advice = await clinic.client.wait_for(p.uid, PATIENT_BOT, starts(f"#{number}"), since=since_p)
    assert "Rest and fluids; see a doctor if fever" in advice["text"]
    case = await case_of(clinic, p.uid)
    assert case.state == State.CLOSED and case.summary_enc is not None
    assert b"Rest and fluids" not in case.summary_enc
    # The patient writes after the close; the doctor replies to a message of the closed case.
    after = await p.say(
        "Thanks, one more thing", starts(p.t("consult.closed_case", number=number)[:10])
    )
    assert after["text"] == p.t("consult.closed_case", number=number)
    late = await doc.say("Also rest", reply_to=relayed["message_id"])
    assert late["text"] == doc.t("consult.doctor.case_closed", number=number)
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(CaseMessage)))
        assert {r.sender for r in rows} == {"patient", "doctor"}
        assert all(b"cough" not in (r.body_enc or b"") for r in rows)
    actions = await audit_actions(clinic)
    assert ("system", "consultation.submit") in actions
    assert any(a == "consultation.accept" and actor.startswith("doctor:") for actor, a in actions)
    assert any(a == "consultation.close" and actor.startswith("doctor:") for actor, a in actions)


async def test_two_doctors_race_for_one_case(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    a = await add_doctor(clinic, "Dr Ada Brook")
    b = await add_doctor(clinic, "Dr Ben Carr")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await a.say("/queue", starts(f"#{number} ·"))
    await b.say("/queue", starts(f"#{number} ·"))
    since_a = await a.click_on_case(number, a.t("consult.doctor.accept"))
    await b.click_on_case(number, b.t("consult.doctor.accept"))
    await a.wait(starts(f"#{number} ·"), since_a)
    await wait_answers(b, 1)
    assert b.t("consult.doctor.taken") in await b.callback_answers()
    assert not any(t.startswith(f"#{number} · ") and "is yours" in t for t in await b.texts())
    case = await case_of(clinic, p.uid)
    assert case.state == State.ACTIVE
    async with clinic.app.db.uow() as uow:
        winner = await uow.doctors.get(case.doctor_id or "")
        assert winner is not None and winner.tg_user_id == a.uid


async def test_expiry_keep_waiting_then_cancel(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    number = await consult(p)
    now = utcnow()
    while await clinic.app.sweeper.sweep_once(now + timedelta(hours=23)):
        pass  # the place is looked at every 15 minutes; nothing moved, nothing is said
    assert (await case_of(clinic, p.uid)).state == State.WAITING
    since = await clinic.seq(p.uid)
    while await clinic.app.sweeper.sweep_once(now + timedelta(hours=25)):
        pass
    expired = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("consult.button.keep_waiting")), since=since
    )
    assert expired["text"] == p.t("consult.expired", number=number, emergency_number="112")
    assert (await case_of(clinic, p.uid)).state == State.EXPIRED
    await p.press(
        p.t("consult.button.keep_waiting"), is_text(p.t("consult.kept_waiting", number=number))
    )
    assert (await case_of(clinic, p.uid)).state == State.WAITING
    since = await clinic.seq(p.uid)
    while await clinic.app.sweeper.sweep_once(now + timedelta(hours=25 + 25)):
        pass
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("consult.button.cancel")), since=since
    )
    await p.press(
        p.t("consult.button.cancel"), starts(p.t("consult.cancelled", number=number)[:12])
    )
    assert (await case_of(clinic, p.uid)).state == State.CANCELLED


async def test_transfer_terminate_and_cancel(sqlite_clinic: Clinic) -> None:
    """A general doctor transfers a case to cardiology, the cardiologist terminates it; a
    second patient cancels an active case and their doctor is told."""
    clinic = sqlite_clinic
    gp = await add_doctor(clinic, "Dr Gil Page", departments="general")
    cardio = await add_doctor(clinic, "Dr Cora Vance", departments="cardiology", locale="ru")
    p1 = await new_patient(clinic, "en")
    p2 = await new_patient(clinic, "ru")
    n1 = await consult(p1)
    n2 = await consult(p2)
    await gp.accept(n1)
    await gp.say("/transfer", has_button(gp.t("dept.cardiology")))
    since_c = await clinic.seq(cardio.uid, DOCTOR_BOT)
    since_p = await clinic.seq(p1.uid)
    await gp.press(
        gp.t("dept.cardiology"),
        is_text(gp.t("consult.doctor.transferred", number=n1, department=gp.t("dept.cardiology"))),
    )
    await clinic.client.wait_for(
        p1.uid, PATIENT_BOT,
        is_text(p1.t("consult.transferred", number=n1, department=p1.t("dept.cardiology"))),
        since=since_p,
    )  # fmt: skip
    await cardio.wait(
        starts(cardio.t("consult.doctor.new_case", number=n1, department="x", level="y")[:12]),
        since_c,
    )
    case = await case_of(clinic, p1.uid)
    assert (case.state, case.department, case.doctor_id) == (State.WAITING, "cardiology", None)
    # The general doctor no longer reaches this patient.
    late = await gp.say("Are you there?")
    assert late["text"] == gp.t("consult.doctor.choose")
    await cardio.accept(n1)
    since_p = await clinic.seq(p1.uid)
    await cardio.say("/terminate", starts(cardio.t("consult.doctor.terminated", number=n1)[:10]))
    ended = await clinic.client.wait_for(p1.uid, PATIENT_BOT, starts(f"#{n1}"), since=since_p)
    assert p1.t("dept.cardiology") in ended["text"]
    assert (await case_of(clinic, p1.uid)).state == State.TERMINATED
    # Patient 2 cancels an active case.
    await gp.accept(n2, NAMES["ru"].split()[0])
    since_g = await clinic.seq(gp.uid, DOCTOR_BOT)
    await p2.say("/cancel", has_button(p2.t("consult.cancel.yes")))
    await p2.press(p2.t("consult.cancel.yes"), starts(p2.t("consult.cancelled", number=n2)[:10]))
    told = await gp.wait(starts(f"#{n2} ·"), since_g)
    assert told["text"] == gp.t("consult.doctor.cancelled", number=n2, name=NAMES["ru"].split()[0])
    assert (await case_of(clinic, p2.uid)).state == State.CANCELLED


async def test_forged_buttons_and_unverified_people(sqlite_clinic: Clinic) -> None:
    """A forged accept for another department's case and a late accept of a taken case are
    refused; people who are not verified doctors get no cases (refusals audited)."""
    clinic = sqlite_clinic
    gp = await add_doctor(clinic, "Dr Gil Page", departments="general")
    gp2 = await add_doctor(clinic, "Dr Hal Moss", departments="general")
    cardio = await add_doctor(clinic, "Dr Cora Vance", departments="cardiology")
    pending = await add_doctor(clinic, "Dr Nia Lowe", status="pending")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    shown = await gp2.say("/queue", starts(f"#{number} ·"))
    data = next(
        b["callback_data"]
        for row in shown["reply_markup"]["inline_keyboard"]
        for b in row
        if b["text"] == gp2.t("consult.doctor.accept")
    )
    # A cardiologist forges the accept of a general case: refused, nothing changes.
    await cardio.say("/queue", is_text(cardio.t("consult.doctor.queue_empty")))
    qmid = await cardio.message_id_of(cardio.t("consult.doctor.queue_empty"))
    await clinic.client.click(cardio.uid, DOCTOR_BOT, qmid, data, force=True)
    await wait_answers(cardio, 1)
    assert (await case_of(clinic, p.uid)).state == State.WAITING
    await gp.accept(number)
    # The second general doctor presses Accept on the taken case: "already taken".
    await gp2.click_on_case(number, gp2.t("consult.doctor.accept"))
    await wait_answers(gp2, 1)
    assert gp2.t("consult.doctor.taken") in await gp2.callback_answers()
    case = await case_of(clinic, p.uid)
    async with clinic.app.db.uow() as uow:
        winner = await uow.doctors.get(case.doctor_id or "")
        assert winner is not None and winner.tg_user_id == gp.uid
    # Unverified people: refused and audited.
    stranger_uid = await clinic.person("Stranger", "en")
    for who in (pending.uid, stranger_uid):
        for command in ("/queue", "/cases", "/close"):
            since = await clinic.seq(who, DOCTOR_BOT)
            await clinic.client.send(who, DOCTOR_BOT, command)
            await clinic.client.wait_for(
                who, DOCTOR_BOT, is_text(pending.t("consult.doctor.not_verified")), since=since
            )
    actions = await audit_actions(clinic)
    refused = [actor for actor, a in actions if a == "consultation.refused"]
    assert len(refused) == 6
    assert f"tg:{stranger_uid}" in refused
    assert any(a == "consultation.accept_refused" for _, a in actions)


async def wait_answers(doc: Doc, n: int) -> None:
    for _ in range(200):
        if len(await doc.callback_answers()) >= n:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("no callback answer")


async def test_red_flag_in_a_live_case_alerts_the_doctor(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    # Off duty: no new-case notices, but urgent alerts about their own cases still come.
    doc = await add_doctor(clinic, "Dr Mira Holt", on_duty=False, locale="zh_Hans")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, "I have crushing chest pain now")
    alert = await doc.wait(starts(f"#{number} ·"), since)
    first = NAMES["en"].split()[0]
    assert alert["text"] == doc.t(
        "consult.doctor.emergency",
        number=number,
        name=first,
        what=doc.t("redflag.chest_pain"),
        emergency_number="112",
        text="I have crushing chest pain now",
    )
    notice = doc.t(
        "consult.doctor.new_case",
        number=number,
        department=doc.t("dept.general"),
        level=doc.t("disposition.consultation"),
    )
    assert notice not in await doc.texts()  # off duty: no new-case notice


async def test_suspension_returns_cases_to_the_queue(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    a = await add_doctor(clinic, "Dr Ada Brook", departments="general")
    b = await add_doctor(clinic, "Dr Ben Carr", departments="general")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await a.accept(number)
    since_p = await clinic.seq(p.uid)
    since_b = await clinic.seq(b.uid, DOCTOR_BOT)
    async with clinic.app.db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(a.uid)
        assert doctor is not None
        await doctors_flow.suspend(uow, doctor.id, "admin:test", "Licence under review")
        await uow.commit()
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT,
        is_text(p.t("consult.requeued", number=number, department=p.t("dept.general"))),
        since=since_p,
    )  # fmt: skip
    await b.wait(
        starts(b.t("consult.doctor.new_case", number=number, department="x", level="y")[:10]),
        since_b,
    )
    assert (await case_of(clinic, p.uid)).state == State.WAITING
    refused = await a.say("/queue")
    assert refused["text"] == a.t("consult.doctor.not_verified")
    await b.accept(number)


async def test_random_interleaving_reaches_only_the_right_party(sqlite_clinic: Clinic) -> None:
    """6 patients x 3 doctors, messages both ways in a seeded random order, doctors sometimes
    replying to a message and sometimes choosing the case first: every message reaches exactly
    the other party of its own case."""
    clinic = sqlite_clinic
    rng = random.Random(20260302)
    doctors = [
        await add_doctor(clinic, f"Dr {n}", departments="general")
        for n in ("Ann Ash", "Bo Birch", "Cy Cedar")
    ]
    patients = [await new_patient(clinic, "en") for _ in range(6)]
    numbers = [await consult(p) for p in patients]
    owner: dict[int, Doc] = {}
    for i, number in enumerate(numbers):
        doc = doctors[i % 3]
        await doc.accept(number)
        owner[number] = doc
    sent: list[tuple[str, int, str]] = []  # (direction, case number, token)
    for k in range(60):
        i = rng.randrange(6)
        number, p = numbers[i], patients[i]
        token = f"tok{k:03d}x{number}"
        if rng.random() < 0.5:
            since = await clinic.seq(owner[number].uid, DOCTOR_BOT)
            await clinic.client.send(p.uid, PATIENT_BOT, f"patient says {token}")
            await owner[number].wait(contains(token), since)
            sent.append(("p2d", number, token))
            continue
        doc = owner[number]
        since_p = await clinic.seq(p.uid)
        if rng.random() < 0.5:
            # Reply to one of this case's messages (or the acceptance), whatever came last.
            mid = await doc.message_id_of(f"#{number} ·")
            await clinic.client.send(
                doc.uid, DOCTOR_BOT, f"doctor says {token}", reply_to_message_id=mid
            )
        else:
            await doc.say("/cases", has_button(f"#{number} · {NAMES['en'].split()[0]}"))
            await doc.press(
                f"#{number} · {NAMES['en'].split()[0]}",
                starts(doc.t("consult.doctor.selected", number=number, name="x")[:10]),
            )
            await clinic.client.send(doc.uid, DOCTOR_BOT, f"doctor says {token}")
        await clinic.client.wait_for(p.uid, PATIENT_BOT, contains(token), since=since_p)
        sent.append(("d2p", number, token))
    await clinic.settled()  # a message gone astray would have arrived by now
    for i, p in enumerate(patients):
        texts = "\n".join(await clinic.bot_texts(p.uid))
        for direction, number, token in sent:
            expected = direction == "d2p" and number == numbers[i]
            assert (token in texts) == expected, (i, number, token)
    for doc in doctors:
        texts = "\n".join(await doc.texts())
        for direction, number, token in sent:
            expected = direction == "p2d" and owner[number] is doc
            assert (token in texts) == expected, (doc.name, number, token)
        for text in await doc.texts():
            if "patient says" in text:
                number = int(text[1:].split(" ", 1)[0])
                assert f"x{number}" in text  # the tag names the token's own case


async def test_cn_record_and_follow_up_visit(tmp_path: Any, log_capture: Any) -> None:
    """cn: the record must be a photo or document; advice reaches the patient only after
    the doctor accepts the case as a follow-up visit."""
    from bot.settings import Jurisdiction
    from tests.e2e.conftest import start_clinic, stop_clinic
    from tests.e2e.test_onboarding import onboard

    clinic, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, jurisdiction=Jurisdiction.CN
    )
    try:
        doc = await add_doctor(clinic, "Dr Lin Qiao", locale="zh_Hans")
        uid = await clinic.person("Tester", "zh-hans")
        await onboard(clinic, uid, "zh_Hans", emergency="120")
        p = Patient(clinic, uid, "zh_Hans")
        await p.to_red_flags("cough_cold", "days_1_3", 5)
        await p.after_red_flags("cough_cold")
        await p.confirm()
        since = await clinic.seq(uid)
        await p.press(p.t("intake.diagnosis.yes"), lambda m: True)
        case = await case_of(clinic, uid)
        number = case.number
        assert case.state == State.AWAITING_RECORD
        await clinic.client.wait_for(
            uid, PATIENT_BOT, is_text(p.t("consult.opened.record", number=number)), since=since
        )
        await p.say("我有病历", is_text(p.t("consult.record.need_file", number=number)))
        assert (await case_of(clinic, uid)).state == State.AWAITING_RECORD
        since = await clinic.seq(uid)
        await clinic.client.send_photo(uid, PATIENT_BOT, b"\x89PNG record", "record.png")
        await clinic.client.wait_for(
            uid,
            PATIENT_BOT,
            starts(p.t("consult.record.received", number=number, department="x")[:8]),
            since=since,
        )
        assert (await case_of(clinic, uid)).state == State.WAITING
        since_doc = await clinic.seq(doc.uid)
        await doc.accept(number, NAMES["zh_Hans"])
        # the accepting doctor gets the patient's record itself, tagged, from the doctor bot
        record = await clinic.client.wait_for(
            doc.uid, DOCTOR_BOT, lambda m: bool(m.get("photo")), since=since_doc
        )
        assert record["caption"].startswith(f"#{number}")
        assert record["protect_content"] is True
        refused = await doc.say("Take this twice a day")
        assert refused["text"] == doc.t("consult.doctor.followup_first", number=number)
        # Beside "accept as a follow-up": a referral to an in-person visit, for a first visit.
        msgs = (await clinic.client.messages(doc.uid, DOCTOR_BOT))["messages"]
        labels = [
            [
                b["text"]
                for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            for m in msgs
            if m["from"] == "bot"
        ]
        assert [doc.t("consult.doctor.followup"), doc.t("ref.wiz.offer_button")] in labels
        await doc.press(
            doc.t("consult.doctor.followup"),
            is_text(doc.t("consult.doctor.followup_confirmed", number=number)),
        )
        since = await clinic.seq(uid)
        await clinic.client.send(doc.uid, DOCTOR_BOT, "Keep the same plan")
        got = await clinic.client.wait_for(
            uid, PATIENT_BOT, contains("Keep the same plan"), since=since
        )
        assert got["text"].endswith("Keep the same plan")
        assert "Take this twice a day" not in "\n".join(await clinic.bot_texts(uid))
        assert (await case_of(clinic, uid)).followup_visit is True
    finally:
        await stop_clinic(clinic, schema)


async def test_duty_and_working_hours_decide_who_hears_of_new_cases(
    sqlite_clinic: Clinic,
) -> None:
    """Off duty or out of hours: no new-case notice; on duty within hours: one."""
    from datetime import datetime

    clinic = sqlite_clinic
    off = await add_doctor(clinic, "Dr Olga Frost", departments="general", locale="ru")
    late = await add_doctor(clinic, "Dr Lou Night", departments="general")
    on = await add_doctor(clinic, "Dr Una Day", departments="general")
    await off.say("/duty", is_text(off.t("consult.doctor.duty_usage")))
    await off.say("/duty off", is_text(off.t("consult.doctor.duty_off")))
    hour = datetime.now(UTC).hour
    away = f"{(hour + 3) % 24:02d}:00-{(hour + 5) % 24:02d}:00"
    here = f"{(hour + 23) % 24:02d}:00-{(hour + 2) % 24:02d}:00"
    await late.say("/hours 9-18", is_text(late.t("consult.doctor.hours_usage", timezone="UTC")))
    await late.say(
        f"/hours {away}", is_text(late.t("consult.doctor.hours_set", hours=away, timezone="UTC"))
    )
    await on.say(
        f"/hours {here}", is_text(on.t("consult.doctor.hours_set", hours=here, timezone="UTC"))
    )
    p = await new_patient(clinic, "en")
    number = await consult(p)
    notice = on.t(
        "consult.doctor.new_case",
        number=number,
        department=on.t("dept.general"),
        level=on.t("disposition.consultation"),
    )
    await on.wait(is_text(notice))
    await clinic.settled()  # a notice to the others would have arrived by now
    for doc in (off, late):
        assert not any(t.startswith(f"#{number}") or f"#{number} " in t for t in await doc.texts())
    await off.say("/duty on", is_text(off.t("consult.doctor.duty_on")))


async def test_files_go_both_ways_in_a_live_case(sqlite_clinic: Clinic) -> None:
    """A patient's photo reaches the doctor bot and a doctor's document the patient bot,
    each with the case header; the case keeps an encrypted copy."""
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, "Dr Mira Holt")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send_photo(p.uid, PATIENT_BOT, b"\x89PNG rash photo", "rash.png")
    got = await doc.wait(lambda m: "photo" in m, since)
    assert (got.get("caption") or "").startswith(f"#{number} · Alice")
    assert await clinic.client.download(got["photo"]["file_id"]) == b"\x89PNG rash photo"
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(doc.uid, DOCTOR_BOT, b"%PDF plan", "plan.pdf")
    sent = await clinic.client.wait_for(p.uid, PATIENT_BOT, lambda m: "document" in m, since=since)
    assert sent.get("caption") == "Dr Mira Holt"  # a file without a caption: the header alone
    assert await clinic.client.download(sent["document"]["file_id"]) == b"%PDF plan"
    for _ in range(100):
        async with clinic.app.db.uow() as uow:
            rows = list(await uow.session.scalars(select(CaseMessage)))
            uow.session.expunge_all()
            if all(r.file_enc for r in rows if r.kind != "text"):
                break
        await asyncio.sleep(0.05)
    kinds = sorted(r.kind for r in rows if r.kind != "text")
    assert kinds == ["document", "photo"]
    assert all(r.file_enc and b"rash photo" not in r.file_enc for r in rows if r.kind != "text")
