"""Per-owner data keys and field encryption inside a unit of work."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import (
    CryptoError,
    KeyRing,
    decrypt_field,
    encrypt_field,
    new_data_key,
)
from storage.models import DataKey, utcnow

SYSTEM_OWNER = "system"


@dataclass(frozen=True)
class _CachedKey:
    version: int
    key: bytes


class KeyCache:
    """Process-wide cache of unwrapped data keys (never persisted, never logged)."""

    def __init__(self) -> None:
        self._keys: dict[str, _CachedKey] = {}

    def get(self, owner: str) -> _CachedKey | None:
        """The cached key of an owner, if any."""
        return self._keys.get(owner)

    def put(self, owner: str, key: _CachedKey) -> None:
        """Remember an unwrapped key."""
        if len(self._keys) > 50_000:
            self._keys.clear()
        self._keys[owner] = key

    def drop(self, owner: str) -> None:
        """Forget an owner's key (after erasure)."""
        self._keys.pop(owner, None)


class Vault:
    """Encrypts and decrypts fields with the owner's data key, creating keys on demand."""

    def __init__(self, session: AsyncSession, ring: KeyRing, cache: KeyCache) -> None:
        self._session = session
        self.ring = ring
        self._cache = cache

    async def _key(self, owner: str, *, create: bool) -> _CachedKey:
        cached = self._cache.get(owner)
        if cached is not None:
            return cached
        row = await self._session.get(DataKey, owner)
        if row is None:
            if not create:
                raise CryptoError("no data key for this owner")
            raw = new_data_key()
            master_id, wrapped = self.ring.wrap(raw, owner)
            try:
                # Another transaction may create this owner's key at the same moment (e.g. the
                # sender storing a relayed file while the patient writes): the loser reads the
                # winner's key instead of failing.
                async with self._session.begin_nested():
                    self._session.add(
                        DataKey(
                            owner_id=owner, key_version=1, master_key_id=master_id, wrapped=wrapped
                        )
                    )
                    await self._session.flush()
                key = _CachedKey(1, raw)
            except IntegrityError:
                row = await self._session.get(DataKey, owner, populate_existing=True)
                if row is None or row.wrapped is None:
                    raise CryptoError("this owner's data key was destroyed") from None
                key = _CachedKey(
                    row.key_version, self.ring.unwrap(row.master_key_id, row.wrapped, owner)
                )
        elif row.wrapped is None:
            raise CryptoError("this owner's data key was destroyed")
        else:
            key = _CachedKey(
                row.key_version, self.ring.unwrap(row.master_key_id, row.wrapped, owner)
            )
        self._cache.put(owner, key)
        return key

    async def seal(self, owner: str, table: str, column: str, row_id: str, value: str) -> bytes:
        """Encrypt text for ``table.column`` of ``row_id`` under the owner's data key."""
        key = await self._key(owner, create=True)
        return encrypt_field(key.key, key.version, table, column, row_id, value.encode("utf-8"))

    async def seal_bytes(
        self, owner: str, table: str, column: str, row_id: str, value: bytes
    ) -> bytes:
        """Encrypt bytes for ``table.column`` of ``row_id`` under the owner's data key."""
        key = await self._key(owner, create=True)
        return encrypt_field(key.key, key.version, table, column, row_id, value)

    async def open(self, owner: str, table: str, column: str, row_id: str, blob: bytes) -> str:
        """Decrypt text sealed by :meth:`seal`."""
        return (await self.open_bytes(owner, table, column, row_id, blob)).decode("utf-8")

    async def open_bytes(
        self, owner: str, table: str, column: str, row_id: str, blob: bytes
    ) -> bytes:
        """Decrypt bytes sealed by :meth:`seal_bytes`."""
        key = await self._key(owner, create=False)
        return decrypt_field(key.key, table, column, row_id, blob)

    async def destroy(self, owner: str) -> None:
        """Crypto-shred: overwrite the wrapped data key; everything under it becomes noise."""
        await self._session.execute(
            update(DataKey)
            .where(DataKey.owner_id == owner)
            .values(wrapped=None, destroyed_at=utcnow())
        )
        self._cache.drop(owner)

    async def rewrap_batch(self, target_master: int, limit: int) -> int:
        """Re-wrap up to ``limit`` live data keys not yet under ``target_master``."""
        rows = (
            await self._session.scalars(
                select(DataKey)
                .where(DataKey.master_key_id != target_master, DataKey.wrapped.is_not(None))
                .order_by(DataKey.owner_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            assert row.wrapped is not None
            raw = self.ring.unwrap(row.master_key_id, row.wrapped, row.owner_id)
            row.master_key_id, row.wrapped = self.ring.wrap(raw, row.owner_id)
        return len(rows)
