"""Device readings posted as FHIR R4: every accepted code and unit is normalised (mg/dL, pounds,
grams and °F converted), every refusal has its stable reason, a Bundle keeps the good entries
with their batch index, a body that is unusable as a whole raises PayloadError, and no JSON
shape makes parse() raise anything else."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from flows.fhir_readings import (
    KINDS,
    LOINC,
    MAX_ENTRIES,
    UCUM,
    DeviceReading,
    Parsed,
    PayloadError,
    Rejected,
    parse,
)

NOW = datetime(2024, 2, 29, 10, 0, tzinfo=UTC)
TAKEN = "2024-02-29T09:30:00Z"
REASONS = {
    "unknown_code",
    "unit",
    "range",
    "future",
    "too_old",
    "no_value",
    "no_time",
    "not_observation",
    "status",
    "bad_json",
}


def quantity(value: Any, unit: str | None) -> dict[str, Any]:
    """A UCUM valueQuantity (no unit at all when ``unit`` is None)."""
    if unit is None:
        return {"value": value}
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def observation(code: str, value: Any = 72, unit: str | None = "/min", **extra: Any) -> dict:
    """A final Observation with one LOINC code and a valueQuantity, taken half an hour ago."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": quantity(value, unit),
        "effectiveDateTime": TAKEN,
    } | extra


def component(code: str, value: Any, unit: str = "mm[Hg]") -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": quantity(value, unit),
    }


def blood_pressure(
    systolic: Any = 150, diastolic: Any = 95, *, code: str = "85354-9", unit: str = "mm[Hg]"
) -> dict[str, Any]:
    """A blood-pressure panel with its systolic and diastolic components."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "component": [component("8480-6", systolic, unit), component("8462-4", diastolic, unit)],
        "effectiveDateTime": TAKEN,
    }


def bundle(*entries: Any, kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def accepted(resource: dict[str, Any]) -> DeviceReading:
    parsed = parse(resource, NOW)
    assert parsed.rejected == []
    assert len(parsed.readings) == 1
    return parsed.readings[0]


def refused(resource: dict[str, Any]) -> Rejected:
    parsed = parse(resource, NOW)
    assert parsed.readings == []
    assert len(parsed.rejected) == 1
    return parsed.rejected[0]


# -- codes and units ---------------------------------------------------------------------------

CONVERSIONS = [
    # code, value, unit, kind, canonical text
    ("8867-4", 72, "/min", "pulse", "72"),
    ("8867-4", 71.5, "{beats}/min", "pulse", "72"),
    ("8867-4", 64, "bpm", "pulse", "64"),
    ("2339-0", 144, "mg/dL", "glucose", "8.0"),
    ("41653-7", 140, "mg/dL", "glucose", "7.8"),
    ("2345-7", 7.8, "mmol/L", "glucose", "7.8"),
    ("15074-8", 5.55, "mmol/L", "glucose", "5.6"),
    ("14749-6", 90, "mg/dL", "glucose", "5.0"),
    ("29463-7", 70.46, "kg", "weight", "70.5"),
    ("29463-7", 154, "[lb_av]", "weight", "69.9"),
    ("29463-7", 154, "lb", "weight", "69.9"),
    ("29463-7", 70500, "g", "weight", "70.5"),
    ("2708-6", 97, "%", "spo2", "97"),
    ("59408-5", 96.5, "%", "spo2", "97"),
    ("8310-5", 37.25, "Cel", "temperature", "37.3"),
    ("8310-5", 36.6, "°C", "temperature", "36.6"),
    ("8310-5", 98.6, "[degF]", "temperature", "37.0"),
    ("8310-5", 100.4, "°F", "temperature", "38.0"),
]


@pytest.mark.parametrize(("code", "value", "unit", "kind", "text"), CONVERSIONS)
def test_each_code_and_unit_is_normalised(
    code: str, value: float, unit: str, kind: str, text: str
) -> None:
    reading = accepted(observation(code, value, unit))
    assert (reading.kind, reading.value, reading.numbers) == (kind, text, (float(text),))
    assert reading.taken_at == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)
    assert reading.index == 0


def test_every_kind_and_code_is_covered() -> None:
    bp_codes = {"85354-9", "55284-4"}
    assert {row[3] for row in CONVERSIONS} | {"bp"} == set(KINDS)
    assert {row[0] for row in CONVERSIONS} | bp_codes == {
        "85354-9", "55284-4", "8867-4", "2339-0", "41653-7", "2345-7", "15074-8", "14749-6",
        "29463-7", "2708-6", "59408-5", "8310-5",
    }  # fmt: skip


@pytest.mark.parametrize("code", ["85354-9", "55284-4"])
@pytest.mark.parametrize("unit", ["mm[Hg]", "mmHg"])
def test_blood_pressure_panel(code: str, unit: str) -> None:
    reading = accepted(blood_pressure(150, 95, code=code, unit=unit))
    assert (reading.kind, reading.value, reading.numbers) == ("bp", "150/95", (150.0, 95.0))


def test_blood_pressure_rounds_half_up() -> None:
    reading = accepted(blood_pressure(120.5, 80.4))
    assert (reading.value, reading.numbers) == ("121/80", (121.0, 80.0))


def test_the_ucum_code_decides_over_the_unit_text() -> None:
    resource = observation("2339-0", 144, None)
    resource["valueQuantity"] |= {"system": UCUM, "code": "mg/dL", "unit": "mmol/L"}
    assert accepted(resource).value == "8.0"


def test_the_unit_text_decides_without_a_ucum_code() -> None:
    """HealthKitOnFHIR's text is "lbs" beside the UCUM code; an ISO/IEEE 11073 device sends its
    own code system, whose codes mean nothing here."""
    plain = observation("29463-7", 154, None)
    plain["valueQuantity"]["unit"] = "lbs"
    assert accepted(plain).value == "69.9"
    mdc = observation("8867-4", 72, None)
    mdc["valueQuantity"] |= {"system": "urn:iso:std:iso:11073:10101", "code": "264864"}
    mdc["valueQuantity"]["unit"] = "bpm"
    assert accepted(mdc).value == "72"


def test_units_match_without_regard_to_case() -> None:
    assert accepted(observation("2339-0", 144, "MG/DL")).value == "8.0"
    assert accepted(observation("8310-5", 37, "CEL")).value == "37.0"


def test_a_healthkit_coding_beside_the_loinc_one_is_ignored() -> None:
    resource = observation("8867-4")
    resource["code"]["coding"].insert(
        0,
        {
            "system": "http://developer.apple.com/documentation/healthkit",
            "code": "HKQuantityTypeIdentifierHeartRate",
        },
    )
    assert accepted(resource).kind == "pulse"


def test_amended_and_corrected_are_accepted() -> None:
    for status in ("amended", "corrected"):
        assert accepted(observation("8867-4", status=status)).value == "72"


def test_range_bounds_are_inclusive() -> None:
    assert accepted(observation("8867-4", 20)).value == "20"
    assert accepted(observation("8867-4", 300)).value == "300"
    assert accepted(observation("2708-6", 100, "%")).value == "100"
    assert accepted(observation("2339-0", 0.5, "mmol/L")).value == "0.5"
    assert accepted(blood_pressure(300, 200)).value == "300/200"


# -- time --------------------------------------------------------------------------------------


def test_offsets_become_utc() -> None:
    reading = accepted(observation("8867-4", effectiveDateTime="2024-02-29T11:30:00+02:00"))
    assert reading.taken_at == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)
    assert reading.taken_at.tzinfo is UTC


def test_period_start_then_issued() -> None:
    period = observation("8867-4", effectivePeriod={"start": "2024-02-29T08:00:00Z"})
    del period["effectiveDateTime"]
    assert accepted(period).taken_at == datetime(2024, 2, 29, 8, 0, tzinfo=UTC)
    issued = observation("8867-4", issued="2024-02-29T07:00:00.250+00:00")
    del issued["effectiveDateTime"]
    assert accepted(issued).taken_at == datetime(2024, 2, 29, 7, 0, 0, 250000, tzinfo=UTC)
    both = observation("8867-4", issued="2024-02-29T07:00:00Z")
    assert accepted(both).taken_at == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)


def test_clock_slack_and_age_limits() -> None:
    def at(delta: timedelta) -> dict[str, Any]:
        return observation("8867-4", effectiveDateTime=(NOW + delta).isoformat())

    assert accepted(at(timedelta(minutes=5))).taken_at == NOW + timedelta(minutes=5)
    assert refused(at(timedelta(minutes=5, seconds=1))).reason == "future"
    assert accepted(at(-timedelta(days=366))).taken_at == NOW - timedelta(days=366)
    assert refused(at(-timedelta(days=366, seconds=1))).reason == "too_old"


def test_a_naive_now_is_utc() -> None:
    assert parse(observation("8867-4"), NOW.replace(tzinfo=None)).readings[0].value == "72"
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert parse(observation("8867-4"), plus_two) == parse(observation("8867-4"), NOW)


# -- identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "source_id"),
    [
        (
            {
                "id": "obs-1",
                "identifier": [
                    {"system": "urn:omron", "value": "A17"},
                    {"system": "urn:other", "value": "B"},
                ],
            },
            "urn:omron|A17",
        ),
        ({"identifier": [{"system": "urn:x"}, {"value": "only-value"}]}, "|only-value"),
        ({"id": "obs-1", "identifier": []}, "id:obs-1"),
        ({"id": "obs-1"}, "id:obs-1"),
        ({}, ""),
        ({"id": ""}, ""),
    ],
)
def test_source_id(extra: dict[str, Any], source_id: str) -> None:
    assert accepted(observation("8867-4", **extra)).source_id == source_id


# -- refusals ----------------------------------------------------------------------------------


def _without(resource: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in keys}


def _lone_systolic() -> dict[str, Any]:
    resource = blood_pressure()
    resource["component"] = resource["component"][:1]
    return resource


def _two_systolic() -> dict[str, Any]:
    resource = blood_pressure()
    resource["component"].append(component("8480-6", 140))
    return resource


REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    # name, resource, reason, a phrase the detail must hold
    ("height", observation("8302-2", 170, "cm"), "unknown_code", "85354-9"),
    (
        "not loinc",
        observation("8867-4") | {"code": {"coding": [{"system": "urn:x", "code": "8867-4"}]}},
        "unknown_code",
        "no LOINC code",
    ),
    ("no code", _without(observation("8867-4"), "code"), "unknown_code", "8867-4"),
    ("glucose in mg", observation("2339-0", 144, "mg"), "unit", "'mg'"),
    ("no unit", observation("8867-4", 72, None), "unit", "/min"),
    ("bp in kPa", blood_pressure(unit="kPa"), "unit", "mm[Hg]"),
    ("fever in kelvin", observation("8310-5", 310, "K"), "unit", "[degF]"),
    ("pulse 19.4", observation("8867-4", 19.4), "range", "20 to 300"),
    ("spo2 as a fraction", observation("2708-6", 0.97, "%"), "range", "50 to 100"),
    ("glucose 60", observation("15074-8", 60, "mmol/L"), "range", "0.5 to 50"),
    ("weight 900 lb", observation("29463-7", 900, "[lb_av]"), "range", "1 to 400"),
    ("temperature 46", observation("8310-5", 46, "Cel"), "range", "30 to 45"),
    ("systolic 301", blood_pressure(301, 90), "range", "50 to 300"),
    ("diastolic 19", blood_pressure(120, 19), "range", "20 to 200"),
    ("systolic not above", blood_pressure(90.4, 89.6), "range", "not above"),
    ("huge", observation("8867-4", 1e308), "range", "huge"),
    ("future", observation("8867-4", effectiveDateTime="2024-02-29T10:06:00Z"), "future", ""),
    ("too old", observation("8867-4", effectiveDateTime="2023-02-27T10:00:00Z"), "too_old", ""),
    ("no value", observation("8867-4", None), "no_value", "no value"),
    ("no quantity", _without(observation("8867-4"), "valueQuantity"), "no_value", ""),
    (
        "value as a string",
        _without(observation("8867-4"), "valueQuantity") | {"valueString": "72"},
        "no_value",
        "",
    ),
    ("lone systolic", _lone_systolic(), "no_value", "diastolic"),
    ("systolic alone", observation("8480-6", 120, "mm[Hg]"), "no_value", "85354-9"),
    ("bp without components", _without(blood_pressure(), "component"), "no_value", ""),
    ("naive time", observation("8867-4", effectiveDateTime="2024-02-29T09:30:00"), "no_time", ""),
    ("date only", observation("8867-4", effectiveDateTime="2024-02-29"), "no_time", "zone"),
    ("year only", observation("8867-4", effectiveDateTime="2024"), "no_time", "ISO 8601"),
    ("no time", _without(observation("8867-4"), "effectiveDateTime"), "no_time", "issued"),
    (
        "year 1",
        observation("8867-4", effectiveDateTime="0001-01-01T00:00:00+05:00"),
        "no_time",
        "",
    ),
    ("patient", {"resourceType": "Patient", "id": "p"}, "not_observation", ""),
    ("preliminary", observation("8867-4", status="preliminary"), "status", "'preliminary'"),
    ("in error", observation("8867-4", status="entered-in-error"), "status", ""),
    ("cancelled", observation("8867-4", status="cancelled"), "status", ""),
    ("registered", observation("8867-4", status="registered"), "status", ""),
    ("unknown", observation("8867-4", status="unknown"), "status", ""),
    ("no status", _without(observation("8867-4"), "status"), "status", "no status"),
    ("bool value", observation("8867-4", True), "bad_json", "must be a number"),
    ("string value", observation("8867-4", "72"), "bad_json", "must be a number"),
    ("nan value", observation("8867-4", float("nan")), "bad_json", "finite"),
    ("status number", observation("8867-4", status=1), "bad_json", "status"),
    ("coding object", observation("8867-4") | {"code": {"coding": {}}}, "bad_json", "code.coding"),
    ("identifier object", observation("8867-4", identifier={}), "bad_json", "identifier"),
    ("time number", observation("8867-4", effectiveDateTime=20240229), "bad_json", ""),
    ("two systolic", _two_systolic(), "bad_json", "more than one systolic"),
]


@pytest.mark.parametrize(
    ("resource", "reason", "phrase"), [row[1:] for row in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals(resource: dict[str, Any], reason: str, phrase: str) -> None:
    rejected = refused(bundle({"resource": resource}))
    assert (rejected.index, rejected.reason) == (0, reason)
    assert phrase in rejected.detail


def test_every_reason_is_exercised() -> None:
    assert {row[2] for row in REFUSALS} == REASONS


def test_a_refused_single_observation_is_index_0_not_a_payload_error() -> None:
    assert parse(observation("8867-4", status="cancelled"), NOW) == Parsed(
        [], [Rejected(0, "status", "status 'cancelled'; accepted: final, amended, corrected")]
    )


def test_unit_detail_names_the_unit_received_and_those_accepted() -> None:
    detail = refused(observation("2339-0", 5, "g/L")).detail
    assert detail == "unit 'g/L' is not accepted for glucose; accepted: mmol/L, mg/dL"


def test_details_do_not_echo_identifiers() -> None:
    resource = observation("8867-4", 999, identifier=[{"system": "urn:p", "value": "SECRET"}])
    assert "SECRET" not in refused(resource).detail


# -- bundles and payloads ----------------------------------------------------------------------


def test_a_transaction_keeps_the_good_entries_with_their_index() -> None:
    body = bundle(
        {"fullUrl": "urn:uuid:1", "resource": observation("8867-4", 72)},
        {"resource": observation("2339-0", 144, "mg")},
        {"resource": {"resourceType": "Patient", "id": "p1"}},
        {"resource": blood_pressure(150, 95), "request": {"method": "POST", "url": "Observation"}},
        "not an entry",
        {"request": {"method": "DELETE", "url": "Observation/1"}},
        {"resource": ["a", "list"]},
        {"resource": observation("29463-7", 154, "[lb_av]")},
    )
    parsed = parse(json.dumps(body).encode(), NOW)
    assert [(r.index, r.kind, r.value) for r in parsed.readings] == [
        (0, "pulse", "72"),
        (3, "bp", "150/95"),
        (7, "weight", "69.9"),
    ]
    assert [(r.index, r.reason) for r in parsed.rejected] == [
        (1, "unit"),
        (2, "not_observation"),
        (4, "bad_json"),
        (5, "not_observation"),
        (6, "bad_json"),
    ]


@pytest.mark.parametrize("kind", ["transaction", "batch", "collection"])
def test_bundle_types(kind: str) -> None:
    assert len(parse(bundle({"resource": observation("8867-4")}, kind=kind), NOW).readings) == 1


def test_an_empty_bundle_is_nothing() -> None:
    assert parse({"resourceType": "Bundle", "type": "batch"}, NOW) == Parsed([], [])


def test_bytes_text_and_dict_agree() -> None:
    resource = blood_pressure()
    text = json.dumps(resource)
    assert parse(text, NOW) == parse(text.encode(), NOW) == parse(resource, NOW)


def test_max_entries_is_allowed() -> None:
    entries = [{"resource": observation("8867-4")}] * MAX_ENTRIES
    parsed = parse(bundle(*entries), NOW)
    assert [r.index for r in parsed.readings] == list(range(MAX_ENTRIES))


PAYLOADS: list[tuple[str, Any, str]] = [
    ("not json", b"not json", "bad_json"),
    ("bad utf-8", b'{"resourceType": "\xff"}', "bad_json"),
    ("an array", "[]", "bad_json"),
    ("a number", "3", "bad_json"),
    ("NaN", '{"resourceType": "Observation", "valueQuantity": {"value": NaN}}', "bad_json"),
    ("deep", "[" * 100_000, "bad_json"),
    ("huge int", '{"resourceType": "Bundle", "n": ' + "9" * 5000 + "}", "bad_json"),
    ("not a body type", 42, "bad_json"),
    ("no type", "{}", "not_observation"),
    ("patient", {"resourceType": "Patient"}, "not_observation"),
    ("searchset", bundle(kind="searchset"), "bundle_type"),
    ("no bundle type", {"resourceType": "Bundle", "entry": []}, "bundle_type"),
    ("entry object", {"resourceType": "Bundle", "type": "batch", "entry": {}}, "bad_json"),
    ("too many", bundle(*[{}] * (MAX_ENTRIES + 1)), "too_many"),
]


@pytest.mark.parametrize(
    ("body", "reason"), [r[1:] for r in PAYLOADS], ids=[r[0] for r in PAYLOADS]
)
def test_payload_errors(body: Any, reason: str) -> None:
    with pytest.raises(PayloadError) as raised:
        parse(body, NOW)
    assert raised.value.reason == reason
    assert isinstance(raised.value, ValueError)
    assert str(raised.value) == raised.value.detail


# -- no JSON shape breaks parse() --------------------------------------------------------------


def _outcome(body: Any) -> Parsed | PayloadError:
    try:
        return parse(body, NOW)
    except PayloadError as error:
        return error


def _check(body: Any) -> None:
    """parse() answers with a Parsed that accounts for every entry once, or a PayloadError."""
    parsed = _outcome(body)
    if isinstance(parsed, PayloadError):
        assert parsed.reason in REASONS | {"bundle_type", "too_many"}
        return
    indices = sorted([r.index for r in parsed.readings] + [r.index for r in parsed.rejected])
    assert indices == list(range(len(indices)))
    for reading in parsed.readings:
        assert reading.kind in KINDS
        parts = tuple(float(part) for part in reading.value.split("/"))
        assert parts == reading.numbers
        assert len(parts) == (2 if reading.kind == "bp" else 1)
        assert reading.taken_at.tzinfo is UTC
        assert NOW - timedelta(days=366) <= reading.taken_at <= NOW + timedelta(minutes=5)
    for rejected in parsed.rejected:
        assert rejected.reason in REASONS
        assert rejected.detail


# Keys and values the parser looks at, so that random shapes reach past the first check.
KEYS = [
    "resourceType", "type", "entry", "resource", "status", "code", "coding", "system",
    "component", "valueQuantity", "value", "unit", "identifier", "id", "effectiveDateTime",
    "effectivePeriod", "start", "issued", "effectiveInstant",
]  # fmt: skip
LEAVES: list[Any] = [
    None, True, False, 0, -1, 72, 10**30, -0.0, 1e308, float("nan"), float("inf"), "", "x",
    "Observation", "Bundle", "transaction", "final", LOINC, UCUM, "8867-4", "85354-9", "8480-6",
    "8462-4", "2339-0", "mg/dL", "/min", "%", TAKEN, "2024-02-29T09:30:00", "2024", [], {},
]  # fmt: skip


def _random_json(rnd: random.Random, depth: int = 0) -> Any:
    """Any JSON value: arrays and objects (keyed mostly by FHIR names) nested down to leaves."""
    roll = rnd.random()
    if depth >= 4 or roll < 0.4:
        return rnd.choice(LEAVES)
    if roll < 0.6:
        return [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    keys = [rnd.choice(KEYS) if rnd.random() < 0.8 else "other" for _ in range(rnd.randint(0, 6))]
    return {key: _random_json(rnd, depth + 1) for key in keys}


def _random_fields(rnd: random.Random) -> dict[str, Any]:
    """A valid Observation with some of its fields (or new ones) set to random JSON."""
    fields = _random_json(rnd, 1)
    return rnd.choice(VALID) | (fields if isinstance(fields, dict) else {"value": fields})


def _random_body(rnd: random.Random) -> Any:
    """Junk at the top, in an Observation's fields, or as the entries of a Bundle."""
    shape = rnd.randrange(4)
    if shape == 0:
        return _random_json(rnd)
    if shape == 1:
        return _random_fields(rnd)
    if shape == 2:
        return bundle(*(_random_json(rnd, 1) for _ in range(rnd.randint(0, 4))))
    return bundle(*({"resource": _random_fields(rnd)} for _ in range(rnd.randint(1, 4))))


def test_random_json_shapes_give_a_parsed_or_a_payload_error() -> None:
    """300 seeded shapes, each parsed as given and again as the JSON text of it."""
    rnd = random.Random(20240229)
    for _ in range(300):
        body = _random_body(rnd)
        _check(body)
        try:
            text = json.dumps(body)
        except ValueError:
            continue
        _check(text)
        _check(text.encode())


def _junk(rnd: random.Random) -> Any:
    return rnd.choice(
        [None, True, 0, -1, 1e308, float("nan"), "", "x", "2024-02-29", [], {}, [{}], {"a": 1}]
    )


def _mutate(node: Any, rnd: random.Random) -> Any:
    """The node with one value somewhere inside replaced by junk, or one key dropped."""
    if isinstance(node, dict) and node and rnd.random() < 0.85:
        key = rnd.choice(list(node))
        if rnd.random() < 0.2:
            return {k: v for k, v in node.items() if k != key}
        return node | {key: _mutate(node[key], rnd)}
    if isinstance(node, list) and node and rnd.random() < 0.85:
        at = rnd.randrange(len(node))
        return [*node[:at], _mutate(node[at], rnd), *node[at + 1 :]]
    return _junk(rnd)


VALID = [
    observation("8867-4", identifier=[{"system": "urn:x", "value": "1"}]),
    blood_pressure(),
    observation("2339-0", 144, "mg/dL", effectivePeriod={"start": TAKEN}),
    _without(observation("29463-7", 154, "[lb_av]"), "effectiveDateTime") | {"issued": TAKEN},
    observation("59408-5", 97, "%", id="o5"),
    observation("8310-5", 98.6, "[degF]"),
]


def test_valid_documents_with_junk_anywhere_never_break_parse() -> None:
    """300 seeded rounds over a Bundle of six valid Observations: about half of them get one
    value spoilt somewhere deep inside (the components, quantities and identifiers random shapes
    rarely build), and now and then the Bundle around them too."""
    rnd = random.Random(20240229)
    for _ in range(300):
        resources = [
            _mutate(resource, rnd) if rnd.random() < 0.5 else resource for resource in VALID
        ]
        document = bundle(*({"resource": resource} for resource in resources))
        if rnd.random() < 0.1:
            document = _mutate(document, rnd)
        _check(document)
