"""Persistence of home devices and the readings they send (flows/devices.py).

SQL and the sealing of reading values live here; flows call these methods."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Device, HealthImport, Reading, new_id
from storage.vault import Vault

IMPORT_STATUS = "import"  # a Device row that stands for a patient's imported files


class DeviceRepository:
    """Reads and writes devices and device readings."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def add(self, device: Device) -> Device:
        """Insert a device."""
        self._s.add(device)
        await self._s.flush()
        return device

    async def get(self, device_id: str) -> Device | None:
        """A device by id."""
        return await self._s.get(Device, device_id)

    async def by_pair_hash(self, pair_hash: str) -> Device | None:
        """The pending device whose pairing code hashes to ``pair_hash``."""
        return await self._s.scalar(select(Device).where(Device.pair_hash == pair_hash))

    async def by_token_hash(self, token_hash: str) -> Device | None:
        """The device whose upload token hashes to ``token_hash`` (any status)."""
        return await self._s.scalar(select(Device).where(Device.token_hash == token_hash))

    async def for_patient(self, patient_id: str) -> list[Device]:
        """A patient's devices, oldest first."""
        rows = await self._s.scalars(
            select(Device).where(Device.patient_id == patient_id).order_by(Device.created_at)
        )
        return list(rows)

    async def pair(self, device_id: str, token_hash: str, now: datetime) -> bool:
        """One conditional UPDATE: a pending device with an unexpired code becomes active with
        this token (a code works once, even when two apps send it at once)."""
        result = await self._s.execute(
            update(Device)
            .where(
                Device.id == device_id,
                Device.status == "pending",
                Device.pair_expires_at > now,
            )
            .values(
                status="active",
                token_hash=token_hash,
                pair_hash=None,
                pair_expires_at=None,
                paired_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def refresh(self, device: Device) -> None:
        """Read the row again (after a conditional UPDATE)."""
        await self._s.refresh(device)

    async def _sealed(
        self, device: Device, kind: str, value: str, flag: str, taken_at: datetime, key: str
    ) -> Reading:
        """A device reading row with its value sealed under the patient's key (``imported``
        when the device is a patient's file source)."""
        row = Reading(
            patient_id=device.patient_id, checkin_id=None, kind=kind, flag=flag,
            taken_at=taken_at, value_enc=b"", device_id=device.id, source_key=key,
            source="imported" if device.status == IMPORT_STATUS else "device",
        )  # fmt: skip
        row.id = new_id()  # bound into the ciphertext, so known before insert
        row.value_enc = await self._vault.seal(
            device.patient_id, "readings", "value_enc", row.id, value
        )
        return row

    async def add_reading(
        self,
        device: Device,
        kind: str,
        value: str,
        flag: str,
        taken_at: datetime,
        source_key: str,
    ) -> Reading | None:
        """Insert a device reading (its value sealed under the patient's key); None when a
        reading with this ``source_key`` is stored already (the database decides, so two
        uploads of the same reading at once store it once)."""
        row = await self._sealed(device, kind, value, flag, taken_at, source_key)
        try:
            async with self._s.begin_nested():
                self._s.add(row)
                await self._s.flush()
        except IntegrityError:
            return None
        return row

    async def add_readings(
        self, device: Device, items: list[tuple[str, str, str, datetime, str]]
    ) -> list[Reading | None]:
        """Insert many device readings (kind, value, flag, taken_at, source_key) in one flush;
        if the database refuses one as stored already (an upload of the same reading racing
        this one), each is inserted on its own and that one comes back None."""
        rows = [await self._sealed(device, *item) for item in items]
        try:
            async with self._s.begin_nested():
                self._s.add_all(rows)
                await self._s.flush()
        except IntegrityError:
            return [
                await self.add_reading(device, kind, value, flag, taken_at, key)
                for kind, value, flag, taken_at, key in items
            ]
        return list(rows)

    async def existing_keys(self, patient_id: str, keys: list[str]) -> set[str]:
        """Which of these reading identities are stored already."""
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            rows = await self._s.scalars(
                select(Reading.source_key).where(
                    Reading.patient_id == patient_id, Reading.source_key.in_(keys[i : i + 500])
                )
            )
            found.update(k for k in rows if k)
        return found

    async def near(
        self, patient_id: str, kind: str, at: datetime, within: timedelta
    ) -> list[tuple[Reading, str]]:
        """The patient's readings of ``kind`` taken within ``within`` of ``at``, each with its
        decrypted value."""
        rows = await self._s.scalars(
            select(Reading).where(
                Reading.patient_id == patient_id,
                Reading.kind == kind,
                Reading.taken_at >= at - within,
                Reading.taken_at <= at + within,
            )
        )
        out = []
        for row in rows:
            value = await self._vault.open(
                patient_id, "readings", "value_enc", row.id, row.value_enc
            )
            out.append((row, value))
        return out

    async def delete_for_patient(self, patient_id: str) -> int:
        """Remove a patient's devices (erasure); their readings go with the chronic-care
        rows."""
        await self._s.execute(delete(HealthImport).where(HealthImport.patient_id == patient_id))
        result = await self._s.execute(delete(Device).where(Device.patient_id == patient_id))
        return int(getattr(result, "rowcount", 0) or 0)

    # --- imported files ---------------------------------------------------------------------

    async def file_source(self, patient_id: str, label: str) -> Device:
        """The device row that stands for a patient's imported files of one kind (made once;
        its id keys the readings' identities, so importing the same file again stores
        nothing new)."""
        found = await self._s.scalar(
            select(Device).where(
                Device.patient_id == patient_id,
                Device.status == IMPORT_STATUS,
                Device.label == label,
            )
        )
        if found is not None:
            return found
        return await self.add(Device(patient_id=patient_id, label=label, status=IMPORT_STATUS))

    async def add_import(self, job: HealthImport) -> HealthImport:
        """Insert an import job."""
        self._s.add(job)
        await self._s.flush()
        return job

    async def get_import(self, job_id: str) -> HealthImport | None:
        """An import job by id."""
        return await self._s.get(HealthImport, job_id)

    async def imports_of(self, patient_id: str, statuses: tuple[str, ...]) -> list[HealthImport]:
        """A patient's import jobs in these states, newest first."""
        rows = await self._s.scalars(
            select(HealthImport)
            .where(HealthImport.patient_id == patient_id, HealthImport.status.in_(statuses))
            .order_by(HealthImport.created_at.desc())
        )
        return list(rows)

    async def claim_import(
        self, worker: str, now: datetime, lease: timedelta
    ) -> HealthImport | None:
        """Lease the oldest queued import, or a running one whose worker's lease ran out, to
        ``worker`` (one conditional UPDATE: two workers never run the same file)."""
        candidates = await self._s.scalars(
            select(HealthImport.id)
            .where(
                (HealthImport.status == "queued")
                | ((HealthImport.status == "running") & (HealthImport.lease_until < now))
            )
            .order_by(HealthImport.created_at)
            .limit(5)
        )
        for job_id in list(candidates):
            result = await self._s.execute(
                update(HealthImport)
                .where(
                    HealthImport.id == job_id,
                    (HealthImport.status == "queued")
                    | ((HealthImport.status == "running") & (HealthImport.lease_until < now)),
                )
                .values(
                    status="running",
                    lease_until=now + lease,
                    leased_by=worker,
                    attempts=HealthImport.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                job = await self._s.get(HealthImport, job_id)
                if job is not None:
                    await self._s.refresh(job)
                return job
        return None

    async def renew_import(
        self, job_id: str, worker: str, now: datetime, lease: timedelta
    ) -> bool:
        """Extend the lease of a running import still held by ``worker``."""
        result = await self._s.execute(
            update(HealthImport)
            .where(
                HealthImport.id == job_id,
                HealthImport.status == "running",
                HealthImport.leased_by == worker,
            )
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
