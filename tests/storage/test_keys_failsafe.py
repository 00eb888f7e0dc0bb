"""Keys that fail safe (docs/SECURITY.md, "Keys that fail safe").

Start-up (``bot.app.open_database``, and ``python bot.py run`` / ``sandbox`` through it)
refuses in one line, exit 2: a missing keys file while the database holds data (a new one
would make every record unreadable and the bot would loop on CryptoError, replying nothing), a
keys file that cannot unwrap a sample of the stored data keys (one flipped bit in a master
key, another database's keys file, a master key gone), and a keys file group or others can
read or write. A fresh install still creates its keys. New data files are 0600, a new data
dir 0700. ``python bot.py keys check`` says what is wrong, or that all is well.

The in-process tests run on SQLite and PostgreSQL; the command-line ones on SQLite, through
``bot.cli.main`` in this process (tests/cli_runner.py), and through a real ``python bot.py``
where the process matters (the umask it sets).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.app import open_database
from bot.settings import Settings
from storage.crypto import KeyRing, KeysFileError
from storage.migrate import upgrade
from storage.models import DataKey, Patient
from storage.uow import Database
from tests.cli_runner import run_bot_py, run_cli

PATIENTS = 5  # more than the sample of 3 per master key
BAD_MODES = (0o644, 0o640, 0o604, 0o666, 0o660, 0o620, 0o602, 0o755)


# --- helpers ---------------------------------------------------------------------------------


def _missing(keys: Path) -> str:
    return (
        f"keys file {keys} is missing, but the database already holds data; restore the keys "
        "file from its backup (a new one could not read that data)"
    )


def _cannot_unwrap(keys: Path, tried: int = 3) -> str:
    return (
        f"keys file {keys} cannot unwrap the database's data keys (master key 1: 0 of {tried} "
        "sampled unwrapped); it is damaged or belongs to another database; restore the right "
        "keys file from its backup"
    )


def _no_master_key(keys: Path, master_id: int) -> str:
    return (
        f"keys file {keys} has no master key {master_id}, which wraps data keys in the "
        "database; restore the keys file this database was written with"
    )


def _open_to_others(keys: Path, mode: int) -> str:
    return (
        f"keys file {keys} is open to other users (mode {mode:04o}); make it private with: "
        f"chmod 600 {keys}"
    )


async def _seed(db: Database, patients: int = PATIENTS) -> None:
    """Patients with an encrypted name each (so a data key each)."""
    async with db.uow() as uow:
        for i in range(patients):
            p = await uow.patients.add(
                Patient(tg_user_id=7000 + i, locale="en", onboarding_state="done")
            )
            await uow.patients.set_field(p, "name", f"Fictive Patient{i}")
        await uow.commit()


def _flip_a_bit(keys: Path, master_id: int = 1) -> None:
    """One flipped bit in a master key (the file stays well-formed and 0600)."""
    ring = json.loads(keys.read_text())
    raw = bytearray(base64.b64decode(ring["master_keys"][str(master_id)]["key"]))
    raw[7] ^= 0x04
    ring["master_keys"][str(master_id)]["key"] = base64.b64encode(bytes(raw)).decode()
    keys.write_text(json.dumps(ring))


def _renumber_master_key(keys: Path, old: int, new: int) -> None:
    """The file's only master key under another id: the data keys' master key is gone."""
    ring = json.loads(keys.read_text())
    ring["master_keys"] = {str(new): ring["master_keys"].pop(str(old))}
    ring["active"] = new
    keys.write_text(json.dumps(ring))


def _settings(data_dir: Path, url: str | None = None) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, database_url=url)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, so only the code's own chmod/mode makes files private."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# --- start-up, in process (SQLite and PostgreSQL) --------------------------------------------


async def test_missing_keys_file_with_data_is_refused(db: Database, tmp_path: Path) -> None:
    await _seed(db)
    await db.dispose()
    keys = tmp_path / "keys.json"
    keys.unlink()
    with pytest.raises(KeysFileError) as refused:
        await open_database(_settings(tmp_path, db.url))
    assert str(refused.value) == _missing(keys)
    assert not keys.exists()  # no new ring was made next to the data


async def test_missing_keys_file_with_an_empty_database_is_created(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A migrated but empty database (a fresh install that ran ``migrate`` elsewhere)."""
    await db.dispose()
    keys = tmp_path / "keys.json"
    keys.unlink()
    opened = await open_database(_settings(tmp_path, db.url))
    try:
        await _seed(opened, 1)
    finally:
        await opened.dispose()
    assert _mode(keys) == 0o600
    assert "BACK IT UP NOW" in capsys.readouterr().err


async def test_one_flipped_bit_in_the_master_key_is_refused(db: Database, tmp_path: Path) -> None:
    await _seed(db)
    await db.dispose()
    keys = tmp_path / "keys.json"
    _flip_a_bit(keys)
    with pytest.raises(KeysFileError) as refused:
        await open_database(_settings(tmp_path, db.url))
    assert str(refused.value) == _cannot_unwrap(keys)


async def test_another_databases_keys_file_is_refused(db: Database, tmp_path: Path) -> None:
    await _seed(db)
    await db.dispose()
    keys = tmp_path / "keys.json"
    other, _ = KeyRing.load_or_create(tmp_path / "other" / "keys.json")
    keys.write_bytes(other.path.read_bytes())
    with pytest.raises(KeysFileError) as refused:
        await open_database(_settings(tmp_path, db.url))
    assert str(refused.value) == _cannot_unwrap(keys)


async def test_a_master_key_missing_from_the_file_is_refused(db: Database, tmp_path: Path) -> None:
    await _seed(db)
    await db.dispose()
    keys = tmp_path / "keys.json"
    _renumber_master_key(keys, 1, 3)
    with pytest.raises(KeysFileError) as refused:
        await open_database(_settings(tmp_path, db.url))
    assert str(refused.value) == _no_master_key(keys, 1)


async def test_a_damaged_data_key_in_the_sample_is_refused(db: Database, tmp_path: Path) -> None:
    """The ring works for most keys but one sampled row of data_keys is garbage."""
    await _seed(db)
    async with db.uow() as uow:
        last = await uow.session.scalar(select(DataKey.owner_id).order_by(DataKey.owner_id.desc()))
        await uow.session.execute(
            update(DataKey).where(DataKey.owner_id == last).values(wrapped=os.urandom(60))
        )
        await uow.commit()
    await db.dispose()
    keys = tmp_path / "keys.json"
    with pytest.raises(KeysFileError) as refused:
        await open_database(_settings(tmp_path, db.url))
    assert str(refused.value) == (
        f"keys file {keys}: master key 1 unwrapped only 2 of 3 sampled data keys; those rows "
        "of data_keys are damaged"
    )


@pytest.mark.parametrize("mode", BAD_MODES, ids=[f"{m:04o}" for m in BAD_MODES])
async def test_a_keys_file_open_to_others_is_refused(
    db: Database, tmp_path: Path, mode: int
) -> None:
    await db.dispose()
    keys = tmp_path / "keys.json"
    keys.chmod(mode)
    with pytest.raises(KeysFileError) as refused:
        await open_database(_settings(tmp_path, db.url))
    assert str(refused.value) == _open_to_others(keys, mode)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids=["0600", "0400", "0700"])
async def test_a_private_keys_file_is_accepted(db: Database, tmp_path: Path, mode: int) -> None:
    await _seed(db)
    await db.dispose()
    (tmp_path / "keys.json").chmod(mode)
    opened = await open_database(_settings(tmp_path, db.url))
    async with opened.uow() as uow:
        patients = await uow.session.scalars(select(Patient))
        names = {await uow.patients.get_field(p, "name") for p in patients}
    await opened.dispose()
    assert names == {f"Fictive Patient{i}" for i in range(PATIENTS)}


async def test_erased_data_keys_are_not_sampled(db: Database, tmp_path: Path) -> None:
    """Destroyed keys (wrapped = NULL) are not a failure: erasure is not damage."""
    await _seed(db)
    async with db.uow() as uow:
        await uow.session.execute(update(DataKey).values(wrapped=None))
        await uow.commit()
    await db.dispose()
    opened = await open_database(_settings(tmp_path, db.url))
    await opened.dispose()


# --- file modes (SQLite) ---------------------------------------------------------------------


async def test_fresh_install_files_are_private(tmp_path: Path, umask_022: None) -> None:
    """A new data dir 0700, the keys file 0600, the database and its -wal/-shm 0600 — with a
    permissive umask, so the code's own modes are what is tested."""
    data_dir = tmp_path / "new" / "data"
    opened = await open_database(_settings(data_dir))
    try:
        await _seed(opened, 1)  # the WAL and its index exist while a connection is open
        files = {p.name: _mode(p) for p in data_dir.iterdir() if p.name.startswith("careline")}
        assert {"careline.db", "careline.db-wal", "careline.db-shm"} <= set(files)
        assert set(files.values()) == {0o600}, files
    finally:
        await opened.dispose()
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "keys.json") == 0o600


async def test_database_files_an_older_version_made_0644_are_tightened(
    tmp_path: Path, umask_022: None
) -> None:
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}", ring)
    await upgrade(db.engine)
    await db.dispose()
    (tmp_path / "careline.db").chmod(0o644)
    opened = await open_database(_settings(tmp_path))
    try:
        assert _mode(tmp_path / "careline.db") == 0o600
    finally:
        await opened.dispose()


def test_check_sample_never_raises_on_a_truncated_row(tmp_path: Path) -> None:
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    mid, good = ring.wrap(os.urandom(32), "owner-a")
    check = ring.check_sample([("owner-a", mid, good), ("owner-b", mid, b"short")])
    assert (check.checked, check.unwrapped) == (2, 1)
    assert len(check.problems()) == 1


# --- the command line (SQLite) ----------------------------------------------------------------

TOKENS = {
    "CARELINE_PATIENT_BOT_TOKEN": "100001:test-patient-token-0001",
    "CARELINE_DOCTOR_BOT_TOKEN": "100002:test-doctor-token-0002",
    # Never reached: each case is refused before a bot exists (and nothing leaves the machine
    # if one were not).
    "CARELINE_TELEGRAM_API_URL": "http://127.0.0.1:9",
}


async def _seed_dir(data_dir: Path) -> None:
    ring, _ = KeyRing.load_or_create(data_dir / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'careline.db'}", ring)
    await upgrade(db.engine)
    await _seed(db)
    await db.dispose()  # the last connection folds the WAL in: the files can be copied


@pytest.fixture(scope="module")
def clinic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir as a running clinic leaves it (keys file, key store, database with data),
    made once and copied by :func:`_clinic`."""
    data_dir = tmp_path_factory.mktemp("clinic") / "data"
    data_dir.mkdir()
    asyncio.run(_seed_dir(data_dir))
    return data_dir


def _clinic(template: Path, data_dir: Path) -> Path:
    """A copy of the clinic's data dir (modes kept); returns its keys file."""
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    return data_dir / "keys.json"


def _spoil(case: str, keys: Path) -> str:
    """Break the keys file as ``case`` says; returns the expected one-line refusal."""
    if case == "missing":
        keys.unlink()
        return _missing(keys)
    if case == "flipped-bit":
        _flip_a_bit(keys)
        return _cannot_unwrap(keys)
    if case == "lost-master-key":
        _renumber_master_key(keys, 1, 2)
        return _no_master_key(keys, 1)
    keys.chmod(0o644)
    return _open_to_others(keys, 0o644)


CASES = ("missing", "flipped-bit", "lost-master-key", "mode-0644")


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "careline started" not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["missing", "mode-0644"])
def test_run_refuses_in_one_line(clinic_dir: Path, tmp_path: Path, case: str) -> None:
    """``run`` through the CLI's entry point (a real ``python bot.py`` stopping with one line,
    exit 2, is tests/test_cli.py's); the other cases take the same path (open_database) and
    are refused in-process above and by ``keys check`` below."""
    keys = _clinic(clinic_dir, tmp_path)
    expected = _spoil(case, keys)
    out = run_cli(["run"], tmp_path, **TOKENS)
    assert _one_line(out) == f"careline: {expected}"
    assert out.stdout == ""


def test_sandbox_refuses_in_one_line(clinic_dir: Path, tmp_path: Path) -> None:
    """The sandbox keeps its data in <data dir>/sandbox and opens it the same way (the
    other cases are the same code path as ``run``'s)."""
    keys = _clinic(clinic_dir, tmp_path / "sandbox")
    expected = _spoil("flipped-bit", keys)
    out = run_cli(["sandbox", "--port", "0"], tmp_path)
    assert _one_line(out) == f"careline: {expected}"


@pytest.mark.parametrize("case", CASES)
def test_keys_check_says_what_is_wrong(
    clinic_dir: Path,
    tmp_path: Path,
    case: str,
) -> None:
    keys = _clinic(clinic_dir, tmp_path)
    expected = _spoil(case, keys)
    out = run_cli(["keys", "check"], tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stdout.splitlines() == [expected]
    assert out.stderr == ""
    assert keys.exists() == (case != "missing")  # it creates nothing


def test_keys_check_names_every_problem(
    clinic_dir: Path,
    tmp_path: Path,
) -> None:
    keys = _clinic(clinic_dir, tmp_path)
    _flip_a_bit(keys)
    keys.chmod(0o640)
    out = run_cli(["keys", "check"], tmp_path)
    assert out.returncode == 2
    assert out.stdout.splitlines() == [_open_to_others(keys, 0o640), _cannot_unwrap(keys)]


def test_keys_check_ok(
    clinic_dir: Path,
    tmp_path: Path,
) -> None:
    keys = _clinic(clinic_dir, tmp_path)
    KeyRing.load(keys).add_signing_key()
    out = run_cli(["keys", "check"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "keys OK: 1 master keys, 2 signing keys, sample of 3 data keys unwrapped"
    ]


def test_keys_check_on_a_fresh_install_creates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    out = run_cli(["keys", "check"], data_dir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"no keys file yet at {data_dir / 'keys.json'} and no data: the first start creates one"
    ]
    assert not data_dir.exists()


def test_migrate_on_a_fresh_install_makes_private_files(tmp_path: Path) -> None:
    """Through a real ``python bot.py`` (the umask it sets): the data dir 0700, keys and
    database 0600."""
    data_dir = tmp_path / "fresh" / "data"
    out = run_bot_py(["migrate"], data_dir)
    assert out.returncode == 0, out.stderr
    assert "BACK IT UP NOW" in out.stderr
    assert _mode(data_dir) == 0o700
    for path in data_dir.iterdir():
        assert _mode(path) == 0o600 if path.is_file() else 0o700, path.name
    assert {"keys.json", "careline.db"} <= {p.name for p in data_dir.iterdir()}
    con = sqlite3.connect(data_dir / "careline.db")
    try:
        assert con.execute("SELECT count(*) FROM data_keys").fetchone() == (0,)
    finally:
        con.close()
