"""The consultation record end to end, both bots over the emulator: /history lists a closed
consultation (doctor, advice) and its button delivers the conversation as a protected FHIR
Bundle; /delete during an active consultation cancels it, tells the doctor, says what is kept
and why, and keeps the record under the case's own key."""

from __future__ import annotations

import json

from fhir.resources.R4B.bundle import Bundle

from flows.consultation import State
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, case_of, consult, starts
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

ADVICE = "Rest, warm fluids; see a doctor in person if the fever passes 39"


async def test_history_shows_the_consultation_and_exports_it(clinic: Clinic) -> None:
    doc = await add_doctor(clinic, "Dr Nell Ashby")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number, NAMES["en"].split()[0])
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, "The cough is worse at night")
    await doc.wait(starts(f"#{number} ·"), since_d)
    first = NAMES["en"].split()[0]
    await doc.say("/close", starts(doc.t("consult.doctor.close_ask", number=number, name=first)))
    since_p = await clinic.seq(p.uid)
    await doc.say(ADVICE, starts(doc.t("consult.doctor.closed", number=number)))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: ADVICE in (m.get("text") or ""), since=since_p
    )

    title = p.t("history.cases.title")
    listing = await p.say("/history", starts(title))
    text = listing["text"]
    assert f"#{number} · {p.t('dept.general')} · " in text
    assert p.t("history.case.state.closed") in text
    assert p.t("history.case.doctor", name="Dr Nell Ashby", title="Attending physician") in text
    assert p.t("history.case.advice", summary=ADVICE) in text
    assert listing.get("protect_content") is True
    # The intakes are still listed first, each opening its summary.
    assert p.t("history.title") in await clinic.bot_texts(p.uid)

    label = p.t("history.case.button", number=number)
    sent = await p.press(label, lambda m: "document" in m)
    assert sent["document"]["file_name"] == f"consultation-{number}.json"
    assert sent.get("protect_content") is True
    assert sent["caption"] == p.t("history.case.caption", number=number)
    bundle = json.loads(await clinic.client.download(sent["document"]["file_id"]))
    Bundle.model_validate(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    assert {r["resourceType"] for r in resources} == {"Communication"}
    said = [p["contentString"] for r in resources for p in r["payload"] if "contentString" in p]
    assert said == ["The cough is worse at night", ADVICE]
    case = await case_of(clinic, p.uid)
    assert resources[0]["sender"] == {"reference": f"Patient/{case.patient_id}"}
    assert resources[1]["sender"]["reference"] == f"Practitioner/{case.doctor_id}"
    assert all(r["encounter"]["identifier"]["value"] == str(number) for r in resources)


async def test_delete_with_an_active_case_tells_the_doctor_and_keeps_the_record(
    clinic: Clinic,
) -> None:
    doc = await add_doctor(clinic, "Dr Rui Mendel")
    p = await new_patient(clinic, "zh_Hans")
    number = await consult(p)
    first = NAMES["zh_Hans"].split()[0]
    await doc.accept(number, first)
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, "咳嗽晚上更厉害")
    await doc.wait(starts(f"#{number} ·"), since_d)
    case = await case_of(clinic, p.uid)

    years = {"record_years": 15, "chat_years": 3}
    kept = p.t(
        "delete.kept.what",
        cases=f"#{number}",
        record_years=years["record_years"],
        chat=p.t("delete.kept.chat", chat_years=years["chat_years"]),
    )
    ask = await p.say("/delete", has_button(p.t("delete.confirm.yes")))
    assert ask["text"] == "\n\n".join(
        [
            p.t("delete.confirm_kept", kept=kept),
            p.t("delete.confirm.cancel_cases", cases=f"#{number}"),
        ]
    )
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    done = await p.press(
        p.t("delete.confirm.yes"), starts(p.t("delete.done", kept_records="")[:8])
    )
    assert done["text"] == p.t("delete.done", kept_records=kept)
    told = await doc.wait(starts(f"#{number} ·"), since_d)
    assert told["text"] == doc.t("erase.doctor_notice", number=number, name=first)
    # The doctor can no longer write into the case.
    late = await doc.say("Are you still there?", reply_to=told["message_id"])
    assert late["text"] == doc.t("consult.doctor.case_closed", number=number)

    async with clinic.app.db.uow() as uow:
        assert await uow.patients.by_tg_user(p.uid) is None
        kept_case = await uow.consultations.get(case.id)
        assert kept_case is not None and kept_case.state == State.CANCELLED
        assert kept_case.key_owner == case.id and kept_case.record_until is not None
        [message] = await uow.consultations.messages(kept_case)
        assert await uow.consultations.message_text(kept_case, message) == "咳嗽晚上更厉害"
