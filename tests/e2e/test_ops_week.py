"""The weekly summary end to end: every Monday 08:00 clinic time each admin gets the last
seven days as a PNG chart with the key figures in the caption, in their language, once (a
repeated sweep sends nothing more; the next Monday is planned); ``/ops week`` and the /ops
button give it on demand, anything else after /ops is answered with what it knows, and
``python bot.py ops --week FILE`` writes it (a real subprocess)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select

from flows import ops, ops_chart
from handlers.doctor.ops import OpsCB
from handlers.doctor.ops_render import week_caption
from locales import Translator
from storage.models import Consultation, Doctor, ScheduledEvent, utcnow
from tests.cli_runner import run_cli
from tests.e2e.conftest import DOCTOR_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import add_doctor

FIRST, SECOND = 700000001, 700000002  # the emulator numbers users from 700000001
ZONE = "Asia/Shanghai"
EN, ZH = Translator("en"), Translator("zh_Hans")


@pytest.fixture
async def wclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic in Shanghai time whose first two people are admins."""
    c, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, admin_ids=(FIRST, SECOND), timezone=ZONE
    )
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


def _is_photo(m: dict[str, Any]) -> bool:
    return bool(m.get("photo"))


async def _photos(clinic: Clinic, uid: int) -> list[dict[str, Any]]:
    msgs = (await clinic.client.messages(uid, DOCTOR_BOT))["messages"]
    return [m for m in msgs if m["from"] == "bot" and _is_photo(m)]


async def _png_size(clinic: Clinic, photo: dict[str, Any]) -> tuple[int, int]:
    data = await clinic.client.download(photo["photo"]["download_url"])
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


async def _sweep(clinic: Clinic, at: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(at):
        pass


async def _a_rated_case_last_week(clinic: Clinic, now: datetime) -> None:
    """A routine GP case of the day before yesterday, taken in 40 minutes and rated 4."""
    requested = now - timedelta(days=2)
    async with clinic.app.db.uow() as uow:
        await uow.consultations.add(
            Consultation(
                patient_id="p" * 32, department="general", priority=3, state="closed",
                requested_at=requested, accepted_at=requested + timedelta(minutes=40),
                closed_at=requested + timedelta(hours=1), updated_at=requested, rating=4,
            )
        )  # fmt: skip
        await uow.commit()


async def test_every_monday_at_0800_each_admin_gets_the_chart(wclinic: Clinic) -> None:
    clinic = wclinic
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general", locale="zh_Hans")
    assert gp.uid == FIRST
    lead = await clinic.person("Sam Opsworth")
    assert lead == SECOND
    await clinic.say(lead, "/start", DOCTOR_BOT)
    now = utcnow()
    monday = ops.next_weekly(now, ZONE)
    await _a_rated_case_last_week(clinic, monday - timedelta(days=1))
    # /ops week gives the chart now, and from then on it comes every Monday.
    since = await clinic.seq(lead, DOCTOR_BOT)
    await clinic.client.send(lead, DOCTOR_BOT, "/ops week")
    on_demand = await clinic.client.wait_for(lead, DOCTOR_BOT, _is_photo, since=since)
    assert on_demand["caption"].startswith("📊")
    # A minute before Monday 08:00 (clinic time) nothing comes; at 08:00 each admin gets it.
    await _sweep(clinic, monday - timedelta(minutes=1))
    assert len(await _photos(clinic, gp.uid)) == 0
    since_gp, since_lead = await clinic.seq(gp.uid, DOCTOR_BOT), await clinic.seq(lead, DOCTOR_BOT)
    await _sweep(clinic, monday)
    to_gp = await clinic.client.wait_for(gp.uid, DOCTOR_BOT, _is_photo, since=since_gp)
    to_lead = await clinic.client.wait_for(lead, DOCTOR_BOT, _is_photo, since=since_lead)
    async with clinic.app.db.uow() as uow:
        week = await ops.week(uow, monday, ZONE)
    assert week.days[-1] == (monday - timedelta(days=1)).astimezone(ZoneInfo(ZONE)).date()
    assert (week.case_count, week.total.accepted, week.stars) == (1, 1, (0, 0, 0, 1, 0))
    assert to_lead["caption"] == week_caption(EN, week, rich=False)
    assert to_gp["caption"] == week_caption(ZH, week, rich=False)
    assert "4.0 ★" in to_lead["caption"] and "p50 40m" in to_lead["caption"]
    assert await _png_size(clinic, to_gp) == (ops_chart.WIDTH_PX, ops_chart.HEIGHT_PX)
    assert to_lead.get("protect_content") is True
    # Once: a later sweep sends nothing more, and the next Monday is planned.
    await _sweep(clinic, monday + timedelta(hours=1))
    assert len(await _photos(clinic, gp.uid)) == 1
    assert len(await _photos(clinic, lead)) == 2  # the /ops week one and Monday's
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.execute(
            select(ScheduledEvent.due_at, ScheduledEvent.status).where(
                ScheduledEvent.kind == ops.WEEKLY
            )
        )
        planned = sorted((d if d.tzinfo else d.replace(tzinfo=UTC), s) for d, s in rows)
    assert planned == [(monday, "done"), (monday + timedelta(days=7), "pending")]
    assert clinic.app.processor.failed == 0 and clinic.app.sweeper.failed == 0


async def test_ops_week_on_demand_and_what_else_ops_says(wclinic: Clinic) -> None:
    clinic = wclinic
    admin = await clinic.person("Sam Opsworth")
    assert admin == FIRST
    await clinic.say(admin, "/start", DOCTOR_BOT)
    # Anything after /ops other than "week": what /ops knows, and nothing else happens.
    assert (await clinic.say(admin, "/ops lastweek", DOCTOR_BOT))["text"] == EN.plain("ops.usage")
    # The button under the table sends the chart too.
    shown = await clinic.say(admin, "/ops", DOCTOR_BOT)
    [[_, week]] = shown["reply_markup"]["inline_keyboard"]
    assert week["callback_data"] == OpsCB(action="week").pack()
    since = await clinic.seq(admin, DOCTOR_BOT)
    await clinic.client.click(admin, DOCTOR_BOT, shown["message_id"], week["callback_data"])
    photo = await clinic.client.wait_for(admin, DOCTOR_BOT, _is_photo, since=since)
    assert photo["caption"].startswith("📊 The week ")
    answers = (await clinic.client.messages(admin, DOCTOR_BOT))["callback_answers"]
    assert answers[-1].get("text") == EN.plain("ops.week.coming")
    # A doctor who is not an admin is refused, with no chart.
    assert await clinic.person("Nemo Nobody") == SECOND  # the second admin (never here)
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    refusal = EN.plain("doctor.admin.not_admin")
    assert (await gp.say("/ops week", lambda m: m.get("text") == refusal))["text"] == refusal
    assert await _photos(clinic, gp.uid) == []
    assert clinic.app.processor.failed == 0


def _seed(data_dir: Path) -> None:
    """A migrated data dir with a GP case of yesterday taken in 50 minutes (rated 5) and one
    still waiting since yesterday (over its 4-hour limit)."""
    from bot.app import open_database
    from bot.settings import Settings

    assert run_cli(["migrate"], data_dir).returncode == 0

    async def seed() -> None:
        db = await open_database(Settings(_env_file=None, data_dir=data_dir))
        try:
            async with db.uow() as uow:
                now = utcnow()
                midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
                yesterday = midnight - timedelta(days=1) + timedelta(hours=9)
                gp = await uow.doctors.add(
                    Doctor(tg_user_id=5550001, locale="en", status="verified",
                           verified_until=now + timedelta(days=30), departments="general")
                )  # fmt: skip
                for state, accepted, rating in (("closed", 50, 5), ("waiting", None, None)):
                    await uow.consultations.add(
                        Consultation(
                            patient_id="p" * 32, department="general", priority=3, state=state,
                            doctor_id=gp.id if accepted else None, requested_at=yesterday,
                            accepted_at=yesterday + timedelta(minutes=accepted)
                            if accepted else None,
                            closed_at=yesterday + timedelta(hours=2) if accepted else None,
                            rating=rating,
                        )
                    )  # fmt: skip
                await uow.commit()
        finally:
            await db.dispose()

    asyncio.run(seed())


def test_the_command_line_writes_the_chart(tmp_path: Path) -> None:
    _seed(tmp_path)
    out = run_cli(["ops", "--week", str(tmp_path / "week.png")], tmp_path)
    assert out.returncode == 0, out.stderr
    with Image.open(tmp_path / "week.png") as img:
        assert (img.format, img.size) == ("PNG", (ops_chart.WIDTH_PX, ops_chart.HEIGHT_PX))
    lines = out.stdout.splitlines()
    assert lines[0].startswith("📊 The week ")
    assert lines[1:] == [
        "Cases: 2 (0 urgent, 2 routine)",
        "Accepted: 1 · time to acceptance p50 50m, p90 50m",
        "Waits over the limit: 1",
        "Rating: 5.0 ★ (ratings: 1)",
    ]
    zh = run_cli(
        ["ops", "--week", str(tmp_path / "zh.png")], tmp_path, CARELINE_DEFAULT_LOCALE="zh_Hans"
    )
    assert zh.returncode == 0 and zh.stdout.startswith("📊 一周概况"), zh.stderr
    # A file that cannot be written: one line, no traceback.
    bad = run_cli(["ops", "--week", str(tmp_path / "no" / "such" / "dir.png")], tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("careline: cannot write ")
