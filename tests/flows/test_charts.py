"""Reading charts (flows/charts.py): a PNG that decodes at the documented size with no
missing-glyph warnings (in three languages), the target band's source (the plan's template
before the default), plan-change markers from the audit log, the day ranges (7 / 30 / 90),
and the data a chart is drawn from (readings decrypted, doses per local day) on SQLite and
PostgreSQL."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from matplotlib import dates as mdates
from PIL import Image

from flows import charts, followup
from flows.questionnaire import DataFileError
from locales import Translator
from storage.models import Dose, FollowUpPlan, MedicationPlan, Patient, Reading, new_id
from storage.uow import Database

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        img.load()  # decodes the whole image
        assert img.format == "PNG"
        return img.size


def _reading(
    kind: str, value: str, flag: str, days_ago: float, source: str = "manual"
) -> followup.ReadingView:
    return followup.ReadingView(kind, value, flag, NOW - timedelta(days=days_ago), source)


READINGS = [
    _reading("bp", "185/115", "high", 3),
    _reading("bp", "140/90", "none", 1, "device"),
    _reading("glucose", "7.8", "none", 2),
    _reading("temperature", "38.4", "high", 1),
    _reading("bp", "not a number", "none", 1),  # skipped, not an error
]


def test_no_readings_still_renders_a_png() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        png = charts.render([], [], NOW)
    assert _size(png) == (charts.WIDTH_PX, charts.height_for(0))


@pytest.mark.parametrize("locale", ["en", "ru", "zh_Hans"])
def test_one_panel_per_kind_with_adherence_in_every_language(locale: str) -> None:
    days = [charts.DayAdherence((NOW - timedelta(days=1)).date(), 2, 1)]
    changes = [charts.PlanChange(NOW - timedelta(days=2), "med")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = charts.render(READINGS, days, NOW, tr=Translator(locale), changes=changes)
    assert _size(png) == (charts.WIDTH_PX, charts.height_for(3))


def _figure(days: int = 30, **kw: object) -> object:
    args: dict[str, object] = {
        "tr": Translator("en"),
        "targets": charts.targets_for(()),
        "changes": (),
        "tz": UTC,
    }
    args.update(kw)
    return charts.figure(READINGS, [], NOW, days, **args)  # type: ignore[arg-type]


def _axes(fig: object) -> dict[str, object]:
    return {ax.get_gid(): ax for ax in fig.axes if ax.get_gid()}  # type: ignore[attr-defined]


def test_bp_panel_has_labelled_systolic_and_diastolic_and_two_bands() -> None:
    bp = _axes(_figure())["bp"]
    labels = [line.get_label() for line in bp.get_lines() if not line.get_label().startswith("_")]  # type: ignore[attr-defined]
    assert labels == ["Systolic (upper)", "Diastolic (lower)"]
    assert bp.get_title(loc="left") == "Blood pressure, mmHg"  # type: ignore[attr-defined]
    spans = sorted(
        (round(p.get_extents().y0), p)
        for p in bp.patches  # type: ignore[attr-defined]
    )
    assert len(spans) == 2  # systolic 90-140 and diastolic 60-90


@pytest.mark.parametrize("days", [7, 30, 90])
def test_day_ranges(days: int) -> None:
    strip = _axes(_figure(days))["adherence"]
    left, right = strip.get_xlim()  # type: ignore[attr-defined]
    span = right - left
    assert days - 1 <= span <= days * 1.04 + 1  # the days, and a 2 % margin each side
    assert mdates.num2date(right) >= NOW


def test_plan_changes_are_vertical_lines_on_every_panel() -> None:
    changes = [
        charts.PlanChange(NOW - timedelta(days=5), "med"),
        charts.PlanChange(NOW - timedelta(days=2), "followup"),
    ]
    fig = _figure(changes=changes)
    for ax in _axes(fig).values():
        gids = sorted(line.get_gid() for line in ax.get_lines() if line.get_gid())  # type: ignore[attr-defined]
        assert gids == ["change:followup", "change:med"]
    assert not any(
        line.get_gid()
        for ax in _axes(_figure()).values()
        for line in ax.get_lines()  # type: ignore[attr-defined]
    )


def test_targets_come_from_the_plan_template_before_the_default() -> None:
    default = charts.targets_for(())
    assert [(b.line, b.low, b.high, b.source) for b in default["bp"]] == [
        ("systolic", 90, 140, "default"),
        ("diastolic", 60, 90, "default"),
    ]
    diabetes = charts.targets_for(["general", "diabetes"])
    assert [(b.line, b.high, b.source) for b in diabetes["bp"]] == [
        ("systolic", 130, "plan:diabetes"),
        ("diastolic", 80, "plan:diabetes"),
    ]
    assert diabetes["pulse"] == default["pulse"]  # no band in the plan: the default stays
    assert "weight" not in diabetes


def test_the_data_file_is_checked() -> None:
    rules = charts.rules()
    assert rules.trends["bp"].change_diastolic == 3 and rules.weekday == 6
    bad = [
        'version = "1"\n[targets.general.bp]\nsystolic = [90, 140]\ndiastolic = [60, 90]\n',
        "[targets.default.bp]\nsystolic = [140, 90]\ndiastolic = [60, 90]\n",
        "[targets.default.pulse]\nrange = [60, 100]\n[trends.pulse]\nmin_readings = 0\n"
        "change = 5\n",
        '[targets.default.pulse]\nrange = [60, 100]\n[weekly]\nweekday = 9\ntime = "18:00"\n'
        "late_hours = 24\n",
    ]
    for text in bad:
        with pytest.raises(DataFileError):
            charts.parse(text)


async def _seal_reading(
    uow: object, patient: Patient, kind: str, value: str, at: datetime
) -> None:
    row = Reading(id=new_id(), patient_id=patient.id, kind=kind, flag="none", taken_at=at,
                  value_enc=b"")  # fmt: skip
    row.value_enc = await uow.vault.seal(patient.id, "readings", "value_enc", row.id, value)  # type: ignore[attr-defined]
    uow.session.add(row)  # type: ignore[attr-defined]


async def test_chart_data_from_the_database(db: Database) -> None:
    async with db.uow() as uow:
        patient = await uow.patients.add(
            Patient(tg_user_id=1, locale="en", onboarding_state="done", consent_version="1")
        )
        for kind, value, days_ago in (("pulse", "72", 2), ("pulse", "140", 1), ("pain", "3", 40)):
            await _seal_reading(uow, patient, kind, value, NOW - timedelta(days=days_ago))
        for i, status in enumerate(("taken", "taken", "missed", "skipped", "pending")):
            uow.session.add(
                Dose(
                    plan_id="p1", patient_id=patient.id, local=f"2026-11-29 0{i}:00",
                    due_at=datetime(2026, 11, 29, i, tzinfo=UTC), status=status,
                )
            )  # fmt: skip
        # plan changes: a medication plan proposed and ended, a diabetes follow-up enrolled;
        # another patient's plan and a doctor merely viewing are not changes
        med = MedicationPlan(patient_id=patient.id, doctor_id="d1", status="ended")
        other = MedicationPlan(patient_id="someone-else", doctor_id="d1", status="active")
        fu = FollowUpPlan(patient_id=patient.id, doctor_id="d1", template="diabetes")
        uow.session.add_all([med, other, fu])
        await uow.session.flush()
        await uow.audit.record("doctor:d1", "medplan.propose", "med_plans", med.id, {})
        await uow.audit.record("doctor:d1", "medplan.view", "med_plans", med.id, {})
        await uow.audit.record("doctor:d1", "medplan.propose", "med_plans", other.id, {})
        await uow.audit.record("doctor:d1", "followup.enrol", "followup_plan", fu.id, {})
        await uow.audit.record("doctor:d1", "medplan.end", "med_plans", med.id, {})
        await uow.session.flush()
        later = datetime.now(UTC) + timedelta(minutes=1)  # audit times are the real clock's
        readings = await followup.recent_readings(uow, patient.id, NOW)
        assert [(r.kind, r.value) for r in readings] == [("pulse", "72"), ("pulse", "140")]
        days = await charts.adherence_of(uow, patient.id, NOW)
        assert days == [charts.DayAdherence(datetime(2026, 11, 29).date(), 2, 2)]
        changes = await charts.plan_changes(uow, patient.id, later)
        assert [c.kind for c in changes] == ["med", "followup", "med"]
        data = await charts.data_for(uow, patient.id, later, 90)
        assert data.targets["glucose"][0].source == "plan:diabetes"
        png = await charts.chart_for(uow, patient.id, NOW, 7, Translator("ru"))
        assert _size(png) == (charts.WIDTH_PX, charts.height_for(1))
        await charts.send(uow, "patient", 1, png, "caption")
        await uow.commit()
