"""Device readings in: how many readings a second the upload API stores, with 0 lost and 0
duplicated.

    python -m benchmarks.readings [--devices 100] [--batch 10] [--duration 20] [--quick]

Setup: a fresh SQLite clinic; ``--devices`` patients, each with a device connected and paired
through the project's flows (flows/devices.py). Careline's upload API (bot/devices_web.py,
the real aiohttp routes over the real database: one transaction per upload with the source
key check, the one-minute duplicate check, sealing, the thresholds and the audit record) runs
in its own process; this process plays the devices: each posts a FHIR transaction Bundle of
``--batch`` Observations (pulse, blood pressure, glucose, SpO2 in turn, normal values, each
with its own identifier), closed loop, for ``--duration`` seconds, and re-sends every 5th
Bundle (an app retrying) — those readings must come back as duplicates.

Afterwards the database is counted: every reading the API said it stored is there once
(``lost`` = acknowledged but missing, ``duplicated`` = stored twice, must both be 0), and
every re-sent one was answered as a duplicate.

Baseline beside it, with the same load: a bare aiohttp handler that ``json.loads`` the Bundle
and inserts each entry's code, value and time with ``INSERT OR IGNORE`` on a unique key into a
plain SQLite table, one transaction per request (no checks, no encryption, no audit).

Progress goes to stderr; the last stdout line is one JSON object:
``{"readings_per_s", "baseline_readings_per_s", "ratio", "p50_ms", "p99_ms", "lost",
"duplicated", "retries_answered_duplicate", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LOINC = "http://loinc.org"
KINDS = ("pulse", "bp", "glucose", "spo2")


def log(text: str) -> None:
    print(f"[readings] {text}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def observation(kind: str, n: int, at: datetime, ident: str) -> dict[str, Any]:
    """A normal reading of ``kind`` (its value varies with ``n``) with its own identifier."""
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:bench:device", "value": ident}],
        "effectiveDateTime": at.isoformat(),
    }
    if kind == "bp":
        r["code"] = {"coding": [{"system": LOINC, "code": "85354-9"}]}
        r["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "code": "mm[Hg]"},
            }
            for code, value in (("8480-6", 110 + n % 30), ("8462-4", 70 + n % 15))
        ]
        return r
    code, unit, value = {
        "pulse": ("8867-4", "/min", 60 + n % 40),
        "glucose": ("15074-8", "mmol/L", round(5.0 + (n % 30) / 10, 1)),
        "spo2": ("2708-6", "%", 95 + n % 5),
    }[kind]
    r["code"] = {"coding": [{"system": LOINC, "code": code}]}
    r["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    return r


# --- the servers (each in its own process) -----------------------------------------------------


def serve_careline(data: Path, port: int, profile: Path | None = None) -> None:
    """Careline's device API over the benchmark's database (``profile``: cProfile stats
    written there when the orchestrator stops it)."""
    import cProfile
    import signal

    from aiohttp import web

    from bot.app import open_database
    from bot.devices_web import DeviceApi

    prof = cProfile.Profile() if profile else None

    def stop(*_: Any) -> None:
        if prof is not None and profile is not None:
            prof.disable()
            prof.dump_stats(str(profile))
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)

    async def main() -> None:
        settings = _settings(data)
        db = await open_database(settings)
        app = web.Application()
        DeviceApi(db, per_minute=1_000_000, public_url="http://127.0.0.1").mount(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        if prof is not None:
            prof.enable()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_bare(data: Path, port: int) -> None:
    """The baseline: parse, then INSERT OR IGNORE each entry in one transaction."""
    from aiohttp import web

    conn = sqlite3.connect(data / "bare.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS readings (key TEXT PRIMARY KEY, device TEXT, code TEXT,"
        " value TEXT, taken_at TEXT)"
    )

    async def upload(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        device = request.match_info["device"]
        stored = duplicates = 0
        conn.execute("BEGIN")
        for entry in body.get("entry", []):
            r = entry["resource"]
            key = device + "|" + r["identifier"][0]["value"]
            value = json.dumps(r.get("valueQuantity") or r.get("component"))
            cur = conn.execute(
                "INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?)",
                (key, device, r["code"]["coding"][0]["code"], value, r["effectiveDateTime"]),
            )
            if cur.rowcount:
                stored += 1
            else:
                duplicates += 1
        conn.execute("COMMIT")
        return web.json_response({"stored": stored, "duplicates": duplicates, "rejected": []})

    async def main() -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/d/{device}/fhir", upload)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _settings(data: Path) -> Any:
    from pydantic import SecretStr

    from bot.settings import Settings

    return Settings(
        _env_file=None,  # pydantic-settings: ignore any .env in the working directory
        patient_bot_token=SecretStr("123456:AAbenchpatient-0000000000000000000000"),
        doctor_bot_token=SecretStr("654321:AAbenchdoctor-00000000000000000000000"),
        data_dir=data,
        keys_file=data / "keys.json",
        redis_url=None,
        webhook_url=None,
        timezone="UTC",
        log_level="WARNING",
    )


# --- the orchestrator ---------------------------------------------------------------------------


async def seed(data: Path, devices: int) -> list[tuple[str, str]]:
    """Patients with a paired device each: [(device id, token)]."""
    from bot.app import open_database
    from flows import devices as flow
    from storage.models import Patient, utcnow

    db = await open_database(_settings(data))
    out = []
    now = utcnow()
    async with db.uow() as uow:
        for n in range(devices):
            patient = await uow.patients.add(
                Patient(tg_user_id=900_000 + n, locale="en", onboarding_state="done",
                        consent_version="1", timezone="UTC")
            )  # fmt: skip
            device, code = await flow.connect(uow, patient, now, "Bench meter")
            device, token = await flow.pair(uow, device.id, code, now)
            out.append((device.id, token))
        await uow.commit()
    await db.dispose()
    return out


def start_server(
    kind: str, data: Path, profile: Path | None = None
) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    extra = ["--profile", str(profile)] if profile is not None and kind == "careline" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.readings", "--serve", kind, "--data", str(data),
         "--port", str(port), *extra],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the {kind} server did not start")
    return proc, port


async def load(
    port: int, devices: list[tuple[str, str]], batch: int, duration: float
) -> dict[str, Any]:
    """Every device posts Bundles in a closed loop; every 5th is sent twice."""
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    acked: dict[str, int] = {}  # identifier -> times answered as stored
    retries = retried_dup = refused = 0
    t0 = datetime.now(UTC) - timedelta(days=300)
    stop_at = time.monotonic() + duration

    async def device_loop(session: aiohttp.ClientSession, i: int, dev: str, token: str) -> None:
        nonlocal retries, retried_dup, refused
        headers = {"Authorization": f"Bearer {token}"}
        n = 0
        while time.monotonic() < stop_at:
            entries = []
            idents = []
            for _ in range(batch):
                kind = KINDS[n % len(KINDS)]
                ident = f"{i}-{n}"
                # a distinct minute per reading: no two of one device fall within a minute
                at = t0 + timedelta(minutes=n * 2)
                entries.append({"resource": observation(kind, n, at, ident)})
                idents.append(ident)
                n += 1
            body = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            sends = 2 if (n // batch) % 5 == 0 else 1
            for attempt in range(sends):
                start = time.perf_counter()
                async with session.post(f"{base}/d/{dev}/fhir", json=body, headers=headers) as r:
                    answer = await r.json()
                    ok = r.status == 200
                latencies.append(time.perf_counter() - start)
                if not ok:
                    refused += 1
                    continue
                if attempt == 0:
                    if answer["stored"] == batch:
                        for ident in idents:
                            acked[f"{dev}|{ident}"] = acked.get(f"{dev}|{ident}", 0) + 1
                    else:
                        refused += 1
                else:
                    retries += 1
                    if answer["duplicates"] == batch and answer["stored"] == 0:
                        retried_dup += 1

    connector = aiohttp.TCPConnector(limit=len(devices) + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(device_loop(session, i, d, t) for i, (d, t) in enumerate(devices)))
        elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
            if latencies
            else 0.0
        )

    stored = len(acked)
    return {
        "readings": stored, "seconds": round(elapsed, 2),
        "readings_per_s": round(stored / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(0.50), 1), "p99_ms": round(pct(0.99), 1),
        "requests": len(latencies), "retries": retries,
        "retries_answered_duplicate": retried_dup, "refused": refused,
        "acked": acked,
    }  # fmt: skip


async def count_careline(data: Path, acked: dict[str, int]) -> tuple[int, int]:
    """(lost, duplicated) in Careline's database: every acknowledged reading once."""
    from sqlalchemy import func, select

    from bot.app import open_database
    from storage.models import Reading

    db = await open_database(_settings(data))
    async with db.uow() as uow:
        rows = await uow.session.execute(
            select(Reading.device_id, func.count()).group_by(Reading.device_id)
        )
        per_device = {str(d): int(n) for d, n in rows.all()}
    await db.dispose()
    expected: dict[str, int] = {}
    for key in acked:
        dev = key.split("|", 1)[0]
        expected[dev] = expected.get(dev, 0) + 1
    lost = sum(max(0, n - per_device.get(d, 0)) for d, n in expected.items())
    duplicated = sum(max(0, per_device.get(d, 0) - n) for d, n in expected.items())
    duplicated += sum(1 for n in acked.values() if n > 1)
    return lost, duplicated


async def orchestrate(opts: argparse.Namespace) -> dict[str, Any]:
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load_avg > 0.5:
        log(
            f"note: load average {load_avg:.1f} at start; other work on this machine skews results"
        )
    with tempfile.TemporaryDirectory(prefix="careline-readings-") as tmp:
        data = Path(tmp)
        log(f"seeding {opts.devices} patients with a paired device")
        devices = await seed(data, opts.devices)
        results: dict[str, Any] = {}
        for kind in ("careline", "bare"):
            proc, port = start_server(kind, data, opts.profile)
            try:
                log(
                    f"{kind}: {opts.devices} devices, Bundles of {opts.batch}, {opts.duration:g} s"
                )
                results[kind] = await load(port, devices, opts.batch, opts.duration)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                if proc.stdout is not None:
                    proc.stdout.close()
            log(f"{kind}: {results[kind]['readings_per_s']} readings/s, request p99 "
                f"{results[kind]['p99_ms']} ms")  # fmt: skip
        lost, duplicated = await count_careline(data, results["careline"]["acked"])
    c, b = results["careline"], results["bare"]
    return {
        "readings_per_s": c["readings_per_s"],
        "baseline_readings_per_s": b["readings_per_s"],
        "ratio": round(c["readings_per_s"] / b["readings_per_s"], 3) if b["readings_per_s"] else 0,
        "p50_ms": c["p50_ms"], "p99_ms": c["p99_ms"],
        "baseline_p50_ms": b["p50_ms"], "baseline_p99_ms": b["p99_ms"],
        "readings": c["readings"], "lost": lost, "duplicated": duplicated,
        "retries": c["retries"], "retries_answered_duplicate": c["retries_answered_duplicate"],
        "refused": c["refused"], "devices": opts.devices, "batch": opts.batch,
        "seconds": c["seconds"], "db": "sqlite", "load_average_at_start": round(load_avg, 2),
    }  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.readings", description=__doc__)
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--batch", type=int, default=10, help="Observations per Bundle")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per server")
    p.add_argument("--quick", action="store_true", help="5 devices, 2 s (a smoke run)")
    p.add_argument("--profile", type=Path, help="write the API process's cProfile stats here")
    p.add_argument("--serve", choices=("careline", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.quick:
        opts.devices, opts.duration = 5, 2.0
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.serve:
        if opts.serve == "careline":
            serve_careline(opts.data, opts.port, opts.profile)
        else:
            serve_bare(opts.data, opts.port)
        return 0
    result = asyncio.run(orchestrate(opts))
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
