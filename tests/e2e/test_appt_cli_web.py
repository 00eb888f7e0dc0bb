"""Hospital appointments from the operator's side, on a real SQLite data dir: ``python bot.py
hospitals service|services|slots|desk`` (their happy paths, and every bad value refused in one
line with exit 2; a doctor cannot be made a desk), and a slip's booked appointment on the
referral verify page (bot/verify_web.py, a real aiohttp app): its time in the clinic's zone
with the patient shown (QR token, or code + year of birth), only "booked" with a typed code
alone, nothing once cancelled; in English and Chinese."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import open_database
from bot.settings import Settings
from bot.verify_web import VerifyPage
from flows import appointments as ap
from flows.signing import Signer, b64u, unb64u
from locales import Translator
from storage.models import AuditRecord, HospitalService, HospitalSlot
from storage.uow import Database
from tests.cli_runner import run_cli_async
from tests.flows.test_referrals import issued

TZ = "Asia/Shanghai"  # the clinic's zone: 09:30 there is 01:30 UTC
NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # the slip (tests/flows/test_referrals.py) is valid
DOCTOR_TG = 8100  # the doctor of that slip (people(): the patient's 7100 + 1000)
EN = Translator("en")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, timezone=TZ)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The data dir's database, as the bot and ``python bot.py`` open it (SQLite)."""
    database = await open_database(settings)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def page(db: Database, settings: Settings) -> AsyncIterator[TestClient]:
    verify = VerifyPage(db, per_minute=1000, now=lambda: NOW, timezone=TZ)
    assert VerifyPage.from_settings(db, settings).timezone == TZ
    app = web.Application()
    verify.mount(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python bot.py hospitals ARGS`` in the clinic's zone (in a thread: tests/cli_runner.py)."""
    return await run_cli_async(["hospitals", *args], data_dir, CARELINE_TIMEZONE=TZ)


def _refused(out: subprocess.CompletedProcess[str], text: str, code: int = 2) -> None:
    """Exit ``code`` with one ``careline:`` line on stderr that says ``text``."""
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("careline:")]
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert len(lines) == 1 and text in lines[0], out.stderr
    assert "Traceback" not in out.stderr


async def _hospital_of(db: Database, referral_id: str) -> str:
    async with db.uow() as uow:
        ref = await uow.referrals.get(referral_id)
        assert ref is not None and ref.hospital_id is not None
        return ref.hospital_id


async def _slots(db: Database, service_id: str) -> list[HospitalSlot]:
    async with db.uow() as uow:
        rows = await uow.session.scalars(
            select(HospitalSlot)
            .where(HospitalSlot.service_id == service_id)
            .order_by(HospitalSlot.starts_at)
        )
        found = list(rows)
        uow.session.expunge_all()  # read on after the unit of work ends
        return found


async def _book(db: Database, referral_id: str, slot: HospitalSlot, now: datetime = NOW) -> str:
    """The referring doctor books ``slot`` for the slip; returns the appointment id."""
    async with db.uow() as uow:
        ref = await uow.referrals.get(referral_id)
        assert ref is not None
        appt = await ap.book(
            uow, ref, slot.id, now, by="doctor", actor=f"doctor:{ref.doctor_id}", tz=TZ
        )
        await uow.commit()
        return appt.id


# --- the command line -------------------------------------------------------------------------


async def test_service_slots_services_and_desk(db: Database, tmp_path: Path) -> None:
    rid, _code, _token, _doctor = await issued(db, Signer(db.ring))
    hid = await _hospital_of(db, rid)
    # service: by a hospital id prefix; prints the new service's id.
    added = await _cli(
        tmp_path, "service", hid[:8], "Cardiology", "examination", "Echocardiography",
        "--bring", "ID card, earlier ECGs",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "added to Example City Hospital: Echocardiography" in added.stdout
    sid = added.stdout.split()[1]
    async with db.uow() as uow:
        service = await uow.appointments.service(sid)
        assert service is not None and service.hospital_id == hid
        assert (service.department, service.kind) == ("Cardiology", "examination")
        assert service.bring == "ID card, earlier ECGs"
    # slots: two days at two local times, three places each, in the clinic's zone.
    today = datetime.now(ZoneInfo(TZ)).date()
    first = today + timedelta(days=1)
    made = await _cli(
        tmp_path, "slots", sid[:8], "--from", first.isoformat(), "--days", "2",
        "--times", "09:00, 09:30", "--capacity", "3",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "4 slot(s) added" in made.stdout and TZ in made.stdout
    rows = await _slots(db, sid)
    starts = [r.starts_at.replace(tzinfo=UTC) for r in rows]
    assert starts == [
        datetime.combine(first + timedelta(days=d), datetime.min.time(), UTC)
        + timedelta(hours=1, minutes=m)  # 09:00 / 09:30 in Shanghai
        for d in (0, 1)
        for m in (0, 30)
    ]
    assert {(r.capacity, r.booked, r.all_day) for r in rows} == {(3, 0, False)}
    # The same again adds nothing (the slots are there).
    again = await _cli(
        tmp_path, "slots", sid, "--from", first.isoformat(), "--days", "2",
        "--times", "09:00,09:30", "--capacity", "3",
    )  # fmt: skip
    assert again.returncode == 0 and "0 slot(s) added (4 already there)" in again.stdout
    # No --times: one all-day quota a day, from local midnight.
    quota_day = today + timedelta(days=4)
    quota = await _cli(
        tmp_path, "slots", sid[:6], "--from", quota_day.isoformat(), "--capacity", "5"
    )
    assert quota.returncode == 0 and "1 slot(s) added" in quota.stdout, quota.stderr
    [all_day] = [r for r in await _slots(db, sid) if r.all_day]
    local_midnight = datetime.combine(quota_day, datetime.min.time(), ZoneInfo(TZ))
    assert all_day.starts_at.replace(tzinfo=UTC) == local_midnight.astimezone(UTC)
    assert all_day.capacity == 5
    # services: the service, what to bring, and its free places (4 × 3 + 5), one fewer once
    # a place is booked.
    listed = await _cli(tmp_path, "services", hid)
    assert listed.returncode == 0, listed.stderr
    assert f"{sid[:8]}  Cardiology · examination · Echocardiography" in listed.stdout
    assert "bring: ID card, earlier ECGs" in listed.stdout
    assert "free places in the next 14 days: 17" in listed.stdout
    await _book(db, rid, rows[0])
    listed = await _cli(tmp_path, "services", hid[:8])
    assert "free places in the next 14 days: 16" in listed.stdout
    assert "1 service(s)" in listed.stdout
    # desk: a Telegram user becomes the hospital's desk, told to send /desk.
    desk = await _cli(tmp_path, "desk", hid[:8], "9001", "Reception A", "--locale", "ru")
    assert desk.returncode == 0, desk.stderr
    assert "9001" in desk.stdout and "/desk" in desk.stdout and "doctor bot" in desk.stdout
    plain = await _cli(tmp_path, "desk", hid[:8], "9002", "Reception B")
    assert plain.returncode == 0, plain.stderr
    async with db.uow() as uow:
        made_a = await uow.doctors.by_tg_user(9001)
        made_b = await uow.doctors.by_tg_user(9002)
        assert made_a is not None and made_b is not None
        assert ap.is_desk(made_a) and made_a.hospital_id == hid and made_a.locale == "ru"
        assert await uow.doctors.get_field(made_a, "name") == "Reception A"
        assert made_b.locale == "zh_Hans"  # the hospital's desk language by default
        actions = {
            (r.action, r.actor)
            for r in await uow.session.scalars(
                select(AuditRecord).where(AuditRecord.actor == "admin:cli")
            )
        }
    assert {
        ("hospital.service", "admin:cli"),
        ("hospital.slots", "admin:cli"),
        ("desk.create", "admin:cli"),
    } <= actions


async def test_bad_input_is_one_line_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    rid, _code, _token, _doctor = await issued(db, Signer(db.ring))
    hid = await _hospital_of(db, rid)
    async with db.uow() as uow:
        service = await ap.add_service(uow, "admin:test", hid, "Cardiology", "outpatient", "ECG")
        sid = service.id
        await uow.commit()
    tomorrow = (datetime.now(ZoneInfo(TZ)).date() + timedelta(days=1)).isoformat()
    # service: unknown hospital, a kind that is none of the three, an empty name.
    _refused(await _cli(tmp_path, "service", "abcdef99", "Cardiology", "examination", "X"),
             "no hospital")  # fmt: skip
    _refused(await _cli(tmp_path, "service", "zz", "Cardiology", "examination", "X"),
             "not a hospital id")  # fmt: skip
    _refused(await _cli(tmp_path, "service", hid, "Cardiology", "surgery", "X"),
             EN.plain("appt.error.kind"))  # fmt: skip
    _refused(await _cli(tmp_path, "service", hid, "Cardiology", "examination", "  "),
             EN.plain("appt.error.service"))  # fmt: skip
    # services: unknown hospital.
    _refused(await _cli(tmp_path, "services", "abcdef99"), "no hospital")
    # slots: unknown service, capacity out of range or not a number, a bad time, a bad date.
    slots = ["--from", tomorrow, "--capacity", "2"]
    _refused(await _cli(tmp_path, "slots", "abcdef99", *slots), "no service")
    _refused(await _cli(tmp_path, "slots", "xyz", *slots), "not a service id")
    for capacity in ("0", str(ap.MAX_CAPACITY + 1)):
        _refused(
            await _cli(tmp_path, "slots", sid, "--from", tomorrow, "--capacity", capacity),
            EN.plain("appt.error.capacity", max=ap.MAX_CAPACITY),
        )
    _refused(await _cli(tmp_path, "slots", sid, "--from", tomorrow, "--capacity", "many"),
             "--capacity must be a whole number")  # fmt: skip
    _refused(await _cli(tmp_path, "slots", sid, *slots, "--times", "09:00,9h30"),
             EN.plain("appt.error.time", value="9h30"))  # fmt: skip
    _refused(await _cli(tmp_path, "slots", sid, *slots, "--times", "25:00"),
             EN.plain("appt.error.time", value="25:00"))  # fmt: skip
    for bad in ("2027-02-30", "tomorrow", "05/03/2027"):
        _refused(await _cli(tmp_path, "slots", sid, "--from", bad, "--capacity", "2"),
                 "--from must be a date as YYYY-MM-DD")  # fmt: skip
    _refused(await _cli(tmp_path, "slots", sid, "--from", "2020-01-01", "--capacity", "2"),
             "is in the past")  # fmt: skip
    _refused(await _cli(tmp_path, "slots", sid, *slots, "--days", "0"),
             "--days must be between 1 and")  # fmt: skip
    # desk: unknown hospital, a user id that is not one, an unknown language, no name.
    _refused(await _cli(tmp_path, "desk", "abcdef99", "9001", "Desk"), "no hospital")
    _refused(await _cli(tmp_path, "desk", hid, "@reception", "Desk"),
             "TG_USER_ID must be a whole number")  # fmt: skip
    _refused(await _cli(tmp_path, "desk", hid, "-5", "Desk"), "TG_USER_ID must be")
    _refused(await _cli(tmp_path, "desk", hid, "9001", "Desk", "--locale", "fr"),
             "--locale must be one of")  # fmt: skip
    _refused(await _cli(tmp_path, "desk", hid, "9001", " "), "NAME is empty")
    # A doctor already (the slip's own doctor) cannot be made a desk: refused.
    _refused(await _cli(tmp_path, "desk", hid, str(DOCTOR_TG), "Desk"),
             f"refused: {EN.plain('appt.error.desk_taken')}", code=1)  # fmt: skip
    # Nothing was kept.
    assert await _slots(db, sid) == []
    async with db.uow() as uow:
        services = list(await uow.session.scalars(select(HospitalService)))
        assert [s.id for s in services] == [sid]
        doctor = await uow.doctors.by_tg_user(DOCTOR_TG)
        assert doctor is not None and doctor.role != "desk" and doctor.hospital_id is None
        assert await uow.doctors.by_tg_user(9001) is None


# --- the verify page --------------------------------------------------------------------------


async def _service_with_slots(
    db: Database, hospital_id: str, days: list[date], times: list[str]
) -> list[HospitalSlot]:
    async with db.uow() as uow:
        service = await ap.add_service(
            uow, "admin:test", hospital_id, "Cardiology", "examination", "Echocardiography",
            "ID card",
        )  # fmt: skip
        await ap.add_slots(uow, "admin:test", service.id, days, times, 2, TZ)
        await uow.commit()
        sid = service.id
    return await _slots(db, sid)


async def _text(client: TestClient, code: str, **params: str) -> str:
    resp = await client.get(f"/r/{code}", params=params)
    assert resp.status == 200
    return await resp.text()


async def test_page_shows_the_booked_appointment_with_the_patient(
    db: Database, page: TestClient
) -> None:
    client = page
    rid, code, token, _doctor = await issued(db, Signer(db.ring))
    hid = await _hospital_of(db, rid)
    [slot] = await _service_with_slots(db, hid, [date(2026, 3, 5)], ["09:30"])
    # Not booked yet: nothing about an appointment.
    text = await _text(client, code, t=token, lang="en")
    assert "Valid referral" in text and "Hospital appointment" not in text
    appt_id = await _book(db, rid, slot)
    # With the QR's token: when (in the clinic's zone, not UTC), what, where, the status.
    text = await _text(client, code, t=token, lang="en")
    assert "Lin Testpatient" in text and "Hospital appointment" in text
    assert "<td>2026-03-05 09:30</td>" in text and "01:30" not in text
    assert "<td>Echocardiography</td>" in text
    assert "<th>Department</th><td>Cardiology</td>" in text
    assert "<td>Booked, not arrived yet</td>" in text
    assert "An appointment is booked" not in text
    text = await _text(client, code, t=token, lang="zh_Hans")
    assert "医院预约" in text and "2026-03-05 09:30" in text and "已预约，尚未到院" in text
    assert "<th>科室</th><td>Cardiology</td>" in text
    # A typed code alone: only that one is booked, no time and no service.
    for lang, booked in (("en", "An appointment is booked."), ("zh_Hans", "已有预约。")):
        text = await _text(client, code, lang=lang)
        assert booked in text and "Lin Testpatient" not in text
        assert "09:30" not in text and "2026-03-05" not in text
        assert "Echocardiography" not in text
    # The code with the patient's year of birth shows it all, as it shows the name.
    resp = await client.post(f"/r/{code}", params={"lang": "en"}, data={"born": "1961"})
    text = await resp.text()
    assert "Lin Testpatient" in text and "<td>2026-03-05 09:30</td>" in text
    # A forged token shows nothing of it.
    head, sig = token.split(".")
    raw = bytearray(unb64u(head))
    raw[-3] ^= 1
    text = await _text(client, code, t=b64u(bytes(raw)) + "." + sig, lang="en")
    assert "Not genuine" in text and "Hospital appointment" not in text
    # Cancelled by the patient: the page no longer shows an appointment.
    async with db.uow() as uow:
        ref = await uow.referrals.get(rid)
        assert ref is not None
        await ap.cancel(uow, appt_id, ref.patient_id, NOW)
        await uow.commit()
    for lang, title in (("en", "Hospital appointment"), ("zh_Hans", "医院预约")):
        for params in ({"t": token, "lang": lang}, {"lang": lang}):
            text = await _text(client, code, **params)
            assert title not in text and "09:30" not in text
            assert "An appointment is booked" not in text and "已有预约" not in text


async def test_page_shows_an_all_day_quota_and_arrival(db: Database, page: TestClient) -> None:
    client = page
    rid, code, token, _doctor = await issued(db, Signer(db.ring))
    hid = await _hospital_of(db, rid)
    [slot] = await _service_with_slots(db, hid, [date(2026, 3, 6)], [])
    assert slot.all_day
    appt_id = await _book(db, rid, slot)
    text = await _text(client, code, t=token, lang="en")
    assert "<td>2026-03-06, all day</td>" in text and "00:00" not in text
    text = await _text(client, code, t=token, lang="zh_Hans")
    assert "2026-03-06，全天" in text
    # The desk marks the patient arrived: the page says so.
    async with db.uow() as uow:
        desk = await ap.make_desk(uow, "admin:test", hid, 9100, "Reception", "en")
        appt = await uow.appointments.get(appt_id)
        assert appt is not None
        await ap.mark(uow, desk, appt_id, "arrive", appt.version, NOW)
        await uow.commit()
    text = await _text(client, code, t=token, lang="en")
    assert "<td>Arrived</td>" in text and "2026-03-06, all day" in text
    text = await _text(client, code, t=token, lang="zh_Hans")
    assert "<td>已到院</td>" in text
    text = await _text(client, code, lang="en")
    assert "An appointment is booked." in text and "2026-03-06" not in text
