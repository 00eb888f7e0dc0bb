"""Device alert latency: a home device's over-threshold reading, to the doctor's chat.

    python -m benchmarks.device_alert [--patients 300] [--doctors 30] [--rate 10]
                                      [--db sqlite|postgresql+asyncpg://...]

Careline: the real app (both bots over the project's Bot API emulator, the processor, the
outbox sender, the sweeper) and the device upload API (bot/devices_web.py) on a local port.
N patients are seeded through the project's flows, each with an active hypertension
follow-up plan with one of D verified doctors and a paired device labelled ``cuff-<n>``
(Telegram allows a bot about one message a second in one chat, and the outbox keeps to
that, so all alerts to one doctor would measure that limit, not Careline). Each
device then posts one FHIR Observation of a high blood pressure (188/114 mmHg, over the
plan's threshold), open loop, at Poisson times with mean rate ``--rate`` per second.

Latency of one alert = from just before the device's POST to the moment the emulator stored
the doctor bot's message naming ``cuff-<n>`` (both clocks in this process). Every alert
must arrive exactly once, in the doctor's chat.

Baseline beside it, with the same load: a bare aiohttp endpoint that parses the JSON and
sends the doctor one ``sendMessage`` through aiogram (no database, no thresholds, no outbox).

Everything runs in this one process (emulator, app, API, load), so the machine's other work
and the emulator's own cost are in both figures; the ratio is the comparison. Progress goes
to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from benchmarks.inbound import DOCTOR_BOT, DOCTOR_TOKEN, PATIENT_BOT, PATIENT_TOKEN, log
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.emulator_state import BotRecord, ChatState, StoredMessage

_LABEL = re.compile(r"cuff-(\d+)")


@dataclass
class Probe:
    """When each device posted, and when its alert reached the doctor's chat."""

    doctor_bot_id: int = 0
    doctor_uids: dict[int, int] = field(default_factory=dict)  # patient n -> doctor's chat
    expected: int = 0
    posted: dict[int, float] = field(default_factory=dict)
    arrived: dict[int, float] = field(default_factory=dict)
    copies: dict[int, int] = field(default_factory=dict)
    elsewhere: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def on_bot_message(self, bot_id: int, chat_user: int, text: str, now: float) -> None:
        if bot_id != self.doctor_bot_id:
            return
        m = _LABEL.search(text)
        if m is None:
            return
        n = int(m.group(1))
        if chat_user != self.doctor_uids.get(n):
            self.elsewhere += 1
            return
        self.copies[n] = self.copies.get(n, 0) + 1
        self.arrived.setdefault(n, now)
        if len(self.arrived) >= self.expected:
            self.all_in.set()


class TimedEmulator(BotApiEmulator):
    """The project's emulator, stamping each bot message it stores."""

    def __init__(self, probe: Probe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    def add_bot_message(self, bot: BotRecord, chat: ChatState, msg: StoredMessage) -> None:
        super().add_bot_message(bot, chat, msg)
        self.probe.on_bot_message(
            bot.id, chat.user_id, msg.text or msg.caption or "", time.monotonic()
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def observation(n: int) -> dict[str, Any]:
    """A high blood pressure taken now, as a cuff sends it."""
    from storage.models import utcnow

    return {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:bench", "value": f"bp-{n}-{time.time_ns()}"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "effectiveDateTime": utcnow().isoformat(),
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "code": "mm[Hg]"},
            }
            for code, value in (("8480-6", 188), ("8462-4", 114))
        ],
    }


async def seed(db: Any, patients: int, doctor_uids: list[int]) -> list[tuple[str, str]]:
    """Verified doctors; patients with a hypertension plan (patient n with doctor n mod the
    number of doctors) and a paired ``cuff-<n>``."""
    from flows import devices as flow
    from flows.onboarding import CONSENT_VERSION, Step
    from storage.models import Doctor, FollowUpPlan, Patient, utcnow

    now = utcnow()
    out: list[tuple[str, str]] = []
    doctors = []
    async with db.uow() as uow:
        for i, uid in enumerate(doctor_uids):
            doctor = await uow.doctors.add(
                Doctor(tg_user_id=uid, locale="en", status="verified",
                       verified_until=now + timedelta(days=300), departments="general")
            )  # fmt: skip
            await uow.doctors.set_field(doctor, "name", f"Dr Bench {i + 1}")
            doctors.append(doctor.id)
        await uow.commit()
    for start in range(0, patients, 50):
        async with db.uow() as uow:
            for n in range(start, min(patients, start + 50)):
                patient = await uow.patients.add(
                    Patient(tg_user_id=8_000_000 + n, locale="en", consent_version=CONSENT_VERSION,
                            onboarding_state=Step.DONE.value, timezone="UTC")
                )  # fmt: skip
                await uow.patients.set_field(patient, "name", f"Bench Patient {n}")
                plan = FollowUpPlan(patient_id=patient.id, doctor_id=doctors[n % len(doctors)],
                                    template="hypertension", status="active")  # fmt: skip
                uow.session.add(plan)
                device, code = await flow.connect(uow, patient, now, f"cuff-{n}")
                device, token = await flow.pair(uow, device.id, code, now)
                out.append((device.id, token))
            await uow.commit()
    return out


async def _load(
    port: int, devices: list[tuple[str, str]], rate: float, probe: Probe, seed: int
) -> dict[str, Any]:
    """Post one reading per device at Poisson times; wait for every alert (or 60 s)."""
    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    async with ClientSession() as http:

        async def post(n: int, device_id: str, token: str) -> None:
            probe.posted[n] = time.monotonic()
            async with http.post(
                f"http://127.0.0.1:{port}/d/{device_id}/fhir",
                json=observation(n),
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                statuses[n] = r.status
                await r.read()

        tasks = []
        t0 = time.monotonic()
        at = 0.0
        for n, (device_id, token) in enumerate(devices):
            at += rng.expovariate(rate)
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(n, device_id, token)))
        await asyncio.gather(*tasks)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.all_in.wait(), timeout=60)
        await asyncio.sleep(1.0)  # a late second copy would show here
    lat = sorted((probe.arrived[n] - probe.posted[n]) * 1000 for n in probe.arrived)

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {
        "alerts": len(devices),
        "arrived": len(probe.arrived),
        "lost": len(devices) - len(probe.arrived),
        "duplicated": sum(c - 1 for c in probe.copies.values() if c > 1),
        "misrouted": probe.elsewhere,
        "http_errors": sum(1 for s in statuses.values() if s != 200),
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 1) if lat else None,
    }  # fmt: skip


async def run_careline(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    from pydantic import SecretStr

    from bot.app import Careline
    from bot.devices_web import DeviceApi
    from bot.settings import Settings
    from storage.crypto import KeyRing
    from storage.migrate import upgrade
    from storage.uow import Database

    probe = Probe(expected=opts.patients)
    emulator = TimedEmulator(probe, limits=RateLimits(enabled=False))
    uids = [emulator.create_user("Bench", last_name=f"Doctor {i}").id for i in range(opts.doctors)]
    probe.doctor_uids = {n: uids[n % len(uids)] for n in range(opts.patients)}
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    doctor_bot = emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Doctors")
    probe.doctor_bot_id = int(doctor_bot["id"])
    for uid in uids:
        emulator.chat(probe.doctor_bot_id, uid).seen = True  # the doctor wrote to the bot
    url = await emulator.start("127.0.0.1", 0)
    ring, _ = KeyRing.load_or_create(work / "keys.json")
    schema = ""
    if opts.db == "sqlite":
        db_url = f"sqlite+aiosqlite:///{work / 'careline.db'}"
        db = Database(db_url, ring)
    else:
        db_url = opts.db
        schema = f"bench_{os.getpid()}_{int(time.time())}"
        admin = Database(db_url, ring)
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        await admin.dispose()
        db = Database(db_url, ring, connect_args={"server_settings": {"search_path": schema}})
    await upgrade(db.engine)
    settings = Settings(
        _env_file=None,
        patient_bot_token=SecretStr(PATIENT_TOKEN),
        doctor_bot_token=SecretStr(DOCTOR_TOKEN),
        telegram_api_url=url,
        data_dir=work,
        database_url=db_url,
        keys_file=work / "keys.json",
        redis_url=None,
        webhook_url=None,
        timezone="UTC",
        default_locale="en",
        log_level="WARNING",
    )
    app = await Careline.build(settings, db)
    log(f"careline: seeding {opts.patients} patients with a plan and a paired cuff")
    devices = await seed(db, opts.patients, uids)
    await app.start()
    api = web.Application()
    DeviceApi.from_settings(db, settings, on_commit=app.sender.poke).mount(api)
    runner = web.AppRunner(api)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        log(f"careline: {opts.patients} readings at {opts.rate:g}/s")
        return await _load(port, devices, opts.rate, probe, opts.seed)
    finally:
        await runner.cleanup()
        await app.stop()
        await emulator.stop()
        if schema:
            admin = Database(db_url, ring)
            async with admin.engine.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.dispose()


async def run_bare(opts: argparse.Namespace) -> dict[str, Any]:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    probe = Probe(expected=opts.patients)
    emulator = TimedEmulator(probe, limits=RateLimits(enabled=False))
    uids = [emulator.create_user("Bench", last_name=f"Doctor {i}").id for i in range(opts.doctors)]
    probe.doctor_uids = {n: uids[n % len(uids)] for n in range(opts.patients)}
    doctor_bot = emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Doctors")
    probe.doctor_bot_id = int(doctor_bot["id"])
    for uid in uids:
        emulator.chat(probe.doctor_bot_id, uid).seen = True  # the doctor wrote to the bot
    url = await emulator.start("127.0.0.1", 0)
    bot = Bot(DOCTOR_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    devices = [(f"d{n}", f"t{n}") for n in range(opts.patients)]
    labels = {d: n for n, (d, _) in enumerate(devices)}

    async def upload(request: web.Request) -> web.Response:
        body = await request.json()
        value = "/".join(str(c["valueQuantity"]["value"]) for c in body["component"])
        n = labels[request.match_info["device"]]
        await bot.send_message(probe.doctor_uids[n], f"📟 Blood pressure from cuff-{n}: {value}")
        return web.json_response({"stored": 1})

    api = web.Application()
    api.router.add_post("/d/{device}/fhir", upload)
    runner = web.AppRunner(api)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        log(f"bare: {opts.patients} readings at {opts.rate:g}/s")
        return await _load(port, devices, opts.rate, probe, opts.seed)
    finally:
        await runner.cleanup()
        await bot.session.close()
        await emulator.stop()


async def orchestrate(opts: argparse.Namespace) -> dict[str, Any]:
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load_avg > 0.5:
        log(f"note: load average {load_avg:.1f} at start; other work skews results")
    with tempfile.TemporaryDirectory(prefix="careline-alert-") as tmp:
        careline = await run_careline(opts, Path(tmp))
    bare = await run_bare(opts)
    c99, b99 = careline["p99_ms"], bare["p99_ms"]
    return {
        **careline,
        "baseline_p50_ms": bare["p50_ms"], "baseline_p99_ms": b99,
        "baseline_lost": bare["lost"],
        "p99_ratio": round(c99 / b99, 1) if c99 and b99 else None,
        "goal_p99_ms": 2000, "met": bool(c99 is not None and c99 <= 2000 and not careline["lost"]),
        "patients": opts.patients, "doctors": opts.doctors, "rate_per_s": opts.rate,
        "db": opts.db.split(":")[0],
        "load_average_at_start": round(load_avg, 2),
    }  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.device_alert", description=__doc__)
    ap.add_argument("--patients", type=int, default=300, help="devices, one reading each")
    ap.add_argument(
        "--doctors", type=int, default=30,
        help="doctors sharing the patients (Telegram allows about one message a second per chat)",
    )  # fmt: skip
    ap.add_argument("--rate", type=float, default=10.0, help="mean readings per second")
    ap.add_argument("--db", default="sqlite", help="sqlite or a postgresql+asyncpg:// URL")
    ap.add_argument("--seed", type=int, default=7)
    opts = ap.parse_args(argv)
    if opts.patients < 1 or opts.rate <= 0 or opts.doctors < 1:
        ap.error("--patients, --doctors and --rate must be positive")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    result = asyncio.run(orchestrate(opts))
    log(
        f"alert p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (goal 2000); bare p99 "
        f"{result['baseline_p99_ms']} ms; lost {result['lost']}, duplicated {result['duplicated']}"
    )
    print(json.dumps(result))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
