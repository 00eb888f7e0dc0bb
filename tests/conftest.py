"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and a key ring."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from storage.crypto import KeyRing
from storage.migrate import upgrade
from storage.uow import Database

PG_URL = os.environ.get("CARELINE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("CARELINE_TEST_REDIS_URL")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                PG_URL is None, reason="CARELINE_TEST_POSTGRES_URL is not set (no PostgreSQL)"
            ),
        ],
    ),
]


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    """A fresh master key ring in a temp dir."""
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    return ring


# Migrating costs ~80 ms on SQLite and ~200 ms on PostgreSQL, and hundreds of tests want a fresh
# database: each backend is migrated once per test process into a template, and every test
# gets a copy (a file copy on SQLite; CREATE DATABASE … TEMPLATE on PostgreSQL, ~25 ms).
_TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="careline-template-"))
atexit.register(shutil.rmtree, _TEMPLATE_DIR, True)
_sqlite_template: Path | None = None
_pg_template: str | None = None


def _pg_url(database: str) -> str:
    assert PG_URL is not None
    return str(make_url(PG_URL).set(database=database).render_as_string(hide_password=False))


async def _pg_admin(sql: str) -> None:
    assert PG_URL is not None
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


def _drop_pg_template(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"'))


async def _template(backend: str, ring: KeyRing) -> str:
    """The migrated template of ``backend``: a file path on SQLite, a database name on
    PostgreSQL (made on first use; the migrations hold no key material, so any ring will do)."""
    global _sqlite_template, _pg_template
    if backend == "sqlite":
        if _sqlite_template is None:
            path = _TEMPLATE_DIR / "template.db"
            db = Database(f"sqlite+aiosqlite:///{path}", ring)
            await upgrade(db.engine)
            await db.dispose()  # closes the last connection: the WAL is folded in
            _sqlite_template = path
        return str(_sqlite_template)
    if _pg_template is None:
        name = f"careline_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        atexit.register(_drop_pg_template, name)
        db = Database(_pg_url(name), ring)
        await upgrade(db.engine)
        await db.dispose()
        _pg_template = name
    return _pg_template


async def make_database(backend: str, tmp_path: Path, ring: KeyRing) -> tuple[Database, str]:
    """A migrated, empty database (a copy of the backend's template); for PostgreSQL a
    database of its own, whose name is returned for :func:`drop_database`."""
    template = await _template(backend, ring)
    if backend == "sqlite":
        path = tmp_path / "careline.db"
        shutil.copyfile(template, path)
        return Database(f"sqlite+aiosqlite:///{path}", ring), ""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return Database(_pg_url(name), ring), name


async def drop_database(db: Database, name: str) -> None:
    """Dispose of a test database (drop its PostgreSQL database)."""
    await db.dispose()
    if name:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, keyring: KeyRing
) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    database, schema = await make_database(request.param, tmp_path, keyring)
    try:
        yield database
    finally:
        await drop_database(database, schema)


# The modules that take longest (their tests' time summed from `--durations=0` in a CI run;
# every module over 8 s), longest first. Under
# `-n 3 --dist loadscope` a module runs on one worker and modules are handed out in collection
# order, so these are collected first: they start at once and the short ones fill in around
# them, instead of one of them starting last and running alone at the end.
SLOW_FIRST = (
    "tests/e2e/test_resilience.py",
    "tests/flows/test_followup.py",
    "tests/e2e/test_reminder_processes.py",
    "tests/browser/test_journey.py",
    "tests/browser/test_sandbox_clock.py",
    "tests/e2e/test_consultation.py",
    "tests/e2e/test_intake.py",
    "tests/flows/test_redflags.py",
    "tests/browser/test_sandbox_walkthrough.py",
    "tests/browser/test_bodymap_page.py",
    "tests/flows/test_slip_appointment.py",
    "tests/e2e/test_booking_calls.py",
    "tests/e2e/test_referrals.py",
    "tests/e2e/test_med_plans.py",
    "tests/browser/test_booking_video.py",
    "tests/e2e/test_relay.py",
    "tests/e2e/test_sender_concurrency.py",
    "tests/e2e/test_appointments.py",
    "tests/e2e/test_bad_input.py",
    "tests/flows/test_doses.py",
    "tests/storage/test_audit_tamper.py",
    "tests/browser/test_sandbox_page.py",
    "tests/e2e/test_onboarding.py",
    "tests/storage/test_keys_failsafe.py",
    "tests/flows/test_referrals.py",
    "tests/browser/test_booking_pay.py",
    "tests/test_cli.py",
    "tests/e2e/test_free_text.py",
    "tests/flows/test_alert_resolution.py",
    "tests/e2e/test_health_import.py",
    "tests/e2e/test_authorization.py",
    "tests/flows/test_understand.py",
    "tests/e2e/test_bodymap.py",
    "tests/e2e/test_scenarios.py",
    "tests/e2e/test_followups.py",
    "tests/test_benchmark_readings.py",
    "tests/test_benchmark_reminders.py",
    "tests/e2e/test_rx_web.py",
    "tests/flows/test_ops_week.py",
    "tests/e2e/test_booking.py",
    "tests/flows/test_medication.py",
    "tests/flows/test_prescriptions.py",
    "tests/storage/test_storage.py",
    "tests/flows/test_devices.py",
    "tests/browser/test_real_sandbox.py",
    "tests/browser/test_sandbox_device.py",
    "tests/e2e/test_workers.py",
    "tests/e2e/test_doctor_onboarding.py",
    "tests/flows/test_appointments.py",
    "tests/flows/test_rx_pdf.py",
    "tests/e2e/test_sandbox_runner.py",
    "tests/storage/test_booking_race.py",
    "tests/flows/test_who_wording.py",
    "tests/storage/test_erasure_backups.py",
    "tests/e2e/test_sandbox_walkthrough.py",
    "tests/e2e/test_reminder_priority.py",
    "tests/test_property_updates.py",
    "tests/e2e/test_trust.py",
    "tests/e2e/test_verify_attacks.py",
    "tests/e2e/test_prescriptions.py",
    "tests/emulator/test_payments.py",
    "tests/e2e/test_verify_page.py",
    "tests/flows/test_machines.py",
    "tests/e2e/test_caregivers.py",
    "tests/e2e/test_reply_keyboards.py",
    "tests/e2e/test_record.py",
    "tests/e2e/test_ops.py",
    "tests/flows/test_export.py",
    "tests/storage/test_scheduler.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long modules first (see SLOW_FIRST); the rest keep their order, as do tests within a
    module."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    last = len(SLOW_FIRST)
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], last))
