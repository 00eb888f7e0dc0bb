"""The operations endpoints on a running clinic (bot/ops_web.py, docs/OPERATIONS.md):
/healthz, /readyz with each of its checks failing in turn, /metrics read by a real
Prometheus-format parser, the correlation id in log lines, and /readyz while stopping."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.ops_web import BUCKETS, OPS_WEB, OpsWeb
from storage.migrate import HEAD
from storage.models import InboxUpdate, utcnow
from tests.conftest import BACKENDS, REDIS_URL
from tests.e2e.conftest import PATIENT_BOT, Clinic, start_clinic, stop_clinic

SECRET = "test-webhook-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _webhook_clinic(
    tmp_path: Path, backend: str, logs: io.StringIO, **extra: Any
) -> tuple[Clinic, str, str]:
    """A clinic in webhook mode; returns it, its db schema and its server's base URL."""
    port = _free_port()
    clinic, schema = await start_clinic(
        tmp_path,
        backend,
        logs,
        webhook_url=f"http://127.0.0.1:{port}",
        webhook_secret=SecretStr(SECRET),
        webhook_host="127.0.0.1",
        webhook_port=port,
        **extra,
    )
    return clinic, schema, f"http://127.0.0.1:{port}"


async def _get(url: str) -> tuple[int, str, Any]:
    """(status, content type, body: JSON when it is JSON, else text)."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.text()
        ctype = resp.headers.get("Content-Type", "")
        return resp.status, ctype, json.loads(body) if "json" in ctype else body


class Probe(BaseMiddleware):
    """An outer middleware on the patient bot: fails, logs or blocks on marked texts."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message if isinstance(event, Update) else None
        text = message.text if message else None
        if text == "ops-fail":
            raise RuntimeError("deliberate failure")
        if text == "ops-log":
            logging.getLogger("careline.test").info("inside handler")
        if text == "ops-block":
            self.entered.set()
            await self.release.wait()
            self.finished = True
            return None
        return await handler(event, data)


def _probe(clinic: Clinic) -> Probe:
    probe = Probe()
    clinic.app.processor.bots["patient"].dispatcher.update.outer_middleware(probe)
    return probe


def _samples(exposition: str) -> tuple[dict[str, str], dict[tuple[str, frozenset[Any]], float]]:
    """Family types by name, and every sample's value by (name, labels)."""
    types: dict[str, str] = {}
    values: dict[tuple[str, frozenset[Any]], float] = {}
    for family in text_string_to_metric_families(exposition):
        types[family.name] = family.type
        for s in family.samples:
            values[(s.name, frozenset(s.labels.items()))] = s.value
    return types, values


def _value(values: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return values[(name, frozenset(labels.items()))]


async def _wait_until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_healthz_and_readyz_when_all_is_well(
    tmp_path: Path, log_capture: io.StringIO, backend: str
) -> None:
    clinic, schema, base = await _webhook_clinic(tmp_path, backend, log_capture)
    try:
        assert await _get(f"{base}/healthz") == (
            200,
            "application/json; charset=utf-8",
            {"status": "ok"},
        )
        status, _, body = await _get(f"{base}/readyz")
        assert status == 200, body
        assert body["status"] == "ready"
        assert {n for n, c in body["checks"].items() if c["ok"]} == {
            "database",
            "migrations",
            "bot_api",
            "workers",
            "redis",
        }
        assert body["checks"]["migrations"]["detail"] == f"at {HEAD}"
        assert body["checks"]["redis"]["detail"].startswith("skipped")
    finally:
        await stop_clinic(clinic, schema)


@pytest.mark.redis
@pytest.mark.skipif(REDIS_URL is None, reason="CARELINE_TEST_REDIS_URL is not set (no Redis)")
async def test_readyz_pings_redis(tmp_path: Path, log_capture: io.StringIO) -> None:
    clinic, schema, base = await _webhook_clinic(
        tmp_path, "sqlite", log_capture, redis_url=REDIS_URL
    )
    try:
        status, _, body = await _get(f"{base}/readyz")
        assert status == 200, body
        assert body["checks"]["redis"] == {"ok": True, "detail": "PONG"}
    finally:
        await stop_clinic(clinic, schema)


async def test_readyz_names_redis_when_it_is_unreachable(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    closed = _free_port()  # nothing listens there
    url = f"redis://:not-a-real-password@127.0.0.1:{closed}/0"
    clinic, schema, base = await _webhook_clinic(tmp_path, "sqlite", log_capture, redis_url=url)
    try:
        status, _, body = await _get(f"{base}/readyz")
        assert status == 503
        assert body["status"] == "not ready"
        assert body["failed"] == ["redis"]
        assert "not-a-real-password" not in json.dumps(body)
        assert str(closed) not in body["checks"]["redis"]["detail"]
    finally:
        await stop_clinic(clinic, schema)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_readyz_names_the_migrations_when_the_database_is_behind(
    tmp_path: Path, log_capture: io.StringIO, backend: str
) -> None:
    clinic, schema, base = await _webhook_clinic(tmp_path, backend, log_capture)
    older = f"{int(HEAD) - 1:04d}"
    try:
        async with clinic.app.db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": older})
        status, _, body = await _get(f"{base}/readyz")
        assert status == 503
        assert body["failed"] == ["migrations"]
        assert body["checks"]["migrations"]["detail"] == f"at {older}, expected {HEAD}"
        # Ahead of this code (a newer release migrated during a rolling upgrade): ready.
        async with clinic.app.db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9001'"))
        status, _, body = await _get(f"{base}/readyz")
        assert status == 200, body
        assert body["checks"]["migrations"]["detail"] == f"at 9001, newer than this code's {HEAD}"
    finally:
        await stop_clinic(clinic, schema)


async def test_readyz_names_the_bot_api_when_it_is_unreachable_in_polling_mode(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    """Polling mode: the routes are on the verify server."""
    port = _free_port()
    clinic, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, verify_host="127.0.0.1", verify_port=port
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await clinic.emulator.stop()
        assert (await _get(f"{base}/healthz"))[0] == 200
        status, _, body = await _get(f"{base}/readyz")
        assert status == 503
        assert body["failed"] == ["bot_api"]
        detail = body["checks"]["bot_api"]["detail"]
        assert detail.startswith("patient: ") and "doctor: " in detail
        assert "token" not in detail
    finally:
        await stop_clinic(clinic, schema)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_metrics_read_by_a_prometheus_parser(
    tmp_path: Path, log_capture: io.StringIO, backend: str
) -> None:
    clinic, schema, base = await _webhook_clinic(tmp_path, backend, log_capture)
    app = clinic.app
    try:
        probe = _probe(clinic)
        uid = await clinic.person("Alice")
        reply = await clinic.say(uid, "/start")
        button = reply["reply_markup"]["inline_keyboard"][0][0]["text"]
        await clinic.press(uid, button)  # a callback_query
        await clinic.say(uid, "ops-fail")  # the person is told something went wrong
        logged = await clinic.client.send(uid, PATIENT_BOT, "ops-log")
        await clinic.settled()

        status, ctype, exposition = await _get(f"{base}/metrics")
        assert status == 200
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        types, values = _samples(exposition)

        def count(name: str, kind: str) -> float:
            return values.get((name, frozenset({("bot", "patient"), ("kind", kind)})), 0.0)

        assert count("careline_updates_failed_total", "message") == 1
        assert count("careline_updates_processed_total", "message") >= 2
        assert count("careline_updates_processed_total", "callback_query") == 1
        handled = sum(
            count(f"careline_updates_{what}_total", kind)
            for what in ("processed", "failed")
            for kind in ("message", "callback_query")
        )
        received = sum(
            count("careline_updates_received_total", kind)
            for kind in ("message", "callback_query")
        )
        assert received == handled

        assert types["careline_update_processing_seconds"] == "histogram"
        hist = "careline_update_processing_seconds"
        buckets = {
            dict(labels)["le"]: v
            for (name, labels), v in values.items()
            if name == f"{hist}_bucket" and dict(labels)["bot"] == "patient"
        }
        bounds = sorted((float(le) for le in buckets), key=float)
        assert bounds == [*BUCKETS, float("inf")]
        cumulative = [buckets[le] for le in sorted(buckets, key=float)]
        assert cumulative == sorted(cumulative)
        assert buckets["+Inf"] == _value(values, f"{hist}_count", bot="patient") == handled

        sent_to_alice = len(await clinic.bot_texts(uid))
        assert _value(values, "careline_outbox_sent_total") >= sent_to_alice > 0
        assert _value(values, "careline_outbox_rate_limited_total") == 0
        assert _value(values, "careline_queue_figures_ok") == 1
        for gauge in ("inbox_pending", "outbox_pending", "scheduled_events_due"):
            assert _value(values, f"careline_{gauge}") == 0, gauge

        # Every line logged while the update was processed carries its correlation id;
        # none carries what the person wrote.
        lines = [json.loads(line) for line in log_capture.getvalue().splitlines()]
        inside = [r for r in lines if r["event"] == "inside handler"]
        assert [r.get("update") for r in inside] == [f"patient:{logged['update_id']}"]
        failed = [r for r in lines if r["event"] == "update failed"]
        assert len(failed) == 1 and failed[0]["update"].startswith("patient:")
        assert "ops-fail" not in log_capture.getvalue()
        assert "deliberate failure" not in log_capture.getvalue()
        assert not probe.entered.is_set()

        # Work that waits shows in the gauges: stop the processor, sweeper and sender, then
        # queue an update, a call and an event due two minutes ago.
        ops = app._web.app[OPS_WEB]  # type: ignore[union-attr]
        ops.metrics.figures_ttl = 0  # each scrape reads the database again
        for part in (app.processor, app.sweeper, app.sender):
            await part.stop()
        tasks = {t.get_name(): t for t in app._tasks}
        await asyncio.gather(tasks["processor"], tasks["sweeper"], tasks["sender"])
        await clinic.client.send(uid, PATIENT_BOT, "/help")
        async with app.db.uow() as uow:
            await uow.outbox.enqueue("patient", uid, "sendMessage", {"chat_id": uid, "text": "-"})
            await uow.events.add("ops.test", "s", "p", utcnow() - timedelta(minutes=2))
            await uow.commit()

        async def inbox_waits() -> bool:
            async with app.db.uow() as uow:
                return await uow.inbox.count("pending") == 1

        await _wait_until(inbox_waits)
        _, _, exposition = await _get(f"{base}/metrics")
        _, values = _samples(exposition)
        assert _value(values, "careline_inbox_pending") == 1
        assert _value(values, "careline_outbox_pending") == 1
        assert _value(values, "careline_scheduled_events_due") == 1
        assert _value(values, "careline_scheduler_lag_seconds") >= 120
        assert _value(values, "careline_inbox_oldest_pending_seconds") >= 0
        assert _value(values, "careline_outbox_oldest_pending_seconds") >= 0

        status, _, body = await _get(f"{base}/readyz")
        assert status == 503
        assert body["failed"] == ["workers"]
        assert body["checks"]["workers"]["detail"] == (
            "processor stopped; sender stopped; sweeper stopped"
        )
    finally:
        await stop_clinic(clinic, schema)


async def test_readyz_says_stopping_while_in_flight_work_finishes(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    """Careline.stop(): /readyz answers 503 from its first step, and the update being
    processed still finishes (committed) before stop() returns."""
    clinic, schema = await start_clinic(tmp_path, "sqlite", log_capture)
    # The routes on a server of their own: stop() closes the app's servers first.
    web_app = web.Application()
    OpsWeb(clinic.app).mount(web_app)
    server = TestServer(web_app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        probe = _probe(clinic)
        uid = await clinic.person("Alice")
        sent = await clinic.client.send(uid, PATIENT_BOT, "ops-block")
        await asyncio.wait_for(probe.entered.wait(), 20)
        assert (await _get(f"{base}/readyz"))[0] == 200

        stopping = asyncio.create_task(clinic.app.stop())
        status, _, body = await _get(f"{base}/readyz")
        assert (status, body) == (503, {"status": "stopping"})
        assert not stopping.done() and not probe.finished

        probe.release.set()
        await asyncio.wait_for(stopping, 30)
        assert probe.finished
        async with AsyncSession(clinic.app.db.engine) as session:
            done = await session.scalar(
                select(InboxUpdate.status).where(InboxUpdate.update_id == sent["update_id"])
            )
        assert done == "done"
    finally:
        await server.close()
        await stop_clinic(clinic, schema)
