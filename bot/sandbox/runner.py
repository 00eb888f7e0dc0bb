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

from pydantic import SecretStr

from bot.app import Careline, open_database
from bot.logging import setup_logging
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.emulator_state import SimUser
from bot.sandbox.web import add_web_routes
from bot.settings import Settings
from bot.verify_web import VerifyPage

log = logging.getLogger("careline.sandbox")

# Fixed, obviously fake tokens: the emulator is the only server that ever sees them.
PATIENT_TOKEN = "100001:sandbox-patient-bot-token"  # noqa: S105 - emulator-only token
DOCTOR_TOKEN = "100002:sandbox-doctor-bot-token"  # noqa: S105 - emulator-only token


PATIENT_USERNAME = "careline_patient_bot"
DOCTOR_USERNAME = "careline_doctor_bot"
PEOPLE_FILE = "people.json"


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
    _saver: asyncio.Task[None] | None = None

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


async def start_sandbox(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8080, fresh: bool = False
) -> Sandbox:
    """Start everything; returns once the page is being served."""
    emulator = BotApiEmulator(limits=RateLimits())
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_USERNAME, first_name="Careline")
    emulator.register_bot(
        DOCTOR_TOKEN, username=DOCTOR_USERNAME, first_name="Careline for doctors"
    )
    add_web_routes(emulator.app, title="Careline sandbox")
    verify = VerifyPage(
        None,
        per_minute=settings.verify_requests_per_minute,
        trust_proxy=settings.verify_trust_proxy,
    )
    verify.mount(emulator.app)  # /r/<code>: the referral verify page (database set below)
    url = await emulator.start(host, port)
    internal = url if host in ("127.0.0.1", "localhost") else f"http://127.0.0.1:{port}"
    local = sandbox_settings(settings, internal)
    if "public_url" not in settings.model_fields_set:  # slips' QR codes open this sandbox
        local = local.model_copy(update={"public_url": url.rstrip("/")})
    if fresh and local.data_dir.exists():
        shutil.rmtree(local.data_dir)
    local.data_dir.mkdir(parents=True, exist_ok=True)
    people_file = local.data_dir / PEOPLE_FILE
    load_people(emulator, people_file)
    db = await open_database(local)
    # The emulator forgets its update counters on restart; continue after what the inbox
    # already holds so new updates are not mistaken for replays.
    async with db.uow() as uow:
        for role, username in (("patient", PATIENT_USERNAME), ("doctor", DOCTOR_USERNAME)):
            last = await uow.inbox.last_update_id(role)
            if last is not None:
                record = emulator.find_bot(username)
                record.next_update_id = max(record.next_update_id, last + 1)
    verify.db = db
    app = await Careline.build(local, db)
    await app.start()
    sandbox = Sandbox(emulator, app, url, people_file)
    sandbox._saver = asyncio.create_task(sandbox._keep_people())
    return sandbox


async def run_sandbox(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8080, fresh: bool = False
) -> int:
    """Run the sandbox until Ctrl-C / SIGTERM."""
    setup_logging(settings.log_level)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(  # noqa: T201 - operator warning
            f"warning: the sandbox is listening on {host}; anyone who can reach it can act "
            "as any simulated user.",
            file=sys.stderr,
        )
    sandbox = await start_sandbox(settings, host=host, port=port, fresh=fresh)
    print(  # noqa: T201 - the one line a newcomer needs
        f"Careline sandbox running: open {sandbox.url} in a browser (Ctrl-C to stop).",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()
    return 0
