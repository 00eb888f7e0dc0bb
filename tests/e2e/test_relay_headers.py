"""What the walkthrough found in the shape of messages, end to end over the emulator.

Relayed messages carry a short header — ``#N · first name:`` to the doctor, ``Dr <name>:``
to the patient — and the doctor's full card reaches the patient once per case, with the
acceptance; it is not repeated with each reply, with a file, nor at the close. The doctor's
/queue card says "the patient", never the patient's own "Me". The end of an intake is one
message: the case's notice when it became a case, the advice with the check-back buttons
after self-care.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import Doc, add_doctor, card, case_of, consult, starts
from tests.e2e.test_intake import Patient, has_button, has_text, new_patient
from tests.e2e.test_onboarding import NAMES

DOCTOR_NAME = "Dr Mira Holt"


async def _since_each(clinic: Clinic, p: Patient, doc: Doc) -> tuple[int, int]:
    return await clinic.seq(p.uid), await clinic.seq(doc.uid, DOCTOR_BOT)


async def _bot_messages(clinic: Clinic, uid: int, bot: str, since: int) -> list[dict[str, Any]]:
    """The bot's messages in this chat after ``since`` (a seq), in order."""
    events = (await clinic.client.messages(uid, bot, since=since))["messages"]
    return [m for m in events if m["from"] == "bot"]


async def _settled(p: Patient) -> None:
    """Wait until everything queued for the patient so far has been delivered: /help is
    answered after it (one chat's messages leave the outbox in order)."""
    await p.say("/help", has_text(p.t("help.patient", emergency_number="112")))


async def test_short_headers_both_ways_and_the_card_once(sqlite_clinic: Clinic) -> None:
    """Accept -> the card once; three messages each way (and a photo each way) carry only
    the short header; the close names the doctor without the card."""
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, DOCTOR_NAME)
    p = await new_patient(clinic, "en")
    first = NAMES["en"].split()[0]
    number = await consult(p)
    # The doctor's card of the case speaks of "the patient", never "Me".
    queued = await doc.say("/queue", starts(f"#{number} ·"))
    assert (
        f"{doc.t('intake.summary.subject')} {doc.t('intake.summary.who_patient')}"
        in (queued["text"])
    )
    assert (
        f"{doc.t('intake.summary.subject')} {doc.t('intake.subject.self')}" not in (queued["text"])
    )
    since_p = await clinic.seq(p.uid)
    since_d = await doc.click_on_case(number, doc.t("consult.doctor.accept"))
    await doc.wait(starts(f"#{number} ·"), since_d)
    full_card = await card(clinic, p.tr, doc)
    accepted = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, starts(f"#{number}"), since=since_p
    )
    assert accepted["text"] == p.t("consult.accepted", number=number, card=full_card)

    header = f"Dr {DOCTOR_NAME.removeprefix('Dr ')}"
    for i in range(1, 4):
        text = f"Patient message {i}: the cough is worse at night"
        since_p, since_d = await _since_each(clinic, p, doc)
        await clinic.client.send(p.uid, PATIENT_BOT, text)
        got = await doc.wait(starts(f"#{number} ·"), since_d)
        assert got["text"] == f"#{number} · {first}: {text}"
        assert got.get("protect_content") is True
        reply = f"Doctor reply {i}: drink warm fluids"
        await clinic.client.send(doc.uid, DOCTOR_BOT, reply, reply_to_message_id=got["message_id"])
        relayed = await clinic.client.wait_for(
            p.uid, PATIENT_BOT, starts(f"{header}:"), since=since_p
        )
        assert relayed["text"] == f"{header}: {reply}"
        assert relayed.get("protect_content") is True

    # Files: the caption gets the same short header; without a caption, the header alone.
    since_p, since_d = await _since_each(clinic, p, doc)
    await clinic.client.send_photo(p.uid, PATIENT_BOT, b"\x89PNG rash", "rash.png", caption="Rash")
    photo = await doc.wait(lambda m: bool(m.get("photo")), since_d)
    assert photo["caption"] == f"#{number} · {first}: Rash"
    await clinic.client.send_photo(doc.uid, DOCTOR_BOT, b"\x89PNG chart", "chart.png")
    back = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: bool(m.get("photo")), since=since_p
    )
    assert back["caption"] == header

    # The close names the doctor; the card was said once, at the acceptance.
    await doc.say("/close", starts(doc.t("consult.doctor.close_ask", number=number, name=first)))
    since_p = await clinic.seq(p.uid)
    await doc.say("Rest and fluids", starts(doc.t("consult.doctor.closed", number=number)))
    advice = await clinic.client.wait_for(p.uid, PATIENT_BOT, starts(f"#{number}"), since=since_p)
    assert advice["text"].startswith(f"#{number} · {header}\n")
    await _settled(p)
    texts = await clinic.bot_texts(p.uid)
    assert sum(full_card in t for t in texts) == 1
    assert sum("Attending physician" in t or "Riverside Clinic" in t for t in texts) == 1
    assert sum(t.startswith(f"{header}: Doctor reply") for t in texts) == 3
    doctor_texts = await doc.texts()
    assert sum(t.startswith(f"#{number} · {first}: Patient message") for t in doctor_texts) == 3


async def test_headers_in_the_patients_and_the_doctors_languages(sqlite_clinic: Clinic) -> None:
    """A Chinese-speaking patient sees "<name>医生：", a Russian-speaking doctor the tag and
    first name; a name typed with a title does not get a second one."""
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, "Доктор Вера Тестова", locale="ru")
    p = await new_patient(clinic, "zh_Hans")
    number = await consult(p)
    await doc.accept(number, NAMES["zh_Hans"].split()[0])
    since_p, since_d = await _since_each(clinic, p, doc)
    await clinic.client.send(p.uid, PATIENT_BOT, "晚上咳得更厉害")
    got = await doc.wait(starts(f"#{number} ·"), since_d)
    assert got["text"] == f"#{number} · {NAMES['zh_Hans'].split()[0]}: 晚上咳得更厉害"
    await clinic.client.send(
        doc.uid, DOCTOR_BOT, "多喝温水", reply_to_message_id=got["message_id"]
    )
    relayed = await clinic.client.wait_for(p.uid, PATIENT_BOT, starts("Вера"), since=since_p)
    assert relayed["text"] == "Вера Тестова医生：多喝温水"


async def test_the_end_of_an_intake_is_one_message(sqlite_clinic: Clinic) -> None:
    """A routine case: the case's notice (number, queue, wait) is the only message after
    "Yes, that is right". Self-care: the advice and the check-back question are one message
    with the check-back buttons."""
    clinic = sqlite_clinic
    await add_doctor(clinic, DOCTOR_NAME)
    p = await new_patient(clinic, "en")
    await p.to_red_flags("cough_cold", "days_1_3", 5)
    await p.after_red_flags("cough_cold")
    since = await clinic.seq(p.uid)
    notice = await p.confirm()
    case = await case_of(clinic, p.uid)
    assert notice["text"].startswith(
        p.t("consult.opened", number=case.number, department=p.t("dept.general"), wait="\0",
            emergency_number="112").split("\0")[0]
    )  # fmt: skip
    await _settled(p)
    after = [m["text"] for m in await _bot_messages(clinic, p.uid, PATIENT_BOT, since)]
    assert after[:-1] == [notice["text"]]

    q = await new_patient(clinic, "en")
    await q.to_red_flags("cough_cold", "days_1_3", 2)
    await q.after_red_flags("cough_cold")
    since = await clinic.seq(q.uid)
    result = await q.confirm()
    assert result["text"] == (
        q.t("intake.result.self_care", advice=q.tr("selfcare.cough_cold"), emergency_number="112")
        + "\n\n"
        + q.t("checkback.offer")
    )
    assert has_button(q.t("checkback.offer.tomorrow"))(result)
    await _settled(q)
    after = [m["text"] for m in await _bot_messages(clinic, q.uid, PATIENT_BOT, since)]
    assert after[:-1] == [result["text"]]
