"""The clinic's consultation services, pure parts: prices typed by an admin (currencies and
their decimals, Stars, "free"), modes in three languages, `/services add ...` in any order,
call lengths and response windows, which service applies to a doctor, prices as shown."""

from __future__ import annotations

import pytest

from flows import services as svc
from flows.services import BadInput, Price, ServiceView
from locales import Translator


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("free", Price(0, "XTR")),
        ("0", Price(0, "XTR")),
        ("免费", Price(0, "XTR")),
        ("бесплатно", Price(0, "XTR")),
        ("150 XTR", Price(150, "XTR")),
        ("150 stars", Price(150, "XTR")),
        ("⭐150", Price(150, "XTR")),
        ("150⭐", Price(150, "XTR")),
        ("300 CNY", Price(30000, "CNY")),
        ("300 cny", Price(30000, "CNY")),
        ("25.50 EUR", Price(2550, "EUR")),
        ("25,5 EUR", Price(2550, "EUR")),
        ("EUR 25.50", Price(2550, "EUR")),
        ("1500 JPY", Price(1500, "JPY")),
        ("0 EUR", Price(0, "EUR")),
        ("  999   rub ", Price(99900, "RUB")),
    ],
)
def test_prices_an_admin_types(typed: str, expected: Price) -> None:
    assert svc.parse_price(typed) == expected


@pytest.mark.parametrize(
    ("typed", "msgid"),
    [
        ("", "svc.bad_price"),
        ("cheap", "svc.bad_price"),
        ("300", "svc.bad_price"),  # no currency: CNY? RUB? Stars? say which
        ("EUR 5 USD", "svc.bad_price"),
        ("12 ABC", "svc.bad_currency"),
        ("12.345 EUR", "svc.too_many_decimals"),
        ("1.5 XTR", "svc.too_many_decimals"),
        ("10.5 JPY", "svc.too_many_decimals"),
        ("10001 XTR", "svc.too_expensive"),
        ("100001 EUR", "svc.too_expensive"),
        ("-5 EUR", "svc.bad_price"),
    ],
)
def test_prices_that_cannot_be_charged_say_why(typed: str, msgid: str) -> None:
    with pytest.raises(BadInput) as err:
        svc.parse_price(typed)
    assert err.value.msgid == msgid


@pytest.mark.parametrize(
    ("typed", "mode"),
    [("text", "text"), ("Phone", "phone"), ("视频", "video"), ("звонок", "phone"),
     ("图文", "text"), ("видео", "video")],
)  # fmt: skip
def test_modes_in_three_languages(typed: str, mode: str) -> None:
    assert svc.parse_mode(typed) == mode


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(BadInput) as err:
        svc.parse_mode("fax")
    assert err.value.msgid == "svc.bad_mode"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("phone 15 min 300 CNY cardiology",
         svc.AddRequest("phone", "cardiology", None, 15, None, "300 CNY")),
        ("text 24h free", svc.AddRequest("text", None, None, None, 24, "free")),
        ("video 20 min 150 XTR @3FA9C2",
         svc.AddRequest("video", None, "3fa9c2", 20, None, "150 XTR")),
        ("电话 10分钟 200 CNY general",
         svc.AddRequest("phone", "general", None, 10, None, "200 CNY")),
        ("видео Cardiology EUR 40 20 мин",
         svc.AddRequest("video", "Cardiology", None, 20, None, "EUR 40")),
        ("text", svc.AddRequest("text")),
    ],
)  # fmt: skip
def test_services_add_in_any_order(typed: str, expected: svc.AddRequest) -> None:
    assert svc.parse_add(typed) == expected


def test_services_add_without_anything_shows_the_usage() -> None:
    with pytest.raises(BadInput) as err:
        svc.parse_add("   ")
    assert err.value.msgid == "svc.add_usage"


def test_lengths_and_windows_belong_to_their_modes() -> None:
    assert svc.check_minutes("phone", None) == 15
    assert svc.check_minutes("video", 20) == 20
    assert svc.check_minutes("text", None) is None
    assert svc.check_hours("text", None) == 24
    assert svc.check_hours("phone", None) is None
    for call in (lambda: svc.check_minutes("text", 15), lambda: svc.check_hours("phone", 24)):
        with pytest.raises(BadInput):
            call()
    for minutes in (4, 121, 0):
        with pytest.raises(BadInput) as err:
            svc.check_minutes("phone", minutes)
        assert err.value.msgid == "svc.bad_minutes"
    with pytest.raises(BadInput) as err:
        svc.check_hours("text", 169)
    assert err.value.msgid == "svc.bad_hours"


def test_departments_are_the_questionnaires() -> None:
    assert svc.parse_department(" Cardiology ") == "cardiology"
    with pytest.raises(BadInput) as err:
        svc.parse_department("astrology")
    assert err.value.msgid == "svc.bad_department"
    assert "cardiology" in str(err.value.params["departments"])


def _v(sid: str, price: int, *, dept: str | None = None, doctor: str | None = None,
       active: bool = True) -> ServiceView:  # fmt: skip
    return ServiceView(sid, "phone", dept, doctor, 15, None, Price(price, "CNY"), active)


def test_the_most_specific_active_service_applies() -> None:
    clinic = _v("c", 100)
    cardio = _v("d1", 300, dept="cardiology")
    cardio_cheap = _v("d2", 250, dept="cardiology")
    own = _v("o", 500, doctor="doc-1")
    other = _v("x", 50, doctor="doc-2")
    off = _v("off", 10, doctor="doc-1", active=False)
    rows = [clinic, cardio, cardio_cheap, own, other, off]
    assert svc.pick(rows, "doc-1", ["cardiology"]) == own
    assert svc.pick(rows, "doc-3", ["cardiology", "general"]) == cardio_cheap
    assert svc.pick(rows, "doc-3", ["neurology"]) == clinic
    assert svc.pick([cardio, other], "doc-3", ["neurology"]) is None


@pytest.mark.parametrize(
    ("price", "locale", "shown"),
    [
        (Price(0, "XTR"), "en", "free"),
        (Price(0, "CNY"), "zh_Hans", "免费"),
        (Price(150, "XTR"), "ru", "⭐ 150"),
        (Price(30000, "CNY"), "zh_Hans", "¥300.00"),
        (Price(2550, "EUR"), "en", "€25.50"),
        (Price(99900, "RUB"), "ru", "999,00\xa0₽"),
    ],
)
def test_prices_as_people_read_them(price: Price, locale: str, shown: str) -> None:
    assert svc.format_price(price, locale, Translator(locale).plain) == shown


def test_a_service_line_in_three_languages() -> None:
    v = _v("abc", 30000, dept="cardiology")
    assert svc.describe(v, "en", Translator("en").plain) == (
        "Phone call · 15 min · Cardiology (heart) · CN¥300.00"
    )
    assert svc.describe(v, "zh_Hans", Translator("zh_Hans").plain) == (
        "电话问诊 · 15 分钟 · 心血管内科 · ¥300.00"
    )
    off = ServiceView("t1", "text", None, None, None, 24, Price(0, "XTR"), False)
    assert svc.describe(off, "ru", Translator("ru").plain) == (
        "Переписка · ответ в течение 24 ч · вся клиника · бесплатно (отключена)"
    )


def test_a_price_without_its_currency_is_asked_for_not_taken_as_a_department() -> None:
    with pytest.raises(BadInput) as err:
        svc.parse_add("phone 15 min 300 cardiology")
    assert err.value.msgid == "svc.bad_price"
