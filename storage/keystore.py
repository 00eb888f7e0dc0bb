"""The key store: one random share per owner, kept outside the database.

An owner's fields are encrypted under ``HKDF-SHA256(ikm=data key, salt=share, info=owner)``.
The data key lives in the database (wrapped by a master key), the share lives here, in a small
SQLite file beside the keys file (``keystore.db``, 0600; both are in the data directory unless
``CARELINE_KEYS_FILE`` moves them). Neither alone opens anything, so a
database backup — any copy, dump or restored file, with the current keys file — cannot open an
owner whose share is gone. Erasure deletes the share (:meth:`KeyStore.forget`) and records the
owner in the erasure ledger, which ``python bot.py restore`` re-applies to an older database.

The file runs with ``secure_delete=ON`` (deleted bytes are overwritten with zeros in the file)
and a rollback journal that is deleted at each commit, so after an erasure no file of the
store holds the share. It is backed up only on purpose (``backup --with-keystore``), on a short
retention: such a copy re-opens the owners erased after it was taken, until it is deleted.

Every process that opens the database holds a shared lock on ``keystore.db.lock``; ``restore``
takes it exclusively, so it refuses while the bot (or any other command) has the store open.
Data keys of version :data:`SHARE_VERSION` and above need a share; version 1 keys (owners from
before the key store) are "legacy" until ``python bot.py keys migrate-shares`` moves them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.crypto import KeysFileError

KEYSTORE_FILE = "keystore.db"
SHARE_VERSION = 2  # data-key version from which fields are under the derived key
_SHARE_BYTES = 32
_CHUNK = 500  # owners per statement (SQLite's parameter limit is far above)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS shares ("
    " owner_id TEXT PRIMARY KEY, share BLOB NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS erased (owner_id TEXT PRIMARY KEY, erased_at TEXT NOT NULL)",
)


class KeyStoreError(KeysFileError):
    """The key store cannot be opened or used; the message names the file, never a share.
    (A kind of keys-file error: the command line reports it in one line, exit 2.)"""


class KeyStoreBusy(KeyStoreError):
    """Another process holds the key store (the bot is running, or a restore is)."""


def beside(keys_file: Path) -> Path:
    """Where the key store lives: beside the keys file (by default both in the data dir), so
    every process that shares the keys file shares the shares."""
    return Path(keys_file).parent / KEYSTORE_FILE


def field_key(data_key: bytes, share: bytes, owner: str) -> bytes:
    """The key that encrypts an owner's fields: the data key and the share, combined."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=share,
        info=b"careline field key|" + owner.encode("utf-8"),
    )
    return hkdf.derive(data_key)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _touch_private(path: Path) -> None:
    """Create ``path`` owner-only (0600) if missing, and make an existing one owner-only."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class KeyStore:
    """The shares beside one keys file. Thread-safe; every call is short (the vault calls it
    through ``asyncio.to_thread``). After :meth:`close` the next call opens the file again."""

    def __init__(self, path: Path, *, exclusive: bool = False) -> None:
        self.path = Path(path)
        self.exclusive = exclusive
        self._mutex = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, exclusive: bool = False) -> KeyStore:
        """Open (creating, 0600) the key store at ``path``. ``exclusive``: refuse
        (:class:`KeyStoreBusy`) unless no other process has it open."""
        store = cls(path, exclusive=exclusive)
        with store._mutex:
            store._connect()
        return store

    def _connect(self) -> sqlite3.Connection:
        """The open connection (opened, and the lock taken, if needed; mutex held)."""
        if self._conn is not None:
            return self._conn
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyStoreError(
                f"key store {path} cannot be opened ({type(exc).__name__})"
            ) from None
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(lock_fd, mode | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            if self.exclusive:
                raise KeyStoreBusy(
                    f"key store {path} is in use: stop the bot (and any other careline "
                    "command) first"
                ) from None
            raise KeyStoreBusy(f"key store {path} is held by a restore in progress") from None
        conn: sqlite3.Connection | None = None
        try:
            _touch_private(path)
            conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            os.close(lock_fd)
            raise KeyStoreError(f"key store {path} is unreadable ({type(exc).__name__})") from None
        self._conn, self._lock_fd = conn, lock_fd
        return conn

    def close(self) -> None:
        """Close the file and release the lock (idempotent)."""
        with self._mutex:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- shares ----------------------------------------------------------------------------
    def _read(self, sql: str, params: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query (mutex held)."""
        try:
            return list(self._connect().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise KeyStoreError(f"key store {self.path}: {type(exc).__name__}") from None

    def _write(self, statements: Callable[[sqlite3.Connection], None]) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                statements(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise KeyStoreError(f"key store {self.path}: {type(exc).__name__}") from None

    def share(self, owner: str) -> bytes | None:
        """The owner's share, or None (never had one, or erased)."""
        with self._mutex:
            row = self._read("SELECT share FROM shares WHERE owner_id = ?", (owner,))
        return None if not row else bytes(row[0][0])

    def share_or_create(self, owner: str) -> bytes:
        """The owner's share, created if missing. Two callers at once (two transactions
        creating the owner's key) get the same share."""
        found = self.share(owner)
        if found is not None:
            return found

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO shares (owner_id, share, created_at) VALUES (?, ?, ?)",
                (owner, secrets.token_bytes(_SHARE_BYTES), _now()),
            )

        with self._mutex:
            self._write(insert)
        made = self.share(owner)
        assert made is not None
        return made

    def forget(self, owners: Iterable[str]) -> int:
        """Erasure: delete the owners' shares (overwritten in the file) and add them to the
        erasure ledger. Returns how many shares were deleted."""
        todo = sorted(set(owners))
        if not todo:
            return 0
        deleted = 0

        def drop(conn: sqlite3.Connection) -> None:
            nonlocal deleted
            now = _now()
            for part in _chunks(todo):
                marks = ",".join("?" * len(part))
                cur = conn.execute(f"DELETE FROM shares WHERE owner_id IN ({marks})", part)  # noqa: S608 - placeholders only
                deleted += max(cur.rowcount, 0)
                conn.executemany(
                    "INSERT OR IGNORE INTO erased (owner_id, erased_at) VALUES (?, ?)",
                    [(o, now) for o in part],
                )

        with self._mutex:
            self._write(drop)
        return deleted

    def owners(self) -> set[str]:
        """Owners that have a share."""
        with self._mutex:
            return {r[0] for r in self._read("SELECT owner_id FROM shares")}

    def erased(self) -> set[str]:
        """The erasure ledger: every owner whose key was destroyed since the store exists."""
        with self._mutex:
            return {r[0] for r in self._read("SELECT owner_id FROM erased")}

    def protected_since(self, owner: str) -> str | None:
        """When the owner got their share (ISO time), or None."""
        with self._mutex:
            row = self._read("SELECT created_at FROM shares WHERE owner_id = ?", (owner,))
        return None if not row else str(row[0][0])

    # -- copies ----------------------------------------------------------------------------
    def is_empty(self) -> bool:
        """No share and no erasure recorded: a new store."""
        with self._mutex:
            return not self._read("SELECT 1 FROM shares UNION ALL SELECT 1 FROM erased LIMIT 1")

    def replace_from(self, copy: Path) -> None:
        """Put a key-store copy (``backup --with-keystore``) in place of this store, after the
        data directory was lost. Only on a store opened exclusively."""
        if not self.exclusive:
            raise KeyStoreError(f"key store {self.path} must be opened exclusively to replace it")
        uri = f"{Path(copy).resolve().as_uri()}?mode=ro"
        with self._mutex:
            conn = self._connect()
            try:
                with contextlib.closing(sqlite3.connect(uri, uri=True)) as source:
                    source.execute("SELECT count(*) FROM shares JOIN erased ON 0").fetchone()
                    source.backup(conn)
            except sqlite3.Error:
                raise KeyStoreError(f"{copy} is not a Careline key-store copy") from None

    def copy_to(self, dest: Path, progress: Callable[[int, int], None] | None = None) -> None:
        """An online copy of the store to ``dest`` (created 0600, must not exist)."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        out = sqlite3.connect(dest)
        try:
            with self._mutex:
                self._connect().backup(out, pages=16, progress=backup_progress(progress))
        finally:
            out.close()


def backup_progress(
    progress: Callable[[int, int], None] | None,
) -> Callable[[int, int, int], object] | None:
    """Adapt a (done, total) progress callback to sqlite3's backup callback (pages)."""
    if progress is None:
        return None

    def step(_status: int, remaining: int, total: int) -> None:
        progress(total - remaining, total)

    return step
