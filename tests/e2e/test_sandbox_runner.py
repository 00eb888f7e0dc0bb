"""`bot.py sandbox` keeps its people and data across restarts; --fresh starts empty."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bot.sandbox.client import EmulatorClient
from bot.sandbox.runner import host_warning, start_sandbox
from bot.settings import Settings
from locales import Translator

BOT = "careline_patient_bot"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_restart_keeps_people_and_fresh_forgets(tmp_path: Path) -> None:
    settings = Settings.model_construct(**{**Settings().model_dump(), "data_dir": tmp_path})
    tr = Translator("en")
    sandbox = await start_sandbox(settings, port=_port())
    async with EmulatorClient(sandbox.url) as client:
        alice = await client.create_user("Alice", language_code="en")
        await client.send(alice["id"], BOT, "/start")
        await client.wait_for(alice["id"], BOT)
        await client.click_button(alice["id"], BOT, "English")
        await client.wait_for(alice["id"], BOT)
    await sandbox.stop()

    sandbox = await start_sandbox(settings, port=_port())
    async with EmulatorClient(sandbox.url) as client:
        users = await client.users()
        assert [u["id"] for u in users][-1] == alice["id"] and len(users) == 7
        bob = await client.create_user("Bob", language_code="en")
        assert bob["id"] != alice["id"]
        await client.send(alice["id"], BOT, "/start")
        resumed = await client.wait_for(alice["id"], BOT)
        assert resumed["text"] == tr.plain("onboarding.resume")
    await sandbox.stop()

    sandbox = await start_sandbox(settings, port=_port(), fresh=True)
    async with EmulatorClient(sandbox.url) as client:
        assert len(await client.users()) == 6  # only the new demo people
        assert alice["id"] not in [u["id"] for u in await client.users()]
    await sandbox.stop()


def test_host_warning_only_beyond_loopback() -> None:
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert host_warning("::1") is None
    everywhere = ".".join(["0"] * 4)
    warning = host_warning(everywhere)
    assert warning is not None and "NO authentication" in warning and everywhere in warning


def test_cli_host_warns_and_port_is_used(tmp_path: Path) -> None:
    """`bot.py sandbox --host 0.0.0.0 --port N --fresh` serves the page on N and warns."""
    port = _port()
    env = {**os.environ, "CARELINE_DATA_DIR": str(tmp_path)}
    everywhere = ".".join(["0"] * 4)
    cmd = [sys.executable, "bot.py", "sandbox", "--host", everywhere, "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--fresh"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("sandbox running" in x for x in lines):
            lines.append(proc.stderr.readline())
        lines.append(proc.stderr.readline())  # the warning follows the address
        text = "".join(lines)
        assert f":{port}" in text and "NO authentication" in text, text
        assert "Demo data created" in text and "Lena Brightwater" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sandbox/clock") as resp:
            assert json.loads(resp.read())["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0


async def test_demo_data_on_first_start_only(tmp_path: Path) -> None:
    """A first start makes the admin, two verified doctors in two departments (on duty, all
    day) and an empty patient; a restart keeps them and makes no more; the admin is one."""
    settings = Settings.model_construct(**{**Settings().model_dump(), "data_dir": tmp_path})
    sandbox = await start_sandbox(settings, port=_port())
    try:
        roles = {uid: role for uid, role, _ in sandbox.created}
        # two doctors, the pharmacist (a doctor-bot role), the hospital's desk, a patient
        assert sorted(roles.values()) == ["admin", "desk", "doctor", "doctor", "doctor", "patient"]
        async with sandbox.app.db.uow() as uow:
            doctors = await uow.doctors.with_status("verified", role="doctor")
            assert {d.departments for d in doctors} == {"general", "cardiology"}
            [pharmacist] = await uow.doctors.with_status("verified", role="pharmacist")
            assert not pharmacist.departments
            [desk] = await uow.doctors.with_status("verified", role="desk")
            assert desk.hospital_id is not None
            services = await uow.appointments.services(desk.hospital_id)
            assert {s.name for s in services} == {"Holter monitoring", "Outpatient visit"}
            assert all(d.on_duty and d.work_hours == "00:00-24:00" for d in doctors)
            hospitals = {await uow.doctors.get_field(d, "hospital") for d in doctors}
            assert hospitals == {"Careline Demo Clinic"}
            patient = next(uid for uid, role in roles.items() if role == "patient")
            assert await uow.patients.by_tg_user(patient) is None  # has not sent /start
        admin = next(uid for uid, role in roles.items() if role == "admin")
        assert admin in sandbox.app.settings.admin_ids
        async with EmulatorClient(sandbox.url) as client:
            # The admin is answered as an admin by the doctor bot.
            answer = await client.wait_for(admin, "careline_doctor_bot")
            assert answer["text"] == Translator("en").plain("doctor.admin.none_pending")
    finally:
        await sandbox.stop()
    again = await start_sandbox(settings, port=_port())
    try:
        assert again.created == []
        assert admin in again.app.settings.admin_ids
        async with again.app.db.uow() as uow:
            assert len(await uow.doctors.with_status("verified", role="doctor")) == 2
    finally:
        await again.stop()
