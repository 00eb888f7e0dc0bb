"""``python bot.py sandbox``: the emulator, both real bots polling it, and the web chat page,
all on one loopback port, with no Telegram and no tokens."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from bot.app import Careline, freeze_heap, open_database
from bot.bodymap_web import BodyMapApi
from bot.devices_web import DeviceApi
from bot.logging import setup_logging
from bot.sandbox.client import EmulatorClient
from bot.sandbox.clock import ClockControl, SandboxClock, add_clock_routes
from bot.sandbox.demo import (
    DEMO_FILE,
    Demo,
    PeopleApi,
    create_demo_people,
    greet,
    seed_doctors,
    seed_hospital_bookings,
    seed_hospitals,
    seed_services,
)
from bot.sandbox.devices import SimulatedDevices
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.emulator_state import SimUser
from bot.sandbox.play import PlayState, ScenarioError, add_play_routes, load_scenario, replay
from bot.sandbox.web import MEET_PATH, add_meet_route, add_web_routes
from bot.settings import Settings
from bot.verify_web import VerifyPage

log = logging.getLogger("careline.sandbox")

# Fixed, obviously fake tokens: the emulator is the only server that ever sees them.
PATIENT_TOKEN = "100001:sandbox-patient-bot-token"  # noqa: S105 - emulator-only token
DOCTOR_TOKEN = "100002:sandbox-doctor-bot-token"  # noqa: S105 - emulator-only token


PATIENT_USERNAME = "careline_patient_bot"
DOCTOR_USERNAME = "careline_doctor_bot"
PEOPLE_FILE = "people.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Is ``host`` a loopback address (the sandbox's safe default)?"""
    return host in LOOPBACK or host.startswith("127.")


def host_warning(host: str) -> str | None:
    """The warning printed when the sandbox listens beyond this machine (None on loopback)."""
    if is_loopback(host):
        return None
    return (
        f"WARNING: the sandbox is listening on {host}, not only on this machine. It has NO "
        "authentication: anyone who can reach this address can read every simulated chat, "
        "act as any simulated person (patients, doctors, the admin) and move the clock. Use "
        "it only on a network you trust, with demo data only."
    )


def load_people(emulator: BotApiEmulator, path: Path) -> int:
    """Bring back the simulated people of an earlier run, with their ids, so they stay the
    same patients in the sandbox database. Returns how many."""
    try:
        people = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    count = 0
    for item in people if isinstance(people, list) else []:
        try:
            user = SimUser(**{k: item[k] for k in _PERSON_KEYS if k in item})
        except TypeError:
            continue
        if isinstance(user.id, int) and isinstance(user.first_name, str):
            emulator.users[user.id] = user
            emulator._next_user_id = max(emulator._next_user_id, user.id + 1)
            count += 1
    return count


_PERSON_KEYS = ("id", "first_name", "last_name", "username", "language_code", "phone_number")


def save_people(emulator: BotApiEmulator, path: Path) -> None:
    """Write the simulated people (fictional demo identities only) next to the sandbox data."""
    people = [{k: getattr(u, k) for k in _PERSON_KEYS} for u in emulator.users.values()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(people, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


@dataclass
class Sandbox:
    """A running sandbox: emulator + Careline."""

    emulator: BotApiEmulator
    app: Careline
    url: str
    people_file: Path
    clock: ClockControl
    created: list[tuple[int, str, str]]
    _saver: asyncio.Task[None] | None = None
    _site: web.AppRunner | None = None

    async def _keep_people(self) -> None:
        saved = -1
        while True:
            await asyncio.sleep(1.0)
            if len(self.emulator.users) != saved:
                saved = len(self.emulator.users)
                save_people(self.emulator, self.people_file)

    async def stop(self) -> None:
        """Stop the bots, then the emulator; the simulated people are kept."""
        if self._saver is not None:
            self._saver.cancel()
        save_people(self.emulator, self.people_file)
        await self.app.stop()
        await self.emulator.stop()
        if self._site is not None:
            await self._site.cleanup()
        self.clock.detach()  # the process gets its real clock back


def sandbox_settings(settings: Settings, base_url: str) -> Settings:
    """The operator's settings, pointed at the emulator and a separate data dir."""
    data_dir = settings.data_dir / "sandbox"
    return settings.model_copy(
        update={
            "patient_bot_token": SecretStr(PATIENT_TOKEN),
            "doctor_bot_token": SecretStr(DOCTOR_TOKEN),
            "telegram_api_url": base_url,
            "data_dir": data_dir,
            "database_url": None,
            "keys_file": None,
            "webhook_url": None,
            "redis_url": None,
        }
    )


async def _serve(
    emulator: BotApiEmulator, host: str, port: int
) -> tuple[str, web.AppRunner | None]:
    """Serve the emulator app; beyond loopback (the emulator itself refuses) with a runner of
    our own. Returns the base URL and that runner."""
    if is_loopback(host):
        return await emulator.start(host, port), None
    runner = web.AppRunner(emulator.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    wildcard = host in ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound here
    inside = "127.0.0.1" if wildcard else (f"[{host}]" if ":" in host else host)
    emulator.base_url = f"http://{inside}:{bound}"
    return emulator.base_url, runner


async def start_sandbox(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    fresh: bool = False,
    play: PlayState | None = None,
) -> Sandbox:
    """Start everything; returns once the page is being served. A first start (new data
    dir, or ``fresh``) creates the demo people; every start makes sure the demo hospitals
    are in the referral directory (see bot/sandbox/demo.py). ``play``: the scenario being
    replayed, for the page (``GET /sandbox/play``; without it the page is told none is)."""
    emulator = BotApiEmulator(limits=RateLimits())
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_USERNAME, first_name="Careline")
    emulator.register_bot(
        DOCTOR_TOKEN, username=DOCTOR_USERNAME, first_name="Careline for doctors"
    )
    add_web_routes(emulator.app, title="Careline sandbox")
    add_meet_route(emulator.app)
    verify = VerifyPage(  # the page's own origin is the sandbox's, not a deployment's URL
        None,
        per_minute=settings.verify_requests_per_minute,
        trust_proxy=settings.verify_trust_proxy,
        trusted_proxies=settings.verify_trusted_proxies,
        timezone=settings.timezone,
    )
    verify.mount(emulator.app)  # /r/<code>: the referral verify page (database set below)
    # /d/<device>/pair and /fhir: the device upload API (its address is known once served)
    device_api = DeviceApi(None, emergency_number=settings.local_emergency_number)
    device_api.mount(emulator.app)
    # /m/bodymap: the intake's body map Mini App (the page opens it with initData the
    # emulator signs with the patient bot's token: POST /client/web_app)
    bodymap_api = BodyMapApi(None, token=PATIENT_TOKEN)
    bodymap_api.mount(emulator.app)
    simulated = SimulatedDevices()  # POST /sandbox/device: readings through that API
    simulated.mount(emulator.app)
    data_dir = settings.data_dir / "sandbox"
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    first = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    demo_file = data_dir / DEMO_FILE
    demo = Demo() if first else Demo.load(demo_file)
    clock = ClockControl(SandboxClock())
    add_clock_routes(emulator.app, clock)
    add_play_routes(emulator.app, play if play is not None else PlayState())
    people_api = PeopleApi(emulator, settings, demo, demo_file, DOCTOR_USERNAME)
    people_api.mount(emulator.app)
    url, site = await _serve(emulator, host, port)
    internal = emulator.base_url
    local = sandbox_settings(settings, internal)
    if "public_url" not in settings.model_fields_set:  # slips' QR codes open this sandbox
        public = url if is_loopback(host) else f"http://{host}:{url.rsplit(':', 1)[1]}"
        local = local.model_copy(update={"public_url": public.rstrip("/")})
    if "rx_review" not in settings.model_fields_set:  # the demo pharmacist reviews each one
        local = local.model_copy(update={"rx_review": True})
    if local.jitsi_url is None:  # video rooms: the sandbox's stand-in page (no Jitsi offline)
        local = local.model_copy(update={"jitsi_url": f"{url.rstrip('/')}{MEET_PATH}"})
    device_api.public_url = local.public_url  # the upload address /devices shows, too
    people_file = local.data_dir / PEOPLE_FILE
    load_people(emulator, people_file)
    created: list[tuple[int, str, str]] = []
    if first:
        created = create_demo_people(emulator, demo)
        demo.save(demo_file)
        save_people(emulator, people_file)
    admins = tuple(dict.fromkeys((*local.admin_ids, *demo.admins)))
    local = local.model_copy(update={"admin_ids": admins})
    people_api.settings = local
    db = await open_database(local)
    if created:
        await seed_doctors(db, local, created)
    await seed_hospitals(db)  # every start: sandboxes made before the directory get it too
    if created:
        await seed_hospital_bookings(db, local, created)
    await seed_services(db)  # when the clinic sells none yet (an older sandbox too)
    # The emulator forgets its update counters on restart; continue after what the inbox
    # already holds so new updates are not mistaken for replays.
    async with db.uow() as uow:
        for role, username in (("patient", PATIENT_USERNAME), ("doctor", DOCTOR_USERNAME)):
            last = await uow.inbox.last_update_id(role)
            if last is not None:
                record = emulator.find_bot(username)
                record.next_update_id = max(record.next_update_id, last + 1)
    verify.db = db
    device_api.db = db
    app = await Careline.build(local, db)
    device_api.on_commit = app.sender.poke
    bodymap_api.db, bodymap_api.settings = db, local
    bodymap_api.on_commit = app.sender.poke
    clock.attach(app)  # Careline's one clock is now the sandbox's (the real bot has no such clock)
    await app.start()
    freeze_heap()  # as `run` does: no long full collections under the page
    people_api.db = db
    people_api.base_url = internal
    simulated.db = db
    simulated.base_url = internal
    if created:
        async with EmulatorClient(internal) as client:
            await greet(client, created, DOCTOR_USERNAME)
    sandbox = Sandbox(emulator, app, url, people_file, clock, created, _site=site)
    sandbox._saver = asyncio.create_task(sandbox._keep_people())
    return sandbox


async def run_sandbox(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    fresh: bool = False,
    play: str | None = None,
    speed: float = 1.0,
) -> int:
    """Run the sandbox until Ctrl-C / SIGTERM; with ``play``, replay that scenario at human
    speed once the page is up (the sandbox keeps running afterwards)."""
    setup_logging(settings.log_level)
    scenario = None
    if play is not None:
        try:
            scenario = load_scenario(play)
        except ScenarioError as exc:
            print(f"careline: {exc}", file=sys.stderr)  # noqa: T201 - operator error
            return 2
    warning = host_warning(host)
    state = PlayState(scenario)
    try:
        sandbox = await start_sandbox(settings, host=host, port=port, fresh=fresh, play=state)
    except OSError as exc:
        print(  # noqa: T201 - operator error
            f"careline: cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "try another --port",
            file=sys.stderr,
        )
        return 2
    if sandbox.created:
        print("Demo data created:", file=sys.stderr)  # noqa: T201 - what a newcomer gets
        for uid, role, text in sandbox.created:
            print(f"  {role:8} {text} [id {uid}]", file=sys.stderr)  # noqa: T201
    print(  # noqa: T201 - the one line a newcomer needs
        f"Careline sandbox running: open {sandbox.url} in a browser (Ctrl-C to stop).",
        file=sys.stderr,
        flush=True,
    )
    if warning:
        print(warning, file=sys.stderr, flush=True)  # noqa: T201 - operator warning
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    result = 0
    if scenario is not None:
        player = asyncio.create_task(
            replay(scenario, sandbox.emulator.base_url, speed=speed, out=sys.stderr, state=state)
        )
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({player, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if player.done():
            ok = player.result()
            result = 0 if ok else 1
            print(  # noqa: T201 - the sandbox stays up for the visitor
                "Replay done; the sandbox keeps running (Ctrl-C to stop).",
                file=sys.stderr,
                flush=True,
            )
        else:
            player.cancel()
        await stopper
    else:
        await stop.wait()
    await sandbox.stop()
    return result
