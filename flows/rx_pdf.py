"""The e-prescription as a PDF: what a patient takes to a pharmacy.

``render_rx(content, token, check_url)`` lays out an A4 prescription (fpdf2) in the
prescription's language, modelled on the referral slip (:mod:`flows.slip`, whose fonts, QR
code, text cleaning and page class it reuses): the clinic header, the title with the code
(large, monospaced), the validity and the supply days (and the chronic-disease rule, when one
allows a longer course), the patient's identification (name, year of birth, sex — nothing
more), the prescriber (name, position, licence number, hospital), the diagnosis, a table of the
medicines exactly as the prescriber typed them, and a notice for the pharmacy with the check
address. The QR code (error correction M) sits at the top right with the check address under
it; it carries ``check_url + "?t=" + token`` (:func:`flows.slip.qr_payload`), which
:func:`flows.prescriptions.code_from_text` and :func:`flows.referrals.token_from_text` read back.
Ten long medicine lines flow onto a second page (continuation header, the table's heading
again); every page has a footer with the code and the page number.

The labels live in this module (:data:`LABELS`, en / ru / zh_Hans) rather than in the
catalogs; only the clinic's name and the sex values come from the catalogs (the slip's ids).

The output is deterministic (the creation date is the issue date), so the same content, token
and address give the same bytes. The metadata names the code, never the patient. A prescription
that needs Chinese characters where no CJK font exists raises :class:`flows.slip.SlipError`
(``slip.error.no_cjk_font``), as a slip does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import cast

from fontTools.ttLib import TTLibError  # type: ignore[import-untyped]
from fpdf.enums import MethodReturnValue, TextEmphasis, WrapMode, XPos, YPos
from fpdf.errors import FPDFException

from flows import slip
from flows.prescriptions import Item, RxContent
from flows.slip import (
    BASE,
    BLACK,
    BOX_PAD,
    CJK,
    CJK_FONT_ENV,
    CONTENT_W,
    DESK_FILL,
    GREY,
    LINE,
    MARGIN,
    MISSING,
    MONO,
    MSG_SEX,
    PAGE_W,
    QR_SIZE,
    SlipError,
    _base_fonts,
    _cmap,
    _date,
    _ink,
    _is_cjk,
    _needs_cjk,
    _qr,
    _row,
    _section,
    _Slip,
    _usable,
    _wrap,
    qr_payload,
)
from locales import Translator, normalize_locale

__all__ = ["LABELS", "SlipError", "font_problem", "render_rx", "rx_texts"]

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Prescription",
        "code": "Prescription code",
        "issued": "Issued on",
        "valid": "Valid {start} – {end}",
        "supply": "Supply: {days} days",
        "chronic": "Chronic condition: {label}",
        "patient": "Patient",
        "patient_name": "Name",
        "birth_year": "Year of birth",
        "sex": "Sex",
        "prescriber": "Prescriber",
        "doctor_name": "Name",
        "doctor_title": "Position",
        "doctor_licence": "Licence no.",
        "doctor_hospital": "Hospital",
        "diagnosis": "Diagnosis",
        "medicines": "Medicines",
        "col_no": "No.",
        "col_medicine": "Medicine, strength",
        "col_dose": "Dose",
        "col_quantity": "Quantity",
        "col_days": "Days",
        "pharmacy": "For the pharmacy",
        "review": "Takes effect only after a pharmacist's review; check at the address below:",
        "check": "Check at the address below before dispensing:",
        "once": "Dispensed once; any change to this document makes it invalid.",
        "no_suggest": (
            "Careline never suggests medicines; every line was written by the prescriber."
        ),
        "continued": "Prescription {code} (continued)",
        "footer": "Prescription {code} · page {page} of {pages}",
    },
    "ru": {
        "title": "Рецепт",
        "code": "Код рецепта",
        "issued": "Дата выдачи",
        "valid": "Действителен {start} – {end}",
        "supply": "Курс лечения: {days} дн.",
        "chronic": "Хроническое заболевание: {label}",
        "patient": "Пациент",
        "patient_name": "Имя",
        "birth_year": "Год рождения",
        "sex": "Пол",
        "prescriber": "Врач",
        "doctor_name": "ФИО",
        "doctor_title": "Должность",
        "doctor_licence": "№ лицензии",
        "doctor_hospital": "Учреждение",
        "diagnosis": "Диагноз",
        "medicines": "Лекарственные препараты",
        "col_no": "№",
        "col_medicine": "Препарат, дозировка",
        "col_dose": "Приём",
        "col_quantity": "Количество",
        "col_days": "Дней",
        "pharmacy": "Для аптеки",
        "review": (
            "Вступает в силу только после проверки фармацевтом; проверьте рецепт по адресу ниже:"
        ),
        "check": "Перед отпуском проверьте рецепт по адресу ниже:",
        "once": "Отпускается один раз; любое изменение документа делает его недействительным.",
        "no_suggest": (
            "Careline никогда не предлагает лекарства; каждую строку написал выписавший врач."
        ),
        "continued": "Рецепт {code} (продолжение)",
        "footer": "Рецепт {code} · стр. {page} из {pages}",
    },
    "zh_Hans": {
        "title": "处方",
        "code": "处方编号",
        "issued": "开具日期",
        "valid": "有效期：{start} – {end}",
        "supply": "用药天数：{days} 天",
        "chronic": "慢性病：{label}",
        "patient": "患者",
        "patient_name": "姓名",
        "birth_year": "出生年份",
        "sex": "性别",
        "prescriber": "处方医师",
        "doctor_name": "姓名",
        "doctor_title": "职称",
        "doctor_licence": "执业证书编号",
        "doctor_hospital": "执业机构",
        "diagnosis": "诊断",
        "medicines": "药品",
        "col_no": "序号",
        "col_medicine": "药品名称及规格",
        "col_dose": "用法用量",
        "col_quantity": "数量",
        "col_days": "天数",
        "pharmacy": "药房须知",
        "review": "本处方须经药师审核后方可生效；请在下方地址核验：",
        "check": "调配前请在下方地址核验：",
        "once": "仅限调配一次；对本文件的任何改动均使其失效。",
        "no_suggest": "Careline 从不推荐药品；每一行均由处方医师本人填写。",
        "continued": "处方 {code}（续）",
        "footer": "处方 {code} · 第 {page} 页，共 {pages} 页",
    },
}

# The medicine table: (label key, width in mm); the widths add up to CONTENT_W.
COLUMNS = (
    ("col_no", 11.0),
    ("col_medicine", 67.0),
    ("col_dose", 54.0),
    ("col_quantity", 32.0),
    ("col_days", 16.0),
)
LEFT_W = CONTENT_W - QR_SIZE - 6
CELL_PAD = 1.5
ROW_LINE_H = 4.8
HEAD_LINE_H = 4.2
ACCENT = (44, 62, 80)  # the slip's "routine" ink, for section titles and the table heading


def _locale(content: RxContent) -> str:
    locale = normalize_locale(content.locale)
    return locale if locale in LABELS else "en"


def _sex(sex: str, locale: str) -> str:
    value = slip._clean(sex)
    return Translator(locale).plain(MSG_SEX[value]) if value in MSG_SEX else value


def _clinic(locale: str) -> str:
    return Translator(locale).plain("slip.clinic")


def _chronic(content: RxContent, chronic_label: str) -> str:
    """What follows "Chronic condition:": the rule's label, else its id, else nothing."""
    return slip._clean(chronic_label) or slip._clean(content.chronic)


def rx_texts(content: RxContent, chronic_label: str = "", check_url: str = "") -> list[str]:
    """Everything the prescription prints (for the font check)."""
    locale = _locale(content)
    out = [
        slip._clean(f)
        for f in (
            content.code,
            content.patient_name,
            content.birth_year,
            content.doctor_name,
            content.doctor_title,
            content.doctor_licence,
            content.doctor_hospital,
            content.diagnosis,
            check_url,
            _chronic(content, chronic_label),
        )
    ]
    for item in content.items:
        out += [slip._clean(v) for v in (item.name, item.strength, item.dose, item.quantity)]
    out += list(LABELS[locale].values())
    out += [_date(content.issued_on, locale), _date(content.valid_until, locale)]
    out += [_sex(content.sex, locale), _clinic(locale)]
    return out


def _cjk_font(content: RxContent, texts: Sequence[str]) -> Path | None:
    """The CJK font the prescription needs, None when it needs none (or when its only
    non-DejaVu characters are not Chinese: those print as a mark). Raises :class:`SlipError`
    when Chinese is needed and no CJK font exists."""
    if not _needs_cjk(texts, _cmap(str(_base_fonts()["regular"]))):
        return None
    path = slip.find_cjk_font()
    if path is None and (_locale(content) == "zh_Hans" or any(_is_cjk(t) for t in texts)):
        raise SlipError(
            "slip.error.no_cjk_font",
            f"no CJK font: set {CJK_FONT_ENV} or install fonts-droid-fallback",
        )
    return path


def font_problem(content: RxContent, chronic_label: str = "", check_url: str = "") -> bool:
    """Whether :func:`render_rx` would raise :class:`SlipError` over its fonts: Chinese to
    print and no CJK font, or a font file that is missing or unreadable."""
    try:
        path = _cjk_font(content, rx_texts(content, chronic_label, check_url))
        if path is not None:
            _cmap(str(path))
    except SlipError:
        return True
    return False


# --- the document -----------------------------------------------------------------------------


class _Rx(_Slip):
    """An A4 prescription: the slip's page, with the prescription's header and footer."""

    def __init__(self, code: str, labels: dict[str, str], clinic: str) -> None:
        super().__init__(code)
        self.labels = labels
        self.clinic = clinic

    def set_font(
        self, family: str | None = None, style: str | TextEmphasis = "", size: float = 0
    ) -> None:
        """``FPDF.set_font``, and the font set on the page at once, outside any text line.

        fpdf2 otherwise sets a changed font inside the first line printed with it; when that
        line starts with a fallback (CJK) character, the line is wrapped in q/Q, which undoes
        the font switch while fpdf2 believes it done, and the next Latin line then prints in
        the font before it (another font's glyph ids: empty boxes)."""
        super().set_font(family, style, size)
        if self.page and not self.current_font_is_set_on_page and self.current_font:
            self._out(self._set_font_for_page(self.current_font, self.font_size_pt))

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(BASE, "", 8)
        _ink(self, GREY)
        self.cell(CONTENT_W / 2, 5, self.clinic, new_x=XPos.RIGHT, new_y=YPos.TOP)
        self.cell(
            CONTENT_W / 2,
            5,
            self.labels["continued"].format(code=self.code),
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self._rule()
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(BASE, "", 8)
        _ink(self, GREY)
        text = self.labels["footer"].format(code=self.code, page=self.page_no(), pages="{nb}")
        self.cell(0, 5, text, align="C")


def _lines(pdf: _Rx, width: float, text: str) -> int:
    """How many lines ``text`` takes in a cell ``width`` wide, in the current font."""
    out = pdf.multi_cell(
        width - 2 * CELL_PAD,
        ROW_LINE_H,
        text,
        dry_run=True,
        output=MethodReturnValue.LINES,
        wrapmode=_wrap(text),
    )
    return max(1, len(cast(list[str], out)))


def _text(
    pdf: _Rx, x: float, y: float, width: float, line_h: float, text: str, align: str = "L"
) -> float:
    """``text`` wrapped into a column at (x, y) in the current font; returns the y below it."""
    pdf.set_xy(x, y)
    pdf.multi_cell(
        width,
        line_h,
        text,
        align=align,
        new_x=XPos.LEFT,
        new_y=YPos.NEXT,
        wrapmode=_wrap(text),
    )
    return pdf.get_y()


def _table_head(pdf: _Rx) -> None:
    labels = pdf.labels
    pdf.set_font(BASE, "B", 8.5)
    height = max(_lines(pdf, w, labels[key]) * HEAD_LINE_H for key, w in COLUMNS) + 2 * CELL_PAD
    top = pdf.get_y()
    pdf.set_fill_color(*DESK_FILL)
    pdf.rect(MARGIN, top, CONTENT_W, height, style="F")
    _ink(pdf, ACCENT)
    x = MARGIN
    for key, width in COLUMNS:
        _text(pdf, x + CELL_PAD, top + CELL_PAD, width - 2 * CELL_PAD, HEAD_LINE_H, labels[key])
        x += width
    pdf.set_xy(MARGIN, top + height)


def _cells(number: int, item: Item) -> list[tuple[str, str, float, str]]:
    """One medicine's cells as (style, text, size, text below in a smaller regular font)."""
    return [
        ("", f"{number}.", 10, ""),
        ("B", slip._clean(item.name), 10, slip._clean(item.strength)),
        ("", slip._clean(item.dose), 10, ""),
        ("", slip._clean(item.quantity), 10, ""),
        ("", str(item.days), 10, ""),
    ]


def _row_height(pdf: _Rx, cells: list[tuple[str, str, float, str]]) -> float:
    tallest = 0.0
    for (style, text, size, below), (_, width) in zip(cells, COLUMNS, strict=True):
        pdf.set_font(BASE, style, size)
        height = _lines(pdf, width, text or MISSING) * ROW_LINE_H
        if below:
            pdf.set_font(BASE, "", 9)
            height += _lines(pdf, width, below) * ROW_LINE_H
        tallest = max(tallest, height)
    return tallest + 2 * CELL_PAD


def _table(pdf: _Rx, items: Sequence[Item]) -> None:
    """The medicines, one row each; a row never splits, the heading repeats on a new page."""
    _section(pdf, pdf.labels["medicines"], CONTENT_W)
    pdf.ln(0.5)
    first = _row_height(pdf, _cells(1, items[0])) if items else 0.0
    if pdf.get_y() + 12 + first > pdf.page_break_trigger:
        pdf.add_page()
    _table_head(pdf)
    for number, item in enumerate(items, start=1):
        cells = _cells(number, item)
        height = _row_height(pdf, cells)
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
            _table_head(pdf)
        top = pdf.get_y()
        x = MARGIN
        for (style, text, size, below), (_, width) in zip(cells, COLUMNS, strict=True):
            pdf.set_font(BASE, style, size)
            _ink(pdf, BLACK)
            inner = width - 2 * CELL_PAD
            y = _text(pdf, x + CELL_PAD, top + CELL_PAD, inner, ROW_LINE_H, text or MISSING)
            if below:
                pdf.set_font(BASE, "", 9)
                _ink(pdf, GREY)
                _text(pdf, x + CELL_PAD, y, inner, ROW_LINE_H, below)
            x += width
        pdf.set_draw_color(*LINE)
        pdf.set_line_width(0.25)
        pdf.line(MARGIN, top + height, MARGIN + CONTENT_W, top + height)
        pdf.set_xy(MARGIN, top + height)


def _notice_parts(labels: dict[str, str], review: bool, url: str) -> list[tuple[str, str, str]]:
    """The pharmacy notice as (font, style, text) paragraphs."""
    return [
        (BASE, "B", labels["pharmacy"]),
        (BASE, "", labels["review" if review else "check"]),
        (MONO, "B", url),
        (BASE, "", labels["once"]),
        (BASE, "", labels["no_suggest"]),
    ]


def _notice(pdf: _Rx, parts: list[tuple[str, str, str]]) -> None:
    """The notice box, whole, at the bottom of the last page (a new page when it won't fit)."""
    inner = CONTENT_W - 2 * BOX_PAD
    sizes = {BASE: 9.5, MONO: 9.0}

    def measure() -> float:
        total = 0.0
        for font, style, text in parts:
            pdf.set_font(font, style, sizes[font])
            lines = pdf.multi_cell(
                inner,
                5,
                text,
                dry_run=True,
                output=MethodReturnValue.LINES,
                wrapmode=WrapMode.CHAR if font == MONO else _wrap(text),
            )
            total += len(cast(list[str], lines)) * 5 + (1 if style == "B" else 0)
        return total + 6

    height = measure()
    if pdf.get_y() + 4 + height > pdf.page_break_trigger:
        pdf.add_page()
    top = max(pdf.get_y() + 4, pdf.page_break_trigger - height)
    pdf.set_fill_color(*DESK_FILL)
    pdf.rect(MARGIN, top, CONTENT_W, height, style="F")
    y = top + 3
    for font, style, text in parts:
        pdf.set_font(font, style, sizes[font])
        _ink(pdf, BLACK)
        pdf.set_xy(MARGIN + BOX_PAD, y)
        pdf.multi_cell(
            inner,
            5,
            text,
            align="L",
            new_x=XPos.LEFT,
            new_y=YPos.NEXT,
            wrapmode=WrapMode.CHAR if font == MONO else _wrap(text),
        )
        y = pdf.get_y() + (1 if style == "B" else 0)
    pdf.set_y(top + height)


def _page(pdf: _Rx, content: RxContent, locale: str, qr_data: str, url: str, chronic: str) -> None:
    labels = pdf.labels
    pdf.add_page()
    code = slip._clean(content.code)

    # Header: clinic, issue date.
    pdf.set_font(BASE, "B", 11)
    _ink(pdf, BLACK)
    pdf.cell(CONTENT_W * 0.6, 6, pdf.clinic, new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.set_font(BASE, "", 9)
    _ink(pdf, GREY)
    issued = f"{labels['issued']}: {_date(content.issued_on, locale)}"
    pdf.cell(CONTENT_W * 0.4, 6, issued, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf._rule()
    pdf.ln(3)

    # Right: the QR code with the check address under it.
    col_top = pdf.get_y()
    qr_x = PAGE_W - MARGIN - QR_SIZE
    _qr(pdf, qr_data, qr_x, col_top, QR_SIZE)
    pdf.set_font(BASE, "", 7.5)
    _ink(pdf, GREY)
    pdf.set_xy(qr_x, col_top + QR_SIZE)
    pdf.multi_cell(
        QR_SIZE, 3.6, url, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT, wrapmode=WrapMode.CHAR
    )
    qr_end = pdf.get_y()

    # Left: title, code, validity, supply, chronic rule; then the patient and the prescriber.
    pdf.set_xy(MARGIN, col_top)
    pdf.set_font(BASE, "B", 26)
    _ink(pdf, BLACK)
    pdf.cell(LEFT_W, 13, labels["title"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(BASE, "", 8.5)
    _ink(pdf, GREY)
    pdf.cell(LEFT_W, 4.5, labels["code"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(MONO, "B", 24)
    _ink(pdf, BLACK)
    pdf.cell(LEFT_W, 11, code, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)
    valid = labels["valid"].format(
        start=_date(content.issued_on, locale), end=_date(content.valid_until, locale)
    )
    pdf.set_font(BASE, "B", 11)
    y = _text(pdf, MARGIN, pdf.get_y(), LEFT_W, 6, valid)
    pdf.set_font(BASE, "", 10)
    y = _text(pdf, MARGIN, y, LEFT_W, 5.5, labels["supply"].format(days=content.supply_days))
    if chronic:
        y = _text(pdf, MARGIN, y, LEFT_W, 5.5, labels["chronic"].format(label=chronic))
    pdf.set_xy(MARGIN, y + 4)

    _section(pdf, labels["patient"], LEFT_W)
    _row(pdf, MARGIN, LEFT_W, labels["patient_name"], slip._clean(content.patient_name))
    _row(pdf, MARGIN, LEFT_W, labels["birth_year"], slip._clean(content.birth_year))
    _row(pdf, MARGIN, LEFT_W, labels["sex"], _sex(content.sex, locale))
    pdf.ln(2.5)
    _section(pdf, labels["prescriber"], LEFT_W)
    for key in ("doctor_name", "doctor_title", "doctor_licence", "doctor_hospital"):
        _row(pdf, MARGIN, LEFT_W, labels[key], slip._clean(getattr(content, key)))
    pdf.set_y(max(pdf.get_y(), qr_end) + 3)

    # Diagnosis (full width), the medicines, the notice.
    pdf._rule()
    pdf.ln(3)
    _section(pdf, labels["diagnosis"], CONTENT_W)
    pdf.set_font(BASE, "", 10.5)
    _ink(pdf, BLACK)
    diagnosis = slip._clean(content.diagnosis) or MISSING
    pdf.multi_cell(
        CONTENT_W,
        5.5,
        diagnosis,
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
        wrapmode=_wrap(diagnosis),
    )
    pdf.ln(4)
    _table(pdf, content.items)
    _notice(pdf, _notice_parts(labels, content.review_required, url))


def _drawable(content: RxContent, fonts: frozenset[int]) -> RxContent:
    """The content with every text field reduced to what the fonts can draw."""

    def ok(text: str) -> str:
        return _usable(str(text), fonts)

    items = tuple(
        replace(
            i, name=ok(i.name), strength=ok(i.strength), dose=ok(i.dose), quantity=ok(i.quantity)
        )
        for i in content.items
    )
    return replace(
        content,
        code=ok(content.code),
        patient_name=ok(content.patient_name),
        birth_year=ok(content.birth_year),
        doctor_name=ok(content.doctor_name),
        doctor_title=ok(content.doctor_title),
        doctor_licence=ok(content.doctor_licence),
        doctor_hospital=ok(content.doctor_hospital),
        diagnosis=ok(content.diagnosis),
        items=items,
    )


def render_rx(content: RxContent, token: str, check_url: str, *, chronic_label: str = "") -> bytes:
    """The prescription's PDF bytes (one page, two for many long lines). ``check_url`` is the
    check page of the code without the token (``.../rx/<code>``); the QR carries
    :func:`flows.slip.qr_payload` of it. Raises :class:`SlipError` when a needed font is
    missing or unreadable."""
    locale = _locale(content)
    labels = LABELS[locale]
    fonts = _base_fonts()
    cjk_path = _cjk_font(content, rx_texts(content, chronic_label, check_url))
    drawable = _cmap(str(fonts["regular"])) | (_cmap(str(cjk_path)) if cjk_path else frozenset())

    clinic = _usable(_clinic(locale), drawable)
    code = slip._clean(content.code)
    pdf = _Rx(code, labels, clinic)
    try:
        pdf.add_font(BASE, "", fonts["regular"])
        pdf.add_font(BASE, "B", fonts["bold"])
        pdf.add_font(MONO, "B", fonts["mono"])
        if cjk_path is not None:
            pdf.add_font(CJK, "", cjk_path)
            pdf.set_fallback_fonts([CJK], exact_match=False)
    except (OSError, FPDFException, TTLibError, AssertionError) as exc:
        raise SlipError("slip.error.font", f"cannot load a font: {type(exc).__name__}") from None

    pdf.set_title(_usable(f"{labels['title']} {code}", drawable))
    pdf.set_author(clinic)
    pdf.set_creator("Careline")
    pdf.set_producer("Careline")
    pdf.set_lang(locale.replace("_", "-"))
    pdf.set_creation_date(datetime.combine(content.issued_on, time(0), tzinfo=UTC))

    chronic = _usable(_chronic(content, chronic_label), drawable)
    _page(
        pdf,
        _drawable(content, drawable),
        locale,
        qr_payload(check_url, token),
        _usable(slip._clean(check_url), drawable),
        chronic,
    )
    return bytes(pdf.output())
