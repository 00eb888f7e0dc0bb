"""The referral slip PDF (flows/slip.py): rendered in each language, page 1 turned into a PNG
(pypdfium2) and its QR decoded (zxing-cpp) back to the verify URL with the token; the text
extracted from the PDF holds the Chinese and Cyrillic strings (so the glyphs are mapped, not
boxes) and fontTools finds every one of their characters in an embedded font's cmap; a
two-language slip; long findings on two pages; the same content gives the same bytes; a
missing CJK font is a clear SlipError. The PNGs are saved under pytest's tmp dir.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
import segno
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from PIL import Image

from flows import slip
from flows.referrals import (
    CODE_ALPHABET,
    SlipContent,
    code_from_text,
    normalize_code,
    token_from_text,
)
from flows.signing import b64u
from locales import Translator

# A well-formed code (the last symbol is the check symbol).
CODE = next(c for c in (f"K7Q-4M9-XD{s}" for s in CODE_ALPHABET) if normalize_code(c) == c)
URL = f"https://clinic.example.org/r/{CODE}"
SCALE = 2  # 144 dpi

needs_cjk = pytest.mark.skipif(
    slip.find_cjk_font() is None,
    reason="no CJK font: install Debian's fonts-droid-fallback (.ci/test does)",
)


def _token() -> str:
    """A token shaped like flows.signing's (payload JSON + Ed25519 signature), fixed bytes."""
    payload = {
        "rid": "0f3c2a9b7d6e4f118a2b3c4d5e6f7a8b",
        "iss": "2026-03-12",
        "exp": "2026-04-11",
        "h": "ab" * 32,
        "kid": "k1",
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    sig = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(raw)
    return f"{b64u(raw)}.{b64u(sig)}"


TOKEN = _token()


def _content(**changes: object) -> SlipContent:
    base = SlipContent(
        code=CODE,
        patient_name="Anna Example",
        birth_year="1984",
        sex="female",
        doctor_name="Dr. Pat Sample",
        doctor_title="General practitioner",
        doctor_licence="GP-2020-004512",
        doctor_hospital="Careline online clinic",
        target_hospital="Riverside General Hospital",
        target_department="Cardiology",
        reason="Chest pain on exertion for two weeks; rule out angina.",
        urgency="within_24h",
        findings="BP 150/95 mmHg. Smoker, 20 pack-years. No ECG available.",
        issued_on=date(2026, 3, 12),
        valid_until=date(2026, 4, 11),
        locale="en",
        hospital_locale=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


CHINESE = {
    "locale": "zh_Hans",
    "patient_name": "王小明",
    "target_hospital": "北京协和医院",
    "target_department": "心内科",
    "reason": "活动后胸痛两周，排除心绞痛。",
    "findings": "血压 150/95 mmHg。吸烟二十年。",
    "urgency": "emergency",
}
RUSSIAN = {
    "locale": "ru",
    "patient_name": "Иван Петров",
    "sex": "male",
    "target_hospital": "Городская больница № 1",
    "target_department": "Кардиология",
    "reason": "Боль в груди при нагрузке в течение двух недель.",
    "findings": "АД 150/95 мм рт. ст. Курит 20 лет.",
    "urgency": "within_2w",
}


# --- helpers ----------------------------------------------------------------------------------


def _pages(pdf: bytes) -> int:
    return len(pdfium.PdfDocument(pdf))


def _png(pdf: bytes, index: int, path: Path) -> Image.Image:
    """Page ``index`` rendered to a PNG file (kept for a look) and loaded back."""
    doc = pdfium.PdfDocument(pdf)
    doc[index].render(scale=SCALE).to_pil().save(path)
    return Image.open(path)


def _qr(image: Image.Image) -> list[zxingcpp.Barcode]:
    return [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]


def _text(pdf: bytes, index: int) -> str:
    return pdfium.PdfDocument(pdf)[index].get_textpage().get_text_range()


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _embedded_fonts(pdf: bytes) -> dict[str, set[int]]:
    """The cmap of every embedded TrueType font (``/FontFile2``), by PostScript name."""
    fonts: dict[str, set[int]] = {}
    for ref in re.finditer(rb"/FontFile2 (\d+) 0 R", pdf):
        obj = re.search(rb"(?:^|\n)%d 0 obj" % int(ref.group(1)), pdf)
        assert obj is not None, "a FontFile2 reference points nowhere"
        start = pdf.index(b"stream", obj.end())
        head = pdf[obj.end() : start]
        length = re.search(rb"/Length (\d+)", head)
        assert length is not None
        body = pdf[start + len(b"stream") :].lstrip(b"\r")[1:]
        raw = body[: int(length.group(1))]
        if b"FlateDecode" in head:
            raw = zlib.decompress(raw)
        font = TTFont(io.BytesIO(raw))
        fonts[str(font["name"].getDebugName(6))] = set(font.getBestCmap() or {})
    return fonts


def _missing_glyphs(pdf: bytes, *texts: str) -> set[str]:
    """Characters of ``texts`` that no embedded font has a glyph for."""
    covered = set().union(*_embedded_fonts(pdf).values())
    return {ch for t in texts for ch in t if not ch.isspace() and ord(ch) not in covered}


# --- each language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "strings"),
    [
        pytest.param(
            {}, ["Anna Example", "Riverside General Hospital", "March 12, 2026"], id="en"
        ),
        pytest.param(
            CHINESE,
            ["王小明", "北京协和医院", "心内科", "活动后胸痛两周，排除心绞痛。", "2026年3月12日"],
            id="zh_Hans",
            marks=needs_cjk,
        ),
        pytest.param(
            RUSSIAN,
            ["Иван Петров", "Городская больница № 1", "Кардиология", "12 марта 2026"],
            id="ru",
        ),
    ],
)
def test_each_language_renders_scannable_with_real_glyphs(
    changes: dict[str, str], strings: list[str], tmp_path: Path
) -> None:
    content = _content(**changes)
    tr = Translator(content.locale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns about a glyph a font lacks
        pdf = slip.render_slip(content, TOKEN, URL)
    assert pdf.startswith(b"%PDF-")
    assert _pages(pdf) == 1

    image = _png(pdf, 0, tmp_path / f"slip-{content.locale}.png")
    codes = _qr(image)
    assert [c.text for c in codes] == [slip.qr_payload(URL, TOKEN)]
    assert codes[0].ec_level == "M"
    # The verify page and the CLI read the token and code back out of what the QR carries.
    assert token_from_text(codes[0].text) == TOKEN
    assert code_from_text(codes[0].text) == CODE

    text = _text(pdf, 0)
    labels = [
        tr.plain("slip.title"),
        tr.plain("slip.section.reason").upper(),
        tr.plain(slip.MSG_URGENCY[content.urgency]),
        tr.plain(slip.MSG_SEX[content.sex]),
    ]
    for s in [*strings, *labels, CODE]:
        assert _squash(s) in _squash(text), f"{s!r} not in the slip's text"
    assert not _missing_glyphs(pdf, *strings, *labels), "characters with no embedded glyph"
    # The desk's instructions come out whole (fpdf2 once printed a wrapped line of mixed
    # Chinese and Latin with another font's glyph ids).
    check = tr.plain("slip.check", url=URL, code=CODE)
    assert _squash(check) in _squash(text)


@needs_cjk
def test_chinese_slip_embeds_the_cjk_font_and_latin_only_slip_does_not() -> None:
    zh = _embedded_fonts(slip.render_slip(_content(**CHINESE), TOKEN, URL))
    en = _embedded_fonts(slip.render_slip(_content(), TOKEN, URL))
    cjk = slip.find_cjk_font()
    assert cjk is not None
    assert any(ord("转") in cmap for cmap in zh.values())
    assert all(ord("转") not in cmap for cmap in en.values())
    assert any(name.startswith("DejaVuSans") for name in en)
    # Subsets, not whole fonts: the CJK font has tens of thousands of glyphs.
    assert max(len(cmap) for cmap in zh.values()) < 400


# --- two languages, long findings -------------------------------------------------------------


@needs_cjk
def test_hospital_language_gets_its_own_page(tmp_path: Path) -> None:
    content = _content(**RUSSIAN, hospital_locale="zh_Hans")
    pdf = slip.render_slip(content, TOKEN, URL)
    assert _pages(pdf) == 2
    first, second = _text(pdf, 0), _text(pdf, 1)
    assert "Направление" in first and "转诊单" not in first
    assert "стр. 1 из 2" in first and "第 2 页，共 2 页" in second
    assert "转诊单" in second and "Направление" not in second
    # The patient's data is the same on both; each page has its own scannable QR.
    for page in (first, second):
        assert "Иван Петров" in page and "Городская больница № 1" in page
    for index in (0, 1):
        image = _png(pdf, index, tmp_path / f"two-languages-{index + 1}.png")
        assert [c.text for c in _qr(image)] == [slip.qr_payload(URL, TOKEN)]
    both = Translator("ru").plain("slip.bilingual", first="Русский", second="简体中文")
    assert _squash(both) in _squash(first)
    assert not _missing_glyphs(pdf, "Иван Петров", "转诊单", "执业证书编号")


def test_same_language_for_hospital_is_one_page() -> None:
    assert _pages(slip.render_slip(_content(hospital_locale="en"), TOKEN, URL)) == 1
    assert _pages(slip.render_slip(_content(hospital_locale="en-GB"), TOKEN, URL)) == 1


def test_long_findings_flow_onto_a_second_page(tmp_path: Path) -> None:
    sentences = [
        f"Finding {i}: stable, rechecked, no change since the last visit." for i in range(60)
    ]
    findings = " ".join(sentences)
    pdf = slip.render_slip(_content(findings=findings), TOKEN, URL)
    assert _pages(pdf) == 2
    page1, page2 = _text(pdf, 0), _text(pdf, 1)
    # Nothing is cut: every finding is printed once, in order, across the two pages.
    both = page1 + page2
    assert re.findall(r"Finding\s+(\d+):", both) == [str(i) for i in range(60)]
    assert len(re.findall(r"no\s+change\s+since", both)) == 60
    assert "Finding 0:" in page1 and "Finding 59:" in page2
    assert f"Referral {CODE} (continued)" in page2
    assert "page 2 of 2" in page2 and "page 1 of 2" in page1
    # The QR is on the first page; the desk box is kept whole on the last.
    assert _qr(_png(pdf, 0, tmp_path / "long-1.png"))
    assert "For the hospital desk" in page2 and "For the hospital desk" not in page1


def test_short_slip_is_one_page_with_a_large_enough_qr() -> None:
    pdf = slip.render_slip(_content(), TOKEN, URL)
    assert _pages(pdf) == 1
    assert "page 1 of 1" in _text(pdf, 0)
    symbol = segno.make(slip.qr_payload(URL, TOKEN), error="m", boost_error=False)
    modules = symbol.symbol_size(scale=1, border=4)[0]
    assert slip.QR_SIZE / modules >= 0.6, "QR modules under 0.6 mm are hard to scan"


# --- deterministic output, metadata -----------------------------------------------------------


def test_same_content_gives_the_same_bytes() -> None:
    content = _content(**RUSSIAN)
    first = slip.render_slip(content, TOKEN, URL)
    assert slip.render_slip(content, TOKEN, URL) == first
    assert slip.render_slip(replace(content, findings="АД 150/96"), TOKEN, URL) != first
    assert slip.render_slip(content, TOKEN[:-2] + "AA", URL) != first


def test_metadata_has_the_code_and_issue_date_but_not_the_patient() -> None:
    pdf = slip.render_slip(_content(**RUSSIAN), TOKEN, URL)
    meta = pdfium.PdfDocument(pdf).get_metadata_dict()
    assert meta["Title"] == f"Направление {CODE}"
    assert meta["CreationDate"].startswith("D:20260312")
    assert meta["Producer"] == "Careline"
    assert not any("Иван" in str(v) or "Петров" in str(v) for v in meta.values())
    assert b"Anna" not in pdf  # no plain-text copy of a name outside the glyph streams


# --- fonts ------------------------------------------------------------------------------------


def test_no_cjk_font_is_a_clear_error_for_chinese_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slip, "find_cjk_font", lambda: None)
    with pytest.raises(slip.SlipError) as err:
        slip.render_slip(_content(**CHINESE), TOKEN, URL)
    assert err.value.msgid == "slip.error.no_cjk_font"
    assert "fonts-droid-fallback" in err.value.detail
    # A Russian slip for a Chinese-speaking hospital needs the font too ...
    with pytest.raises(slip.SlipError):
        slip.render_slip(_content(**RUSSIAN, hospital_locale="zh_Hans"), TOKEN, URL)
    # ... an English or Russian one does not.
    assert _pages(slip.render_slip(_content(**RUSSIAN), TOKEN, URL)) == 1
    for loc in ("en", "zh_Hans", "ru"):
        message = Translator(loc)("slip.error.no_cjk_font")
        assert message != "slip.error.no_cjk_font"


def test_find_cjk_font_prefers_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    font = tmp_path / "clinic-cjk.ttf"
    font.write_bytes(b"not checked here")
    monkeypatch.setenv(slip.CJK_FONT_ENV, str(font))
    assert slip.find_cjk_font() == font
    monkeypatch.setenv(slip.CJK_FONT_ENV, str(tmp_path / "missing.ttf"))
    monkeypatch.setattr(slip, "CJK_FONT_PATHS", (str(font),))
    assert slip.find_cjk_font() == font
    monkeypatch.setattr(slip, "CJK_FONT_PATHS", ())
    assert slip.find_cjk_font() is None


def test_a_broken_cjk_font_file_is_a_font_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"\x00\x01\x00\x00garbage")
    monkeypatch.setattr(slip, "find_cjk_font", lambda: broken)
    with pytest.raises(slip.SlipError) as err:
        slip.render_slip(_content(**CHINESE), TOKEN, URL)
    assert err.value.msgid == "slip.error.font"


def test_characters_no_font_has_print_as_a_mark_not_a_crash() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdf = slip.render_slip(_content(reason="Rash \U0001fa78 on the arm"), TOKEN, URL)
    assert "Rash ? on the arm" in _text(pdf, 0)


def test_unknown_urgency_and_empty_fields_still_render() -> None:
    pdf = slip.render_slip(
        _content(urgency="whenever", findings="", target_department="", sex="undisclosed"),
        TOKEN,
        URL,
    )
    text = _text(pdf, 0)
    assert "ROUTINE" in text
    assert "None recorded." in text
    assert "Prefer not to say" in text or Translator("en").plain("sex.undisclosed") in text
