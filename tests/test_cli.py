"""The operator's command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python bot.py ARGS`` with a clean CARELINE_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CARELINE_")}
    clean.update({"CARELINE_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
    ],
)
def test_bad_setting_stops_start_with_one_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    out = run(["run"], tmp_path, **env)
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
    rotated = run(["keys", "rotate"], tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "7/7" in rotated.stderr
    assert "master key 2 is now active; 7 data keys re-wrapped" in rotated.stdout
    ring = json.loads((tmp_path / "keys.json").read_text())
    assert ring["active"] == 2
    assert sorted(ring["master_keys"]) == ["1", "2"]

    ok = run(["audit", "verify"], tmp_path)
    assert ok.returncode == 0
    assert "7 records verified" in ok.stdout

    con = sqlite3.connect(tmp_path / "careline.db")
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("UPDATE audit_log SET action = 'record.view' WHERE seq = 4")
    con.commit()
    con.close()
    bad = run(["audit", "verify"], tmp_path)
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
