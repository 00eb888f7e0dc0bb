"""Readings a patient imports from a file: an Apple Health ``export.xml``, the ``export.zip`` that
holds it (``apple_health_export/export.xml``), or a CSV. :func:`sniff` tells the three apart from
the first bytes; :func:`parse_stream` reads one as a stream, so an export of hundreds of MB never
sits in memory, and returns an :class:`ImportResult`. A file unusable as a whole raises
:class:`ImportFileError` with a stable ``reason``.

Every value goes through the rules of :mod:`flows.fhir_readings`: the same kinds, unit
conversions (:data:`~flows.fhir_readings.UNITS`), ranges, rounding and canonical value text, and
the same time window (at most :data:`~flows.fhir_readings.FUTURE_SLACK` ahead of ``now``, at most
:data:`~flows.fhir_readings.MAX_AGE` old). A value is checked before its time, and refused for
the first problem, with one of these reasons: ``no_value``, ``ambiguous`` (a blood-pressure
correlation with two systolic or two diastolic samples), ``unit``, ``range``, ``no_time``,
``future``, ``too_old``. Older history is refused, not imported: ``reasons["too_old"]`` says how
much.

Apple Health. Each child of ``<HealthData>`` is a row (``ExportDate`` and ``Me`` are not rows):
a ``<Record>`` of heart rate, blood glucose, body mass, oxygen saturation (Apple stores a fraction
under unit ``%``: 0.97 is 97 %) or body temperature is read; blood pressure is read only from
``<Correlation type="HKCorrelationTypeIdentifierBloodPressure">`` (its systolic and diastolic
records, at the correlation's ``startDate``). Apple lists the same systolic and diastolic samples
again as top-level records; those count as skipped, so no pressure is counted twice. Every other
row (steps, workouts, food correlations, …) is skipped. ``readings + rejected + skipped`` is the
number of rows.

Safety. Genuine exports start with an internal DTD (``<!DOCTYPE HealthData [<!ELEMENT …>
<!ATTLIST …>]>``), so a DOCTYPE alone is not refused: expat reads the prolog first and the file
is refused ``unsafe_xml`` if it declares any entity (billion laughs) or names an external DTD.
This holds whatever the encoding and however long the DTD, which a check of the first bytes
would not. Only then does ``iterparse`` read the body, clearing each row as it ends. An
``export.xml`` in a zip that declares more than :data:`MAX_UNZIPPED` bytes is refused unread.

CSV. A header row is required (names matched without regard to case; spaces and hyphens read as
``_``). It needs a time column (:data:`CSV_TIME`, the first one present is used), holding ISO 8601
times with ``Z`` or an offset (a naive time is ``no_time``), and one or more value columns
(:data:`CSV_COLUMNS`; ``systolic`` needs ``diastolic``). Unknown columns are ignored, empty cells
skipped without a count; each value group of a row (one column, or the systolic/diastolic pair)
is one reading or one rejection, so ``skipped`` stays 0. The delimiter is ``,``, ``;`` or a tab,
whichever the header line uses most; ``36,6`` is read as 36.6 (spreadsheets in many locales).

Identity. ``source_id`` is ``"ah|<kind>|<UTC time>|<value>"`` (Apple) or
``"csv|<kind>|<UTC time>|<value>"``, with the canonical value text (well under 200 characters):
importing the same export again, or a later one after a change of time zone or display unit,
gives the same ids, which the caller uses to drop repeats. ``index`` is the 0-based row.

``limit``: when a file holds more readings than ``limit``, :func:`parse_stream` raises
``ImportFileError("too_many")`` rather than import part of it; refused rows do not count toward
it. A truncated or malformed file raises as well: nothing is imported from it.

Pure parsing: no database and no bot."""

from __future__ import annotations

import codecs
import collections
import csv
import io
import itertools
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, BinaryIO, NoReturn
from xml.parsers import expat

from flows.fhir_readings import (
    FUTURE_SLACK,
    MAX_AGE,
    RANGES,
    UNITS,
    DeviceReading,
    _round,
)

FORMATS = ("apple_xml", "apple_zip", "csv")
DEFAULT_LIMIT = 200_000
PROGRESS_EVERY = 1000
ZIP_MEMBER = "apple_health_export/export.xml"
# export.xml may unpack to at most this (zipfile stops at the size the archive declares): a bomb
# is refused before it is read. Genuine exports compress about 15 to 25 times.
MAX_UNZIPPED = 2 * 1024**3
# The prolog (XML declaration, DTD, comments) read before the root element; Apple's is ~10 KB.
MAX_PROLOG = 1024 * 1024
_CHUNK = 64 * 1024
# A CSV line longer than this (in characters) is refused rather than read into memory.
MAX_CSV_LINE = 64 * 1024
# A blood-pressure correlation holds two records; one with more than this is refused.
_MAX_PARTS = 8
# Longer numeric text is not a measurement.
_MAX_NUMBER = 32

_Convert = Callable[[Decimal], Decimal]

APPLE_KINDS: dict[str, str] = {
    "HKQuantityTypeIdentifierHeartRate": "pulse",
    "HKQuantityTypeIdentifierBloodGlucose": "glucose",
    "HKQuantityTypeIdentifierBodyMass": "weight",
    "HKQuantityTypeIdentifierOxygenSaturation": "spo2",
    "HKQuantityTypeIdentifierBodyTemperature": "temperature",
}
APPLE_BP = "HKCorrelationTypeIdentifierBloodPressure"
APPLE_SYSTOLIC = "HKQuantityTypeIdentifierBloodPressureSystolic"
APPLE_DIASTOLIC = "HKQuantityTypeIdentifierBloodPressureDiastolic"
# kind -> unit as Apple writes it -> the unit's key in fhir_readings.UNITS. Blood glucose in
# mmol/L comes as "mmol<180.1558800000541>/L" (the molar mass annotated): see _apple_unit.
APPLE_UNITS: dict[str, dict[str, str]] = {
    "bp": {"mmHg": "mmHg"},
    "pulse": {"count/min": "/min"},
    "glucose": {"mg/dL": "mg/dL", "mmol/L": "mmol/L"},
    "weight": {"kg": "kg", "lb": "lb", "g": "g"},
    "spo2": {"%": "%"},
    "temperature": {"degC": "Cel", "degF": "[degF]"},
}
# HealthKit keeps a percentage as a fraction of 1.
_APPLE_SCALE = {"spo2": Decimal(100)}
# Children of <HealthData> that describe the export, not rows of data.
_NOT_ROWS = frozenset({"ExportDate", "Me"})

CSV_TIME = ("time", "date", "datetime", "timestamp", "effective")
# column -> (kind, unit key in fhir_readings.UNITS); systolic and diastolic make one bp group.
CSV_COLUMNS: dict[str, tuple[str, str]] = {
    "systolic": ("bp", "mmHg"),
    "diastolic": ("bp", "mmHg"),
    "pulse": ("pulse", "/min"),
    "heart_rate": ("pulse", "/min"),
    "hr": ("pulse", "/min"),
    "glucose_mmol": ("glucose", "mmol/L"),
    "glucose_mmol_l": ("glucose", "mmol/L"),
    "glucose_mgdl": ("glucose", "mg/dL"),
    "glucose_mg_dl": ("glucose", "mg/dL"),
    "weight_kg": ("weight", "kg"),
    "weight_lb": ("weight", "lb"),
    "spo2": ("spo2", "%"),
    "temperature_c": ("temperature", "Cel"),
    "temp_c": ("temperature", "Cel"),
    "temperature_f": ("temperature", "[degF]"),
    "temp_f": ("temperature", "[degF]"),
}


class ImportFileError(ValueError):
    """The file is unusable as a whole. ``reason`` is one of unknown_format, unsafe_xml, bad_xml,
    bad_zip, bad_csv, too_many; ``detail`` is a short English explanation."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class ImportResult:
    """The readings taken, in file order, and how many rows were refused (by reason) or skipped."""

    readings: list[DeviceReading] = field(default_factory=list)
    rejected: int = 0
    skipped: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse(reason: str) -> NoReturn:
    raise _Refused(reason)


# --- sniffing ---------------------------------------------------------------------------------


def _csv_header(text: str) -> list[str]:
    first = text.split("\n", 1)[0].rstrip("\r")
    return [_column(cell) for cell in next(csv.reader([first], delimiter=_delimiter(first)), [])]


def sniff(head: bytes, file_name: str | None) -> str:
    """``"apple_xml"``, ``"apple_zip"``, ``"csv"`` or ``"unknown"`` from the first bytes of a file
    (a few KB). The content decides; the file name only settles an XML or text file whose head
    does not show what it is."""
    name = (file_name or "").casefold()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "apple_zip"
    body = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if body.startswith(b"<"):
        if b"HealthData" in body or name.endswith(".xml"):
            return "apple_xml"
        return "unknown"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
    except UnicodeDecodeError:
        return "unknown"
    if not text or "\x00" in text:
        return "unknown"
    if any(cell in CSV_TIME for cell in _csv_header(text)) or name.endswith(".csv"):
        return "csv"
    return "unknown"


# --- values -----------------------------------------------------------------------------------


def _number(text: str | None) -> Decimal:
    text = (text or "").strip()
    if not text or len(text) > _MAX_NUMBER:
        _refuse("no_value")
    try:
        number = Decimal(text)
    except InvalidOperation:
        _refuse("no_value")
    if not number.is_finite():
        _refuse("no_value")
    return number


def _checked(value: Decimal, limits: str) -> Decimal:
    low, high = RANGES[limits]
    if not low <= value <= high:
        _refuse("range")
    return value


def _time(text: str | None, now: datetime) -> datetime:
    """An aware time (ISO 8601, or Apple's ``2024-03-05 08:31:00 +0100``) in UTC, in the window
    fhir_readings accepts."""
    if not text:
        _refuse("no_time")
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        _refuse("no_time")
    if at.tzinfo is None:
        _refuse("no_time")
    try:
        taken_at = at.astimezone(UTC)
    except OverflowError:
        _refuse("no_time")
    if taken_at > now + FUTURE_SLACK:
        _refuse("future")
    if taken_at < now - MAX_AGE:
        _refuse("too_old")
    return taken_at


def _single(
    kind: str, value: Decimal, when: str | None, now: datetime, origin: str, index: int
) -> DeviceReading:
    rounded = _round(_checked(value, kind), kind)
    taken_at = _time(when, now)
    text = str(rounded)
    source_id = f"{origin}|{kind}|{taken_at.isoformat()}|{text}"
    return DeviceReading(kind, text, (float(rounded),), taken_at, source_id, index)


def _pressure(
    systolic: Decimal, diastolic: Decimal, when: str | None, now: datetime, origin: str, index: int
) -> DeviceReading:
    high = _round(_checked(systolic, "systolic"), "bp")
    low = _round(_checked(diastolic, "diastolic"), "bp")
    if high <= low:
        _refuse("range")
    taken_at = _time(when, now)
    text = f"{high}/{low}"
    source_id = f"{origin}|bp|{taken_at.isoformat()}|{text}"
    return DeviceReading("bp", text, (float(high), float(low)), taken_at, source_id, index)


class _Tally:
    """What an import has found so far, with the limit and the progress callback."""

    def __init__(self, now: datetime, progress: Callable[[int], None] | None, limit: int) -> None:
        self.now = now
        self.progress = progress
        self.limit = limit
        self.result = ImportResult()
        self.rows = 0

    def take(self, reading: DeviceReading) -> None:
        if len(self.result.readings) >= self.limit:
            raise ImportFileError(
                "too_many", f"the file holds more than {self.limit} readings; send a shorter one"
            )
        self.result.readings.append(reading)

    def refuse(self, reason: str) -> None:
        self.result.rejected += 1
        self.result.reasons[reason] += 1

    def skip(self) -> None:
        self.result.skipped += 1

    def row_done(self) -> None:
        self.rows += 1
        if self.progress is not None and self.rows % PROGRESS_EVERY == 0:
            self.progress(self.rows)


# --- Apple Health XML -------------------------------------------------------------------------


def _apple_unit(kind: str, unit: str | None) -> _Convert:
    key = (unit or "").strip()
    if kind == "glucose" and key.startswith("mmol") and key.endswith("/L"):
        key = "mmol/L"
    target = APPLE_UNITS[kind].get(key)
    if target is None:
        _refuse("unit")
    return UNITS[kind][target]


def _apple_value(kind: str, attrib: dict[str, str]) -> Decimal:
    number = _number(attrib.get("value"))
    value = _apple_unit(kind, attrib.get("unit"))(number)
    return value * _APPLE_SCALE[kind] if kind in _APPLE_SCALE else value


def _apple_record(attrib: dict[str, str], now: datetime, index: int) -> DeviceReading | None:
    """The reading of a top-level Record, or None when its type is not read."""
    kind = APPLE_KINDS.get(attrib.get("type", ""))
    if kind is None:
        return None
    return _single(kind, _apple_value(kind, attrib), attrib.get("startDate"), now, "ah", index)


def _apple_pressure(
    attrib: dict[str, str], parts: list[dict[str, str]], now: datetime, index: int
) -> DeviceReading:
    systolic = [part for part in parts if part.get("type") == APPLE_SYSTOLIC]
    diastolic = [part for part in parts if part.get("type") == APPLE_DIASTOLIC]
    if len(parts) > _MAX_PARTS:
        _refuse("ambiguous")
    if not systolic or not diastolic:
        _refuse("no_value")
    if len(systolic) > 1 or len(diastolic) > 1:
        _refuse("ambiguous")
    high = _apple_value("bp", systolic[0])
    low = _apple_value("bp", diastolic[0])
    return _pressure(high, low, attrib.get("startDate"), now, "ah", index)


class _Unsafe(Exception):
    pass


class _RootReached(Exception):
    pass


def _prolog(stream: IO[bytes]) -> bytes:
    """The bytes up to and including the start of the root element, once expat has read them
    and found no entity declaration and no external DTD or entity."""

    def unsafe(*_: object) -> None:
        raise _Unsafe

    def external(*_: object) -> int:
        raise _Unsafe

    def doctype(_name: str, system_id: str | None, public_id: str | None, _subset: int) -> None:
        if system_id or public_id:
            raise _Unsafe

    def root(*_: object) -> None:
        raise _RootReached

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = unsafe
    parser.UnparsedEntityDeclHandler = unsafe
    parser.ExternalEntityRefHandler = external
    parser.StartElementHandler = root
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_CHUNK)
        chunks.append(chunk)
        size += len(chunk)
        try:
            parser.Parse(chunk, not chunk)
        except _RootReached:
            return b"".join(chunks)
        except _Unsafe:
            raise ImportFileError(
                "unsafe_xml", "the XML declares entities or an external DTD; refused"
            ) from None
        except expat.ExpatError as exc:
            raise ImportFileError("bad_xml", f"not well-formed XML: {exc}") from None
        if not chunk:
            raise ImportFileError("bad_xml", "no root element")
        if size > MAX_PROLOG:
            raise ImportFileError("bad_xml", "no root element in the first MiB")


class _Replay:
    """A byte stream: ``head`` first, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            data, self._head = self._head + self._stream.read(), b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        return data


def _parse_apple(stream: IO[bytes], tally: _Tally) -> None:
    source = _Replay(_prolog(stream), stream)
    stack: list[ET.Element] = []
    parts: list[dict[str, str]] = []
    try:
        # Entities and external DTDs were refused by _prolog, on the same bytes.
        for event, elem in ET.iterparse(source, events=("start", "end")):  # noqa: S314
            if event == "start":
                if not stack and elem.tag != "HealthData":
                    raise ImportFileError("unknown_format", "not an Apple Health export.xml")
                stack.append(elem)
                continue
            stack.pop()
            if not stack:
                return  # </HealthData>
            depth = len(stack)
            if depth == 1 and elem.tag not in _NOT_ROWS:
                _apple_row(elem, parts, tally)
                parts.clear()
            elif (
                depth == 2
                and elem.tag == "Record"
                and stack[1].tag == "Correlation"
                and len(parts) <= _MAX_PARTS
            ):
                parts.append(dict(elem.attrib))
            # A finished element goes, with its parent's list of children: memory stays flat.
            elem.clear()
            del stack[-1][:]
    except ET.ParseError as exc:
        raise ImportFileError("bad_xml", f"not well-formed XML: {exc}") from None


def _apple_row(elem: ET.Element, parts: list[dict[str, str]], tally: _Tally) -> None:
    index = tally.rows
    try:
        reading: DeviceReading | None = None
        if elem.tag == "Record":
            reading = _apple_record(elem.attrib, tally.now, index)
        elif elem.tag == "Correlation" and elem.get("type") == APPLE_BP:
            reading = _apple_pressure(elem.attrib, parts, tally.now, index)
        if reading is None:
            tally.skip()
        else:
            tally.take(reading)
    except _Refused as refused:
        tally.refuse(refused.reason)
    tally.row_done()


def _zip_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    candidates = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and info.filename.rsplit("/", 1)[-1].casefold() == "export.xml"
    ]
    for info in candidates:
        if info.filename == ZIP_MEMBER:
            return info
    if not candidates:
        raise ImportFileError("bad_zip", f"the archive has no {ZIP_MEMBER}")
    return candidates[0]


def _parse_zip(stream: IO[bytes], tally: _Tally) -> None:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # OSError: not seekable
        raise ImportFileError("bad_zip", f"not a readable zip archive: {exc}") from None
    with archive:
        info = _zip_member(archive)
        if info.file_size > MAX_UNZIPPED:
            raise ImportFileError("bad_zip", f"{info.filename} unpacks to more than 2 GiB")
        try:
            member = archive.open(info)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
            # RuntimeError: encrypted; NotImplementedError: an unknown compression method.
            raise ImportFileError("bad_zip", f"{info.filename} cannot be read: {exc}") from None
        with member:
            try:
                _parse_apple(member, tally)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # corrupt or cut short
                raise ImportFileError("bad_zip", f"{info.filename} is damaged: {exc}") from None


# --- CSV --------------------------------------------------------------------------------------


def _column(name: str) -> str:
    return name.strip().casefold().replace(" ", "_").replace("-", "_")


def _delimiter(line: str) -> str:
    return max((",", ";", "\t"), key=line.count)


def _lines(text: io.TextIOBase) -> Iterator[str]:
    while line := text.readline(MAX_CSV_LINE):
        if len(line) >= MAX_CSV_LINE and not line.endswith(("\n", "\r")):
            raise ImportFileError("bad_csv", f"a line is longer than {MAX_CSV_LINE} characters")
        yield line


def _accepted_columns() -> str:
    names = [name for name in CSV_COLUMNS if name not in ("systolic", "diastolic")]
    return "systolic+diastolic, " + ", ".join(names)


def _groups(header: list[str]) -> tuple[int, list[tuple[str, str, tuple[int, ...]]]]:
    """The time column, and each value group as (kind, unit key, column indexes)."""
    columns = [_column(name) for name in header]
    time_column = next((i for i, name in enumerate(columns) if name in CSV_TIME), None)
    if time_column is None:
        raise ImportFileError("bad_csv", f"no time column; name one of: {', '.join(CSV_TIME)}")
    groups: list[tuple[str, str, tuple[int, ...]]] = []
    sides: dict[str, int] = {}
    for i, name in enumerate(columns):
        sides.setdefault(name, i)
    if ("systolic" in sides) != ("diastolic" in sides):
        raise ImportFileError("bad_csv", "blood pressure needs both systolic and diastolic")
    if "systolic" in sides:
        groups.append(("bp", "mmHg", (sides["systolic"], sides["diastolic"])))
    for i, name in enumerate(columns):
        if name in CSV_COLUMNS and name not in ("systolic", "diastolic"):
            kind, unit = CSV_COLUMNS[name]
            groups.append((kind, unit, (i,)))
    if not groups:
        raise ImportFileError(
            "bad_csv", f"no value column; accepted columns: {_accepted_columns()}"
        )
    return time_column, groups


def _csv_number(text: str) -> Decimal:
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    return _number(text)


def _csv_row(
    row: list[str], time_column: int, groups: list[tuple[str, str, tuple[int, ...]]], tally: _Tally
) -> None:
    index = tally.rows
    when = row[time_column] if time_column < len(row) else ""
    for kind, unit, columns in groups:
        cells = [row[i].strip() if i < len(row) else "" for i in columns]
        if not any(cells):
            continue
        try:
            if not all(cells):
                _refuse("no_value")
            values = [UNITS[kind][unit](_csv_number(cell)) for cell in cells]
            if kind == "bp":
                reading = _pressure(values[0], values[1], when, tally.now, "csv", index)
            else:
                reading = _single(kind, values[0], when, tally.now, "csv", index)
            tally.take(reading)
        except _Refused as refused:
            tally.refuse(refused.reason)
    tally.row_done()


def _parse_csv(stream: IO[bytes], tally: _Tally) -> None:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        lines = _lines(text)
        first = next(lines, None)
        if first is None:
            raise ImportFileError("bad_csv", "the file is empty")
        reader = csv.reader(itertools.chain([first], lines), delimiter=_delimiter(first))
        time_column, groups = _groups(next(reader))
        for row in reader:
            if any(cell.strip() for cell in row):
                _csv_row(row, time_column, groups, tally)
    except UnicodeDecodeError:
        raise ImportFileError("bad_csv", "the file is not UTF-8 text") from None
    except csv.Error as exc:
        raise ImportFileError("bad_csv", f"not a readable CSV file: {exc}") from None
    finally:
        text.detach()  # the caller's stream stays open


# --- entry point ------------------------------------------------------------------------------


def parse_stream(
    stream: BinaryIO,
    kind: str,
    now: datetime,
    *,
    progress: Callable[[int], None] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ImportResult:
    """The readings in a file of ``kind`` (from :func:`sniff`), read from ``stream`` as it goes
    (a zip must be seekable). ``progress(rows)`` is called every :data:`PROGRESS_EVERY` rows
    read. Raises :class:`ImportFileError` when the file is unusable, unsafe, or holds more than
    ``limit`` readings. A naive ``now`` is taken as UTC."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    tally = _Tally(now, progress, limit)
    if kind == "apple_xml":
        _parse_apple(stream, tally)
    elif kind == "apple_zip":
        _parse_zip(stream, tally)
    elif kind == "csv":
        _parse_csv(stream, tally)
    else:
        raise ImportFileError(
            "unknown_format", "send an Apple Health export.xml or export.zip, or a CSV file"
        )
    return tally.result
