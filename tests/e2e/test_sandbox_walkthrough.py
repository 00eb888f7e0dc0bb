"""The sandbox after the issue 13 walkthrough: the demo clinic has a referral directory (two
fictional hospitals, seeded once, offered by the doctor's /referral wizard), and `--play`
tells the page whose chats to open (`GET /sandbox/play`)."""

from __future__ import annotations

import io
import json
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import delete

from bot.sandbox.client import EmulatorClient
from bot.sandbox.demo import DEMO_HOSPITALS, DEMO_TOWN, HOSPITAL_DEPARTMENTS
from bot.sandbox.play import BOTS, Player, PlayState, Scenario, Step, bot_of, load_scenario, replay
from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings
from flows import directory
from flows.questionnaire import load as load_questionnaire
from storage.models import Hospital

RIVERSIDE, HILLCREST = (h.name for h in DEMO_HOSPITALS)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(data_dir: Path) -> Settings:
    return Settings.model_construct(
        **{
            **Settings().model_dump(),
            "data_dir": data_dir,
            "outbox_global_per_s": 1000.0,
            "outbox_per_chat_per_s": 200.0,
            "outbox_per_chat_burst": 50,
        }
    )


async def _sandbox(data_dir: Path, **kwargs: Any) -> Sandbox:
    sandbox = await start_sandbox(_settings(data_dir), port=_port(), **kwargs)
    sandbox.emulator.set_limits(enabled=False)  # test speed; pacing is the outbox's job
    return sandbox


async def _directory(sandbox: Sandbox) -> dict[str, directory.HospitalView]:
    async with sandbox.app.db.uow() as uow:
        rows = await directory.hospitals(uow, include_disabled=True)
        return {h.name: directory.view(h) for h in rows}


async def _get(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return dict(await resp.json())


def test_demo_hospitals_cover_the_clinics_departments() -> None:
    """Every department the triage can pick has a place to be referred to."""
    clinic = set(load_questionnaire().departments)
    assert set(HOSPITAL_DEPARTMENTS) == clinic
    offered = {d for h in DEMO_HOSPITALS for d in h.departments}
    assert offered == set(HOSPITAL_DEPARTMENTS.values())
    for hospital in DEMO_HOSPITALS:  # seeded as a list the directory splits on commas
        assert directory.parse_departments("\n".join(hospital.departments)) == list(
            hospital.departments
        )
    assert {h.name for h in DEMO_HOSPITALS} == {
        "Riverside General Hospital",
        "Hillcrest Children's Hospital",
    }
    assert "fictional" in DEMO_TOWN


async def test_demo_hospitals_seeded_once_and_kept(tmp_path: Path) -> None:
    """A first start adds both hospitals; a restart adds nothing; an admin's disabling
    stays; a sandbox whose directory lost them (made before it existed) gets them back."""
    sandbox = await _sandbox(tmp_path, fresh=True)
    try:
        found = await _directory(sandbox)
        assert set(found) == {RIVERSIDE, HILLCREST}
        for hospital in DEMO_HOSPITALS:
            view = found[hospital.name]
            assert view.active and view.city == DEMO_TOWN and view.locale == "en"
            assert view.departments == hospital.departments
        assert "Pediatrics" in found[HILLCREST].departments
        async with sandbox.app.db.uow() as uow:
            hill = await directory.get(uow, found[HILLCREST].id)
            assert hill is not None
            await directory.set_active(uow, "admin:test", hill, False)
            await uow.commit()
    finally:
        await sandbox.stop()

    again = await _sandbox(tmp_path)
    try:
        assert again.created == []
        kept = await _directory(again)
        assert set(kept) == {RIVERSIDE, HILLCREST}  # not added twice
        assert kept[RIVERSIDE].id == found[RIVERSIDE].id
        assert not kept[HILLCREST].active  # the admin's choice stands
        async with again.app.db.uow() as uow:
            await uow.session.execute(delete(Hospital))
            await uow.commit()
    finally:
        await again.stop()

    older = await _sandbox(tmp_path)
    try:
        assert set(await _directory(older)) == {RIVERSIDE, HILLCREST}
    finally:
        await older.stop()


async def test_referral_wizard_offers_the_demo_hospitals(tmp_path: Path) -> None:
    """In the sandbox a doctor's /referral shows both hospitals as buttons, and the chosen
    one's departments next."""
    base = load_scenario("consult_referral")
    upto = next(i for i, s in enumerate(base.steps) if s.value == "/referral")
    referral = replace(base.steps[upto], expect=RIVERSIDE)

    def press(number: int, label: str, expect: str) -> Step:
        return Step(number, "doctor", "doctor", "press", label, expect, 20.0, None, None)

    more = [referral, press(upto + 2, RIVERSIDE, "Which department")]
    more.append(press(upto + 3, "Pulmonology", "reason"))
    scenario = Scenario(base.path, base.title, "", base.people, [*base.steps[:upto], *more])
    sandbox = await _sandbox(tmp_path)
    try:
        player = Player(scenario, sandbox.url)
        await player.run()
        async with EmulatorClient(sandbox.url) as client:
            history = (await client.messages(player.ids["doctor"], BOTS["doctor"]))["messages"]
        keyboards = [(m.get("reply_markup") or {}).get("inline_keyboard", []) for m in history]
        labels = [[b["text"] for row in rows for b in row] for rows in keyboards]
        hospitals = next(row for row in labels if any(RIVERSIDE in b for b in row))
        assert f"{RIVERSIDE} · {DEMO_TOWN}" in hospitals
        assert f"{HILLCREST} · {DEMO_TOWN}" in hospitals
        departments = next(row for row in labels if "Pulmonology" in row)
        riverside = next(h for h in DEMO_HOSPITALS if h.name == RIVERSIDE)
        assert set(riverside.departments) <= set(departments)
    finally:
        await sandbox.stop()


def test_each_person_gets_the_bot_they_use() -> None:
    scenario = load_scenario("missed_dose")
    assert {h: bot_of(scenario, h) for h in scenario.people} == {
        "rosa": "patient",
        "doctor": "doctor",
        "nina": "patient",
    }


async def test_play_state_tells_the_page_whose_chats_to_open(tmp_path: Path) -> None:
    """Without --play the page is told nothing plays; with it, the run, its status and each
    person the replay made (id, name, role, bot), in the scenario's order."""
    plain = await _sandbox(tmp_path / "plain")
    try:
        assert await _get(f"{plain.url}/sandbox/play") == {"ok": True, "playing": False}
    finally:
        await plain.stop()

    scenario = load_scenario("emergency")
    state = PlayState(scenario)
    sandbox = await _sandbox(tmp_path / "play", play=state)
    try:
        before = await _get(f"{sandbox.url}/sandbox/play")
        assert before["playing"] and before["status"] == "waiting" and before["people"] == []
        assert before["title"] == scenario.title and before["total"] == 1
        out = io.StringIO()
        assert await replay(scenario, sandbox.url, speed=100, out=out, state=state)
        after = await _get(f"{sandbox.url}/sandbox/play")
        assert after["run"] == before["run"] and after["status"] == "done"
        [maya] = after["people"]
        users = {u["id"]: u for u in await _users(sandbox.url)}
        assert users[maya["id"]]["first_name"] == "Maya"
        assert maya == {
            "handle": "maya",
            "id": maya["id"],
            "name": "Maya Example",
            "role": "patient",
            "bot": BOTS["patient"],
        }
        json.dumps(after)  # plain JSON for the page
    finally:
        await sandbox.stop()


async def test_a_failed_replay_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'title = "t"\n[[people]]\nid = "a"\nfirst_name = "Ann"\n'
        '[[steps]]\nwho = "a"\nsay = "/start"\nexpect = "no such words anywhere"\ntimeout = 1\n',
        encoding="utf-8",
    )
    scenario = load_scenario(str(bad))
    state = PlayState(scenario)
    sandbox = await _sandbox(tmp_path / "data", play=state)
    try:
        assert not await replay(scenario, sandbox.url, speed=100, out=io.StringIO(), state=state)
        play = await _get(f"{sandbox.url}/sandbox/play")
        assert play["status"] == "failed" and [p["handle"] for p in play["people"]] == ["a"]
    finally:
        await sandbox.stop()


async def _users(url: str) -> list[dict[str, Any]]:
    async with EmulatorClient(url) as client:
        return await client.users()
