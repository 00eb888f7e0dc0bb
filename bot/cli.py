"""``python bot.py <command>``: the operator's interface."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot import cli_services
from bot.settings import Settings, SettingsError, load_settings
from flows.questionnaire import DataFileError
from flows.redflag_model import ModelError
from flows.redflags import LexiconError
from flows.understand import UnderstandDataError
from locales import CatalogError
from storage.crypto import CryptoError, KeysFileError

# ``hospitals`` subcommands about appointments (flows/appointments.py), not the directory.
BOOKING_COMMANDS = ("service", "services", "slots", "desk")
FREE_DAYS = 14  # ``hospitals services`` counts the free places of this many days ahead
MAX_SLOT_DAYS = 366  # ``hospitals slots --days`` at most


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
    rn = sub.add_parser("run", help="run both bots against Telegram (polling, or webhook if set)")
    rn.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="N worker processes sharing PostgreSQL (webhook mode only; default 1)",
    )  # fmt: skip
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
    keys_sub.add_parser(
        "migrate-shares",
        help="protect owners from before the key store: a key share each, fields re-encrypted",
    )
    keys_sub.add_parser("check", help="what is wrong with the keys file, if anything (exit 2)")
    referral = sub.add_parser("referral", help="referral slip tools")
    ref_sub = referral.add_subparsers(dest="referral_command", metavar="ACTION", required=True)
    ref_verify = ref_sub.add_parser("verify", help="check a slip; exit 0 only when valid")
    ref_verify.add_argument("target", metavar="FILE_OR_CODE", help="PDF/photo, QR text or code")
    rx = sub.add_parser("rx", help="e-prescription tools")
    rx_sub = rx.add_subparsers(dest="rx_command", metavar="ACTION", required=True)
    rx_verify = rx_sub.add_parser("verify", help="check a prescription; exit 0 only when valid")
    rx_verify.add_argument("target", metavar="FILE_OR_CODE", help="PDF/photo, QR text or code")
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
    audit_verify = audit_sub.add_parser(
        "verify", help="check the audit chain and its signed checkpoints; exit 1 if tampered"
    )
    audit_verify.add_argument(
        "--checkpoints",
        metavar="FILE",
        help="check against an exported copy of the checkpoints instead of the data dir's",
    )
    audit_cps = audit_sub.add_parser("checkpoints", help="the signed checkpoints of the chain")
    audit_cps.add_argument(
        "--export", metavar="FILE", help="write them with their public keys, for a regulator"
    )
    _hospitals_parser(sub)
    cli_services.add_parser(sub)
    _backup_parsers(sub)
    ops = sub.add_parser("ops", help="queues, doctors on duty, waits and SLA breaches")
    ops_mode = ops.add_mutually_exclusive_group()
    ops_mode.add_argument(
        "--watch",
        metavar="SECONDS",
        type=_interval,
        help="print the table again every SECONDS until Ctrl-C",
    )
    ops_mode.add_argument(
        "--week",
        metavar="FILE",
        help="write the last seven days as a PNG chart to FILE and print its key figures",
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
    _hospital_booking_parsers(h_sub)


def _hospital_booking_parsers(h_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hospitals service|services|slots|desk``: what the clinic can book at a hospital
    (flows/appointments.py) and who keeps its desk. Values are checked by the command, which
    names a bad one in one line (exit 2)."""
    hospital_help = "hospital id, or a unique prefix of at least 6 characters"
    svc = h_sub.add_parser("service", help="add a bookable service of a hospital")
    svc.add_argument("hospital", metavar="HOSPITAL", help=hospital_help)
    svc.add_argument("department", metavar="DEPARTMENT", help="the department that provides it")
    svc.add_argument("kind", metavar="KIND", help="examination, outpatient or admission")
    svc.add_argument(
        "name", metavar="NAME", help="the service's name (patients and desks read it)"
    )
    svc.add_argument("--bring", default="", metavar="TEXT", help="what the patient should bring")
    svc.add_argument(
        "--directions",
        default="",
        metavar="TEXT",
        help="where to go inside the hospital (building, floor, reception)",
    )
    svcs = h_sub.add_parser(
        "services",
        help=f"a hospital's services and their free places in the next {FREE_DAYS} days",
    )
    svcs.add_argument("hospital", metavar="HOSPITAL", help=hospital_help)
    slots = h_sub.add_parser("slots", help="add bookable times of a service")
    slots.add_argument(
        "service",
        metavar="SERVICE",
        help="service id, or a unique prefix of at least 6 characters",
    )
    slots.add_argument(
        "--from", dest="start", required=True, metavar="YYYY-MM-DD", help="the first day"
    )
    slots.add_argument("--days", default="1", metavar="N", help="how many days (default 1)")
    slots.add_argument(
        "--times",
        default="",
        metavar="HH:MM,...",
        help="start times in the clinic's time zone; none: one all-day quota a day",
    )
    slots.add_argument(
        "--capacity", required=True, metavar="N", help="patients per time (or per day's quota)"
    )
    desk = h_sub.add_parser(
        "desk",
        help="make a Telegram user a hospital's desk (they then send /desk to the doctor bot)",
    )
    desk.add_argument("hospital", metavar="HOSPITAL", help=hospital_help)
    desk.add_argument("tg_user_id", metavar="TG_USER_ID", help="the person's Telegram user id")
    desk.add_argument("name", metavar="NAME", help="the desk's name, as the clinic shows it")
    desk.add_argument(
        "--locale", help="the desk's language: en, ru or zh_Hans (default: the hospital's)"
    )


def _backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from storage.keys import KEYSTORE_COPY_DAYS

    backup = sub.add_parser("backup", help="copy the database (not the key store) into a folder")
    backup.add_argument("dest", metavar="DEST", help="the folder for the copy (made 0700)")
    backup.add_argument(
        "--with-keystore",
        action="store_true",
        help="also copy the key store: that copy re-opens erased patients until it is deleted "
        f"(kept at most {KEYSTORE_COPY_DAYS} days)",
    )
    restore = sub.add_parser(
        "restore", help="put a database copy back, next to the current key store (bot stopped)"
    )
    restore.add_argument(
        "src",
        metavar="SRC",
        nargs="?",
        help="a copy made by backup (a folder: its newest); none: check a database restored "
        "by hand (pg_restore)",
    )
    restore.add_argument(
        "--keystore",
        metavar="FILE",
        help="the data dir was lost: put this key-store copy in place first",
    )


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

    if args.hospitals_command in BOOKING_COMMANDS:
        return await _hospital_bookings(settings, args)
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


class _BadValue(ValueError):
    """A value typed on the command line is not usable; the text says which and why."""


def _whole(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _BadValue(f"{what} must be a whole number, not {value!r}") from None


def _slot_days(args: argparse.Namespace, today: date) -> list[date]:
    """``slots --from --days``: the days to add slots on (today or later)."""
    try:
        first = date.fromisoformat(args.start.strip())
    except ValueError:
        raise _BadValue(f"--from must be a date as YYYY-MM-DD, not {args.start!r}") from None
    if first < today:
        raise _BadValue(f"--from {first.isoformat()} is in the past (today is {today})")
    days = _whole(args.days, "--days")
    if not 1 <= days <= MAX_SLOT_DAYS:
        raise _BadValue(f"--days must be between 1 and {MAX_SLOT_DAYS}")
    return [first + timedelta(days=i) for i in range(days)]


async def _find_service(uow: Any, ref: str) -> Any:
    """A hospital service by id or a unique id prefix of at least six characters."""
    from sqlalchemy import select

    from storage.models import HospitalService

    ref = (ref or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,32}", ref):
        raise _BadValue("not a service id (at least 6 hex characters)")
    found = await uow.appointments.service(ref)
    if found is not None:
        return found
    rows = list(
        await uow.session.scalars(
            select(HospitalService).where(HospitalService.id.startswith(ref)).limit(2)
        )
    )
    if not rows:
        raise _BadValue("no service with this id (python bot.py hospitals services HOSPITAL)")
    if len(rows) > 1:
        raise _BadValue("several services match this prefix; give more characters")
    return rows[0]


async def _free_places(uow: Any, service_id: str, now: datetime, zone: ZoneInfo) -> int:
    """Places left in a service's slots of the next :data:`FREE_DAYS` days (today's all-day
    quota included, times already begun not)."""
    start = datetime.combine(now.astimezone(zone).date(), time(0, 0), zone).astimezone(UTC)
    slots = await uow.appointments.free_slots(
        [service_id], start, now + timedelta(days=FREE_DAYS), limit=100_000
    )
    return sum(
        s.capacity - s.booked
        for s in slots
        if s.all_day
        or (s.starts_at if s.starts_at.tzinfo else s.starts_at.replace(tzinfo=UTC)) >= now
    )


async def _hospital_bookings(settings: Settings, args: argparse.Namespace) -> int:
    """``hospitals service|services|slots|desk``: a hospital's bookable services, their times
    (in the clinic's time zone) and its desk, audited as ``admin:cli``. A bad value, an
    unknown hospital or service: one line, exit 2; a person who is a doctor already cannot
    be made a desk: refused, exit 1."""
    from bot.app import open_database
    from flows import appointments, directory
    from locales import LOCALES, Translator
    from storage.models import utcnow

    actor = "admin:cli"
    zone = ZoneInfo(settings.timezone)
    now = utcnow()
    cmd = args.hospitals_command
    try:
        days = _slot_days(args, now.astimezone(zone).date()) if cmd == "slots" else []
        times = [t.strip() for t in args.times.split(",") if t.strip()] if cmd == "slots" else []
        capacity = _whole(args.capacity, "--capacity") if cmd == "slots" else 0
        tg_user = _whole(args.tg_user_id, "TG_USER_ID") if cmd == "desk" else 0
        if cmd == "desk" and tg_user <= 0:
            raise _BadValue("TG_USER_ID must be a Telegram user id (a positive number)")
        if cmd == "desk" and not args.name.strip():
            raise _BadValue("the desk's NAME is empty")
        if cmd == "desk" and args.locale is not None and args.locale not in LOCALES:
            raise _BadValue(f"--locale must be one of {', '.join(LOCALES)}, not {args.locale!r}")
    except _BadValue as exc:
        print(f"careline: {exc}", file=sys.stderr)
        return 2
    db = await open_database(settings)
    try:
        async with db.uow() as uow:
            try:
                if cmd == "slots":
                    service = await _find_service(uow, args.service)
                    added = await appointments.add_slots(
                        uow, actor, service.id, days, times, capacity, settings.timezone
                    )
                    await uow.commit()
                    asked = len(days) * max(1, len(times))
                    kept = f" ({asked - added} already there)" if added < asked else ""
                    print(
                        f"service {service.id[:8]} ({service.name}): {added} slot(s) added"
                        f"{kept}, {len(days)} day(s) from {days[0]}"
                        + (f" at {', '.join(times)}" if times else ", all-day quota")
                        + f" ({settings.timezone}), {capacity} place(s) each"
                    )
                    return 0
                hospital = await directory.find(uow, args.hospital)
                if cmd == "service":
                    service = await appointments.add_service(
                        uow, actor, hospital.id, args.department, args.kind, args.name,
                        args.bring, args.directions,
                    )  # fmt: skip
                    await uow.commit()
                    print(f"service {service.id} added to {hospital.name}: {service.name}")
                    return 0
                if cmd == "services":
                    rows = await uow.appointments.services(hospital.id)
                    print(f"{hospital.name} ({hospital.id[:8]}):")
                    for s in rows:
                        free = await _free_places(uow, s.id, now, zone)
                        print(f"{s.id[:8]}  {s.department} · {s.kind} · {s.name}")
                        print(f"          bring: {s.bring or '—'}")
                        print(f"          where: {s.directions or '—'}")
                        print(f"          free places in the next {FREE_DAYS} days: {free}")
                    print(f"{len(rows)} service(s)")
                    return 0
                locale = args.locale or hospital.locale or "en"
                desk = await appointments.make_desk(
                    uow, actor, hospital.id, tg_user, args.name, locale
                )
                await uow.commit()
                print(f"desk {desk.id[:8]} of {hospital.name}: {args.name.strip()} ({tg_user})")
                print(
                    f"Telegram user {tg_user} must now open the doctor bot and send /desk "
                    "to see the day's appointments."
                )
                return 0
            except (directory.NotFound, _BadValue) as exc:
                print(f"careline: {exc}", file=sys.stderr)
                return 2
            except appointments.AppointmentError as exc:
                en = Translator("en").plain(exc.msgid, **exc.params)
                if exc.msgid == "appt.error.desk_taken":
                    print(f"careline: refused: {en}", file=sys.stderr)
                    return 1
                print(f"careline: {en}", file=sys.stderr)
                return 2
    finally:
        await db.dispose()


async def _ops(settings: Settings, watch: float | None, week: str | None = None) -> int:
    """The operator's view as plain text in the clinic's default language; with ``watch``,
    again every ``watch`` seconds (the screen cleared first on a terminal) until Ctrl-C; with
    ``week``, the weekly chart written to that file and its key figures printed."""
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    from bot.app import open_database
    from flows import ops, ops_chart, questionnaire, routing
    from handlers.doctor.ops_render import report, week_caption
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
        if week is not None:
            try:
                async with db.uow() as uow:
                    summary = await ops.week(uow, utcnow(), settings.timezone)
            except (SQLAlchemyError, OSError) as exc:
                print(f"careline: database error: {type(exc).__name__}", file=sys.stderr)
                return 1
            png = ops_chart.render(summary, tr)
            try:
                await asyncio.to_thread(Path(week).write_bytes, png)
            except OSError as exc:
                print(f"careline: cannot write {week}: {type(exc).__name__}", file=sys.stderr)
                return 1
            print(week_caption(tr, summary, rich=False), flush=True)
            return 0
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


def _run_workers(settings: Settings, count: int) -> int:
    """``run --workers N``: checked here, so a wrong set-up is one line, not N tracebacks."""
    if not 1 <= count <= 64:
        raise SettingsError("--workers must be between 1 and 64")
    if not settings.webhook_url:
        raise SettingsError(
            "--workers needs webhook mode (CARELINE_WEBHOOK_URL): polling is one worker by "
            "design (Telegram hands getUpdates to one reader)"
        )
    if not (settings.database_url or "").startswith("postgresql"):
        raise SettingsError(
            "--workers needs CARELINE_DATABASE_URL to be PostgreSQL: SQLite serves one process"
        )
    settings.require_tokens()
    from bot.logging import setup_logging
    from bot.workers import run_workers

    setup_logging(settings.log_level)
    return run_workers(count)


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

    keys = settings.effective_keys_file
    if not keys.exists():  # never create a new keys file here (it could not
        # read an existing database); the first start makes one, a backup restores one
        print(f"careline: no keys file at {keys}; nothing to rotate", file=sys.stderr)
        return 2
    ring = open_keyring(settings)
    kid = ring.add_signing_key()
    print(
        f"signing key {kid} is now active for new referral slips; "
        f"{len(ring.signing_key_ids) - 1} older key(s) kept to verify slips already issued. "
        "Back up the keys file again."
    )
    return 0


async def _keys_check(settings: Settings) -> int:
    """``keys check``: one line per problem (exit 2), or the summary (exit 0)."""
    from bot.app import check_keys

    problems, summary = await check_keys(settings)
    for line in problems:
        print(line)
    if problems:
        return 2
    print(summary)
    return 0


async def _referral_verify(settings: Settings, target: str) -> int:
    from bot.app import open_database
    from bot.verify_web import verify_cli

    db = await open_database(settings)
    try:
        return await verify_cli(db, target, settings.default_locale, print)
    finally:
        await db.dispose()


async def _rx_verify(settings: Settings, target: str) -> int:
    from bot.app import open_database
    from bot.verify_web import rx_verify_cli

    db = await open_database(settings)
    try:
        return await rx_verify_cli(db, target, settings.default_locale, print)
    finally:
        await db.dispose()


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    """``audit verify [--checkpoints FILE]`` and ``audit checkpoints [--export FILE]``."""
    from pathlib import Path

    from bot.app import open_database
    from storage import audit_checkpoints as checkpoints
    from storage.audit import verify_log

    db = await open_database(settings)
    try:
        source = checkpoints.checkpoint_path(db.ring)
        if args.audit_command == "checkpoints":
            # List the checkpoints, export the genuine ones; exit 1 if any is not genuine.
            found = checkpoints.read(source)
            good, bad = checkpoints.check(found, db.ring)
            if not found.exists:
                print(f"no checkpoints yet ({source} does not exist)")
            elif good:
                print(
                    f"{len(good)} signed checkpoint(s) in {source}: records "
                    f"{good[0].seq}–{good[-1].seq}, {good[0].at} to {good[-1].at}"
                )
            for item in bad:
                print(f"checkpoint entry {item.line} is NOT genuine: {item.why} (left out)")
            if args.export:
                count = checkpoints.export(Path(args.export), good, db.ring)
                keys = len({cp.kid for cp in good})
                print(f"exported {count} checkpoint(s) and {keys} public key(s) to {args.export}")
            return 1 if bad else 0
        found = (
            checkpoints.read_any(Path(args.checkpoints))
            if args.checkpoints
            else checkpoints.read(source)
        )
        async with db.uow() as uow:
            report = await verify_log(uow.session, db.ring, found)
    except checkpoints.CheckpointError as exc:
        print(f"careline: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    for problem in report.problems:
        where = f"chain BROKEN at record {problem.seq}" if problem.seq else "log BROKEN"
        print(f"audit {where} [{problem.kind}]: {problem.message}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.problems:
        first = report.problems[0]
        print(f"({report.checked} records verified{' before it' if first.seq else ''})")
        return 1
    latest = report.latest
    pinned = (
        f"; the latest of {report.checkpoints} signed checkpoint(s) covers {latest.count} "
        f"records, signed {latest.at}"
        if latest is not None
        else ""
    )
    print(
        f"audit chain intact: {report.checked} records verified "
        f"({report.keyed} with keyed MACs){pinned}"
    )
    return 0


def _bar(label: str) -> Callable[[int, int], None]:
    """A progress bar on stderr; its line ends at 100%."""

    def show(done: int, total: int) -> None:
        width = 30
        filled = width if total == 0 else int(width * done / total)
        pct = 100 if total == 0 else int(100 * done / total)
        print(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {pct}%",
            end="\n" if done >= total else "",
            file=sys.stderr,
            flush=True,
        )

    return show


async def _migrate_shares(settings: Settings) -> int:
    """``keys migrate-shares``: safe while the bot runs."""
    from bot.app import open_database
    from storage.keys import migrate_shares

    db = await open_database(settings)
    try:
        result = await migrate_shares(db, progress=_bar("moving owners under key shares"))
    finally:
        await db.dispose()
    print(
        f"{result.owners} owner(s) moved under key shares ({result.fields} fields "
        "re-encrypted). Database backups taken from now on cannot open them once they are "
        "erased; backups taken before now can: let them expire, or delete them."
    )
    if result.failed:
        print(
            f"careline: {len(result.failed)} owner(s) not moved (a field would not decrypt, or "
            "the bot kept it busy): run the command again",
            file=sys.stderr,
        )
        return 1
    return 0


async def _run_tool(cmd: Any, what: str) -> bool:
    """Run pg_dump / pg_restore (password in the environment only); True when it worked."""
    import os
    import subprocess

    print(f"running: {cmd.shown}", flush=True)
    done = await asyncio.to_thread(
        subprocess.run, cmd.argv, env={**os.environ, **cmd.env}, check=False
    )
    if done.returncode != 0:
        print(f"careline: {what} failed (exit {done.returncode})", file=sys.stderr)
    return done.returncode == 0


async def _backup(settings: Settings, dest_arg: str, with_keystore: bool) -> int:
    """``backup DEST [--with-keystore]``: safe while the bot runs."""
    import shutil

    from storage import keys
    from storage.keystore import KeyStore, beside
    from storage.models import utcnow

    now = utcnow()
    tag, days = keys.stamp(now), keys.KEYSTORE_COPY_DAYS
    dest = Path(dest_arg)
    try:
        await asyncio.to_thread(dest.mkdir, mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        print(f"careline: cannot make {dest}: {type(exc).__name__}", file=sys.stderr)
        return 1
    url = settings.effective_database_url
    file = keys.sqlite_file(url)
    if file is not None:
        if not file.exists():
            print(f"careline: no database at {file}", file=sys.stderr)
            return 1
        out = dest / keys.DATABASE_COPY.format(stamp=tag)
        print(f"backing up the database to {out}", flush=True)
        await asyncio.to_thread(keys.copy_sqlite, file, out, _bar("copying database pages"))
        print(f"database copy written: {out} ({out.stat().st_size} bytes)")
    else:
        out = dest / f"careline-{tag}.dump"
        cmd = keys.pg_command(url, "dump", out)
        if shutil.which("pg_dump") is None:
            print("PostgreSQL: pg_dump is not installed here. On a machine that has it, run:")
            print(f"  {cmd.shown}")
        elif not await _run_tool(cmd, "pg_dump"):
            return 1
        else:
            out.chmod(0o600)
            print(f"database dump written: {out} ({out.stat().st_size} bytes)")
    print(
        "The database copy holds no key shares: patients erased after now stay unreadable in "
        "it. Keep it as long as the clinic's backup policy says."
    )
    if with_keystore:
        copy = dest / keys.KEYSTORE_COPY.format(stamp=tag)
        store = KeyStore.open(beside(settings.effective_keys_file))
        try:
            await asyncio.to_thread(store.copy_to, copy, _bar("copying the key store"))
        finally:
            store.close()
        print(f"key store copy written: {copy}")
        print(
            f"WARNING: until it is deleted, this key-store copy re-opens, in any database "
            f"backup, every patient erased after {now:%Y-%m-%d %H:%M} UTC. Keep it apart from "
            f"the database backups and for at most {days} days: each backup run deletes "
            f"key-store copies in {dest} older than {days} days."
        )
    for old in keys.expired_keystore_copies(dest, now):
        keys.shred(old)
        print(f"deleted key-store copy {old.name} (older than {days} days)")
    return 0


def _newest_copy(src: str) -> Path | None:
    """SRC itself, or the newest copy made by ``backup`` in the folder SRC (None if none)."""
    path = Path(src)
    if not path.is_dir():
        return path if path.exists() else None
    found = sorted([*path.glob("careline-*.db"), *path.glob("careline-*.dump")])
    return found[-1] if found else None


async def _restore(settings: Settings, src_arg: str | None, keystore_copy: str | None) -> int:
    """``restore [SRC] [--keystore FILE]``: refused while anything has the data dir open."""
    import shutil

    from bot.app import open_keyring
    from flows import privacy
    from storage import keys
    from storage.keystore import KeyStore, KeyStoreBusy, beside
    from storage.migrate import upgrade
    from storage.models import utcnow
    from storage.uow import Database

    url = settings.effective_database_url
    file = keys.sqlite_file(url)
    try:
        store = KeyStore.open(beside(settings.effective_keys_file), exclusive=True)
    except KeyStoreBusy as exc:
        print(f"careline: refused: {exc}", file=sys.stderr)
        return 1
    db: Database | None = None
    try:
        if keystore_copy is not None:
            if not store.is_empty():
                print(
                    "careline: refused: this data dir has a key store in use; --keystore only "
                    "replaces a lost one",
                    file=sys.stderr,
                )
                return 1
            store.replace_from(Path(keystore_copy))
            print(f"key store put back from {keystore_copy}")
        if src_arg is not None:
            src = _newest_copy(src_arg)
            if src is None:
                print(f"careline: no database copy at {src_arg}", file=sys.stderr)
                return 2
            if file is not None:
                try:
                    count = keys.check_copy(src)
                except ValueError as exc:
                    print(f"careline: {exc}", file=sys.stderr)
                    return 2
                print(f"restoring {src} ({count} data keys) to {file}", flush=True)
                if file.exists():
                    kept = file.with_name(f"{file.name}.before-restore-{keys.stamp(utcnow())}")
                    print(f"keeping the current database as {kept}", flush=True)
                    await asyncio.to_thread(
                        keys.copy_sqlite, file, kept, _bar("saving the current database")
                    )
                await asyncio.to_thread(
                    keys.restore_sqlite, src, file, _bar("restoring database pages")
                )
            else:
                cmd = keys.pg_command(url, "restore", src)
                if shutil.which("pg_restore") is None:
                    print("PostgreSQL: pg_restore is not installed here. Where it is, run:")
                    print(f"  {cmd.shown}")
                    print("then `python bot.py restore` (no SRC) here, before starting the bot.")
                    return 2
                if not await _run_tool(cmd, "pg_restore"):
                    return 1
        elif file is not None and not file.exists():
            print(f"careline: no database at {file}", file=sys.stderr)
            return 2
        db = Database(url, open_keyring(settings, create=False), keystore=store)
        print("bringing the restored database up to this version", flush=True)
        await upgrade(db.engine)
        found = await keys.restored_owners(db)
        print(f"checking {found.owners} live data keys against the key store", flush=True)
        bar = _bar("re-applying erasures")
        bar(0, len(found.erased))
        for i, owner in enumerate(found.erased, 1):
            async with db.uow() as uow:
                await privacy.reapply_erasure(uow, owner)
                await uow.commit()
            bar(i, len(found.erased))
        print(
            f"{len(found.erased)} erased since the backup: unreadable, as promised (their key "
            "shares are gone; their keys and rows were deleted again)"
            if found.erased
            else "0 erased since the backup"
        )
        if found.erased_legacy:
            print(
                f"  {found.erased_legacy} of them were from before the key store: the backup "
                "file itself can still open them, so delete it or keep it locked away"
            )
        if found.legacy:
            print(
                f"{found.legacy} owner(s) not yet protected by key shares: run "
                "python bot.py keys migrate-shares"
            )
        if found.unmatched:
            print(
                f"careline: {len(found.unmatched)} owner(s) have no key share and no erasure "
                "on record: this key store does not belong to this database (nothing was "
                "destroyed; put back the right key store with --keystore)",
                file=sys.stderr,
            )
            return 1
        await keys.settle_keystore(db)
        print("restore done: the bot can be started")
        return 0
    finally:
        if db is not None:
            await db.dispose()  # closes the key store too
        else:
            store.close()


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
        if args.command == "run" and args.workers != 1:
            return _run_workers(settings, args.workers)
        if args.command == "run":
            return asyncio.run(_run(settings))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "keys" and args.keys_command == "check":
            return asyncio.run(_keys_check(settings))
        if args.command == "keys" and args.keys_command == "migrate-shares":
            return asyncio.run(_migrate_shares(settings))
        if args.command == "backup":
            return asyncio.run(_backup(settings, args.dest, args.with_keystore))
        if args.command == "restore":
            return asyncio.run(_restore(settings, args.src, args.keystore))
        if args.command == "keys" and args.keys_command == "rotate-signing":
            return _rotate_signing(settings)
        if args.command == "keys":
            return asyncio.run(_rotate(settings))
        if args.command == "referral":
            return asyncio.run(_referral_verify(settings, args.target))
        if args.command == "rx":
            return asyncio.run(_rx_verify(settings, args.target))
        if args.command == "doctors":
            return asyncio.run(_doctors(settings, args))
        if args.command == "audit":
            return asyncio.run(_audit(settings, args))
        if args.command == "hospitals":
            return asyncio.run(_hospitals(settings, args))
        if args.command == "services":
            return asyncio.run(cli_services.run(settings, args))
        if args.command == "ops":
            try:
                return asyncio.run(_ops(settings, args.watch, args.week))
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
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        print(
            f"careline: cannot reach the database ({type(exc).__name__}); check "
            "CARELINE_DATABASE_URL and that the database server is running",
            file=sys.stderr,
        )
        return 2
    return 2


def database_unreachable(exc: BaseException) -> bool:
    """Is this start-up failure the database server being unreachable or refusing us (down,
    wrong host or port, wrong password or database name)? Those get one line, not a
    traceback; any other error is a bug and keeps its traceback."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        # asyncpg's refusals at connect time: authorization (28xxx), no such database
        # (3D000), cannot connect now / too many connections (57P03, 53300).
        state = str(getattr(exc.orig, "sqlstate", "") or "")
        return state.startswith("28") or state in ("3D000", "57P03", "53300")
    if isinstance(exc, OSError | TimeoutError):
        # A refused or timed-out connect comes up from the driver unwrapped: blame the
        # database only when the error was raised inside the database libraries.
        tb = exc.__traceback__
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(
                ("asyncpg", "sqlalchemy", "aiosqlite")
            ):
                return True
            tb = tb.tb_next
    return False
