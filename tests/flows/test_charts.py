"""Reading charts (flows/charts.py): a PNG that decodes, the documented size, no exception
and no missing-glyph warnings with no readings, and the data a chart is drawn from (readings
decrypted, doses per day) on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime, timedelta

from PIL import Image

from flows import charts, followup
from storage.models import Dose, Patient, Reading, new_id
from storage.uow import Database

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        img.load()  # decodes the whole image
        assert img.format == "PNG"
        return img.size


def _reading(kind: str, value: str, flag: str, days_ago: float) -> followup.ReadingView:
    return followup.ReadingView(kind, value, flag, NOW - timedelta(days=days_ago))


def test_no_readings_still_renders_a_png() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        png = charts.render([], [], NOW)
    assert _size(png) == (charts.WIDTH_PX, charts.PANEL_PX + charts.STRIP_PX)


def test_one_panel_per_kind_with_adherence() -> None:
    readings = [
        _reading("bp", "185/115", "high", 3),
        _reading("bp", "140/90", "none", 1),
        _reading("glucose", "7.8", "none", 2),
        _reading("temperature", "38.4", "high", 1),
        _reading("bp", "not a number", "none", 1),  # skipped, not an error
    ]
    days = [charts.DayAdherence((NOW - timedelta(days=1)).date(), 2, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = charts.render(readings, days, NOW)
    assert _size(png) == (charts.WIDTH_PX, 3 * charts.PANEL_PX + charts.STRIP_PX)


async def test_chart_data_from_the_database(db: Database) -> None:
    async with db.uow() as uow:
        patient = await uow.patients.add(
            Patient(tg_user_id=1, locale="en", onboarding_state="done", consent_version="1")
        )
        for kind, value, days_ago in (("pulse", "72", 2), ("pulse", "140", 1), ("pain", "3", 40)):
            row = Reading(
                id=new_id(), patient_id=patient.id, kind=kind, flag="none",
                taken_at=NOW - timedelta(days=days_ago), value_enc=b"",
            )  # fmt: skip
            row.value_enc = await uow.vault.seal(
                patient.id, "readings", "value_enc", row.id, value
            )
            uow.session.add(row)
        for i, status in enumerate(("taken", "taken", "missed", "skipped", "pending")):
            uow.session.add(
                Dose(
                    plan_id="p1", patient_id=patient.id, local=f"2026-11-29 0{i}:00",
                    due_at=datetime(2026, 11, 29, i, tzinfo=UTC), status=status,
                )
            )  # fmt: skip
        await uow.session.flush()
        readings = await followup.recent_readings(uow, patient.id, NOW)
        assert [(r.kind, r.value) for r in readings] == [("pulse", "72"), ("pulse", "140")]
        days = await charts.adherence_of(uow, patient.id, NOW)
        assert days == [charts.DayAdherence(datetime(2026, 11, 29).date(), 2, 2)]
        png = await charts.chart_for(uow, patient.id, NOW)
        assert _size(png) == (charts.WIDTH_PX, charts.PANEL_PX + charts.STRIP_PX)
        await charts.send(uow, "patient", 1, png, "caption")
        await uow.commit()
