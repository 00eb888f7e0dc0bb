"""Demo people of the sandbox and everyone's role.

On a first start (a new sandbox data dir, or ``--fresh``) the sandbox creates an admin (a
simulated person whose id joins the sandbox's admin ids), two verified doctors in different
departments (through the doctors' own application and approval flow, with fictional names,
on duty, working all day) and an empty patient who has not written to the bot yet. The ids
are kept in ``demo.json`` in the sandbox data dir, so the admin stays an admin after a
restart.

Every start also makes sure the referral directory has the demo clinic's two fictional
hospitals (:data:`DEMO_HOSPITALS`, in the fictional town of Maplebrook), so a doctor's
``/referral`` wizard has hospitals and departments to choose; a hospital already there by name
(even one an admin disabled) is left as it is. A clinic that sells no consultation services
gets the demo's (:data:`DEMO_SERVICES`: free text, phone and video calls in Telegram Stars,
which the emulator takes), and the demo doctors get bookable hours (:data:`DEMO_SCHEDULES`),
so ``/book`` works from the first start.

Roles shown on the page come from the database (doctors, active caregivers), the admin ids
and this seed; anyone else is a patient. ``POST /sandbox/people`` adds a person, optionally
as a verified doctor (what scenario replay uses to bring its own doctors).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import select

from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from flows import appointments, booking, consultation, directory, services
from flows import doctors as doctor_flow
from storage.models import Caregiver, Doctor, utcnow
from storage.uow import Database, UnitOfWork

if TYPE_CHECKING:
    from bot.sandbox.client import EmulatorClient

log = logging.getLogger("careline.sandbox")

DEMO_FILE = "demo.json"
DEMO_HOSPITAL = "Careline Demo Clinic"
ADMIN_ACTOR = "admin:sandbox"
ROLES = ("patient", "caregiver", "doctor", "admin")
LANGUAGES = {"en": "en", "ru": "ru", "zh": "zh-hans", "zh-hans": "zh-hans", "zh_hans": "zh-hans"}
DEPARTMENTS = ("general", "cardiology", "pulmonology", "neurology", "gastroenterology")


@dataclass(frozen=True)
class DemoDoctor:
    """A fictional demo doctor."""

    first_name: str
    last_name: str
    title: str
    department: str
    years: int = 12
    role: str = "doctor"  # or "pharmacist" (reviews e-prescriptions, takes no cases)


DEMO_DOCTORS = (
    DemoDoctor("Lena", "Brightwater", "General practitioner", "general"),
    DemoDoctor("Tomas", "Harrow", "Cardiologist", "cardiology", 15),
    DemoDoctor("Nora", "Pestle", "Clinical pharmacist", "", 8, "pharmacist"),
)
# Bookable hours of the demo doctors (by department; `/schedule` syntax) and the clinic's
# services: a free text consultation, paid phone and video calls in Telegram Stars.
DEMO_SCHEDULES: dict[str, tuple[str, ...]] = {
    "general": ("phone mon-sun 08:00-14:00 slot 15", "video mon-sun 14:00-20:00 slot 20"),
    "cardiology": ("phone mon-fri 09:00-17:00 slot 20 break 12:00-13:00",),
}
DEMO_SERVICES: tuple[tuple[str, int | None, int | None, str], ...] = (
    ("text", None, 24, "free"),
    ("phone", 15, None, "150 XTR"),
    ("video", 20, None, "250 XTR"),
)


@dataclass(frozen=True)
class DemoHospital:
    """A fictional hospital of the demo clinic's referral directory."""

    name: str
    city: str
    departments: tuple[str, ...]


DEMO_TOWN = "Maplebrook (fictional)"
# A hospital's own name for each of the clinic's departments (intake.toml's `departments`).
HOSPITAL_DEPARTMENTS = {
    "general": "General medicine",
    "cardiology": "Cardiology",
    "pulmonology": "Pulmonology",
    "neurology": "Neurology",
    "gastroenterology": "Gastroenterology",
    "dermatology": "Dermatology",
    "urology": "Urology",
    "orthopedics": "Orthopedics",
    "psychiatry": "Psychiatry",
    "pediatrics": "Pediatrics",
    "endocrinology": "Endocrinology",
    "ent": "Otolaryngology (ENT)",
    "gynecology": "Gynecology",
    "ophthalmology": "Ophthalmology",
    "surgery": "General surgery",
}
_CHILDRENS = (
    "pediatrics", "cardiology", "pulmonology", "neurology", "gastroenterology", "dermatology",
    "orthopedics", "ent", "ophthalmology", "surgery",
)  # fmt: skip
DEMO_HOSPITALS = (
    DemoHospital(
        "Riverside General Hospital",
        DEMO_TOWN,
        tuple(d for k, d in HOSPITAL_DEPARTMENTS.items() if k != "pediatrics"),
    ),
    DemoHospital(
        "Hillcrest Children's Hospital",
        DEMO_TOWN,
        tuple(HOSPITAL_DEPARTMENTS[k] for k in _CHILDRENS),
    ),
)
DEMO_ADMIN = ("Sam", "Admin")
DEMO_DESK = ("Dana", "Frontdesk")  # the desk of the first demo hospital
# What the first demo hospital lets the clinic book: (department, kind, name, what to bring,
# where to go), at these local times each day for the next two weeks, 4 places each.
DEMO_HOSPITAL_SERVICES = (
    ("Cardiology", "examination", "Holter monitoring", "previous ECGs and your medicines",
     "Building B, 2nd floor, cardiology reception"),
    ("General medicine", "outpatient", "Outpatient visit", "your ID and the referral slip",
     "Main entrance, outpatient desk"),
)  # fmt: skip
DEMO_HOSPITAL_TIMES = ("09:00", "10:30", "14:00")
DEMO_HOSPITAL_DAYS = 14
DEMO_PATIENT = ("Pat", "Demo")


@dataclass
class Demo:
    """What the seed made (ids of simulated people) and the roles it gave them."""

    admins: list[int] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Demo:
        """Read ``demo.json`` (missing or unreadable: an empty demo)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            admins = [int(a) for a in raw.get("admins", [])]
            roles = {int(k): str(v) for k, v in raw.get("roles", {}).items() if v in ROLES}
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()
        return cls(admins, roles)

    def save(self, path: Path) -> None:
        """Write ``demo.json``."""
        data = {"admins": self.admins, "roles": {str(k): v for k, v in self.roles.items()}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(path)


def language_code(value: Any) -> str:
    """A language the bots speak, as a Telegram ``language_code`` (default English)."""
    if value is None:
        return "en"
    code = LANGUAGES.get(str(value).strip().lower())
    if code is None:
        raise ValueError("language must be one of en, ru, zh-hans")
    return code


async def make_doctor(
    uow: UnitOfWork,
    settings: Settings,
    tg_user_id: int,
    name: str,
    *,
    department: str,
    title: str = "Attending physician",
    years: int = 12,
    locale: str = "en",
    role: str = "doctor",
) -> Doctor:
    """A verified doctor (or pharmacist) through the doctors' own flow: the application
    (filled in as the applicant would), submitted, approved by the sandbox admin, on duty all
    day."""
    doctor, _ = await doctor_flow.start(uow, tg_user_id, locale)
    doctor_flow.set_role(doctor, role)
    for key, value in (
        ("name", name),
        ("licence", f"DEMO-{tg_user_id}"),
        ("authority", "Demo Medical Board (fictional)"),
        ("hospital", DEMO_HOSPITAL),
        ("title", title),
        ("phone", f"+1555{tg_user_id % 10_000_000:07d}"),
    ):
        await uow.doctors.set_field(doctor, key, value)
    doctor.departments = department
    doctor.years_practice = years
    doctor.apply_step = doctor_flow.Step.CONFIRM.value
    await doctor_flow.submit(uow, doctor)
    doctor = await doctor_flow.approve(
        uow,
        doctor.id,
        ADMIN_ACTOR,
        jurisdiction=settings.jurisdiction.value,
        days=settings.doctor_verification_days,
    )
    await consultation.set_hours(uow, doctor, "00:00-24:00", settings.timezone)
    await consultation.set_duty(uow, doctor, True)
    return doctor


def create_demo_people(emulator: BotApiEmulator, demo: Demo) -> list[tuple[int, str, str]]:
    """The demo's simulated people (in the emulator); returns (id, role, description)."""
    made: list[tuple[int, str, str]] = []
    admin = emulator.create_user(DEMO_ADMIN[0], last_name=DEMO_ADMIN[1], language_code="en")
    demo.admins.append(admin.id)
    demo.roles[admin.id] = "admin"
    made.append((admin.id, "admin", f"{DEMO_ADMIN[0]} {DEMO_ADMIN[1]} (admin)"))
    for d in DEMO_DOCTORS:
        user = emulator.create_user(d.first_name, last_name=d.last_name, language_code="en")
        demo.roles[user.id] = "doctor"
        who = "Dr. " if d.role == "doctor" else ""
        made.append((user.id, "doctor", f"{who}{d.first_name} {d.last_name}, {d.title}"))
    desk = emulator.create_user(DEMO_DESK[0], last_name=DEMO_DESK[1], language_code="en")
    demo.roles[desk.id] = "doctor"  # the doctor bot is where a desk works
    made.append(
        (desk.id, "desk", f"{DEMO_DESK[0]} {DEMO_DESK[1]}, desk of {DEMO_HOSPITALS[0].name}")
    )
    patient = emulator.create_user(DEMO_PATIENT[0], last_name=DEMO_PATIENT[1], language_code="en")
    demo.roles[patient.id] = "patient"
    made.append((patient.id, "patient", f"{DEMO_PATIENT[0]} {DEMO_PATIENT[1]} (new patient)"))
    return made


async def seed_doctors(db: Database, settings: Settings, made: list[tuple[int, str, str]]) -> None:
    """The demo doctors' records (verified, on duty, all day)."""
    doctors = iter(DEMO_DOCTORS)
    async with db.uow() as uow:
        for uid, role, _ in made:
            if role != "doctor":
                continue
            d = next(doctors)
            doctor = await make_doctor(
                uow,
                settings,
                uid,
                f"{d.first_name} {d.last_name}",
                department=d.department,
                title=d.title,
                years=d.years,
                role=d.role,
            )
            for rule in DEMO_SCHEDULES.get(d.department, ()):
                await booking.add_rule(uow, doctor, rule, settings.timezone, utcnow())
        await uow.commit()


async def seed_services(db: Database) -> int:
    """The demo clinic's consultation services (:data:`DEMO_SERVICES`, priced in Telegram
    Stars so the sandbox's pay button works with no provider), when the clinic has none;
    returns how many were added."""
    async with db.uow() as uow:
        if await services.services(uow, include_disabled=True):
            return 0
        for mode, minutes, hours, price in DEMO_SERVICES:
            await services.add(
                uow, ADMIN_ACTOR, mode, minutes=minutes, response_hours=hours, price=price
            )
        await uow.commit()
    return len(DEMO_SERVICES)


async def seed_hospitals(db: Database) -> int:
    """The demo hospitals in the referral directory (see the module docstring); returns how
    many were added (0 on a restart)."""
    added = 0
    async with db.uow() as uow:
        known = {h.name.casefold() for h in await directory.hospitals(uow, include_disabled=True)}
        for h in DEMO_HOSPITALS:
            if h.name.casefold() in known:
                continue
            await directory.add(
                uow, ADMIN_ACTOR, h.name, city=h.city, locale="en", departments=list(h.departments)
            )
            added += 1
        await uow.commit()
    return added


async def seed_hospital_bookings(
    db: Database, settings: Settings, made: list[tuple[int, str, str]]
) -> int:
    """The first demo hospital's bookable services and two weeks of times, and its desk;
    returns how many times were added."""
    added = 0
    async with db.uow() as uow:
        hospitals = await directory.hospitals(uow, include_disabled=True)
        first = next((h for h in hospitals if h.name == DEMO_HOSPITALS[0].name), None)
        if first is None:
            return 0
        today = utcnow().date()
        days = [today + timedelta(days=n) for n in range(1, DEMO_HOSPITAL_DAYS + 1)]
        for department, kind, name, bring, where in DEMO_HOSPITAL_SERVICES:
            service = await appointments.add_service(
                uow, ADMIN_ACTOR, first.id, department, kind, name, bring, where
            )
            added += await appointments.add_slots(
                uow, ADMIN_ACTOR, service.id, days, list(DEMO_HOSPITAL_TIMES), 4,
                settings.timezone,
            )  # fmt: skip
        for uid, role, _ in made:
            if role == "desk":
                name = " ".join(DEMO_DESK)
                await appointments.make_desk(uow, ADMIN_ACTOR, first.id, uid, name, "en")
        await uow.commit()
    return added


async def greet(client: EmulatorClient, made: list[tuple[int, str, str]], doctor_bot: str) -> None:
    """The demo doctors, the desk and the admin open the doctor bot (a bot cannot write
    first)."""
    for uid, role, _ in made:
        if role in ("doctor", "desk"):
            await client.start(uid, doctor_bot)
        elif role == "admin":
            await client.send(uid, doctor_bot, "/pending")


async def people(
    db: Database, emulator: BotApiEmulator, settings: Settings, demo: Demo
) -> list[dict[str, Any]]:
    """Every simulated person with a role derived from the database, the admin ids and the
    demo seed (a new person is a patient)."""
    async with db.uow() as uow:
        doctors = set(await uow.session.scalars(select(Doctor.tg_user_id)))
        caregivers = set(
            await uow.session.scalars(
                select(Caregiver.tg_user_id).where(
                    Caregiver.status == "active", Caregiver.tg_user_id.is_not(None)
                )
            )
        )
    admins = set(settings.admin_ids) | set(demo.admins)
    result = []
    for user in emulator.users.values():
        if user.id in admins:
            role = "admin"
        elif user.id in doctors:
            role = "doctor"
        elif user.id in caregivers:
            role = "caregiver"
        else:
            role = demo.roles.get(user.id, "patient")
            role = "patient" if role in ("admin", "doctor") else role
        name = " ".join(p for p in (user.first_name, user.last_name) if p)
        result.append(
            {"id": user.id, "name": name, "role": role, "language": user.language_code or "en"}
        )
    return result


class PeopleApi:
    """``GET /sandbox/people`` and ``POST /sandbox/people`` on the sandbox server."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        settings: Settings,
        demo: Demo,
        demo_file: Path,
        doctor_bot: str,
    ) -> None:
        self.emulator = emulator
        self.settings = settings
        self.demo = demo
        self.demo_file = demo_file
        self.doctor_bot = doctor_bot
        self.db: Database | None = None
        self.base_url: str | None = None

    def mount(self, app: web.Application) -> None:
        """Add the routes (before the server starts)."""
        app.router.add_get("/sandbox/people", self.list_people)
        app.router.add_post("/sandbox/people", self.add_person)

    @staticmethod
    def _error(message: str, status: int = 400) -> web.Response:
        return web.json_response({"ok": False, "error": message}, status=status)

    async def list_people(self, request: web.Request) -> web.Response:
        """GET /sandbox/people."""
        if self.db is None:
            return self._error("the sandbox is still starting; try again in a moment", 503)
        try:
            found = await people(self.db, self.emulator, self.settings, self.demo)
        except Exception:
            log.exception("listing sandbox people failed")
            return self._error("people could not be listed (see the log)", 500)
        return web.json_response({"ok": True, "people": found})

    async def add_person(self, request: web.Request) -> web.Response:
        """POST /sandbox/people ``{"first_name", "last_name"?, "language"?, "role"?:
        "patient" | "doctor", "department"?}``: a new simulated person; a doctor is verified
        through the doctors' flow and has opened the doctor bot."""
        if self.db is None or self.base_url is None:
            return self._error("the sandbox is still starting; try again in a moment", 503)
        try:
            body = await request.json()
        except ValueError:
            return self._error("request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error("request body must be a JSON object")
        unknown = sorted(set(body) - {"first_name", "last_name", "language", "role", "department"})
        if unknown:
            return self._error(f"unknown field: {str(unknown[0])[:40]}")
        first, last = body.get("first_name"), body.get("last_name")
        if not isinstance(first, str) or not first.strip() or len(first) > 64:
            return self._error("first_name must be text of 1 to 64 characters")
        if last is not None and (not isinstance(last, str) or len(last) > 64):
            return self._error("last_name must be text of up to 64 characters")
        role = body.get("role", "patient")
        if role not in ("patient", "doctor"):
            return self._error(
                'role must be "patient" or "doctor" (caregivers become caregivers by accepting '
                "an invitation)"
            )
        department = body.get("department", "general")
        if role == "doctor" and department not in DEPARTMENTS:
            return self._error(f"department must be one of {', '.join(DEPARTMENTS)}")
        try:
            lang = language_code(body.get("language"))
        except ValueError as exc:
            return self._error(str(exc))
        user = self.emulator.create_user(first.strip(), last_name=last, language_code=lang)
        if role == "doctor":
            locale = {"en": "en", "ru": "ru"}.get(lang, "zh_Hans")
            name = " ".join(p for p in (user.first_name, user.last_name) if p)
            try:
                async with self.db.uow() as uow:
                    await make_doctor(
                        uow, self.settings, user.id, name, department=department, locale=locale
                    )
                    await uow.commit()
                from bot.sandbox.client import EmulatorClient

                async with EmulatorClient(self.base_url) as client:
                    await client.start(user.id, self.doctor_bot)
            except Exception:
                log.exception("making a sandbox doctor failed")
                return self._error("the doctor could not be created (see the log)", 500)
            self.demo.roles[user.id] = "doctor"
            self.demo.save(self.demo_file)
        person = {
            "id": user.id,
            "name": " ".join(p for p in (user.first_name, user.last_name) if p),
            "role": role,
            "language": lang,
        }
        return web.json_response({"ok": True, "person": person})
