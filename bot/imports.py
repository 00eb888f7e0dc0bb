"""The import runner: reads the files of readings patients send (an Apple Health export or a
CSV; flows/health_import.py) in the background, so a large file never holds up the chat.

The patient bot queues a job (``health_imports``, flows/devices.py) in the transaction that
answers the file, with a progress message; the runner looks for queued jobs every
:data:`IDLE_SECONDS`. The runner leases one job at a time (a
conditional UPDATE; a job whose worker died is leased again when its lease runs out, at most
:data:`~flows.devices.MAX_IMPORT_ATTEMPTS` times), downloads the file through the patient
bot into a temporary file on disk (never whole in memory), parses it in a thread, and stores
the readings in batches, each batch its own transaction with the job's counts and a lease
renewal. Every reading has a stable identity (flows/health_import.py), so a batch stored
before a crash is counted as duplicates when the file is read again, never stored twice.
The progress message is edited as it goes; the last transaction judges the readings of the
last 24 hours like a device upload (care alerts, re-measure, emergency path), tells the
patient what was stored, refused and skipped, audits the totals and marks the job done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from flows import devices as flow
from flows import health_import
from flows.domain import utcnow
from flows.fhir_readings import Parsed
from flows.outbox import Replier
from locales import Translator
from scheduler.sweeper import worker_name
from storage.models import HealthImport
from storage.uow import Database

log = logging.getLogger("careline.imports")

LEASE = timedelta(minutes=2)
BATCH = 1000  # readings per transaction
PROGRESS_SECONDS = 3.0  # the progress message is edited at most this often
# Queued jobs are looked for this often (not after every committed update: that would add a
# query to every update's path for a rare event; a file waits at most this long to start).
IDLE_SECONDS = 2.0
_HINT = {"apple_zip": "export.zip", "apple_xml": "export.xml", "csv": "readings.csv"}


class _Lost(Exception):
    """Another worker holds the job now (this one's lease ran out)."""


class ImportRunner:
    """Runs queued imports one at a time; :meth:`run_once` is also what tests call."""

    def __init__(
        self,
        db: Database,
        bot: Bot,
        *,
        emergency_number: str = "112",
        on_commit: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        lease: timedelta = LEASE,
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.bot = bot
        self.emergency_number = emergency_number
        self.on_commit = on_commit
        self.clock = clock
        self.worker = worker or worker_name()
        self.lease = lease
        self.batch = batch
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Until :meth:`stop`: run queued imports, looking again every :data:`IDLE_SECONDS`."""
        while not self._stop.is_set():
            try:
                if await self.run_once():
                    continue
            except Exception:
                log.exception("import failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=IDLE_SECONDS)

    async def stop(self) -> None:
        """Stop after the current batch (its job is leased again later and resumes)."""
        self._stop.set()

    def _committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()

    async def run_once(self) -> bool:
        """Lease and run one import; False when none is waiting."""
        async with self.db.uow() as uow:
            job = await uow.devices.claim_import(self.worker, self.clock(), self.lease)
            await uow.commit()
        if job is None:
            return False
        try:
            await self._run(job)
        except _Lost:
            log.info("import taken over", extra={"ctx": {"import": job.id}})
        return True

    # --- one job ------------------------------------------------------------------------------

    async def _finish(
        self,
        job: HealthImport,
        msgid: str,
        error: str | None = None,
        reasons: Counter[str] | None = None,
        **params: Any,
    ) -> None:
        """The job ends: its last counts, the patient's message (the progress message edited
        when it was sent, else a new one), the audit record."""
        async with self.db.uow() as uow:
            row = await uow.devices.get_import(job.id)
            patient = await uow.patients.get(job.patient_id)
            if row is None or row.leased_by != self.worker or row.status != "running":
                raise _Lost
            row.status = "failed" if error else "done"
            row.error, row.finished_at = error, self.clock()
            row.rows, row.stored, row.duplicates, row.rejected = (
                job.rows, job.stored, job.duplicates, job.rejected,
            )  # fmt: skip
            if patient is not None and patient.tg_user_id:
                tr = Translator(patient.locale)
                if reasons is not None:
                    params["reasons"] = (
                        "; ".join(
                            tr.plain(
                                "device.import.reason", why=tr.plain(f"device.reject.{k}"), n=n
                            )
                            for k, n in reasons.most_common()
                        )
                        or "—"
                    )
                await Replier(uow, "patient", patient.tg_user_id).text(tr(msgid, **params))
            await uow.audit.record(
                f"patient:{job.patient_id}", "device.import", "import", job.id,
                {"stored": job.stored, "duplicates": job.duplicates, "rejected": job.rejected,
                 "rows": job.rows, "error": error},
            )  # fmt: skip
            await uow.commit()
        self._committed()

    async def _progress(self, job: HealthImport, msgid: str, **params: Any) -> None:
        """Edit the progress message (once it was sent) and renew the lease."""
        async with self.db.uow() as uow:
            if not await uow.devices.renew_import(job.id, self.worker, self.clock(), self.lease):
                raise _Lost
            patient = await uow.patients.get(job.patient_id)
            message_id = (
                await uow.outbox.sent_message_id(job.progress_row) if job.progress_row else None
            )
            if patient is not None and patient.tg_user_id and message_id:
                text = Translator(patient.locale)(msgid, **params)
                await Replier(uow, "patient", patient.tg_user_id).edit_text(message_id, text)
            await uow.commit()
        self._committed()

    async def _download(self, job: HealthImport, into: BinaryIO) -> str | None:
        """The file into ``into``; None when it downloaded, else why not (a reason)."""
        assert job.file_id is not None
        try:
            file = await self.bot.get_file(job.file_id)
            if file.file_path is None:
                return "download"
            await self.bot.download_file(file.file_path, destination=into, timeout=300)
        except TelegramBadRequest as exc:
            return "too_big" if "too big" in str(exc).lower() else "download"
        into.seek(0)
        return None

    async def _run(self, job: HealthImport) -> None:
        if job.attempts > flow.MAX_IMPORT_ATTEMPTS:
            await self._finish(job, "device.import.failed.interrupted", "interrupted")
            return
        job.rows = job.stored = job.duplicates = job.rejected = 0
        with tempfile.TemporaryFile() as spool:
            why = await self._download(job, spool)
            if why is not None:
                mb = flow.MAX_IMPORT_BYTES // 1024 // 1024
                await self._finish(job, f"device.import.failed.{why}", why, max_mb=mb)
                return
            kind = health_import.sniff(spool.read(8192), _HINT.get(job.kind or ""))
            spool.seek(0)
            result = await self._parse(job, spool, kind)
        if result is None:
            return
        await self._store(job, result)

    async def _parse(
        self, job: HealthImport, spool: BinaryIO, kind: str
    ) -> health_import.ImportResult | None:
        """Parse in a thread, editing the progress message with the rows read as it goes."""
        rows = [0]

        def seen(n: int) -> None:
            rows[0] = n  # one int written by the parser's thread, read here

        task = asyncio.create_task(
            asyncio.to_thread(health_import.parse_stream, spool, kind, self.clock(), progress=seen)
        )
        shown = 0
        while True:
            done, _ = await asyncio.wait({task}, timeout=PROGRESS_SECONDS)
            if done:
                break
            if rows[0] != shown:
                shown = rows[0]
                await self._progress(job, "device.import.progress.reading", rows=f"{shown:,}")
        try:
            return task.result()
        except health_import.ImportFileError as exc:
            mb = flow.MAX_IMPORT_BYTES // 1024 // 1024
            await self._finish(
                job, f"device.import.failed.{exc.reason}", exc.reason,
                limit=f"{health_import.DEFAULT_LIMIT:,}", max_mb=mb,
            )  # fmt: skip
            return None

    async def _store(self, job: HealthImport, result: health_import.ImportResult) -> None:
        readings = result.readings
        job.rows = len(readings) + result.rejected + result.skipped
        job.rejected = result.rejected
        recent: list[flow.Stored] = []
        last_edit = time.monotonic()
        for start in range(0, len(readings), self.batch):
            chunk = readings[start : start + self.batch]
            now = self.clock()
            async with self.db.uow() as uow:
                if not await uow.devices.renew_import(job.id, self.worker, now, self.lease):
                    raise _Lost
                assert job.device_id is not None
                device = await uow.devices.get(job.device_id)
                if device is None:  # the patient was erased meanwhile
                    raise _Lost
                done = await flow.ingest(uow, device, Parsed(chunk, []), now, audit=False)
                row = await uow.devices.get_import(job.id)
                job.stored += len(done.stored)
                job.duplicates += done.duplicates
                if row is not None:
                    row.rows, row.stored, row.duplicates = job.rows, job.stored, job.duplicates
                await uow.commit()
            recent.extend(flow.recent(done, now))
            if time.monotonic() - last_edit >= PROGRESS_SECONDS:
                last_edit = time.monotonic()
                await self._progress(
                    job, "device.import.progress.storing",
                    done=f"{start + len(chunk):,}", total=f"{len(readings):,}",
                )  # fmt: skip
        await self._judge(job, recent)
        await self._finish(
            job, "device.import.done", reasons=result.reasons,
            stored=job.stored, duplicates=job.duplicates, rejected=job.rejected,
            skipped=result.skipped,
        )  # fmt: skip

    async def _judge(self, job: HealthImport, recent: list[flow.Stored]) -> None:
        """The readings of the last day go into care like a device upload's."""
        if not recent:
            return
        async with self.db.uow() as uow:
            assert job.device_id is not None
            device = await uow.devices.get(job.device_id)
            if device is None:
                raise _Lost
            now = self.clock()
            findings = await flow.assess(uow, device, flow.Ingested(stored=recent), now)
            await flow.tell(uow, device, findings, now, self.emergency_number)
            await uow.commit()
        self._committed()
