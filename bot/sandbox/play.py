"""Scenario replay: a scripted conversation played through the sandbox's client API.

``python bot.py sandbox --play NAME_OR_FILE [--speed 2]`` plays a scenario while the page is
open, pausing between steps so a visitor can watch; tests/e2e/test_scenarios.py plays the
same files with no pauses. A scenario is a TOML file (bundled ones: bot/sandbox/scenarios/):

```toml
title = "Emergency during intake"
description = "One line for the visitor."

[[people]]                      # created through POST /sandbox/people at the start
id = "maya"                     # the handle steps use
first_name = "Maya"             # fictional people only
last_name = "Example"           # optional
role = "patient"                # patient | doctor (verified, on duty) | caregiver
language = "en"                 # en | ru | zh-hans
department = "general"          # doctors only

[[steps]]
who = "maya"                    # whose action it is (and whose chat "expect" reads)
bot = "patient"                 # patient | doctor; default: doctor for doctors, else patient
say = "/start"                  # one action per step: say, press (inline button label),
                                # reply (reply-keyboard button), contact (true: share own),
                                # start (deep-link payload), start_link (a person id: open
                                # the newest t.me/...?start= link in that person's chat),
                                # upload ("photo" | "document" | "voice", optional file =
                                # a path relative to the scenario), advance ("1h", "1d",
                                # "next": the sandbox clock), or none (just expect)
expect = "Welcome"              # optional: a bot message containing this (text, caption,
                                # file name or an inline button's label; case-insensitive)
                                # must arrive after the action
timeout = 20                    # seconds for expect (default 20)
note = "shown to the visitor"   # optional
```

A step whose expectation is not met in time fails the replay with a message naming the step.

While ``--play`` runs, ``GET /sandbox/play`` tells the page which people the scenario made
(:class:`PlayState`), and the page opens their chats side by side by itself.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from bot.sandbox.client import EmulatorClient, EmulatorError

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
BOTS = {"patient": "careline_patient_bot", "doctor": "careline_doctor_bot"}
ACTIONS = ("say", "press", "reply", "contact", "start", "start_link", "upload", "advance")
STEP_KEYS = frozenset({*ACTIONS, "who", "bot", "expect", "timeout", "note", "file"})
PERSON_KEYS = frozenset({"id", "first_name", "last_name", "role", "language", "department"})
ROLES = ("patient", "doctor", "caregiver")
DEFAULT_TIMEOUT = 20.0
BASE_PAUSE_S = 1.6
# A 1x1 PNG for photo uploads without a file.
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_LINK = re.compile(r"https?://t\.me/(\w+)\?start=([\w-]+)")


class ScenarioError(ValueError):
    """A scenario that cannot be read: one line naming the file and the problem."""


class ReplayError(RuntimeError):
    """A step failed during replay (its message names the step)."""


@dataclass(frozen=True)
class Person:
    """Someone in a scenario."""

    id: str
    first_name: str
    last_name: str | None = None
    role: str = "patient"
    language: str = "en"
    department: str = "general"


@dataclass(frozen=True)
class Step:
    """One step: an action (or none) and an optional expectation."""

    number: int
    who: str | None
    bot: str
    action: str | None
    value: Any
    expect: str | None
    timeout: float
    note: str | None
    file: str | None

    def describe(self, people: dict[str, Person]) -> str:
        """A short human description, for progress lines and failures."""
        who = people[self.who].first_name if self.who else "clock"
        if self.action is None:
            what = "waits"
        elif self.action == "advance":
            what = f"advance the clock {self.value}"
        elif self.action == "contact":
            what = "shares their phone number"
        else:
            what = f"{self.action} {str(self.value)!r}"
        tail = f", expecting {self.expect!r}" if self.expect else ""
        return f"step {self.number} ({who}: {what}{tail})"


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file."""

    path: Path
    title: str
    description: str
    people: dict[str, Person]
    steps: list[Step] = field(default_factory=list)


def bot_of(scenario: Scenario, handle: str) -> str:
    """The bot a scenario's person talks to most (patient / doctor); by role when they have
    no steps."""
    person = scenario.people[handle]
    counts: dict[str, int] = {}
    for step in scenario.steps:
        if step.who == handle:
            counts[step.bot] = counts.get(step.bot, 0) + 1
    if not counts:
        return "doctor" if person.role == "doctor" else "patient"
    return max(counts, key=lambda bot: counts[bot])  # first seen wins a tie


class PlayState:
    """What ``--play`` replays, for the page (``GET /sandbox/play``). ``ids`` fills in as the
    replay creates the scenario's people; ``status`` is ``waiting`` (for the page to open),
    ``running``, ``done`` or ``failed``; ``run`` is new for every start, so the page opens a
    replay's people once and leaves the panes to the visitor afterwards."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario
        self.run = secrets.token_hex(6)
        self.status = "waiting"
        self.ids: dict[str, int] = {}

    def as_json(self) -> dict[str, Any]:
        """The answer of ``GET /sandbox/play``: ``{"playing": false}`` without a scenario,
        else the run, title, status and the people made so far (id, name, role, bot
        username), in the scenario's order."""
        s = self.scenario
        if s is None:
            return {"ok": True, "playing": False}
        people = [
            {
                "handle": p.id,
                "id": self.ids[p.id],
                "name": " ".join(x for x in (p.first_name, p.last_name) if x),
                "role": p.role,
                "bot": BOTS[bot_of(s, p.id)],
            }
            for p in s.people.values()
            if p.id in self.ids
        ]
        return {
            "ok": True,
            "playing": True,
            "run": self.run,
            "title": s.title,
            "description": s.description,
            "status": self.status,
            "people": people,
            "total": len(s.people),
        }


def add_play_routes(app: web.Application, state: PlayState) -> None:
    """``GET /sandbox/play`` on the sandbox server (before it starts)."""

    async def get_play(request: web.Request) -> web.Response:
        """GET /sandbox/play: :meth:`PlayState.as_json`."""
        return web.json_response(state.as_json())

    app.router.add_get("/sandbox/play", get_play)


def bundled() -> list[str]:
    """The bundled scenario names."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def resolve(name: str) -> Path:
    """A bundled scenario's name or a file path -> the file."""
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{name}: no such scenario file")
        return path
    candidate = SCENARIO_DIR / f"{name}.toml"
    if re.fullmatch(r"[\w-]+", name) and candidate.is_file():
        return candidate
    raise ScenarioError(f"unknown scenario {name!r}; bundled: {', '.join(bundled())}")


def load_scenario(name: str) -> Scenario:
    """Read and check a scenario (see the module docstring)."""
    path = resolve(name)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read the file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    try:
        return _parse(path, raw)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{what} must be non-empty text")
    return value


def _parse(path: Path, raw: dict[str, Any]) -> Scenario:
    unknown = sorted(set(raw) - {"title", "description", "people", "steps"})
    if unknown:
        raise ScenarioError(f"unknown top-level key {unknown[0]!r}")
    title = _text(raw.get("title"), "title")
    people_raw, steps_raw = raw.get("people"), raw.get("steps")
    if not isinstance(people_raw, list) or not people_raw:
        raise ScenarioError("needs at least one [[people]] entry")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ScenarioError("needs at least one [[steps]] entry")
    people: dict[str, Person] = {}
    for i, item in enumerate(people_raw, 1):
        if not isinstance(item, dict):
            raise ScenarioError(f"person {i} is not a table")
        bad = sorted(set(item) - PERSON_KEYS)
        if bad:
            raise ScenarioError(f"person {i}: unknown key {bad[0]!r}")
        pid = _text(item.get("id"), f"person {i}: id")
        if pid in people:
            raise ScenarioError(f"person {i}: id {pid!r} is used twice")
        role = item.get("role", "patient")
        if role not in ROLES:
            raise ScenarioError(f"person {pid!r}: role must be one of {', '.join(ROLES)}")
        language = item.get("language", "en")
        if language not in ("en", "ru", "zh-hans"):
            raise ScenarioError(f"person {pid!r}: language must be en, ru or zh-hans")
        last = item.get("last_name")
        if last is not None and not isinstance(last, str):
            raise ScenarioError(f"person {pid!r}: last_name must be text")
        people[pid] = Person(
            pid,
            _text(item.get("first_name"), f"person {pid!r}: first_name"),
            last,
            role,
            language,
            str(item.get("department", "general")),
        )
    steps = [_step(i, item, people) for i, item in enumerate(steps_raw, 1)]
    return Scenario(path, title, str(raw.get("description", "")), people, steps)


def _step(number: int, item: Any, people: dict[str, Person]) -> Step:
    if not isinstance(item, dict):
        raise ScenarioError(f"step {number} is not a table")
    bad = sorted(set(item) - STEP_KEYS)
    if bad:
        raise ScenarioError(f"step {number}: unknown key {bad[0]!r}")
    actions = [a for a in ACTIONS if a in item]
    if len(actions) > 1:
        raise ScenarioError(f"step {number}: one action per step (found {', '.join(actions)})")
    action = actions[0] if actions else None
    value = item.get(action) if action else None
    who = item.get("who")
    if who is not None and who not in people:
        raise ScenarioError(f"step {number}: who = {who!r} is not one of the people")
    if who is None and action != "advance":
        raise ScenarioError(f"step {number}: needs who = <a person's id>")
    expect = item.get("expect")
    if expect is not None:
        _text(expect, f"step {number}: expect")
        if who is None:
            raise ScenarioError(f"step {number}: expect needs who (whose chat to read)")
    if action is None and expect is None:
        raise ScenarioError(f"step {number}: has no action ({', '.join(ACTIONS)}) and no expect")
    if action in ("say", "press", "reply", "start"):
        _text(value, f"step {number}: {action}")
    elif action == "contact" and value is not True:
        raise ScenarioError(f"step {number}: contact must be true")
    elif action == "start_link" and value not in people:
        raise ScenarioError(f"step {number}: start_link must name one of the people")
    elif action == "upload" and value not in ("photo", "document", "voice"):
        raise ScenarioError(f"step {number}: upload must be photo, document or voice")
    elif action == "advance":
        from bot.sandbox.clock import ClockError, parse_advance

        try:
            parse_advance(value)
        except ClockError as exc:
            raise ScenarioError(f"step {number}: {exc}") from None
    default_bot = "doctor" if who and people[who].role == "doctor" else "patient"
    bot = item.get("bot", default_bot)
    if bot not in BOTS:
        raise ScenarioError(f"step {number}: bot must be patient or doctor")
    timeout = item.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise ScenarioError(f"step {number}: timeout must be 1..600 seconds")
    note, file = item.get("note"), item.get("file")
    if note is not None and not isinstance(note, str):
        raise ScenarioError(f"step {number}: note must be text")
    if file is not None and (action != "upload" or not isinstance(file, str)):
        raise ScenarioError(f"step {number}: file goes with upload and is a path")
    return Step(number, who, bot, action, value, expect, float(timeout), note, file)


def _has(message: dict[str, Any], needle: str) -> bool:
    needle = needle.casefold()
    doc = message.get("document") or {}
    parts = [message.get("text"), message.get("caption"), doc.get("file_name")]
    for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
        parts += [b.get("text") for b in row]
    return any(needle in (part or "").casefold() for part in parts)


def _links(message: dict[str, Any]) -> list[tuple[str, str]]:
    texts = [message.get("text") or "", message.get("caption") or ""]
    texts += [e.get("url") or "" for e in message.get("entities") or []]
    for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
        texts += [b.get("url") or "" for b in row]
    return [(m.group(1), m.group(2)) for t in texts for m in _LINK.finditer(t)]


class Player:
    """Plays a scenario against a running sandbox."""

    def __init__(
        self,
        scenario: Scenario,
        base_url: str,
        *,
        pause: float = 0.0,
        out: TextIO | None = None,
        timeout_factor: float = 1.0,
        state: PlayState | None = None,
    ) -> None:
        self.scenario = scenario
        self.base = base_url.rstrip("/")
        self.pause = pause
        self.out = out
        self.timeout_factor = timeout_factor
        # Shared with the page's view of the replay, when there is one.
        self.ids: dict[str, int] = state.ids if state is not None else {}
        self.marks: dict[tuple[str, str], int] = {}

    def say(self, text: str) -> None:
        """A progress line for the visitor."""
        if self.out is not None:
            print(text, file=self.out, flush=True)

    async def _sandbox(
        self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> dict[str, Any]:
        async with http.request(method, f"{self.base}{path}", json=body) as resp:
            data = await resp.json(content_type=None)
        if not isinstance(data, dict) or not data.get("ok"):
            error = data.get("error") if isinstance(data, dict) else data
            raise ReplayError(f"{path}: {error}")
        return data

    async def run(self) -> None:
        """Create the people, then play every step; raises :class:`ReplayError`."""
        s = self.scenario
        self.say(f"Replaying: {s.title}" + (f" - {s.description}" if s.description else ""))
        async with aiohttp.ClientSession() as http, EmulatorClient(self.base) as client:
            for person in s.people.values():
                body: dict[str, Any] = {
                    "first_name": person.first_name,
                    "language": person.language,
                    "role": "doctor" if person.role == "doctor" else "patient",
                }
                if person.last_name:
                    body["last_name"] = person.last_name
                if person.role == "doctor":
                    body["department"] = person.department
                made = await self._sandbox(http, "POST", "/sandbox/people", body)
                self.ids[person.id] = int(made["person"]["id"])
                self.say(f"  {person.role}: {person.first_name} (id {self.ids[person.id]})")
            for step in s.steps:
                if self.pause:
                    await asyncio.sleep(self.pause)
                if step.note:
                    self.say(f"  -- {step.note}")
                self.say(f"[{step.number}/{len(s.steps)}] {step.describe(s.people)}")
                try:
                    await self._step(http, client, step)
                except ReplayError as exc:
                    raise ReplayError(f"{step.describe(s.people)} failed: {exc}") from None
                except (EmulatorError, LookupError, TimeoutError, aiohttp.ClientError) as exc:
                    raise ReplayError(f"{step.describe(s.people)} failed: {exc}") from None

    async def _seq(self, client: EmulatorClient, uid: int, bot: str) -> int:
        return int((await client.messages(uid, bot))["seq"])

    async def _step(self, http: aiohttp.ClientSession, client: EmulatorClient, step: Step) -> None:
        bot = BOTS[step.bot]
        uid = self.ids[step.who] if step.who else 0
        key = (step.who or "", bot)
        if step.action is not None and step.who is not None:
            self.marks[key] = await self._seq(client, uid, bot)
        await self._act(http, client, step, uid, bot)
        if step.expect is None:
            return
        needle = step.expect

        def matches(message: dict[str, Any]) -> bool:
            return _has(message, needle)

        matches.__name__ = f"a bot message containing {needle!r}"
        try:
            found = await client.wait_for(
                uid,
                bot,
                matches,
                since=self.marks.get(key, 0),
                timeout=step.timeout * self.timeout_factor,
            )
        except TimeoutError:
            raise ReplayError(
                f"no message containing {needle!r} from @{bot} within {step.timeout:g}s"
            ) from None
        self.marks[key] = int(found["seq"])

    async def _act(
        self, http: aiohttp.ClientSession, client: EmulatorClient, step: Step, uid: int, bot: str
    ) -> None:
        action, value = step.action, step.value
        if action is None:
            return
        if action == "advance":
            state = await self._sandbox(http, "POST", "/sandbox/clock", {"advance": value})
            self.say(f"  sandbox clock: {state['now'][:16].replace('T', ' ')} UTC")
        elif action == "say":
            await client.send(uid, bot, value)
        elif action == "press":
            await self._press(client, uid, bot, value, step.timeout * self.timeout_factor)
        elif action == "reply":
            await client.reply_button(uid, bot, value)
        elif action == "contact":
            user = next(u for u in await client.users() if int(u["id"]) == uid)
            await client.share_contact(uid, bot, user.get("phone_number") or "+15550100000")
        elif action == "start":
            await client.start(uid, bot, payload=value)
        elif action == "start_link":
            await self._start_link(client, uid, self.ids[value])
        elif action == "upload":
            await self._upload(client, step, uid, bot)

    async def _press(
        self, client: EmulatorClient, uid: int, bot: str, label: str, wait_s: float
    ) -> None:
        """Press the inline button labelled ``label`` (or, failing that, the one button whose
        label contains it) on the newest bot message having it; waits for it to appear."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            history = await client.messages(uid, bot)
            for exact in (True, False):
                for msg in reversed(history["messages"]):
                    if msg["from"] != "bot" or msg["deleted"]:
                        continue
                    rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
                    hits = [
                        b
                        for row in rows
                        for b in row
                        if "callback_data" in b
                        and (b.get("text") == label if exact else label in (b.get("text") or ""))
                    ]
                    if len(hits) == 1 or (exact and hits):
                        await client.click(uid, bot, msg["message_id"], hits[0]["callback_data"])
                        return
            if loop.time() >= deadline:
                raise ReplayError(f"no button {label!r} appeared within {wait_s:g}s")
            await asyncio.sleep(0.2)

    async def _start_link(self, client: EmulatorClient, uid: int, holder: int) -> None:
        for bot in BOTS.values():
            history = await client.messages(holder, bot)
            for message in reversed(history["messages"]):
                for username, payload in _links(message):
                    await client.start(uid, username, payload=payload)
                    return
        raise ReplayError("no t.me/...?start= link found in that person's chats")

    async def _upload(self, client: EmulatorClient, step: Step, uid: int, bot: str) -> None:
        if step.file:
            path = (self.scenario.path.parent / step.file).resolve()
            try:
                data, name = path.read_bytes(), path.name
            except OSError as exc:
                raise ReplayError(f"cannot read {step.file}: {exc.strerror}") from None
        else:
            data, name = {
                "photo": (_PNG, "photo.png"),
                "document": (b"Demo document (fictional).\n", "notes.txt"),
                "voice": (b"OggS" + bytes(60), "voice.ogg"),
            }[step.value]
        send = {
            "photo": client.send_photo,
            "document": client.send_document,
            "voice": client.send_voice,
        }[step.value]
        await send(uid, bot, data, name)


async def replay(
    scenario: Scenario,
    base_url: str,
    *,
    speed: float = 1.0,
    out: TextIO | None = None,
    state: PlayState | None = None,
) -> bool:
    """Play at human speed (``BASE_PAUSE_S / speed`` between steps); True when every step
    passed, else prints the failing step and returns False. ``state`` (the page's view of
    the replay) follows along."""
    out = out or sys.stderr
    state = state if state is not None else PlayState(scenario)
    await asyncio.sleep(3.0 / speed)  # time to open the page
    state.status = "running"
    player = Player(scenario, base_url, pause=BASE_PAUSE_S / speed, out=out, state=state)
    ok = False
    try:
        await player.run()
        ok = True
    except ReplayError as exc:
        print(f"Replay FAILED: {exc}", file=out, flush=True)
    finally:
        state.status = "done" if ok else "failed"
    if ok:
        print(f"Replay finished: {scenario.title}", file=out, flush=True)
    return ok
