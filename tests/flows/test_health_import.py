"""Imports from a file: an Apple Health export.xml (alone or in its export.zip) or a CSV is read
as a stream into normalised readings, with a count of refused rows by reason and of rows of
kinds not read; a file unusable as a whole (unsafe, malformed, unknown, too big) raises
ImportFileError with a stable reason, and a 30 MB export is read in flat memory."""

from __future__ import annotations

import codecs
import html
import io
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from flows import health_import
from flows.health_import import (
    CSV_COLUMNS,
    DEFAULT_LIMIT,
    MAX_CSV_LINE,
    ImportFileError,
    ImportResult,
    parse_stream,
    sniff,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

NOW = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
START = "2024-03-05 08:31:00 +0100"  # 07:31 UTC
TAKEN = datetime(2024, 3, 5, 7, 31, tzinfo=UTC)
HK = "HKQuantityTypeIdentifier"
# The shape of a genuine export's prolog: an internal DTD with ELEMENT and ATTLIST, no entities.
PROLOG = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 14 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  startDate     CDATA #REQUIRED
  value         CDATA #IMPLIED
>
]>
"""


escape = html.escape


def record(kind: str, value: str, unit: str, start: str = START, body: str = "") -> str:
    """One <Record> as Apple writes it (``kind`` without the HK prefix)."""
    attrs = (
        f'type="{HK}{kind}" sourceName="Anna’s iPhone" sourceVersion="17.3" unit="{escape(unit)}" '
        f'creationDate="{start}" startDate="{start}" endDate="{start}" value="{escape(value)}"'
    )
    return f"<Record {attrs}>{body}</Record>" if body else f"<Record {attrs}/>"


def pressure(*sides: tuple[str, str], start: str = START) -> str:
    """A blood-pressure <Correlation> holding a record per (side, value)."""
    records = "".join(
        record(f"BloodPressure{side}", value, "mmHg", start) for side, value in sides
    )
    return (
        f'<Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Health" '
        f'creationDate="{start}" startDate="{start}" endDate="{start}">'
        f'<MetadataEntry key="HKWasUserEntered" value="1"/>{records}</Correlation>'
    )


def export(*rows: str, prolog: str = PROLOG) -> bytes:
    body = "\n ".join(rows)
    return (
        f'{prolog}<HealthData locale="en_US">\n <ExportDate value="2024-03-05 12:00:00 +0100"/>\n'
        f' <Me HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale"/>\n'
        f" {body}\n</HealthData>\n"
    ).encode()


FULL = export(
    pressure(("Systolic", "150"), ("Diastolic", "95")),
    # Apple repeats the correlation's samples as top-level records: skipped, not counted twice.
    record("BloodPressureSystolic", "150", "mmHg"),
    record("BloodPressureDiastolic", "95", "mmHg"),
    record(
        "HeartRate",
        "72",
        "count/min",
        body='<MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="1"/>',
    ),
    record("BloodGlucose", "140", "mg/dL"),
    record("BloodGlucose", "6.35", "mmol<180.1558800000541>/L"),
    record("OxygenSaturation", "0.97", "%"),
    record("BodyMass", "154.3235835294143", "lb"),
    record("BodyTemperature", "98.6", "degF"),
    record("StepCount", "523", "count"),
    record("HeartRate", "400", "count/min"),
    record("BodyMass", "11", "st"),
    record("HeartRate", "70", "count/min", start="2024-03-05 13:30:00 +0100"),
    record("HeartRate", "70", "count/min", start="2022-03-05 08:31:00 +0100"),
    pressure(("Systolic", "120")),
    '<Workout workoutActivityType="HKWorkoutActivityTypeWalking" duration="30" '
    f'startDate="{START}" endDate="{START}"><WorkoutEvent type="HKWorkoutEventTypeSegment"/>'
    '<WorkoutRoute><FileReference path="/workout-routes/route_1.gpx"/></WorkoutRoute></Workout>',
)


def parse(
    data: bytes,
    kind: str = "apple_xml",
    progress: Callable[[int], None] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ImportResult:
    return parse_stream(io.BytesIO(data), kind, NOW, progress=progress, limit=limit)


def refused(data: bytes, kind: str = "apple_xml", limit: int = DEFAULT_LIMIT) -> ImportFileError:
    with pytest.raises(ImportFileError) as caught:
        parse(data, kind, limit=limit)
    return caught.value


def zipped(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- Apple Health ------------------------------------------------------------------------------


def test_apple_export_is_read_converted_and_counted() -> None:
    result = parse(FULL)

    got = [(r.kind, r.value, r.numbers, r.taken_at, r.index) for r in result.readings]
    assert got == [
        ("bp", "150/95", (150.0, 95.0), TAKEN, 0),
        ("pulse", "72", (72.0,), TAKEN, 3),
        ("glucose", "7.8", (7.8,), TAKEN, 4),  # 140 mg/dL / 18
        ("glucose", "6.4", (6.4,), TAKEN, 5),  # mmol<…>/L, half up
        ("spo2", "97", (97.0,), TAKEN, 6),  # Apple's fraction 0.97
        ("weight", "70.0", (70.0,), TAKEN, 7),  # pounds
        ("temperature", "37.0", (37.0,), TAKEN, 8),  # °F
    ]
    assert result.rejected == 5
    assert result.reasons == {"range": 1, "unit": 1, "future": 1, "too_old": 1, "no_value": 1}
    # The two top-level pressure records, the steps and the workout.
    assert result.skipped == 4
    assert len(result.readings) + result.rejected + result.skipped == 16
    assert result.readings[0].source_id == "ah|bp|2024-03-05T07:31:00+00:00|150/95"
    assert result.readings[1].source_id == "ah|pulse|2024-03-05T07:31:00+00:00|72"
    assert all(len(r.source_id) <= 200 for r in result.readings)


def test_identity_survives_a_new_time_zone_and_display_unit() -> None:
    first = parse(export(record("BodyMass", "154.3235835294143", "lb")))
    again = parse(export(record("BodyMass", "70", "kg", start="2024-03-05 10:31:00 +0300")))
    assert [r.source_id for r in first.readings] == [r.source_id for r in again.readings]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (record("HeartRate", "", "count/min"), "no_value"),
        (record("HeartRate", "NaN", "count/min"), "no_value"),
        (record("HeartRate", "1" * 40, "count/min"), "no_value"),
        (record("HeartRate", "72", "count/s"), "unit"),
        (record("OxygenSaturation", "97", "%"), "range"),  # a percentage, not Apple's fraction
        (record("BodyTemperature", "37", "degK"), "unit"),
        (record("HeartRate", "72", "count/min", start="2024-03-05 08:31:00"), "no_time"),
        (record("HeartRate", "72", "count/min", start="yesterday"), "no_time"),
        (record("HeartRate", "400", "count/min", start="yesterday"), "range"),  # value first
        (pressure(("Diastolic", "80")), "no_value"),
        (pressure(("Systolic", "80"), ("Diastolic", "90")), "range"),
        (pressure(("Systolic", "120"), ("Systolic", "121"), ("Diastolic", "80")), "ambiguous"),
        (
            pressure(("Systolic", "120"), ("Diastolic", "80"), start="2099-01-01 00:00:00 +0000"),
            "future",
        ),
    ],
)
def test_apple_rows_refused_with_a_reason(row: str, reason: str) -> None:
    result = parse(export(row))
    assert (result.readings, result.rejected, dict(result.reasons)) == ([], 1, {reason: 1})


def test_export_zip_is_read_from_its_member() -> None:
    data = zipped(
        {
            "apple_health_export/export_cda.xml": b"<ClinicalDocument/>",
            "apple_health_export/workout-routes/route_1.gpx": b"<gpx/>",
            "apple_health_export/export.xml": FULL,
        }
    )
    assert parse(data, "apple_zip") == parse(FULL)
    # A localised folder name still finds export.xml.
    assert parse(zipped({"Export/export.xml": FULL}), "apple_zip") == parse(FULL)


@pytest.mark.parametrize(
    "data",
    [
        zipped({"apple_health_export/export_cda.xml": b"<ClinicalDocument/>"}),
        zipped({"__MACOSX/apple_health_export/export.xml": b"\x00\x05"}),
        b"PK\x03\x04 not really a zip",
        b"",
        zipped({"apple_health_export/export.xml": FULL})[:200],
    ],
)
def test_unreadable_zip_is_bad_zip(data: bytes) -> None:
    assert refused(data, "apple_zip").reason == "bad_zip"


def test_zip_bomb_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_import, "MAX_UNZIPPED", len(FULL) - 1)
    error = refused(zipped({"apple_health_export/export.xml": FULL}), "apple_zip")
    assert (error.reason, error.detail) == (
        "bad_zip",
        "apple_health_export/export.xml unpacks to more than 2 GiB",
    )


def test_damaged_zip_member_is_bad_zip() -> None:
    data = bytearray(zipped({"apple_health_export/export.xml": FULL}, zipfile.ZIP_STORED))
    at = data.index(b'value="523"')
    data[at + 7] = ord("9")  # still well-formed XML, but the CRC no longer matches
    assert refused(bytes(data), "apple_zip").reason == "bad_zip"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE HealthData [
<!ENTITY lol "lol">
<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<HealthData><Record type="HKQuantityTypeIdentifierHeartRate" value="&lol2;"/></HealthData>
"""


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        # Past the first 4 KB of the DTD, where a check of the head would not look.
        BILLION_LAUGHS.replace(b"<!ENTITY lol ", b"<!-- " + b"x" * 8000 + b" -->\n<!ENTITY lol "),
        # In UTF-16, where a byte search for "<!ENTITY" finds nothing.
        BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16"),
        b'<?xml version="1.0"?><!DOCTYPE HealthData [<!ENTITY % p "x">]><HealthData/>',
        b'<!DOCTYPE HealthData [<!ENTITY e SYSTEM "file:///etc/passwd">]><HealthData>&e;</HealthData>',
        b'<!DOCTYPE HealthData SYSTEM "http://example.invalid/health.dtd"><HealthData/>',
    ],
)
def test_entities_and_external_dtds_are_unsafe(data: bytes) -> None:
    assert refused(data).reason == "unsafe_xml"
    assert refused(zipped({"apple_health_export/export.xml": data}), "apple_zip").reason == (
        "unsafe_xml"
    )


@pytest.mark.parametrize(
    "data",
    [
        FULL[: len(FULL) // 2],
        FULL[:40],  # inside the DTD
        b"",
        b"not xml at all",
        FULL.replace(b"<Workout", b"<Workout <"),
        b"<!-- " + b"x" * (2 * 1024 * 1024) + b" --><HealthData/>",
    ],
)
def test_malformed_or_truncated_xml_is_bad_xml(data: bytes) -> None:
    assert refused(data).reason == "bad_xml"


def test_xml_that_is_not_a_health_export_is_unknown() -> None:
    data = b'<?xml version="1.0"?><feed><Record type="HKQuantityTypeIdentifierHeartRate"/></feed>'
    assert refused(data).reason == "unknown_format"
    assert refused(b"anything", "pdf").reason == "unknown_format"


def test_progress_every_thousand_rows_and_limit() -> None:
    steps = [record("StepCount", "10", "count")] * 2500
    beats = [record("HeartRate", "70", "count/min")] * 3
    old = [record("HeartRate", "70", "count/min", start="2020-01-01 00:00:00 +0000")] * 5
    data = export(*steps, *old, *beats)
    calls: list[int] = []
    result = parse(data, progress=calls.append, limit=3)
    assert calls == [1000, 2000]
    assert (len(result.readings), result.skipped, dict(result.reasons)) == (
        3,
        2500,
        {"too_old": 5},
    )
    error = refused(data, limit=2)
    assert (error.reason, str(error)) == (
        "too_many",
        "the file holds more than 2 readings; send a shorter one",
    )


class GeneratedStream(io.RawIOBase):
    """A raw byte stream produced chunk by chunk: never all in memory."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.produced += size
        return size


def big_export(size: int) -> Iterator[bytes]:
    step = record("StepCount", "523", "count", start="2024-03-04 09:00:00 +0100").replace(
        "/>",
        ' device="&lt;&lt;HKDevice: 0x283f1c2d0&gt;, name:iPhone, manufacturer:Apple Inc., '
        'model:iPhone, hardware:iPhone14,5, software:17.3&gt;"/>',
    )
    beat = record("HeartRate", "72", "count/min")
    block = ("\n ".join([step] * 999 + [beat]) + "\n ").encode()
    head, tail = export("<!--rows-->").split(b"<!--rows-->")
    yield head
    for _ in range(size // len(block) + 1):
        yield block
    yield tail


def test_a_30_mb_export_streams_in_flat_memory() -> None:
    raw = GeneratedStream(big_export(30_000_000))
    tracemalloc.start()
    try:
        result = parse_stream(io.BufferedReader(raw), "apple_xml", NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raw.produced > 30_000_000
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB"
    assert len(result.readings) > 70 and result.skipped > 70_000 and result.rejected == 0


# --- CSV ---------------------------------------------------------------------------------------


CSV = """Time,Systolic,Diastolic,Pulse,Glucose_mmol,Weight_KG,SpO2,temp_c,Notes
2024-03-05T07:31:00Z,150,95,72,,,,,after coffee
2024-03-05T08:31:00+01:00,,,,7.85,70.04,97,36.6,
2024-03-05T09:00:00,120,80,,,,,,naive time
2024-03-05T09:30:00Z,120,,400,,,,,
2024-03-05T09:40:00Z,,,,,,,,only a note

,,,,,,,,
2023-01-01T00:00:00Z,,,,,,,,
"""


def test_csv_is_read_by_column() -> None:
    result = parse(CSV.encode(), "csv")
    got = [(r.kind, r.value, r.taken_at, r.index) for r in result.readings]
    assert got == [
        ("bp", "150/95", TAKEN, 0),
        ("pulse", "72", TAKEN, 0),
        ("glucose", "7.9", TAKEN, 1),
        ("weight", "70.0", TAKEN, 1),
        ("spo2", "97", TAKEN, 1),
        ("temperature", "36.6", TAKEN, 1),
    ]
    assert result.readings[0].source_id == "csv|bp|2024-03-05T07:31:00+00:00|150/95"
    assert (result.rejected, result.skipped) == (3, 0)
    assert result.reasons == {"no_time": 1, "no_value": 1, "range": 1}


def test_csv_other_units_semicolons_and_decimal_commas() -> None:
    text = (
        "Date;glucose_mg_dl;weight_lb;Temperature F;heart-rate\r\n"
        '2024-03-05T07:31:00Z;140;154,3235835294143;98,6;"71,6"\r\n'
    )
    result = parse(codecs.BOM_UTF8 + text.encode(), "csv")
    assert [(r.kind, r.value) for r in result.readings] == [
        ("glucose", "7.8"),
        ("weight", "70.0"),
        ("temperature", "37.0"),
        ("pulse", "72"),
    ]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("time,steps,notes\n2024-03-05T07:31:00Z,100,x\n", "no value column"),
        ("pulse,spo2\n72,97\n", "no time column"),
        ("time,systolic,pulse\n2024-03-05T07:31:00Z,120,70\n", "systolic and diastolic"),
        ("", "empty"),
        ("time,pulse\n" + "7" * (MAX_CSV_LINE + 10) + "\n", "longer than"),
        # One quoted field over many short lines, past csv's field size limit.
        ('time,pulse\n2024-03-05T07:31:00Z,"' + ("7" * 1000 + "\n") * 200 + '"\n', "CSV"),
    ],
)
def test_unusable_csv_is_bad_csv(text: str, detail: str) -> None:
    error = refused(text.encode(), "csv")
    assert error.reason == "bad_csv"
    assert detail in error.detail


def test_bad_csv_lists_the_accepted_columns_and_refuses_other_encodings() -> None:
    error = refused(b"time,steps\n", "csv")
    assert "systolic+diastolic" in error.detail
    assert all(name in error.detail for name in CSV_COLUMNS)
    assert refused("time,pulse\n2024-03-05T07:31:00Z,72 ±\n".encode("latin-1"), "csv").reason == (
        "bad_csv"
    )


def test_csv_progress_limit_and_the_callers_stream_stays_open() -> None:
    rows = "".join(f"2024-03-05T07:{n % 60:02d}:00Z,{60 + n % 40}\n" for n in range(2500))
    stream = io.BytesIO(("time,pulse\n" + rows).encode())
    calls: list[int] = []
    result = parse_stream(stream, "csv", NOW, progress=calls.append)
    assert (calls, len(result.readings), stream.closed) == ([1000, 2000], 2500, False)
    assert refused(("time,pulse\n" + rows).encode(), "csv", limit=2499).reason == "too_many"


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "name", "kind"),
    [
        (FULL[:4096], None, "apple_xml"),
        (codecs.BOM_UTF8 + b"\n" + FULL[:4096], "upload.bin", "apple_xml"),
        (b'<?xml version="1.0"?><note/>', None, "unknown"),
        (b'<?xml version="1.0"?><note/>', "export.xml", "apple_xml"),
        (zipped({"apple_health_export/export.xml": FULL})[:4096], None, "apple_zip"),
        (zipped({"x": b""})[:4096], "readings.csv", "apple_zip"),  # the content decides
        (CSV.encode()[:100], None, "csv"),
        (codecs.BOM_UTF8 + b"Date;Pulse\r\n2024-03-05T07:31:00Z;72", None, "csv"),
        (b"pulse,spo2\n72,97\n", "readings.CSV", "csv"),
        (b"pulse,spo2\n72,97\n", None, "unknown"),
        (b"Zeit,Puls\n" + "é".encode()[:1], "a.csv", "csv"),  # a cut character
        (b"%PDF-1.7\n\xff\xfe", "scan.pdf", "unknown"),
        (b"", None, "unknown"),
    ],
)
def test_sniff(head: bytes, name: str | None, kind: str) -> None:
    assert sniff(head, name) == kind


def test_sniffed_kind_parses() -> None:
    for data in (FULL, zipped({"apple_health_export/export.xml": FULL}), CSV.encode()):
        stream = io.BytesIO(data)
        kind = sniff(stream.read(4096), "upload")
        stream.seek(0)
        assert parse_stream(stream, kind, NOW + timedelta(minutes=1)).readings
