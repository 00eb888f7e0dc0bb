"""Time zones by name (flows/zones.py): a city or a country typed in English, Chinese or
Russian finds its zone through the one lookup that sign-up and /meds share; a country with
several zones asks which; zone buttons name cities in the person's language."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from flows import medication, onboarding, zones
from flows.onboarding import SUGGESTED_ZONES, BadInput, parse_timezone
from flows.questionnaire import BUTTON_MAX
from flows.timing import TimingError, ZoneChoice, parse_zone
from locales import LOCALES, catalog
from storage.models import Patient
from storage.uow import Database

RUSSIA = (
    "Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk",
    "Asia/Novosibirsk", "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk",
    "Asia/Vladivostok", "Asia/Magadan", "Asia/Kamchatka",
)  # fmt: skip

CITIES = {
    "en": [
        ("Moscow", "Europe/Moscow"),
        ("New York", "America/New_York"),
        ("Berlin", "Europe/Berlin"),
        ("berlin", "Europe/Berlin"),
        ("  Hong  Kong ", "Asia/Hong_Kong"),
        ("St. John's", "America/St_Johns"),
        ("Washington, D.C.", "America/New_York"),
        ("Moscow, Russia", "Europe/Moscow"),
        ("São Paulo", "America/Sao_Paulo"),
        ("Sao Paulo", "America/Sao_Paulo"),
        ("kiev", "Europe/Kyiv"),
        ("Germany", "Europe/Berlin"),
        ("China", "Asia/Shanghai"),
        ("Japan", "Asia/Tokyo"),
        ("Egypt", "Africa/Cairo"),
    ],
    "zh_Hans": [
        ("上海", "Asia/Shanghai"),
        ("北京", "Asia/Shanghai"),
        ("北京市", "Asia/Shanghai"),
        ("北京时间", "Asia/Shanghai"),
        ("中国", "Asia/Shanghai"),
        ("莫斯科", "Europe/Moscow"),
        ("纽约", "America/New_York"),
        ("柏林", "Europe/Berlin"),
        ("德国", "Europe/Berlin"),
        ("海参崴", "Asia/Vladivostok"),
        ("香港", "Asia/Hong_Kong"),
        ("新加坡", "Asia/Singapore"),
    ],
    "ru": [
        ("Москва", "Europe/Moscow"),
        ("москва", "Europe/Moscow"),
        ("г. Москва", "Europe/Moscow"),
        ("город Москва", "Europe/Moscow"),
        ("Санкт-Петербург", "Europe/Moscow"),
        ("санкт петербург", "Europe/Moscow"),
        ("мск", "Europe/Moscow"),
        ("Новосибирск", "Asia/Novosibirsk"),
        ("Нью-Йорк", "America/New_York"),
        ("Берлин", "Europe/Berlin"),
        ("Германия", "Europe/Berlin"),
        ("Китай", "Asia/Shanghai"),
        ("Шанхай", "Asia/Shanghai"),
        ("Кишинёв", "Europe/Chisinau"),
        ("Кишинев", "Europe/Chisinau"),
        ("Казахстан", "Asia/Almaty"),
    ],
}
COUNTRIES = {
    "en": [("Russia", RUSSIA), ("USA", None), ("Australia", None), ("Spain", None)],
    "zh_Hans": [("俄罗斯", RUSSIA), ("美国", None), ("澳洲", None)],
    "ru": [("Россия", RUSSIA), ("РФ", RUSSIA), ("США", None), ("Канада", None)],
}


@pytest.mark.parametrize(
    ("text", "zone"),
    [pytest.param(t, z, id=f"{loc}-{t}") for loc in CITIES for t, z in CITIES[loc]],
)
def test_a_city_or_country_finds_its_zone(text: str, zone: str) -> None:
    assert parse_zone(text) == zone
    assert parse_timezone(text) == zone  # sign-up asks the same lookup as /meds


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(t, z, id=f"{loc}-{t}") for loc in COUNTRIES for t, z in COUNTRIES[loc]],
)
def test_a_country_with_several_zones_asks_which(
    text: str, expected: tuple[str, ...] | None
) -> None:
    with pytest.raises(ZoneChoice) as info:
        parse_zone(text)
    choice = info.value
    assert choice.msgid == "timing.error.zone_country"
    assert choice.params == {"value": text}
    assert len(choice.zones) > 1
    if expected is not None:
        assert choice.zones == expected
    with pytest.raises(onboarding.ZoneChoice) as asked:
        parse_timezone(text)
    assert asked.value.msgid == "error.timezone_country"
    assert (asked.value.zones, asked.value.params) == (choice.zones, {"value": text})


@pytest.mark.parametrize(
    "text", ["Mars", "somewhere warm", "Georgia", "Washington", "Атлантида", "火星", "Mars/Base"]
)
def test_unknown_names_are_refused(text: str) -> None:
    """Unknown words are refused; Georgia and Washington on purpose (each is also a US state)."""
    with pytest.raises(TimingError) as info:
        parse_zone(text)
    assert info.value.msgid == "timing.error.bad_zone"
    with pytest.raises(BadInput) as refused:
        parse_timezone(text)
    assert refused.value.msgid == "error.timezone_invalid"


def test_offsets_and_iana_names_still_work_at_sign_up() -> None:
    assert parse_timezone("-03:30") == "America/St_Johns"
    assert parse_timezone("Asia/Tokyo") == "Asia/Tokyo"
    assert parse_timezone("GMT") == "UTC"


def test_every_place_is_a_real_zone_with_a_name_in_every_language() -> None:
    available = zoneinfo.available_timezones()
    for place in zones.PLACES:
        assert place.zone in available, place
        for locale in LOCALES:
            name = catalog(locale).get(zones.city_msgid(place))
            assert name, f"[{locale}] {zones.city_msgid(place)} missing"
            assert len(name) <= BUTTON_MAX, f"[{locale}] {name!r} is too long for a button"
            # What a button says can be typed back.
            assert zones.find(name) == (place.zone,), (locale, name)
            assert parse_zone(name) == place.zone
    keys = {p.key for p in zones.PLACES}
    assert len(keys) == len(zones.PLACES)
    for country in zones.COUNTRIES:
        assert set(country.places) <= keys, country


def test_no_name_means_two_different_things() -> None:
    zones._index.cache_clear()
    assert len(zones._index()) > 500  # builds without a clash (it raises on one)


@pytest.mark.parametrize("locale", LOCALES)
def test_buttons_name_cities_not_zone_ids(locale: str) -> None:
    for zone in SUGGESTED_ZONES[locale]:
        name = zones.label(locale, zone)
        assert (
            "/" not in name and name == catalog(locale)[zones.city_msgid(zones._by_zone()[zone])]
        )
    assert zones.label(locale, "UTC") == "UTC"
    assert zones.label(locale, "Etc/GMT-3") == "UTC+3"  # POSIX sign: three hours ahead
    assert zones.label(locale, "Etc/GMT+5") == "UTC-5"


def test_labels_in_each_language() -> None:
    assert [zones.label(loc, "Europe/Moscow") for loc in LOCALES] == ["Moscow", "莫斯科", "Москва"]
    assert [zones.label(loc, "Asia/Shanghai") for loc in LOCALES] == ["Beijing", "北京", "Пекин"]
    assert zones.label("ru", "Europe/Andorra") == "Andorra"  # not in the table: its IANA city


async def test_meds_and_the_profile_take_the_same_words(db: Database) -> None:
    """/meds (flows.medication.set_zone) and sign-up or the profile (set_profile_field) read
    a typed zone through the same lookup."""
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    async with db.uow() as uow:
        patient = await uow.patients.add(
            Patient(tg_user_id=424242, locale="ru", onboarding_state="done", consent_version="1")
        )
        assert await medication.set_zone(uow, patient, "Москва", now) == "Europe/Moscow"
        assert await medication.set_zone(uow, patient, "上海", now) == "Asia/Shanghai"
        with pytest.raises(medication.BadInput) as asked:
            await medication.set_zone(uow, patient, "Россия", now)
        assert asked.value.msgid == "timing.error.zone_country"
        assert patient.timezone == "Asia/Shanghai"
        await onboarding.set_profile_field(uow, patient, "timezone", "New York", trigger=None)
        assert patient.timezone == "America/New_York"
        with pytest.raises(onboarding.ZoneChoice):
            await onboarding.set_profile_field(uow, patient, "timezone", "США", trigger=None)
        assert patient.timezone == "America/New_York"
