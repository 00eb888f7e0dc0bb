"""The referral slip as a PDF: what a patient carries to an offline hospital desk.

``render_slip(content, token, verify_url)`` lays out an A4 slip (fpdf2) in the patient's
language and, when the receiving hospital reads another language
(``content.hospital_locale``), the same slip again on its own page in that language. Each
version carries: the clinic header, the title, the short code (large), the urgency (a coloured
band), the patient's identification (name, year of birth, sex — nothing more), the referring
doctor (name, position, licence number, hospital), the target hospital and department, the
reason and findings, the issue and valid-until dates, a QR code and a line telling the desk how
to check it. When the referral has a booked hospital appointment (:class:`SlipAppointment`), an
"Appointment" box under the target shows its date and time, the service and what to bring.
Long findings flow onto a second page (with a continuation header); every page has a footer
with the code and the page number.

The QR code (segno, error correction M, drawn as vector rectangles so it stays sharp at any
zoom) carries ``verify_url + "?t=" + token`` (:func:`qr_payload`): a phone scan opens the
verify page for the code (``/r/<code>``), which checks the signed token it brings; typing the
printed code on the page checks the record without the token.

Fonts are embedded TrueType subsets: DejaVu Sans (Latin, Cyrillic) from matplotlib's bundled
mpl-data, and for Chinese a CJK font found by :func:`find_cjk_font` (``CARELINE_CJK_FONT``,
else Debian's ``fonts-droid-fallback``, else other common paths), used as a fallback font for
the characters DejaVu lacks. When the slip needs Chinese characters and no CJK font exists,
:class:`SlipError` (``msgid`` ``slip.error.no_cjk_font``) says so, for the handler to show.

The output is deterministic: the PDF's creation date is the slip's issue date, and nothing
else in the file depends on the clock, so the same content and token give the same bytes (the
referral's ``file_hash`` can be recomputed). A slip without an appointment is laid out exactly
as before the appointment box existed, so copies sent earlier still match their re-render. The
PDF's metadata names the referral code only — never the patient.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, Protocol, cast

import segno
from babel.dates import format_date
from fontTools.ttLib import TTFont, TTLibError  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import MethodReturnValue, WrapMode, XPos, YPos
from fpdf.errors import FPDFException

from locales import Translator, normalize_locale

CJK_FONT_ENV = "CARELINE_CJK_FONT"
# Checked in this order after CARELINE_CJK_FONT (TrueType outlines; fpdf2 embeds them as
# subsets). Debian: fonts-droid-fallback, fonts-wqy-microhei, fonts-wqy-zenhei, fonts-arphic-*.
CJK_FONT_PATHS = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallback.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansCJKsc-Regular.ttf",
)

URGENCY_COLOURS = {
    "emergency": (192, 57, 43),
    "within_24h": (211, 84, 0),
    "within_2w": (154, 125, 10),
    "routine": (44, 62, 80),
}
MSG_URGENCY = {
    "emergency": "slip.urgency.emergency",
    "within_24h": "slip.urgency.within_24h",
    "within_2w": "slip.urgency.within_2w",
    "routine": "slip.urgency.routine",
}
MSG_SEX = {
    "female": "sex.female",
    "male": "sex.male",
    "other": "sex.other",
    "undisclosed": "sex.undisclosed",
}
MSG_ERRORS = ("slip.error.no_cjk_font", "slip.error.font")

# Layout (millimetres, A4 portrait).
MARGIN = 15.0
PAGE_W = 210.0
CONTENT_W = PAGE_W - 2 * MARGIN
QR_SIZE = 58.0  # the whole symbol with its quiet zone; ~0.7 mm modules for a ~330-char URL
LEFT_W = CONTENT_W - QR_SIZE - 6
LABEL_W = 34.0
GREY = (95, 95, 95)
BLACK = (0, 0, 0)
LINE = (190, 190, 190)
DESK_FILL = (240, 240, 240)
APPT_FILL = (232, 241, 250)  # pale blue: the appointment stands apart from the desk's grey box
APPT_EDGE = (52, 101, 164)  # the strip on the box's left edge
APPT_EDGE_W = 1.2
BOX_PAD = 4.0
MISSING = "—"
BASE = "dejavu"
MONO = "dejavumono"
CJK = "cjk"
# Shown for a character no embedded font can draw (instead of an empty box).
REPLACEMENT = "?"


class SlipError(Exception):
    """The slip cannot be rendered here (a font is missing); ``msgid`` is a chat message for
    whoever asked for the slip, ``detail`` a line for the log."""

    def __init__(self, msgid: str, detail: str, **params: Any) -> None:
        super().__init__(detail)
        self.msgid = msgid
        self.detail = detail
        self.params: dict[str, Any] = params


@dataclass(frozen=True)
class SlipAppointment:
    """The hospital appointment booked for the referral, as the slip prints it.

    ``when`` is already formatted in the patient's zone (``2026-03-05 09:30``); for a place
    that is good for the whole day (``all_day``) it is the ISO date alone, and each language
    version of the slip adds its own "any time that day". ``department`` and ``bring`` are
    left out of the box when empty."""

    when: str
    service: str
    department: str = ""
    bring: str = ""
    all_day: bool = False


class SlipFields(Protocol):
    """What the slip prints, read-only (``flows.referrals.SlipContent`` fits it, frozen or
    not)."""

    @property
    def code(self) -> str: ...
    @property
    def patient_name(self) -> str: ...
    @property
    def birth_year(self) -> int | str | None: ...
    @property
    def sex(self) -> str | None: ...
    @property
    def doctor_name(self) -> str: ...
    @property
    def doctor_title(self) -> str | None: ...
    @property
    def doctor_licence(self) -> str | None: ...
    @property
    def doctor_hospital(self) -> str | None: ...
    @property
    def target_hospital(self) -> str: ...
    @property
    def target_department(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def urgency(self) -> str: ...
    @property
    def findings(self) -> str | None: ...
    @property
    def issued_on(self) -> date: ...
    @property
    def valid_until(self) -> date: ...
    @property
    def locale(self) -> str: ...
    @property
    def hospital_locale(self) -> str | None: ...


# --- fonts ------------------------------------------------------------------------------------


def dejavu_dir() -> Path:
    """matplotlib's bundled TrueType fonts (DejaVu Sans, regular/bold/mono)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def find_cjk_font() -> Path | None:
    """A TrueType font with Chinese glyphs: ``CARELINE_CJK_FONT`` when set (and a file), else
    the first of :data:`CJK_FONT_PATHS` that exists; None when there is none."""
    configured = os.environ.get(CJK_FONT_ENV, "").strip()
    candidates = ([configured] if configured else []) + list(CJK_FONT_PATHS)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


@cache
def _cmap(path: str) -> frozenset[int]:
    """The code points a font file can draw."""
    try:
        with open(path, "rb") as fh:
            font = TTFont(fh, fontNumber=0, lazy=True)
            return frozenset(font.getBestCmap() or {})
    except (OSError, TTLibError, AssertionError, KeyError, ValueError) as exc:
        raise SlipError(
            "slip.error.font", f"cannot read the font {Path(path).name}: {type(exc).__name__}"
        ) from None


def _base_fonts() -> dict[str, Path]:
    folder = dejavu_dir()
    fonts = {
        "regular": folder / "DejaVuSans.ttf",
        "bold": folder / "DejaVuSans-Bold.ttf",
        "mono": folder / "DejaVuSansMono-Bold.ttf",
    }
    for path in fonts.values():
        if not path.is_file():
            raise SlipError("slip.error.font", f"the font {path.name} is missing from matplotlib")
    return fonts


def _printable(ch: str) -> bool:
    """Characters that need a glyph (not spaces or line breaks)."""
    return not ch.isspace() and unicodedata.category(ch)[0] != "C"


def _needs_cjk(texts: Iterable[str], base: frozenset[int]) -> bool:
    return any(_printable(ch) and ord(ch) not in base for text in texts for ch in text)


def _is_cjk(text: str) -> bool:
    """Whether a text has wide (East Asian) characters: then it is wrapped by character."""
    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in text)


# --- the document -----------------------------------------------------------------------------


def _clean(text: object) -> str:
    """One value as printable text: tabs to spaces, other control characters dropped."""
    s = "" if text is None else str(text)
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(ch for ch in s if ch == "\n" or unicodedata.category(ch)[0] != "C").strip()


def _date(d: date, locale: str) -> str:
    return format_date(d, format="long", locale=locale)


class _Slip(FPDF):
    """An A4 slip with a footer (code, page x of y) and a continuation header."""

    def __init__(self, code: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.code = code
        self.tr = Translator("en")  # the language of the version being laid out
        self.page_tr: dict[int, Translator] = {}  # the language each page was started in
        self.version_start = 1
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=18)

    def header(self) -> None:
        self.page_tr[self.page_no()] = self.tr
        if self.page_no() == self.version_start:
            return
        self.set_font(BASE, "", 8)
        _ink(self, GREY)
        self.cell(CONTENT_W / 2, 5, self.tr.plain("slip.clinic"), new_x=XPos.RIGHT, new_y=YPos.TOP)
        self.cell(
            CONTENT_W / 2,
            5,
            self.tr.plain("slip.continued", code=self.code),
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
        tr = self.page_tr.get(self.page_no(), self.tr)
        text = tr.plain("slip.footer", code=self.code, page=self.page_no(), pages="{nb}")
        self.cell(0, 5, text, align="C")

    def _rule(self) -> None:
        self.set_draw_color(*LINE)
        self.set_line_width(0.3)
        y = self.get_y() + 1
        self.line(MARGIN, y, PAGE_W - MARGIN, y)
        self.set_y(y + 1)


def _ink(pdf: FPDF, colour: tuple[int, int, int]) -> None:
    """Set the text colour, and the fill colour to the same. fpdf2 wraps a text line whose
    colour differs from the fill colour in q/Q, which loses a switch to the fallback (CJK)
    font made inside it: the next line then printed with the wrong font's glyph ids. So boxes
    are filled with ``rect`` before their text, never with ``multi_cell(fill=True)``."""
    pdf.set_text_color(*colour)
    pdf.set_fill_color(*colour)


def _box_height(pdf: FPDF, text: str, line_h: float) -> float:
    """The height of a full-width box holding ``text`` in the current font."""
    lines = pdf.multi_cell(
        CONTENT_W - 2 * BOX_PAD,
        line_h,
        text,
        dry_run=True,
        output=MethodReturnValue.LINES,
        wrapmode=_wrap(text),
    )
    return len(cast(list[str], lines)) * line_h + 4


def _box(
    pdf: FPDF, text: str, line_h: float, fill: tuple[int, int, int], ink: tuple[int, int, int]
) -> None:
    """A full-width filled box with ``text`` (in the current font) inside."""
    height = _box_height(pdf, text, line_h)
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
    top = pdf.get_y()
    pdf.set_fill_color(*fill)
    pdf.rect(MARGIN, top, CONTENT_W, height, style="F")
    _ink(pdf, ink)
    pdf.set_xy(MARGIN + BOX_PAD, top + 2)
    pdf.multi_cell(
        CONTENT_W - 2 * BOX_PAD,
        line_h,
        text,
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
        wrapmode=_wrap(text),
    )
    pdf.set_y(top + height)


def _wrap(text: str) -> WrapMode:
    return WrapMode.CHAR if _is_cjk(text) else WrapMode.WORD


def _section(pdf: _Slip, title: str, width: float) -> None:
    pdf.set_font(BASE, "B", 10)
    _ink(pdf, URGENCY_COLOURS["routine"])
    pdf.multi_cell(
        width, 6, title.upper(), align="L", new_x=XPos.LEFT, new_y=YPos.NEXT, wrapmode=_wrap(title)
    )


def _row(pdf: _Slip, x: float, width: float, label: str, value: str, style: str = "") -> None:
    """One 'label  value' line; the value (``style`` "B" for bold) wraps under itself."""
    y = pdf.get_y()
    pdf.set_xy(x, y)
    pdf.set_font(BASE, "", 8.5)
    _ink(pdf, GREY)
    pdf.multi_cell(LABEL_W, 5.5, label, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    label_end = pdf.get_y()
    pdf.set_xy(x + LABEL_W, y)
    pdf.set_font(BASE, style, 10.5)
    _ink(pdf, BLACK)
    pdf.multi_cell(
        width - LABEL_W,
        5.5,
        value or MISSING,
        align="L",
        new_x=XPos.LEFT,
        new_y=YPos.NEXT,
        wrapmode=_wrap(value),
    )
    pdf.set_xy(x, max(pdf.get_y(), label_end))


def _row_height(pdf: _Slip, width: float, label: str, value: str, style: str = "") -> float:
    """The height :func:`_row` will take for this label and value."""
    pdf.set_font(BASE, "", 8.5)
    label_lines = pdf.multi_cell(LABEL_W, 5.5, label, dry_run=True, output=MethodReturnValue.LINES)
    pdf.set_font(BASE, style, 10.5)
    value_lines = pdf.multi_cell(
        width - LABEL_W,
        5.5,
        value or MISSING,
        dry_run=True,
        output=MethodReturnValue.LINES,
        wrapmode=_wrap(value),
    )
    return max(len(cast(list[str], label_lines)), len(cast(list[str], value_lines))) * 5.5


def _appointment_rows(tr: Translator, appt: SlipAppointment) -> list[tuple[str, str, str]]:
    """The appointment box's lines as (label, value, value style), in ``tr``'s language."""
    when = _clean(appt.when)
    if appt.all_day:
        when = tr.plain("slip.appointment.all_day", date=when)
    rows = [
        (tr.plain("slip.appointment.when"), when, "B"),
        (tr.plain("slip.appointment.service"), _clean(appt.service), ""),
    ]
    if _clean(appt.department):
        rows.append((tr.plain("slip.target.department"), _clean(appt.department), ""))
    if _clean(appt.bring):
        rows.append((tr.plain("slip.appointment.bring"), _clean(appt.bring), ""))
    return rows


def _appointment(pdf: _Slip, tr: Translator, appt: SlipAppointment) -> None:
    """The full-width "Appointment" box, kept in one piece (a new page when it would not
    fit). The fill is drawn before the text (see :func:`_ink`), so its height is measured
    first."""
    x = MARGIN + APPT_EDGE_W + BOX_PAD
    width = CONTENT_W - APPT_EDGE_W - 2 * BOX_PAD
    rows = _appointment_rows(tr, appt)
    heading = tr.plain("slip.section.appointment")
    height = 2 + 6 + sum(_row_height(pdf, width, *row) for row in rows) + 2.5
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
    top = pdf.get_y()
    pdf.set_fill_color(*APPT_FILL)
    pdf.rect(MARGIN, top, CONTENT_W, height, style="F")
    pdf.set_fill_color(*APPT_EDGE)
    pdf.rect(MARGIN, top, APPT_EDGE_W, height, style="F")
    pdf.set_xy(x, top + 2)
    _section(pdf, heading, width)
    for label, value, style in rows:
        _row(pdf, x, width, label, value, style)
    pdf.set_xy(MARGIN, top + height)


def _qr(pdf: _Slip, data: str, x: float, y: float, size: float) -> None:
    """A QR code of ``data`` (error correction M) as filled rectangles, quiet zone included."""
    qr = segno.make(data, error="m", boost_error=False, micro=False)
    matrix = qr.matrix
    border = 4
    modules = len(matrix) + 2 * border
    step = size / modules
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(x, y, size, size, style="F")
    pdf.set_fill_color(*BLACK)
    bleed = step * 0.04  # rows overlap a hair so a renderer's anti-aliasing leaves no seams
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            pdf.rect(
                x + (border + start) * step,
                y + (border + r) * step,
                (c - start) * step,
                step + (bleed if r + 1 < len(matrix) else 0),
                style="F",
            )


def _language_name(locale: str) -> str:
    return Translator(locale).plain("language.name")


def _version(
    pdf: _Slip,
    content: SlipFields,
    locale: str,
    qr_data: str,
    verify_url: str,
    locales: Sequence[str],
    appointment: SlipAppointment | None = None,
) -> None:
    """One complete slip in one language, starting on a new page."""
    tr = Translator(locale)
    pdf.tr = tr
    pdf.version_start = pdf.page_no() + 1  # no continuation header on this version's first page
    pdf.add_page()
    code = _clean(content.code)

    # Header: clinic, issue date.
    pdf.set_font(BASE, "B", 11)
    _ink(pdf, BLACK)
    pdf.cell(CONTENT_W * 0.6, 6, tr.plain("slip.clinic"), new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.set_font(BASE, "", 9)
    _ink(pdf, GREY)
    issued = f"{tr.plain('slip.issued_on')}: {_date(content.issued_on, locale)}"
    pdf.cell(CONTENT_W * 0.4, 6, issued, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf._rule()
    pdf.ln(3)

    # Title and the code.
    top = pdf.get_y()
    pdf.set_font(BASE, "B", 26)
    _ink(pdf, BLACK)
    pdf.cell(CONTENT_W * 0.5, 14, tr.plain("slip.title"), new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.set_xy(MARGIN + CONTENT_W * 0.4, top - 1)
    pdf.set_font(BASE, "", 8.5)
    _ink(pdf, GREY)
    pdf.cell(
        CONTENT_W * 0.6, 4, tr.plain("slip.code"), align="R", new_x=XPos.LEFT, new_y=YPos.NEXT
    )
    pdf.set_font(MONO, "B", 24)
    _ink(pdf, BLACK)
    pdf.cell(CONTENT_W * 0.6, 11, code, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(top + 16)

    # Urgency band.
    urgency = content.urgency if content.urgency in MSG_URGENCY else "routine"
    pdf.set_font(BASE, "B", 14)
    _box(pdf, tr.plain(MSG_URGENCY[urgency]), 8, URGENCY_COLOURS[urgency], (255, 255, 255))
    pdf.ln(5)

    # Left column: patient, doctor, target. Right column: the QR code.
    col_top = pdf.get_y()
    qr_x = PAGE_W - MARGIN - QR_SIZE
    _qr(pdf, qr_data, qr_x, col_top, QR_SIZE)
    pdf.set_xy(qr_x, col_top + QR_SIZE)
    pdf.set_font(BASE, "B", 9)
    _ink(pdf, BLACK)
    caption = tr.plain("slip.qr_caption")
    pdf.multi_cell(QR_SIZE, 4.5, caption, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(MONO, "B", 10)
    pdf.cell(QR_SIZE, 5, code, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    qr_end = pdf.get_y()

    pdf.set_xy(MARGIN, col_top)
    sex = _clean(content.sex)
    birth_year = _clean(content.birth_year)
    _section(pdf, tr.plain("slip.section.patient"), LEFT_W)
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.patient.name"), _clean(content.patient_name))
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.patient.birth_year"), birth_year)
    _row(
        pdf,
        MARGIN,
        LEFT_W,
        tr.plain("slip.patient.sex"),
        tr.plain(MSG_SEX[sex]) if sex in MSG_SEX else sex,
    )
    pdf.ln(2.5)
    _section(pdf, tr.plain("slip.section.doctor"), LEFT_W)
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.doctor.name"), _clean(content.doctor_name))
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.doctor.title"), _clean(content.doctor_title))
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.doctor.licence"), _clean(content.doctor_licence))
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.doctor.hospital"), _clean(content.doctor_hospital))
    pdf.ln(2.5)
    _section(pdf, tr.plain("slip.section.target"), LEFT_W)
    _row(pdf, MARGIN, LEFT_W, tr.plain("slip.target.hospital"), _clean(content.target_hospital))
    _row(
        pdf, MARGIN, LEFT_W, tr.plain("slip.target.department"), _clean(content.target_department)
    )
    pdf.set_y(max(pdf.get_y(), qr_end) + 3)

    # The booked hospital appointment, when there is one.
    if appointment is not None:
        _appointment(pdf, tr, appointment)
        pdf.ln(3)

    # Dates.
    pdf._rule()
    pdf.ln(1)
    half = CONTENT_W / 2
    for i, (msgid, day) in enumerate(
        (("slip.issued_on", content.issued_on), ("slip.valid_until", content.valid_until))
    ):
        pdf.set_font(BASE, "", 9)
        _ink(pdf, GREY)
        pdf.cell(LABEL_W, 7, tr.plain(msgid), new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.set_font(BASE, "B", 11.5)
        _ink(pdf, BLACK)
        last = i == 1
        pdf.cell(
            half - LABEL_W,
            7,
            _date(day, locale),
            new_x=XPos.LMARGIN if last else XPos.RIGHT,
            new_y=YPos.NEXT if last else YPos.TOP,
        )
    pdf._rule()
    pdf.ln(3)

    # Reason and findings (the findings may flow onto the next page).
    for title, text, empty in (
        (tr.plain("slip.section.reason"), _clean(content.reason), MISSING),
        (
            tr.plain("slip.section.findings"),
            _clean(content.findings),
            tr.plain("slip.findings.none"),
        ),
    ):
        _section(pdf, title, CONTENT_W)
        pdf.set_font(BASE, "", 10.5)
        _ink(pdf, BLACK)
        body = text or empty
        pdf.multi_cell(
            CONTENT_W,
            5.5,
            body,
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=_wrap(body),
        )
        pdf.ln(3)

    # For the desk: how to check the slip.
    check = tr.plain("slip.check", url=verify_url, code=code)
    signed = tr.plain("slip.signed")
    bilingual = (
        tr.plain(
            "slip.bilingual",
            first=_language_name(locales[0]),
            second=_language_name(locales[1]),
        )
        if len(locales) == 2
        else ""
    )
    desk = "\n".join(t for t in (check, signed, bilingual) if t)
    heading = tr.plain("slip.section.check")
    pdf.set_font(BASE, "", 9.5)
    height = _box_height(pdf, desk, 5) + 6
    # Keep the desk box in one piece: start a new page when it would not fit.
    if pdf.get_y() + height + 1 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.ln(1)
    top = pdf.get_y()
    pdf.set_fill_color(*DESK_FILL)
    pdf.rect(MARGIN, top, CONTENT_W, height, style="F")
    pdf.set_xy(MARGIN + BOX_PAD, top + 2)
    pdf.set_font(BASE, "B", 10)
    _ink(pdf, BLACK)
    pdf.cell(CONTENT_W - 2 * BOX_PAD, 6, heading, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(BASE, "", 9.5)
    pdf.multi_cell(
        CONTENT_W - 2 * BOX_PAD,
        5,
        desk,
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
        wrapmode=_wrap(desk),
    )
    pdf.set_y(top + height)


def _locales(content: SlipFields) -> list[str]:
    first = normalize_locale(content.locale)
    if not content.hospital_locale:
        return [first]
    second = normalize_locale(content.hospital_locale, default=first)
    return [first] if second == first else [first, second]


def _texts(
    content: SlipFields,
    locales: Sequence[str],
    verify_url: str,
    appointment: SlipAppointment | None = None,
) -> list[str]:
    """Everything the slip will print (for the font check)."""
    fields = (
        content.code,
        content.patient_name,
        content.birth_year,
        content.doctor_name,
        content.doctor_title,
        content.doctor_licence,
        content.doctor_hospital,
        content.target_hospital,
        content.target_department,
        content.reason,
        content.findings,
        verify_url,
    )
    out = [_clean(f) for f in fields]
    for loc in locales:
        tr = Translator(loc)
        out += [tr.plain("slip.clinic"), tr.plain("slip.title"), tr.plain("slip.check")]
        out += [_date(content.issued_on, loc), _date(content.valid_until, loc)]
        out += [_language_name(loc)]
    if appointment is not None:
        out += [appointment.when, appointment.service, appointment.department, appointment.bring]
        for loc in locales:
            out += [label for label, _, _ in _appointment_rows(Translator(loc), appointment)]
            out += [Translator(loc).plain("slip.section.appointment")]
    return out


def _usable(text: str, fonts: frozenset[int]) -> str:
    return "".join(ch if not _printable(ch) or ord(ch) in fonts else REPLACEMENT for ch in text)


class _Content:
    """The content with every text field cleaned to what the fonts can draw."""

    def __init__(self, content: SlipFields, fonts: frozenset[int]) -> None:
        self._content = content
        self._fonts = fonts

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._content, name)
        if isinstance(value, str):
            return _usable(value, self._fonts)
        return value


def qr_payload(verify_url: str, token: str) -> str:
    """What the QR carries: the slip's verify page with the token as ``?t=`` (the page checks
    the token a phone scan brings; ``flows.referrals.token_from_text`` reads it back)."""
    return f"{verify_url}{'&' if '?' in verify_url else '?'}t={token}"


def render_slip(
    content: SlipFields,
    token: str,
    verify_url: str,
    appointment: SlipAppointment | None = None,
) -> bytes:
    """The slip's PDF bytes: one page, or more when the findings are long or a second language
    is printed. The QR carries :func:`qr_payload` (``verify_url?t=token``). With
    ``appointment`` each version shows the booked hospital appointment; without it the bytes
    are those of a slip rendered before appointments existed. Raises :class:`SlipError` when
    a needed font is missing or unreadable."""
    fonts = _base_fonts()
    locales = _locales(content)
    base_cmap = _cmap(str(fonts["regular"]))
    cjk_path: Path | None = None
    if _needs_cjk(_texts(content, locales, verify_url, appointment), base_cmap):
        cjk_path = find_cjk_font()
        needs_chinese = "zh_Hans" in locales or any(
            _is_cjk(t) for t in _texts(content, [], verify_url, appointment)
        )
        if cjk_path is None and needs_chinese:
            raise SlipError(
                "slip.error.no_cjk_font",
                f"no CJK font: set {CJK_FONT_ENV} or install fonts-droid-fallback",
            )
    drawable = base_cmap | (_cmap(str(cjk_path)) if cjk_path else frozenset())

    pdf = _Slip(_clean(content.code))
    try:
        pdf.add_font(BASE, "", fonts["regular"])
        pdf.add_font(BASE, "B", fonts["bold"])
        pdf.add_font(MONO, "B", fonts["mono"])
        if cjk_path is not None:
            pdf.add_font(CJK, "", cjk_path)
            pdf.set_fallback_fonts([CJK], exact_match=False)
    except (OSError, FPDFException, TTLibError, AssertionError) as exc:
        raise SlipError("slip.error.font", f"cannot load a font: {type(exc).__name__}") from None

    first_tr = Translator(locales[0])
    title = f"{first_tr.plain('slip.title')} {_clean(content.code)}"
    pdf.set_title(_usable(title, drawable))
    pdf.set_author(_usable(first_tr.plain("slip.clinic"), drawable))
    pdf.set_creator("Careline")
    pdf.set_producer("Careline")
    pdf.set_lang(locales[0].replace("_", "-"))
    pdf.set_creation_date(datetime.combine(content.issued_on, time(0), tzinfo=UTC))

    shown = cast(SlipFields, _Content(content, drawable))
    shown_appt = (
        None
        if appointment is None
        else replace(
            appointment,
            when=_usable(appointment.when, drawable),
            service=_usable(appointment.service, drawable),
            department=_usable(appointment.department, drawable),
            bring=_usable(appointment.bring, drawable),
        )
    )
    qr_data = qr_payload(verify_url, token)
    for loc in locales:
        _version(pdf, shown, loc, qr_data, _usable(verify_url, drawable), locales, shown_appt)
    return bytes(pdf.output())
