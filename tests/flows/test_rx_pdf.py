"""The prescription PDF (flows/rx_pdf.py): rendered in each language, the text extracted from
the PDF (pypdfium2) holds the code, the patient, every medicine and that language's labels; page
1 turned into a PNG and its QR decoded (zxing-cpp) back to the check URL with the token, from
which the code and the token are read again; the same inputs give the same bytes; the metadata
names the code, not the patient; ten long medicines flow onto a second page; a Chinese
prescription without a CJK font is a clear SlipError. The PNGs are saved under pytest's tmp dir.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
import segno
import zxingcpp
from babel.dates import format_date
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from flows import rx_pdf, slip
from flows.prescriptions import Item, RxContent, code_from_text, rx_url
from flows.referrals import CODE_ALPHABET, normalize_code, token_from_text
from flows.signing import b64u
from locales import Translator

# A well-formed code (the last symbol is the check symbol).
CODE = next(c for c in (f"K7Q-4M9-XD{s}" for s in CODE_ALPHABET) if normalize_code(c) == c)
BASE_URL = "http://127.0.0.1:8080"
URL = f"{BASE_URL}/rx/{CODE}"
SCALE = 2  # 144 dpi

needs_cjk = pytest.mark.skipif(
    slip.find_cjk_font() is None,
    reason="no CJK font: install Debian's fonts-droid-fallback (.ci/test does)",
)


def _token() -> str:
    """A token shaped like a prescription's (payload JSON + Ed25519 signature), fixed bytes."""
    payload = {
        "typ": "rx",
        "rid": "0f3c2a9b7d6e4f118a2b3c4d5e6f7a8b",
        "iss": "2026-03-12",
        "exp": "2026-04-10",
        "h": "ab" * 32,
        "kid": "k1",
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    sig = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(raw)
    return f"{b64u(raw)}.{b64u(sig)}"


TOKEN = _token()

ENGLISH_ITEMS = (
    Item("Amlodipine", "5 mg tablets", "1 tablet once daily in the morning", "30 tablets", 30),
    Item("Lisinopril", "10 mg tablets", "1 tablet once daily", "30 tablets", 28),
)


def _content(**changes: object) -> RxContent:
    base = RxContent(
        code=CODE,
        patient_name="Anna Example",
        birth_year="1984",
        sex="female",
        doctor_name="Dr. Pat Sample",
        doctor_title="General practitioner",
        doctor_licence="GP-2020-004512",
        doctor_hospital="Careline online clinic",
        diagnosis="Essential hypertension, stable on treatment; follow-up visit.",
        items=ENGLISH_ITEMS,
        supply_days=30,
        chronic="hypertension",
        issued_on=date(2026, 3, 12),
        valid_until=date(2026, 4, 10),
        locale="en",
        review_required=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


RUSSIAN = {
    "locale": "ru",
    "patient_name": "Иван Петров",
    "sex": "male",
    "doctor_name": "Сидорова Мария Ивановна",
    "doctor_title": "Врач-терапевт",
    "doctor_hospital": "Городская поликлиника № 5",
    "diagnosis": "Гипертоническая болезнь II стадии, контролируемая.",
    "items": (
        Item("Амлодипин", "5 мг, таблетки", "по 1 таблетке утром", "30 таблеток", 30),
        Item("Лизиноприл", "10 мг, таблетки", "по 1 таблетке 1 раз в день", "30 таблеток", 30),
    ),
    "review_required": True,
}
CHINESE = {
    "locale": "zh_Hans",
    "patient_name": "王小明",
    "sex": "male",
    "doctor_name": "李华",
    "doctor_title": "主治医师",
    "doctor_hospital": "北京协和医院",
    "diagnosis": "原发性高血压（病情稳定），复诊。",
    "items": (
        Item("苯磺酸氨氯地平片", "5mg", "每日一次，每次一片，口服", "30 片", 30),
        Item("赖诺普利片", "10mg", "每日一次，每次一片", "30 片", 30),
    ),
    "review_required": True,
}
CHRONIC = {"en": "Hypertension", "ru": "Гипертония", "zh_Hans": "高血压"}
DATES = {
    "en": ["March 12, 2026", "April 10, 2026"],
    "ru": ["12 марта 2026", "10 апреля 2026"],
    "zh_Hans": ["2026年3月12日", "2026年4月10日"],
}


# --- helpers ----------------------------------------------------------------------------------


def _render(content: RxContent, token: str = TOKEN, url: str = URL, chronic: str = "") -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns about a glyph a font lacks
        return rx_pdf.render_rx(content, token, url, chronic_label=chronic)


def _pages(pdf: bytes) -> int:
    return len(pdfium.PdfDocument(pdf))


def _text(pdf: bytes, index: int) -> str:
    return pdfium.PdfDocument(pdf)[index].get_textpage().get_text_range()


def _all_text(pdf: bytes) -> str:
    return "\n".join(_text(pdf, i) for i in range(_pages(pdf)))


def _png(pdf: bytes, index: int, path: Path) -> Image.Image:
    """Page ``index`` rendered to a PNG file (kept for a look) and loaded back."""
    pdfium.PdfDocument(pdf)[index].render(scale=SCALE).to_pil().save(path)
    return Image.open(path)


def _qr(image: Image.Image) -> list[zxingcpp.Barcode]:
    return [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _item_strings(item: Item) -> list[str]:
    return [item.name, item.strength, item.dose, item.quantity]


# --- each language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="en"),
        pytest.param(RUSSIAN, id="ru"),
        pytest.param(CHINESE, id="zh_Hans", marks=needs_cjk),
    ],
)
def test_each_language_prints_everything_in_its_own_labels(
    changes: dict[str, object], tmp_path: Path
) -> None:
    content = _content(**changes)
    locale = content.locale
    labels = rx_pdf.LABELS[locale]
    pdf = _render(content, chronic=CHRONIC[locale])
    assert pdf.startswith(b"%PDF-")
    assert _pages(pdf) == 1
    _png(pdf, 0, tmp_path / f"rx-{locale}.png")

    text = _squash(_text(pdf, 0))
    strings = [CODE, content.patient_name, content.birth_year, content.doctor_name]
    strings += [content.doctor_title, content.doctor_licence, content.doctor_hospital]
    strings += [content.diagnosis, *DATES[locale], URL]
    for item in content.items:
        strings += _item_strings(item)
    shown = [
        labels["title"],
        labels["code"],
        labels["patient"].upper(),
        labels["prescriber"].upper(),
        labels["diagnosis"].upper(),
        labels["medicines"].upper(),
        labels["doctor_licence"],
        labels["col_dose"],
        labels["col_quantity"],
        labels["supply"].format(days=30),
        labels["chronic"].format(label=CHRONIC[locale]),
        labels["valid"].format(
            start=format_date(content.issued_on, "long", locale=locale),
            end=format_date(content.valid_until, "long", locale=locale),
        ),
        labels["review" if content.review_required else "check"],
        labels["once"],
        labels["no_suggest"],
        labels["footer"].format(code=CODE, page=1, pages=1),
        Translator(locale).plain(slip.MSG_SEX[content.sex]),
    ]
    for s in [*strings, *shown]:
        assert _squash(s) in text, f"{s!r} not in the {locale} prescription's text"
    # Every medicine is numbered, in order.
    assert re.findall(r"(\d+)\.\s*\S", _text(pdf, 0).split(labels["col_days"], 1)[1])[:2] == [
        "1",
        "2",
    ]
    # No other language's labels.
    for other, other_labels in rx_pdf.LABELS.items():
        if other != locale:
            assert _squash(other_labels["no_suggest"]) not in text


def test_labels_exist_in_every_language_with_the_same_placeholders() -> None:
    keys = set(rx_pdf.LABELS["en"])
    for locale, labels in rx_pdf.LABELS.items():
        assert set(labels) == keys, locale
        for key, text in labels.items():
            english = rx_pdf.LABELS["en"][key]
            assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", english))
            assert text.strip(), f"{locale}.{key} is empty"


def test_notice_follows_review_and_chronic_line_only_when_given() -> None:
    en = rx_pdf.LABELS["en"]
    plain = _squash(_text(_render(_content(chronic="")), 0))
    assert _squash(en["check"]) in plain and _squash(en["review"]) not in plain
    assert "Chroniccondition" not in plain
    review = _squash(_text(_render(_content(review_required=True), chronic="Hypertension"), 0))
    assert _squash(en["review"]) in review and _squash(en["check"]) not in review
    assert "Chroniccondition:Hypertension" in review


def test_empty_sex_and_characters_no_font_has_still_render() -> None:
    items = (Item("Cream \U0001fa78", "1%", "apply twice daily", "1 tube", 7),)
    text = _text(_render(_content(sex="", items=items, chronic="")), 0)
    assert "Cream ?" in text
    assert "Sex —" in text or "Sex\n—" in text or _squash("Sex—") in _squash(text)


# --- the QR code ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [pytest.param({}, id="en"), pytest.param(CHINESE, id="zh_Hans", marks=needs_cjk)],
)
def test_qr_carries_the_check_url_with_the_token(
    changes: dict[str, object], tmp_path: Path
) -> None:
    pdf = _render(_content(**changes))
    codes = _qr(_png(pdf, 0, tmp_path / "qr.png"))
    assert [c.text for c in codes] == [slip.qr_payload(URL, TOKEN)]
    assert codes[0].text == rx_url(BASE_URL, CODE, TOKEN)
    assert codes[0].ec_level == "M"
    assert token_from_text(codes[0].text) == TOKEN
    assert code_from_text(codes[0].text) == CODE


def test_qr_modules_are_large_enough_to_scan() -> None:
    symbol = segno.make(slip.qr_payload(URL, TOKEN), error="m", boost_error=False)
    modules = symbol.symbol_size(scale=1, border=4)[0]
    assert slip.QR_SIZE / modules >= 0.6, "QR modules under 0.6 mm are hard to scan"


# --- deterministic output, metadata -----------------------------------------------------------


def test_same_inputs_give_the_same_bytes() -> None:
    content = _content(**RUSSIAN)
    first = _render(content)
    assert _render(content) == first
    assert _render(content, token=TOKEN[:-2] + "AA") != first
    assert _render(content, url=f"{BASE_URL}/rx/{CODE}/") != first
    changed = replace(content, items=(replace(content.items[0], quantity="60 таблеток"),))
    assert _render(changed) != first


def test_metadata_names_the_code_and_not_the_patient() -> None:
    for changes, title in ((RUSSIAN, f"Рецепт {CODE}"), ({}, f"Prescription {CODE}")):
        content = _content(**changes)
        pdf = _render(content)
        meta = pdfium.PdfDocument(pdf).get_metadata_dict()
        assert meta["Title"] == title
        assert meta["CreationDate"].startswith("D:20260312")
        assert meta["Producer"] == "Careline"
        for part in content.patient_name.split():
            assert not any(part in str(v) for v in meta.values())
    assert b"Anna" not in _render(_content())  # no plain-text copy outside the glyph streams


# --- long prescriptions -----------------------------------------------------------------------


def test_ten_long_medicines_flow_onto_a_second_page(tmp_path: Path) -> None:
    items = tuple(
        Item(
            f"Medicine {i} with a rather long compound name hydrochloride",
            "500 mg extended-release film-coated tablets",
            "1 tablet twice daily with food, morning and evening; do not crush or chew",
            "60 tablets (6 blister packs)",
            30,
        )
        for i in range(1, 11)
    )
    pdf = _render(_content(items=items, review_required=True), chronic="Hypertension")
    assert _pages(pdf) == 2
    page1, page2 = _text(pdf, 0), _text(pdf, 1)
    both = _squash(page1 + page2)
    # Every line is printed once, whole, in order, across the two pages.
    assert re.findall(r"Medicine(\d+)with", both) == [str(i) for i in range(1, 11)]
    for item in items:
        for s in _item_strings(item):
            assert _squash(s) in both
    assert both.count(_squash(items[0].dose)) == 10
    assert "Medicine 1 " in page1 and "Medicine 10 " in page2
    assert f"Prescription {CODE} (continued)" in page2
    assert "page 1 of 2" in page1 and "page 2 of 2" in page2
    # The table's heading repeats; the QR is on the first page, the notice on the last.
    assert "Quantity" in page1 and "Quantity" in page2
    assert _qr(_png(pdf, 0, tmp_path / "long-1.png"))
    _png(pdf, 1, tmp_path / "long-2.png")
    notice = _squash(rx_pdf.LABELS["en"]["once"])
    assert notice in _squash(page2) and notice not in _squash(page1)


@needs_cjk
def test_ten_chinese_medicines_render_every_line() -> None:
    items = tuple(
        Item(
            f"复方药品第{i}号缓释片", "0.5g", "每日两次，每次一片，饭后服用，不可嚼碎", "60 片", 30
        )
        for i in range(1, 11)
    )
    text = _squash(_all_text(_render(_content(**{**CHINESE, "items": items}))))
    for item in items:
        for s in _item_strings(item):
            assert _squash(s) in text
    # A Latin line after an all-Chinese one keeps its font (fpdf2 once lost the switch).
    assert _squash(rx_pdf.LABELS["zh_Hans"]["no_suggest"]) in text


# --- fonts ------------------------------------------------------------------------------------


def test_no_cjk_font_is_a_clear_error_for_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slip, "find_cjk_font", lambda: None)
    chinese = _content(**CHINESE)
    assert rx_pdf.font_problem(chinese)
    with pytest.raises(slip.SlipError) as err:
        rx_pdf.render_rx(chinese, TOKEN, URL)
    assert err.value.msgid == "slip.error.no_cjk_font"
    assert "fonts-droid-fallback" in err.value.detail
    # An English prescription with a Chinese medicine name needs the font too ...
    mixed = _content(items=(Item("阿莫西林胶囊", "0.25 g", "3 times a day", "24", 7),))
    assert rx_pdf.font_problem(mixed)
    with pytest.raises(slip.SlipError):
        rx_pdf.render_rx(mixed, TOKEN, URL)
    # ... an English or Russian one does not.
    assert not rx_pdf.font_problem(_content(**RUSSIAN))
    assert _pages(rx_pdf.render_rx(_content(**RUSSIAN), TOKEN, URL)) == 1
    assert _pages(rx_pdf.render_rx(_content(), TOKEN, URL)) == 1


def test_rx_texts_cover_labels_fields_and_dates() -> None:
    content = _content(**RUSSIAN)
    texts = rx_pdf.rx_texts(content, "Гипертония", URL)
    for s in ["Иван Петров", "Амлодипин", "по 1 таблетке утром", "Рецепт", "Гипертония", URL]:
        assert s in texts
    assert any("12 марта 2026" in t for t in texts)
    assert "Мужской" in texts


def test_a_broken_cjk_font_file_is_a_font_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"\x00\x01\x00\x00garbage")
    monkeypatch.setattr(slip, "find_cjk_font", lambda: broken)
    chinese = _content(**CHINESE)
    assert rx_pdf.font_problem(chinese)
    with pytest.raises(slip.SlipError) as err:
        rx_pdf.render_rx(chinese, TOKEN, URL)
    assert err.value.msgid == "slip.error.font"
    assert not rx_pdf.font_problem(_content())  # no Chinese: the CJK font is never opened
