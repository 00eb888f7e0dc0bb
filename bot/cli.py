"""``python bot.py <command>``: the operator's interface."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.settings import Settings, SettingsError, load_settings
from flows.questionnaire import DataFileError
from flows.redflag_model import ModelError
from flows.redflags import LexiconError
from flows.understand import UnderstandDataError
from locales import CatalogError
from storage.crypto import CryptoError, KeysFileError


def _speed(value: str) -> float:
    """``--speed``: a positive factor."""
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.05 <= speed <= 100:
        raise argparse.ArgumentTypeError("must be between 0.05 and 100")
    return speed


def _interval(value: str) -> float:
    """``--watch``: seconds between refreshes, 1 to 3600."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("must be between 1 and 3600 seconds")
    return seconds


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
    sb.add_argument(
        "--play",
        metavar="SCENARIO",
        help="replay a scenario (a bundled name or a .toml file) for the page to watch",
    )
    sb.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="replay speed factor (2 = twice as fast; default 1)",
    )
    sub.add_parser("migrate", help="apply database migrations")
    keys = sub.add_parser("keys", help="master key management")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    keys_sub.add_parser("rotate", help="add a new master key and re-wrap every data key")
    keys_sub.add_parser(
        "rotate-signing", help="new referral-slip signing key (old slips still verify)"
    )
    referral = sub.add_parser("referral", help="referral slip tools")
    ref_sub = referral.add_subparsers(dest="referral_command", metavar="ACTION", required=True)
    ref_verify = ref_sub.add_parser("verify", help="check a slip; exit 0 only when valid")
    ref_verify.add_argument("target", metavar="FILE_OR_CODE", help="PDF/photo, QR text or code")
    doctors = sub.add_parser("doctors", help="list, approve, reject or suspend doctors")
    doc_sub = doctors.add_subparsers(dest="doctors_command", metavar="ACTION", required=True)
    listing = doc_sub.add_parser("list", help="doctors and applications (newest last)")
    listing.add_argument(
        "--status", choices=("applying", "pending", "verified", "rejected", "suspended")
    )
    approve = doc_sub.add_parser("approve", help="verify a pending applicant")
    approve.add_argument("id", help="doctor id, or a unique prefix of at least 6 characters")
    for name, text in (
        ("reject", "reject a pending application"),
        ("suspend", "suspend a doctor"),
    ):
        action = doc_sub.add_parser(name, help=text)
        action.add_argument("id", help="doctor id, or a unique prefix of at least 6 characters")
        action.add_argument("--reason", required=True, help="told to the doctor")
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    audit_sub.add_parser("verify", help="check the audit hash chain; non-zero exit if broken")
    _hospitals_parser(sub)
    ops = sub.add_parser("ops", help="queues, doctors on duty, waits and SLA breaches")
    ops.add_argument(
        "--watch",
        metavar="SECONDS",
        type=_interval,
        help="print the table again every SECONDS until Ctrl-C",
    )
    return p


def _hospitals_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosp = sub.add_parser("hospitals", help="the referral directory: hospitals and departments")
    h_sub = hosp.add_subparsers(dest="hospitals_command", metavar="ACTION", required=True)
    h_list = h_sub.add_parser("list", help="hospitals of the directory")
    h_list.add_argument("--all", action="store_true", help="disabled ones too")
    h_add = h_sub.add_parser("add", help="add a hospital")
    h_add.add_argument("name", help="the hospital's name")
    h_add.add_argument("--city", help="its city")
    h_add.add_argument("--language", help="the language its desk reads: en, zh_Hans or ru")
    h_add.add_argument("--departments", help='comma-separated, e.g. "Cardiology, Neurology"')
    h_dep = h_sub.add_parser("department", help="add or remove a department of a hospital")
    h_dep.add_argument("id", help="hospital id, or a unique prefix of at least 6 characters")
    h_dep.add_argument("action", choices=("add", "remove"))
    h_dep.add_argument("name", help="the department's name")
    for name, text in (("disable", "stop offering a hospital"), ("enable", "offer it again")):
        h_on = h_sub.add_parser(name, help=text)
        h_on.add_argument("id", help="hospital id, or a unique prefix of at least 6 characters")


async def _migrate(settings: Settings) -> int:
    from bot.app import open_database
    from storage.migrate import current

    db = await open_database(settings)
    try:
        print(f"database at revision {await current(db.engine)}")
    finally:
        await db.dispose()
    return 0


async def _doctors(settings: Settings, args: argparse.Namespace) -> int:
    """The operator's doctor commands; decisions are told to the doctor through the outbox
    (the running bot sends them) and audited as ``admin:cli``."""
    from bot.app import open_database
    from bot.telegram.reply import Replier
    from flows import doctors as flow
    from flows.onboarding import BadInput
    from locales import Translator

    db = await open_database(settings)
    actor = "admin:cli"
    try:
        async with db.uow() as uow:
            if args.doctors_command == "list":
                statuses = (args.status,) if args.status else flow.STATUSES
                rows = await uow.doctors.with_status(*statuses)
                print(f"{'id':8}  {'status':9}  {'years':>5}  {'verified until':14}  "
                      "departments / name")  # fmt: skip
                for d in rows:
                    name = await uow.doctors.get_field(d, "name") or "—"
                    until = d.verified_until.date().isoformat() if d.verified_until else "—"
                    years = "—" if d.years_practice is None else str(d.years_practice)
                    print(f"{d.id[:8]:8}  {d.status:9}  {years:>5}  {until:14}  "
                          f"{d.departments or '—'} / {name}")  # fmt: skip
                print(f"{len(rows)} doctor(s)")
                return 0
            try:
                doctor = await flow.find(uow, args.id)
                if args.doctors_command == "approve":
                    doctor = await flow.approve(
                        uow,
                        doctor.id,
                        actor,
                        jurisdiction=settings.jurisdiction.value,
                        days=settings.doctor_verification_days,
                    )
                    until = (
                        doctor.verified_until.date().isoformat() if doctor.verified_until else ""
                    )
                    msgid, params = "doctor.decision.approved", {"until": until}
                elif args.doctors_command == "reject":
                    doctor = await flow.reject(uow, doctor.id, actor, args.reason)
                    msgid, params = "doctor.decision.rejected", {"reason": args.reason}
                else:
                    doctor = await flow.suspend(uow, doctor.id, actor, args.reason)
                    msgid, params = "doctor.decision.suspended", {"reason": args.reason}
            except flow.NotFound as exc:
                print(f"careline: {exc}", file=sys.stderr)
                return 2
            except BadInput:
                print("careline: the reason must be 1-500 characters of text", file=sys.stderr)
                return 2
            except flow.Refused as exc:
                en = Translator("en").plain(exc.msgid, **exc.params)
                print(f"careline: refused: {en}", file=sys.stderr)
                await uow.commit()  # the refusal itself is audited
                return 1
            tell = Replier(uow, "doctor", doctor.tg_user_id)
            await tell.text(Translator(doctor.locale)(msgid, **params))
            await uow.commit()
            print(f"doctor {doctor.id[:8]}: {doctor.status}")
            return 0
    finally:
        await db.dispose()


async def _hospitals(settings: Settings, args: argparse.Namespace) -> int:
    """The operator's directory commands, audited as ``admin:cli``."""
    from bot.app import open_database
    from flows import directory
    from locales import Translator

    db = await open_database(settings)
    actor = "admin:cli"
    try:
        async with db.uow() as uow:
            try:
                if args.hospitals_command == "list":
                    rows = await directory.hospitals(uow, include_disabled=args.all)
                    for h in rows:
                        v = directory.view(h)
                        state = "" if v.active else "  (disabled)"
                        print(f"{v.id[:8]}  {v.name} · {v.city or '—'} · {v.locale or '—'}{state}")
                        print(f"          departments: {', '.join(v.departments) or '—'}")
                    print(f"{len(rows)} hospital(s)")
                    return 0
                if args.hospitals_command == "add":
                    added = await directory.add(
                        uow, actor, args.name, city=args.city, locale=args.language,
                        departments=args.departments,
                    )  # fmt: skip
                    await uow.commit()
                    print(f"hospital {added.id[:8]} added: {added.name}")
                    return 0
                hospital = await directory.find(uow, args.id)
                if args.hospitals_command == "department":
                    if args.action == "add":
                        done = await directory.add_department(uow, actor, hospital, args.name)
                    else:
                        done = await directory.remove_department(uow, actor, hospital, args.name)
                    await uow.commit()
                    print(
                        f"hospital {hospital.id[:8]}: departments now "
                        f"{', '.join(directory.departments_of(hospital)) or '—'}"
                        + ("" if done else " (nothing changed)")
                    )
                    return 0
                changed = await directory.set_active(
                    uow, actor, hospital, args.hospitals_command == "enable"
                )
                await uow.commit()
                state = "active" if hospital.active else "disabled"
                print(f"hospital {hospital.id[:8]}: {state}" + ("" if changed else " (already)"))
                return 0
            except directory.NotFound as exc:
                print(f"careline: {exc}", file=sys.stderr)
                return 2
            except directory.BadInput as exc:
                en = Translator("en").plain(exc.msgid, **exc.params)
                print(f"careline: {en}", file=sys.stderr)
                return 2
    finally:
        await db.dispose()


async def _ops(settings: Settings, watch: float | None) -> int:
    """The operator's view as plain text in the clinic's default language; with ``watch``,
    again every ``watch`` seconds (the screen cleared first on a terminal) until Ctrl-C."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.app import open_database
    from flows import ops, questionnaire, routing
    from handlers.doctor.ops_render import report
    from locales import Translator, validate_catalogs
    from storage.models import utcnow

    validate_catalogs()
    questionnaire.use(settings.intake_file)  # the clinic's departments, as the bots see them
    routing.validate()
    tr = Translator(settings.default_locale)
    try:
        db = await open_database(settings)
    except (SQLAlchemyError, OSError) as exc:
        print(f"careline: cannot open the database: {type(exc).__name__}", file=sys.stderr)
        return 1
    try:
        while True:
            try:
                async with db.uow() as uow:
                    view = await ops.overview(uow, utcnow(), settings.timezone)
            except (SQLAlchemyError, OSError) as exc:
                print(f"careline: database error: {type(exc).__name__}", file=sys.stderr)
                return 1
            if watch is not None and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")  # clear the terminal: the table stays on top
            print(report(tr, view, settings.timezone, rich=False), flush=True)
            if watch is None:
                return 0
            await asyncio.sleep(watch)
            if not sys.stdout.isatty():
                print(flush=True)  # a blank line between tables in a log
    finally:
        await db.dispose()


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


def _rotate_signing(settings: Settings) -> int:
    from bot.app import open_keyring

    ring = open_keyring(settings)
    kid = ring.add_signing_key()
    print(
        f"signing key {kid} is now active for new referral slips; "
        f"{len(ring.signing_key_ids) - 1} older key(s) kept to verify slips already issued. "
        "Back up the keys file again."
    )
    return 0


async def _referral_verify(settings: Settings, target: str) -> int:
    from bot.app import open_database
    from bot.verify_web import verify_cli

    db = await open_database(settings)
    try:
        return await verify_cli(db, target, settings.default_locale, print)
    finally:
        await db.dispose()


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
                run_sandbox(
                    settings,
                    host=args.host,
                    port=args.port,
                    fresh=args.fresh,
                    play=args.play,
                    speed=args.speed,
                )
            )
        if args.command == "run":
            return asyncio.run(_run(settings))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "keys" and args.keys_command == "rotate-signing":
            return _rotate_signing(settings)
        if args.command == "keys":
            return asyncio.run(_rotate(settings))
        if args.command == "referral":
            return asyncio.run(_referral_verify(settings, args.target))
        if args.command == "doctors":
            return asyncio.run(_doctors(settings, args))
        if args.command == "audit":
            return asyncio.run(_audit_verify(settings))
        if args.command == "hospitals":
            return asyncio.run(_hospitals(settings, args))
        if args.command == "ops":
            try:
                return asyncio.run(_ops(settings, args.watch))
            except KeyboardInterrupt:  # how --watch ends: quietly, and successfully
                print()
                return 0 if args.watch is not None else 130
    except (SettingsError, KeysFileError) as exc:
        print(f"careline: {exc}", file=sys.stderr)
        return 2
    except (DataFileError, LexiconError, ModelError, UnderstandDataError, CatalogError) as exc:
        print(f"careline: data file error: {exc}", file=sys.stderr)
        return 2
    except CryptoError as exc:
        print(f"careline: key error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2
