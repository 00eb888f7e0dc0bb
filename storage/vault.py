"""Per-owner data keys and field encryption inside a unit of work.

An owner's fields are encrypted under a key derived from two halves (:mod:`storage.keystore`):
the data key, stored here wrapped by a master key, and the owner's share in the key store
outside the database. Data keys of version 1 (owners from before the key store, "legacy") are
used as they are until ``keys migrate-shares`` re-encrypts the owner under a version 2 key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import (
    CryptoError,
    KeyRing,
    decrypt_field,
    encrypt_field,
    field_key_version,
    new_data_key,
)
from storage.keystore import SHARE_VERSION, KeyStore, KeyStoreError, field_key
from storage.models import DataKey, utcnow

SYSTEM_OWNER = "system"
KEYSTORE_INFO = "careline.keystore"  # the session.info entry a unit of work puts its store in

log = logging.getLogger("careline.vault")


@dataclass(frozen=True)
class _CachedKey:
    version: int
    key: bytes  # the key the fields are encrypted under (the derived one from version 2)


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
    """Encrypts and decrypts fields with the owner's key, creating keys on demand. The key
    store comes from the unit of work's session unless given."""

    def __init__(
        self,
        session: AsyncSession,
        ring: KeyRing,
        cache: KeyCache,
        keystore: KeyStore | None = None,
    ) -> None:
        self._session = session
        self.ring = ring
        self._cache = cache
        self.keystore: KeyStore | None = keystore or session.info.get(KEYSTORE_INFO)
        self._destroyed: list[str] = []

    def _store(self) -> KeyStore:
        if self.keystore is None:
            raise CryptoError("no key store is open")
        return self.keystore

    async def _share(self, owner: str, *, create: bool) -> bytes | None:
        store = self._store()
        try:
            if create:
                return await asyncio.to_thread(store.share_or_create, owner)
            return await asyncio.to_thread(store.share, owner)
        except KeyStoreError as exc:
            raise CryptoError(str(exc)) from None

    async def _usable(self, row: DataKey | None, owner: str) -> _CachedKey:
        """The field key of a stored data key row."""
        if row is None or row.wrapped is None:
            raise CryptoError("this owner's data key was destroyed")
        raw = self.ring.unwrap(row.master_key_id, row.wrapped, owner)
        if row.key_version < SHARE_VERSION:
            return _CachedKey(row.key_version, raw)  # legacy: the data key itself
        share = await self._share(owner, create=False)
        if share is None:
            raise CryptoError("this owner's key share is gone (erased)")
        return _CachedKey(row.key_version, field_key(raw, share, owner))

    async def _load(self, owner: str, *, create: bool) -> _CachedKey:
        # A share lock (PostgreSQL) while a legacy key is used for sealing: keys
        # migrate-shares, in another process, takes this row FOR UPDATE NOWAIT and so never
        # re-encrypts the owner under a transaction still writing with the old key.
        row = await self._session.get(
            DataKey,
            owner,
            populate_existing=True,
            with_for_update={"read": True} if create else None,
        )
        if row is not None:
            key = await self._usable(row, owner)
        elif not create:
            raise CryptoError("no data key for this owner")
        else:
            share = await self._share(owner, create=True)
            assert share is not None
            raw = new_data_key()
            master_id, wrapped = self.ring.wrap(raw, owner)
            try:
                # Another transaction may create this owner's key at the same moment (e.g. the
                # sender storing a relayed file while the patient writes): the loser reads the
                # winner's key instead of failing (both got the same share).
                async with self._session.begin_nested():
                    self._session.add(
                        DataKey(
                            owner_id=owner,
                            key_version=SHARE_VERSION,
                            master_key_id=master_id,
                            wrapped=wrapped,
                        )
                    )
                    await self._session.flush()
                key = _CachedKey(SHARE_VERSION, field_key(raw, share, owner))
            except IntegrityError:
                row = await self._session.get(DataKey, owner, populate_existing=True)
                key = await self._usable(row, owner)
        self._cache.put(owner, key)
        return key

    async def _sealing_key(self, owner: str) -> _CachedKey:
        cached = self._cache.get(owner)
        if cached is not None and cached.version >= SHARE_VERSION:
            return cached
        # Unknown, or legacy (which another process may migrate at any moment): read the row.
        return await self._load(owner, create=True)

    async def _opening_key(self, owner: str, version: int) -> _CachedKey:
        cached = self._cache.get(owner)
        if cached is not None and cached.version == version:
            return cached
        return await self._load(owner, create=False)

    async def seal(self, owner: str, table: str, column: str, row_id: str, value: str) -> bytes:
        """Encrypt text for ``table.column`` of ``row_id`` under the owner's key."""
        return await self.seal_bytes(owner, table, column, row_id, value.encode("utf-8"))

    async def seal_bytes(
        self, owner: str, table: str, column: str, row_id: str, value: bytes
    ) -> bytes:
        """Encrypt bytes for ``table.column`` of ``row_id`` under the owner's key."""
        key = await self._sealing_key(owner)
        return encrypt_field(key.key, key.version, table, column, row_id, value)

    async def open(self, owner: str, table: str, column: str, row_id: str, blob: bytes) -> str:
        """Decrypt text sealed by :meth:`seal`."""
        return (await self.open_bytes(owner, table, column, row_id, blob)).decode("utf-8")

    async def open_bytes(
        self, owner: str, table: str, column: str, row_id: str, blob: bytes
    ) -> bytes:
        """Decrypt bytes sealed by :meth:`seal_bytes`."""
        key = await self._opening_key(owner, field_key_version(blob))
        return decrypt_field(key.key, table, column, row_id, blob)

    async def destroy(self, owner: str) -> None:
        """Crypto-shred: overwrite the wrapped data key; once this unit commits, the owner's
        share is deleted from the key store too (:meth:`forget_destroyed`)."""
        await self._session.execute(
            update(DataKey)
            .where(DataKey.owner_id == owner)
            .values(wrapped=None, destroyed_at=utcnow())
        )
        self._cache.drop(owner)
        self._destroyed.append(owner)

    async def forget_destroyed(self) -> int:
        """After the unit of work committed: delete the shares of the keys it destroyed (only
        those really destroyed: a destroy inside a savepoint that was rolled back is not).
        Returns how many shares went. A failure is logged; the next start repairs it
        (:func:`storage.keys.settle_keystore`)."""
        owners, self._destroyed = sorted(set(self._destroyed)), []
        if not owners:
            return 0
        live = set(
            await self._session.scalars(
                select(DataKey.owner_id).where(
                    DataKey.owner_id.in_(owners), DataKey.wrapped.is_not(None)
                )
            )
        )
        gone = [o for o in owners if o not in live]
        try:
            return await asyncio.to_thread(self._store().forget, gone)
        except (KeyStoreError, CryptoError) as exc:
            log.error(
                "key shares not deleted after an erasure; the next start deletes them",
                extra={"ctx": {"owners": len(gone), "error": type(exc).__name__}},
            )
            return 0

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
