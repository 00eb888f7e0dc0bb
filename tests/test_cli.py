"""The operator's command line: ``bot.cli.main`` in this process (tests/cli_runner.py), and
through a real ``python bot.py`` process where the process itself is the point (its exit code
and stderr from start-up, Ctrl-C)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import ROOT, clean_env, run_bot_py, run_cli_async
from tests.cli_runner import run_cli as run


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = run(["--help"], tmp_path)
    assert out.returncode == 0
    for cmd in ("run", "sandbox", "migrate", "keys", "audit"):
        assert cmd in out.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "CARELINE_PATIENT_BOT_TOKEN is not set"),
        ({"CARELINE_PATIENT_BOT_TOKEN": "nonsense"}, "CARELINE_PATIENT_BOT_TOKEN"),
        ({"CARELINE_TIMEZONE": "Mars/Olympus"}, "CARELINE_TIMEZONE"),
        ({"CARELINE_ADMIN_IDS": "12,abc"}, "CARELINE_ADMIN_IDS"),
        ({"CARELINE_DEFAULT_LOCALE": "fr"}, "CARELINE_DEFAULT_LOCALE"),
        ({"CARELINE_JURISDICTION": "mars"}, "CARELINE_JURISDICTION"),
        ({"CARELINE_WEBHOOK_URL": "https://clinic.example"}, "CARELINE_WEBHOOK_SECRET"),
        ({"CARELINE_WEBHOOK_PORT": "http"}, "CARELINE_WEBHOOK_PORT"),
        ({"CARELINE_REMIND_AGAIN_MINUTES": "90"}, "CARELINE_REMIND_AGAIN_MINUTES"),
        ({"CARELINE_DOCTOR_AFTER_MINUTES": "5"}, "CARELINE_DOCTOR_AFTER_MINUTES"),
    ],
)
def test_bad_setting_stops_start_with_one_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    _one_line_naming(run(["run"], tmp_path, **env), named)


def test_bad_setting_stops_the_real_process_with_one_line(tmp_path: Path) -> None:
    """Through ``python bot.py``: its exit code, and nothing else on stderr from start-up
    (import-time warnings, logging) that the in-process runs above cannot see."""
    _one_line_naming(run_bot_py(["run"], tmp_path), "CARELINE_PATIENT_BOT_TOKEN is not set")


def _one_line_naming(out: subprocess.CompletedProcess[str], named: str) -> None:
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert named in lines[0]
    assert "Traceback" not in out.stderr


def test_migrate_creates_keys_file_0600_and_warns(tmp_path: Path) -> None:
    out = run(["migrate"], tmp_path)
    assert out.returncode == 0, out.stderr
    versions = ROOT / "storage" / "migrations" / "versions"
    head = max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert f"database at revision {head}" in out.stdout
    keys = tmp_path / "keys.json"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert "BACK IT UP" in out.stderr
    again = run(["migrate"], tmp_path)
    assert "BACK IT UP" not in again.stderr


def test_broken_keys_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{not json")
    out = run(["migrate"], tmp_path)
    assert out.returncode == 2
    assert "keys file" in out.stderr
    assert "Traceback" not in out.stderr


async def _seed(data_dir: Path, patients: int) -> None:
    from storage.crypto import KeyRing
    from storage.migrate import upgrade
    from storage.models import Patient
    from storage.uow import Database

    ring, _ = KeyRing.load_or_create(data_dir / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'careline.db'}", ring)
    await upgrade(db.engine)
    async with db.uow() as uow:
        for i in range(patients):
            p = await uow.patients.add(
                Patient(tg_user_id=1000 + i, locale="en", onboarding_state="done")
            )
            await uow.patients.set_field(p, "name", f"Patient Number{i}")
            await uow.audit.record(f"patient:{p.id}", "profile.update", "patient", p.id)
        await uow.commit()
    await db.dispose()


async def test_keys_rotate_and_audit_verify(tmp_path: Path) -> None:
    await _seed(tmp_path, 7)
    rotated = await run_cli_async(["keys", "rotate"], tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "7/7" in rotated.stderr
    assert "master key 2 is now active; 7 data keys re-wrapped" in rotated.stdout
    ring = json.loads((tmp_path / "keys.json").read_text())
    assert ring["active"] == 2
    assert sorted(ring["master_keys"]) == ["1", "2"]

    ok = await run_cli_async(["audit", "verify"], tmp_path)
    assert ok.returncode == 0
    assert "7 records verified" in ok.stdout

    con = sqlite3.connect(tmp_path / "careline.db")
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("UPDATE audit_log SET action = 'record.view' WHERE seq = 4")
    con.commit()
    con.close()
    bad = await run_cli_async(["audit", "verify"], tmp_path)
    assert bad.returncode == 1
    assert "BROKEN at record 4" in bad.stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('version = "x"\n[[category]\n', "not valid TOML"),
        (None, "unknown department 'nowhere'"),
    ],
)
def test_broken_questionnaire_stops_start_up_naming_file_and_problem(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    """A clinic's own intake file with a typo: one line, the file and the problem, exit 2."""
    path = tmp_path / "clinic-intake.toml"
    if content is None:
        bundled = (ROOT / "flows" / "questionnaires" / "intake.toml").read_text(encoding="utf-8")
        content = bundled.replace('department = "general"', 'department = "nowhere"', 1)
    path.write_text(content, encoding="utf-8")
    out = run(
        ["run"],
        tmp_path,
        CARELINE_INTAKE_FILE=str(path),
        CARELINE_PATIENT_BOT_TOKEN="100001:test-patient-token-0001",
        CARELINE_DOCTOR_BOT_TOKEN="100002:test-doctor-token-0002",
    )
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "BACK IT UP" not in ln]
    assert lines[-1].startswith("careline: data file error: clinic-intake.toml: "), out.stderr
    assert problem in lines[-1]
    assert "Traceback" not in out.stderr


def _seed_doctor(data_dir: Path, *, years: int = 5, status: str = "pending") -> str:
    """A migrated data dir with one doctor applicant; returns the doctor id."""
    import asyncio

    from bot.app import open_database
    from bot.settings import Settings
    from storage.models import Doctor

    assert run(["migrate"], data_dir).returncode == 0

    async def seed() -> str:
        settings = Settings(_env_file=None, data_dir=data_dir)
        db = await open_database(settings)
        try:
            async with db.uow() as uow:
                doctor = await uow.doctors.add(
                    Doctor(
                        tg_user_id=5550001,
                        locale="en",
                        status=status,
                        apply_step="done",
                        years_practice=years,
                        departments="general,cardiology",
                    )
                )
                await uow.doctors.set_field(doctor, "name", "Dr. Test Example")
                await uow.commit()
                return doctor.id
        finally:
            await db.dispose()

    return asyncio.run(seed())


def _outbox_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "careline.db") as conn:
        return int(
            conn.execute("SELECT count(*) FROM outbox WHERE chat_id = 5550001").fetchone()[0]
        )


def test_doctors_list_approve_and_suspend(tmp_path: Path) -> None:
    doctor_id = _seed_doctor(tmp_path)
    listed = run(["doctors", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert doctor_id[:8] in listed.stdout and "pending" in listed.stdout
    assert "Dr. Test Example" in listed.stdout
    approved = run(["doctors", "approve", doctor_id[:6]], tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert f"doctor {doctor_id[:8]}: verified" in approved.stdout
    assert _outbox_count(tmp_path) == 1  # the doctor is told, through the running bot
    again = run(["doctors", "approve", doctor_id], tmp_path)
    assert again.returncode == 1 and "refused" in again.stderr
    verified = run(["doctors", "list", "--status", "verified"], tmp_path)
    assert doctor_id[:8] in verified.stdout
    suspended = run(
        ["doctors", "suspend", doctor_id, "--reason", "licence under review"], tmp_path
    )
    assert suspended.returncode == 0, suspended.stderr
    assert "suspended" in suspended.stdout
    assert _outbox_count(tmp_path) == 2


def test_doctors_reject_and_cn_rule(tmp_path: Path) -> None:
    doctor_id = _seed_doctor(tmp_path, years=2)
    refused = run(["doctors", "approve", doctor_id], tmp_path, CARELINE_JURISDICTION="cn")
    assert refused.returncode == 1
    lines = [ln for ln in refused.stderr.splitlines() if ln.startswith("careline:")]
    assert len(lines) == 1 and "3" in lines[0], refused.stderr
    rejected = run(["doctors", "reject", doctor_id, "--reason", "too little practice"], tmp_path)
    assert rejected.returncode == 0, rejected.stderr
    assert "rejected" in rejected.stdout


@pytest.mark.parametrize("ref", ["abc", "zzzzzzzz", "0123456789ab"])
def test_doctors_bad_id_is_one_line(tmp_path: Path, ref: str) -> None:
    _seed_doctor(tmp_path)
    out = run(["doctors", "approve", ref], tmp_path)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("careline:")]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr


def _seed_clinic(data_dir: Path) -> None:
    """A migrated data dir with a GP on duty, a case she took after 50 minutes and one that
    has waited five hours (over its 4-hour limit)."""
    import asyncio
    from datetime import timedelta

    from bot.app import open_database
    from bot.settings import Settings
    from storage.models import Consultation, Doctor, utcnow

    assert run(["migrate"], data_dir).returncode == 0

    async def seed() -> None:
        settings = Settings(_env_file=None, data_dir=data_dir)
        db = await open_database(settings)
        try:
            async with db.uow() as uow:
                now = utcnow()
                gp = await uow.doctors.add(
                    Doctor(
                        tg_user_id=5550001, locale="en", status="verified",
                        verified_until=now + timedelta(days=30), departments="general",
                    )
                )  # fmt: skip
                for requested, accepted in ((timedelta(minutes=55), timedelta(minutes=5)),
                                            (timedelta(hours=5, seconds=5), None)):  # fmt: skip
                    await uow.consultations.add(
                        Consultation(
                            patient_id="p" * 32, department="general", priority=3,
                            state="active" if accepted else "waiting",
                            doctor_id=gp.id if accepted else None,
                            requested_at=now - requested,
                            accepted_at=now - accepted if accepted else None,
                        )
                    )  # fmt: skip
                await uow.commit()
        finally:
            await db.dispose()

    asyncio.run(seed())


def _table(stdout: str) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split()[1:] for ln in stdout.splitlines() if ln.strip()}


def test_ops_prints_the_operators_table(tmp_path: Path) -> None:
    _seed_clinic(tmp_path)
    out = run(["ops"], tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Queues and waits · ") and lines[0].endswith(" UTC")
    assert lines[1].split() == ["Department", "Drs", "Duty", "Wait", "Oldest", "p50", "p90",
                                "SLA", "Strand"]  # fmt: skip
    assert len({len(ln) for ln in lines[1:4]}) == 1  # aligned columns
    rows = _table(out.stdout)
    assert rows["GP"] == ["1", "1", "1", "5h00m", "50m", "50m", "1", "0"]
    assert rows["Total"] == ["1", "1", "1", "5h00m", "50m", "50m", "1", "0"]
    assert "No doctors and no cases: Cardiology," in out.stdout
    ru = run(["ops"], tmp_path, CARELINE_DEFAULT_LOCALE="ru")
    assert ru.returncode == 0 and _table(ru.stdout)["Терапия"][3] == "5ч00м", ru.stdout


def test_ops_watch_refreshes_until_ctrl_c(tmp_path: Path) -> None:
    """A real process: Ctrl-C (SIGINT) ends the watch quietly, exit 0."""
    import selectors
    import time

    assert run(["migrate"], tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "bot.py", "ops", "--watch", "1"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    titles = 0
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while titles < 2 and time.monotonic() < deadline and sel.select(timeout=1) is not None:
            line = proc.stdout.readline()
            if not line:
                break
            titles += line.startswith("Queues and waits")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=90)
    assert titles == 2, stderr
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_ops_without_a_database_is_one_line(tmp_path: Path) -> None:
    out = run(["ops"], tmp_path, CARELINE_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/x")
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("careline:")]
    assert lines == ["careline: cannot open the database: ConnectionRefusedError"], out.stderr
    assert "Traceback" not in out.stderr
    bad = run(["ops", "--watch", "0"], tmp_path)
    assert bad.returncode == 2 and "between 1 and 3600" in bad.stderr
