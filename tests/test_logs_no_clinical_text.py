"""Nothing clinical reaches the logs, at any level (docs/SECURITY.md, "Logs").

The bot's logging is set up as ``log_level=DEBUG`` would (``bot.logging.setup_logging``), and a
second handler on the root logger keeps every record that reaches it, third-party ones
included. Referral slips are rendered in English, Chinese and Russian (and one in two
languages) with distinctive findings; the captured log — both the JSON lines and the raw
records with their arguments — is then byte-searched for the findings, each of their
characters beyond ASCII, and the names the embedded fonts give those characters' glyphs
(fontTools' subsetter listed them at INFO: a Chinese slip could be read back from the log).
The same for a value passed through the SQLite driver, which logged every statement with its
parameters at DEBUG.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from sqlalchemy import text

from bot.logging import setup_logging
from flows import slip
from flows.referrals import SlipContent
from storage.db import make_engine

FINDINGS = "Patient Zhao Fictive 胸痛三天 боль в груди"
WORDS = ("Patient Zhao Fictive", "Zhao Fictive", "胸痛三天", "боль в груди", "боль", "груди")

needs_cjk = pytest.mark.skipif(
    slip.find_cjk_font() is None,
    reason="no CJK font: install Debian's fonts-droid-fallback (.ci/test does)",
)


class _Keep(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Captured:
    """What the bot's own handler wrote and every record the root logger passed on."""

    stream: io.StringIO
    keep: _Keep
    notes: list[str] = field(default_factory=list)

    def haystack(self) -> bytes:
        """All of it as bytes: the JSON lines, and each record's name, message, raw arguments
        and extra attributes (in case a formatter elsewhere printed them)."""
        parts = [self.stream.getvalue()]
        for r in self.keep.records:
            parts.append(f"{r.name} {r.levelname} {r.msg!r} {r.args!r} {vars(r)!r}")
            try:
                parts.append(r.getMessage())
            except (TypeError, ValueError):  # a record whose arguments do not fit its message
                parts.append(str(r.msg))
        return "\n".join(parts).encode("utf-8")


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Logging as the bot sets it up at DEBUG, plus a keep-everything handler on the root;
    the previous logging configuration is put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_levels = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    keep = _Keep()
    root.addHandler(keep)
    try:
        yield Captured(stream, keep)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, lg in logging.root.manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.setLevel(saved_levels.get(name, logging.NOTSET))


def _needles(fonts: list[Path]) -> list[bytes]:
    """The findings' words, each non-ASCII character (as UTF-8 and as a \\u escape), and the
    glyph names the fonts give those characters (e.g. ``uni80F8`` for 胸)."""
    chars = sorted({ch for ch in FINDINGS if ord(ch) > 127 and not ch.isspace()})
    out = [w.encode("utf-8") for w in WORDS]
    out += [ch.encode("utf-8") for ch in chars]
    out += [json.dumps(ch).strip('"').encode("ascii") for ch in chars]  # "\u80f8"
    names: set[str] = set()
    for path in fonts:
        font = TTFont(str(path), fontNumber=0, lazy=True)
        cmap = font.getBestCmap() or {}
        names.update(cmap[ord(ch)] for ch in chars if ord(ch) in cmap)
        font.close()
    assert {"uni80F8", "uni0431"} <= names, names  # the CJK font and DejaVu were both read
    out += [n.encode("ascii") for n in sorted(names)]
    return out


def _hits(haystack: bytes, needles: list[bytes]) -> list[str]:
    low = haystack.lower()
    return [n.decode() for n in needles if n in haystack or n.lower() in low]


def _slip(locale: str, hospital_locale: str | None = None) -> SlipContent:
    return SlipContent(
        code="K7Q-4M9-XDA",
        patient_name="Patient Zhao Fictive",
        birth_year="1984",
        sex="female",
        doctor_name="Dr. Pat Sample",
        doctor_title="General practitioner",
        doctor_licence="GP-2020-004512",
        doctor_hospital="Careline online clinic",
        target_hospital="Riverside General Hospital",
        target_department="Cardiology",
        reason="Chest pain on exertion",
        urgency="within_24h",
        findings=FINDINGS,
        issued_on=date(2026, 3, 12),
        valid_until=date(2026, 4, 11),
        locale=locale,
        hospital_locale=hospital_locale,
    )


@needs_cjk
def test_referral_slips_leave_no_findings_or_glyph_names_in_the_log(captured: Captured) -> None:
    """Slips in en, zh_Hans, ru (and en + zh_Hans) rendered at DEBUG: 0 hits."""
    for locale, other in (("en", None), ("zh_Hans", None), ("ru", None), ("en", "zh_Hans")):
        pdf = slip.render_slip(_slip(locale, other), "token", "https://clinic.example/r/K7Q")
        assert pdf.startswith(b"%PDF")
    # The keep-everything handler does see third-party records that pass the cap.
    logging.getLogger("fontTools.subset").warning("sentinel-from-fonttools")
    haystack = captured.haystack()
    assert b"sentinel-from-fonttools" in haystack
    fonts = [*slip._base_fonts().values(), slip.find_cjk_font()]
    needles = _needles([f for f in fonts if f is not None])
    assert _hits(haystack, needles) == []
    # Nothing from the font and PDF libraries below WARNING was even created.
    chatty = [
        (r.name, r.levelname)
        for r in captured.keep.records
        if r.levelno < logging.WARNING and r.name.split(".")[0] in ("fontTools", "fpdf", "PIL")
    ]
    assert chatty == []


async def test_sql_parameters_leave_no_trace_in_the_log(
    captured: Captured, tmp_path: Path
) -> None:
    """A value bound into a statement through aiosqlite at DEBUG: 0 hits."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT :v"), {"v": FINDINGS}) == FINDINGS
    finally:
        await engine.dispose()
    needles = [w.encode("utf-8") for w in WORDS]
    assert _hits(captured.haystack(), needles) == []


def test_a_capped_library_turning_a_child_logger_up_still_writes_nothing(
    captured: Captured,
) -> None:
    """fontTools' own command line turns ``fontTools.subset.timer`` up to DEBUG; the bot's
    handler still drops what it logs below WARNING."""
    child = logging.getLogger("fontTools.subset.timer")
    saved = child.level
    child.setLevel(logging.DEBUG)
    try:
        child.debug("Glyph names: %s", ["uni80F8"])
        child.warning("a warning still gets through")
    finally:
        child.setLevel(saved)
    written = captured.stream.getvalue()
    assert "uni80F8" not in written
    assert "a warning still gets through" in written
