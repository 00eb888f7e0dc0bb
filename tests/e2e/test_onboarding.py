"""Patients onboard, decline, edit, export and delete — real bots over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from flows.onboarding import CONSENT_VERSION, SUGGESTED_ZONES
from flows.zones import label
from locales import Translator
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic

LANG_BUTTON = {"en": "English", "zh_Hans": "简体中文", "ru": "Русский"}
NAMES = {"en": "Alice Testpatient", "zh_Hans": "王测试", "ru": "Алиса Тестова"}


async def onboard(
    clinic: Clinic,
    uid: int,
    locale: str,
    *,
    phone: str = "+15550100777",
    emergency: str = "112",
    sex: str = "female",
) -> None:
    """Complete onboarding with buttons and typed answers, checking each question."""
    await to_timezone_step(clinic, uid, locale, phone=phone, emergency=emergency, sex=sex)
    done = await clinic.say(uid, "+3")
    assert done["text"] == Translator(locale).plain("onboarding.done", name=NAMES[locale])


async def to_timezone_step(
    clinic: Clinic,
    uid: int,
    locale: str,
    *,
    phone: str = "+15550100777",
    emergency: str = "112",
    sex: str = "female",
) -> dict[str, Any]:
    """Onboarding up to the time-zone question; returns that question's message."""
    tr = Translator(locale)
    first = await clinic.say(uid, "/start")
    assert first["text"] == tr.plain("onboarding.choose_language")
    intro = await clinic.press(uid, LANG_BUTTON[locale])
    assert intro["text"] == tr.plain("onboarding.intro", emergency_number=emergency)
    consent = await clinic.press(uid, tr.plain("onboarding.intro.continue"))
    assert consent["text"] == tr.plain("onboarding.consent", version=CONSENT_VERSION)
    ask_name = await clinic.press(uid, tr.plain("onboarding.consent.accept"))
    assert ask_name["text"] == tr.plain("onboarding.ask_name")
    assert (await clinic.say(uid, NAMES[locale]))["text"] == tr.plain("onboarding.ask_birth_year")
    assert (await clinic.say(uid, "1968"))["text"] == tr.plain("onboarding.ask_sex")
    ask_phone = await clinic.press(uid, tr.plain(f"sex.{sex}"))
    assert ask_phone["text"] == tr.plain("onboarding.ask_phone")
    assert ask_phone["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    since = await clinic.seq(uid)
    await clinic.client.share_contact(uid, PATIENT_BOT, phone)
    return await clinic.client.wait_for(
        uid,
        PATIENT_BOT,
        since=since,
        predicate=lambda m: m.get("text") == tr.plain("onboarding.ask_timezone"),
    )


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
async def test_onboarding_in_each_language(clinic: Clinic, locale: str) -> None:
    uid = await clinic.person("Tester", "en")
    await onboard(clinic, uid, locale)
    profile = await clinic.say(uid, "/profile")
    tr = Translator(locale)
    assert profile["text"].startswith(
        tr.plain(
            "profile.view",
            name=NAMES[locale],
            birth_year="1968",
            sex=tr.plain("sex.female"),
            phone="+15550100777",
            timezone="Etc/GMT-3",
            language=tr.plain("language.name"),
        )[:20]
    )
    assert NAMES[locale] in profile["text"]
    assert "Etc/GMT-3" in profile["text"]


async def test_declining_consent_stores_only_the_refusal(clinic: Clinic) -> None:
    uid = await clinic.person("Dana", "ru")
    tr = Translator("ru")
    assert (await clinic.say(uid, "/start"))["text"] == tr.plain("onboarding.choose_language")
    await clinic.press(uid, "Русский")
    await clinic.press(uid, tr.plain("onboarding.intro.continue"))
    declined = await clinic.press(uid, tr.plain("onboarding.consent.decline"))
    assert declined["text"] == tr.plain("onboarding.declined", emergency_number="112")
    # Typing a name now is not taken as a name: nothing is stored.
    again = await clinic.say(uid, "Dana Declines")
    assert again["text"] == tr.plain("onboarding.declined", emergency_number="112")
    # Health words still get "is this an emergency?" with the number, then the same step.
    since = await clinic.seq(uid)
    worried = await clinic.say(uid, "болит горло")
    assert worried["text"] == tr.plain("safety.ask", emergency_number="112")
    declined_text = tr.plain("onboarding.declined", emergency_number="112")
    await clinic.client.wait_for(
        uid, PATIENT_BOT, lambda m: m.get("text") == declined_text, since=since
    )
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        assert await uow.patients.profile(patient) == dict.fromkeys(
            ("name", "birth_year", "sex", "phone")
        )
        consents = await uow.consents.for_patient(patient.id)
        assert [(c.decision, c.version) for c in consents] == [("declined", CONSENT_VERSION)]
    # Changing their mind starts over.
    assert (await clinic.say(uid, "/start"))["text"] == tr.plain("onboarding.choose_language")


async def test_profile_edit_export_and_delete(clinic: Clinic) -> None:
    uid = await clinic.person("Alice", "en")
    await onboard(clinic, uid, "en")
    tr = Translator("en")
    await clinic.say(uid, "/profile")
    assert (await clinic.press(uid, "Name"))["text"] == tr.plain("onboarding.ask_name")
    bad = await clinic.say(uid, "12345")
    assert bad["text"] == tr.plain("error.name_invalid", max=100)
    ok = await clinic.say(uid, "Alice Renamed")
    assert ok["text"] == tr.plain("profile.updated", field="Name")
    assert "Alice Renamed" in (await clinic.say(uid, "/profile"))["text"]
    await clinic.press(uid, "Sex")
    assert (await clinic.press(uid, "Other"))["text"] == tr.plain("profile.updated", field="Sex")

    export = await clinic.say(uid, "/export")
    assert export["protect_content"] is True
    data = await clinic.client.download(export["document"]["download_url"])
    doc = json.loads(data)
    Bundle.model_validate(doc)  # the whole record as a FHIR R4 Bundle
    res = [e["resource"] for e in doc["entry"]]
    [person] = [r for r in res if r["resourceType"] == "Patient"]
    assert person["name"] == [{"use": "usual", "text": "Alice Renamed"}]
    assert person["gender"] == "other"
    assert person["telecom"][0]["value"] == "+15550100777"
    assert [r["status"] for r in res if r["resourceType"] == "Consent"] == ["active"]
    assert any(
        r["resourceType"] == "AuditEvent" and r["subtype"][0]["code"] == "record.export"
        for r in res
    )

    mydata = await clinic.say(uid, "/mydata")
    assert "Name" in mydata["text"]

    confirm = await clinic.say(uid, "/delete")
    assert confirm["text"] == tr.plain("delete.confirm")
    assert (await clinic.press(uid, tr.plain("delete.confirm.no")))["text"] == tr.plain(
        "delete.cancelled"
    )
    await clinic.say(uid, "/delete")
    gone = await clinic.press(uid, tr.plain("delete.confirm.yes"))
    assert gone["text"] == tr.plain("delete.done", kept_records=tr.plain("delete.no_records"))
    async with clinic.app.db.uow() as uow:
        assert await uow.patients.by_tg_user(uid) is None
        assert await uow.patients.by_phone("+15550100777") is None
    # Starting again is a clean slate.
    assert (await clinic.say(uid, "/start"))["text"] == tr.plain("onboarding.choose_language")


async def test_only_own_contact_is_accepted(clinic: Clinic) -> None:
    uid = await clinic.person("Eve", "en")
    tr = Translator("en")
    await clinic.say(uid, "/start")
    await clinic.press(uid, "English")
    await clinic.press(uid, "Continue")
    await clinic.press(uid, "I agree")
    await clinic.say(uid, "Eve Example")
    await clinic.say(uid, "1990")
    await clinic.press(uid, "Male")
    typed = await clinic.say(uid, "+15550100999")
    assert typed["text"] == tr.plain("error.phone_use_button")
    since = await clinic.seq(uid)
    await clinic.client.share_contact(uid, PATIENT_BOT, "+15550100111", own=False)
    foreign = await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
    assert foreign["text"] == tr.plain("error.phone_not_own")


async def test_stale_and_forged_buttons_keep_the_conversation(clinic: Clinic) -> None:
    uid = await clinic.person("Finn", "en")
    tr = Translator("en")
    await clinic.say(uid, "/start")
    intro = await clinic.press(uid, "English")
    consent = await clinic.press(uid, "Continue")
    # The old "Continue" button again: stale.
    since = await clinic.seq(uid)
    await clinic.client.click(
        uid,
        PATIENT_BOT,
        intro["message_id"],
        intro["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
    )
    stale = await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
    assert stale["text"] == tr.plain("error.stale_button")
    again = await clinic.client.wait_for(uid, PATIENT_BOT, since=stale["seq"])
    assert again["text"] == consent["text"]
    # Forged data of every flavour: the consent question is shown again, state unchanged.
    for data in (
        "ob:consent:maybe",
        "lang:xx",
        "pf:password",
        "del:maybe",
        "\u202e;DROP",
        "x" * 64,
    ):
        since = await clinic.seq(uid)
        await clinic.client.click(uid, PATIENT_BOT, consent["message_id"], data, force=True)
        await clinic.client.wait_for(
            uid,
            PATIENT_BOT,
            since=since,
            predicate=lambda m: (
                m.get("text") == tr.plain("onboarding.consent", version=CONSENT_VERSION)
            ),
        )
    assert (await clinic.press(uid, "I agree"))["text"] == tr.plain("onboarding.ask_name")


async def test_doctor_bot_says_what_it_is(clinic: Clinic) -> None:
    uid = await clinic.person("Dr Testdoctor", "zh-hans")
    tr = Translator("zh_Hans")
    reply = await clinic.say(uid, "/start", bot=DOCTOR_BOT)
    assert reply["text"] == tr.plain("doctor.start")
    await clinic.client.wait_for(uid, DOCTOR_BOT, tr.plain("doctor.apply.ask_name"))
    other = await clinic.say(uid, "/help", bot=DOCTOR_BOT)
    assert other["text"] == Translator("zh_Hans").plain("doctor.help")


def _labels(message: dict[str, Any]) -> list[str]:
    return [b["text"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


async def _timezone_of(clinic: Clinic, uid: int) -> str | None:
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        return patient.timezone


@pytest.mark.parametrize(
    ("locale", "typed", "zone"),
    [("ru", "Москва", "Europe/Moscow"), ("zh_Hans", "上海", "Asia/Shanghai")],
)
async def test_a_typed_city_sets_the_time_zone(
    clinic: Clinic, locale: str, typed: str, zone: str
) -> None:
    """The zone buttons name cities in the patient's language, and a city typed in that
    language is understood (the same lookup as /meds)."""
    uid = await clinic.person("Tester", "en")
    tr = Translator(locale)
    ask = await to_timezone_step(clinic, uid, locale)
    labels = _labels(ask)
    assert labels[0] == tr.plain("button.clinic_timezone", timezone="UTC")
    assert labels[1:] == [label(locale, z) for z in SUGGESTED_ZONES[locale]]
    assert not any("/" in text for text in labels), labels  # no raw ids like Europe/Moscow
    done = await clinic.say(uid, typed)
    assert done["text"] == tr.plain("onboarding.done", name=NAMES[locale])
    assert await _timezone_of(clinic, uid) == zone


async def test_a_country_with_several_zones_asks_for_the_city(clinic: Clinic) -> None:
    """A country with several zones (Russia has eleven): the patient picks the nearest city."""
    uid = await clinic.person("Tester", "ru")
    tr = Translator("ru")
    await to_timezone_step(clinic, uid, "ru")
    choose = await clinic.say(uid, "Россия")
    assert choose["text"] == tr.plain("error.timezone_country", value="Россия")
    labels = _labels(choose)
    assert labels[0] == "Калининград" and "Москва" in labels and labels[-1] == "Камчатка"
    done = await clinic.press(uid, "Владивосток")
    assert done["text"] == tr.plain("onboarding.done", name=NAMES["ru"])
    assert await _timezone_of(clinic, uid) == "Asia/Vladivostok"
