"""The device upload API (flows/devices.py), on the same aiohttp server as the verify page.

``POST /d/<device>/pair`` with ``{"code": "ABCD-EFGH"}`` (the one-time code /devices showed)
answers ``{"token": …, "upload": …}`` once. ``POST /d/<device>/fhir`` with
``Authorization: Bearer <token>`` and a FHIR R4 ``Observation`` or ``Bundle`` (JSON, at most
:data:`MAX_BODY` bytes) stores the readings and answers ``{"stored", "duplicates",
"rejected": [{"index", "reason", "detail"}]}``: 200 when anything was stored or was a
duplicate, 422 when every entry was refused. Errors are FHIR ``OperationOutcome``s: 400 (not
JSON / not an Observation or Bundle), 401 (no or wrong token; a revoked device is named as
such), 403 (a wrong, used or expired pairing code), 413 (too large), 429 (over the rate
limit, with ``Retry-After``). This is Careline's upload endpoint, not a general FHIR server.

Each upload is one transaction: stored readings, the care alerts and messages they cause, and
the audit record commit together, then the sender is woken.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.ratelimit import Limiter, LimiterFactory, in_memory
from bot.settings import Settings
from flows import devices as flow
from flows import fhir_readings
from flows.domain import utcnow
from storage.uow import Database

MAX_BODY = 4 * 1024 * 1024  # a Bundle of 1,000 Observations is about 0.6 MB
JSON = "application/fhir+json"


def outcome(status: int, code: str, text: str, **headers: str) -> web.Response:
    """A FHIR OperationOutcome error response."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return web.json_response(body, status=status, content_type=JSON, headers=headers or None)


@dataclass
class DeviceApi:
    """The routes of the device upload API over a database (``on_commit``: wakes the sender
    after an upload that queued messages)."""

    db: Database | None
    emergency_number: str = "112"
    per_minute: int = 600  # uploads per device a minute
    pair_per_minute: int = 10  # pairing attempts per client address a minute
    public_url: str = "http://localhost"
    now: Callable[[], datetime] = field(default=utcnow)
    on_commit: Callable[[], Any] | None = None
    limits: LimiterFactory = field(default=in_memory)
    limiter: Limiter = field(init=False)
    pair_limiter: Limiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = self.limits("devices", self.per_minute, 60.0)
        self.pair_limiter = self.limits("devices-pair", self.pair_per_minute, 60.0)

    @classmethod
    def from_settings(
        cls,
        db: Database | None,
        settings: Settings,
        on_commit: Callable[[], Any] | None = None,
        limits: LimiterFactory = in_memory,
    ) -> DeviceApi:
        """The API as a deployment's settings configure it."""
        return cls(
            db,
            emergency_number=settings.local_emergency_number,
            public_url=settings.public_url,
            on_commit=on_commit,
            limits=limits,
        )

    def mount(self, app: web.Application) -> None:
        """Add the routes to an aiohttp application (before it starts)."""
        app.router.add_post("/d/{device}/pair", self.pair)
        app.router.add_post("/d/{device}/fhir", self.upload)

    async def _body(self, request: web.Request) -> bytes | None:
        """The request body, or None when it is over :data:`MAX_BODY` (read in chunks, never
        more than the limit)."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            return None
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def pair(self, request: web.Request) -> web.Response:
        """The pairing code, once: the upload token."""
        assert self.db is not None
        if not await self.pair_limiter.allow(request.remote or "?"):
            return outcome(429, "throttled", "too many pairing attempts", **{"Retry-After": "60"})
        body = await self._body(request)
        if body is None:
            return outcome(413, "too-costly", "the body is too large")
        try:
            code = json.loads(body or b"{}").get("code")
        except (ValueError, AttributeError):
            code = None
        if not isinstance(code, str) or not code.strip():
            return outcome(400, "invalid", 'send {"code": "<the pairing code from /devices>"}')
        device_id = request.match_info["device"][:32]
        async with self.db.uow() as uow:
            try:
                device, token = await flow.pair(uow, device_id, code, self.now())
            except flow.DeviceError:
                await uow.commit()  # the refusal's audit record
                return outcome(403, "forbidden", "the pairing code is wrong, used or expired")
            await uow.commit()
        upload = f"{self.public_url.rstrip('/')}/d/{device.id}/fhir"
        return web.json_response(
            {"token": token, "upload": upload}, content_type="application/json"
        )

    async def upload(self, request: web.Request) -> web.Response:
        """Observations in: stored once, judged, the doctor and caregivers told (one
        transaction: the token is checked in the same one that stores)."""
        assert self.db is not None
        device_id = request.match_info["device"][:32]
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        async with self.db.uow() as uow:
            device = await flow.authenticate(uow, device_id, token)
            if device is None:
                if await flow.revoked(uow, device_id, token):
                    return outcome(401, "security", "this device was revoked by its patient")
                return outcome(
                    401, "security", "a valid device token is needed (Authorization: Bearer …)"
                )
            if not await self.limiter.allow(device_id):
                return outcome(429, "throttled", "too many uploads", **{"Retry-After": "60"})
            body = await self._body(request)
            if body is None:
                return outcome(413, "too-costly", f"the body is over {MAX_BODY} bytes")
            now = self.now()
            try:
                parsed = fhir_readings.parse(body, now)
            except fhir_readings.PayloadError as exc:
                return outcome(400, "invalid", str(exc) or "not a FHIR Observation or Bundle")
            done = await flow.ingest(uow, device, parsed, now)
            findings = await flow.assess(uow, device, done, now)
            await flow.tell(uow, device, findings, now, self.emergency_number)
            await uow.commit()
        if findings and self.on_commit is not None:
            self.on_commit()
        answer = {
            "stored": len(done.stored),
            "duplicates": done.duplicates,
            "rejected": [
                {"index": r.index, "reason": r.reason, "detail": r.detail} for r in done.rejected
            ],
        }
        status = 422 if done.rejected and not done.stored and not done.duplicates else 200
        return web.json_response(answer, status=status, content_type="application/json")
