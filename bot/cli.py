"""``python bot.py <command>``: the operator's interface."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.settings import Settings, SettingsError, load_settings
from flows.questionnaire import DataFileError
from flows.redflags import LexiconError
from locales import CatalogError
from storage.crypto import CryptoError, KeysFileError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python bot.py",
        description="Careline: a patient bot and a doctor bot for an online clinic.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("run", help="run both bots against Telegram (polling, or webhook if set)")
    sb = sub.add_parser("sandbox", help="local Bot API emulator + both bots + web chat page")
    sb.add_argument("--host", default="127.0.0.1", help="address for the page (default loopback)")
    sb.add_argument("--port", type=int, default=8080, help="port for the page (default 8080)")
    sb.add_argument("--fresh", action="store_true", help="start from an empty sandbox data dir")
    sub.add_parser("migrate", help="apply database migrations")
    keys = sub.add_parser("keys", help="master key management")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    keys_sub.add_parser("rotate", help="add a new master key and re-wrap every data key")
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    audit_sub.add_parser("verify", help="check the audit hash chain; non-zero exit if broken")
    return p


async def _migrate(settings: Settings) -> int:
    from bot.app import open_database
    from storage.migrate import current

    db = await open_database(settings)
    try:
        print(f"database at revision {await current(db.engine)}")
    finally:
        await db.dispose()
    return 0


async def _run(settings: Settings) -> int:
    from bot.app import Careline
    from bot.logging import setup_logging

    setup_logging(settings.log_level)
    settings.require_tokens()
    app = await Careline.build(settings)
    await app.run_until_signal()
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width if total == 0 else int(width * done / total)
    pct = 100 if total == 0 else int(100 * done / total)
    print(
        f"\rre-wrapping data keys [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {pct}%",
        end="",
        file=sys.stderr,
        flush=True,
    )


async def _rotate(settings: Settings) -> int:
    from bot.app import open_database
    from storage.keys import rotate_master_key

    db = await open_database(settings)
    try:
        new_id, count = await rotate_master_key(db, progress=_progress)
    finally:
        await db.dispose()
    print(file=sys.stderr)
    print(
        f"master key {new_id} is now active; {count} data keys re-wrapped. "
        "Back up the keys file again."
    )
    return 0


async def _audit_verify(settings: Settings) -> int:
    from bot.app import open_database
    from storage.audit import verify_chain

    db = await open_database(settings)
    try:
        async with db.uow() as uow:
            result = await verify_chain(uow.session)
    finally:
        await db.dispose()
    if result.ok:
        print(f"audit chain intact: {result.checked} records verified")
        return 0
    print(
        f"audit chain BROKEN at record {result.broken_seq}: {result.reason} "
        f"({result.checked} records before it verified)"
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load settings, run the command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "sandbox":
            from bot.sandbox.runner import run_sandbox

            return asyncio.run(
                run_sandbox(settings, host=args.host, port=args.port, fresh=args.fresh)
            )
        if args.command == "run":
            return asyncio.run(_run(settings))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "keys":
            return asyncio.run(_rotate(settings))
        if args.command == "audit":
            return asyncio.run(_audit_verify(settings))
    except (SettingsError, KeysFileError) as exc:
        print(f"careline: {exc}", file=sys.stderr)
        return 2
    except (DataFileError, LexiconError, CatalogError) as exc:
        print(f"careline: data file error: {exc}", file=sys.stderr)
        return 2
    except CryptoError as exc:
        print(f"careline: key error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2
