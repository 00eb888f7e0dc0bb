"""The bundled sandbox scenarios (bot/sandbox/scenarios/*.toml) replayed end to end against a
real sandbox (emulator, both bots, the sandbox clock and people API), with no pauses; and the
scenario loader's and the clock API's answers to bad input."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.sandbox.play import Player, ReplayError, ScenarioError, bundled, load_scenario
from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings
from tests.cli_runner import run_cli


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _sandbox(tmp_path: Path) -> Sandbox:
    settings = Settings.model_construct(
        **{
            **Settings().model_dump(),
            "data_dir": tmp_path,
            "outbox_global_per_s": 1000.0,
            "outbox_per_chat_per_s": 200.0,
            "outbox_per_chat_burst": 50,
        }
    )
    sandbox = await start_sandbox(settings, port=_port())
    sandbox.emulator.set_limits(enabled=False)  # test speed; pacing is the outbox's job
    return sandbox


def test_bundled_scenarios_are_the_three_of_the_issue() -> None:
    assert {"emergency", "consult_referral", "missed_dose"} <= set(bundled())


@pytest.mark.parametrize("name", ["emergency", "consult_referral", "missed_dose"])
async def test_bundled_scenario_plays(tmp_path: Path, name: str) -> None:
    scenario = load_scenario(name)
    sandbox = await _sandbox(tmp_path)
    try:
        await Player(scenario, sandbox.url).run()
    finally:
        await sandbox.stop()


async def _get(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return dict(await resp.json())


async def test_roles_after_the_missed_dose_scenario(tmp_path: Path) -> None:
    """Roles come from the database: the scenario's caregiver is one once she accepted."""
    scenario = load_scenario("missed_dose")
    sandbox = await _sandbox(tmp_path)
    try:
        player = Player(scenario, sandbox.url)
        await player.run()
        people = {p["id"]: p for p in (await _get(f"{sandbox.url}/sandbox/people"))["people"]}
        assert people[player.ids["nina"]]["role"] == "caregiver"
        assert people[player.ids["doctor"]]["role"] == "doctor"
        assert people[player.ids["rosa"]]["role"] == "patient"
        demo_roles = sorted(role for _, role, _ in sandbox.created)
        assert demo_roles == ["admin", "desk", "doctor", "doctor", "doctor", "patient"]
        clock = await _get(f"{sandbox.url}/sandbox/clock")
        assert clock["offset_s"] > 0  # the scenario moved the clock
    finally:
        await sandbox.stop()


async def test_a_step_not_met_fails_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'title = "t"\n[[people]]\nid = "a"\nfirst_name = "Ann"\n'
        '[[steps]]\nwho = "a"\nsay = "/start"\nexpect = "no such words anywhere"\ntimeout = 2\n',
        encoding="utf-8",
    )
    sandbox = await _sandbox(tmp_path / "data")
    try:
        with pytest.raises(ReplayError, match=r"step 1 \(Ann: say '/start'.*no such words"):
            await Player(load_scenario(str(bad)), sandbox.url).run()
    finally:
        await sandbox.stop()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("title = ", "not valid TOML"),
        ('title = "t"\n[[people]]\nid = "a"\nfirst_name = "A"\n', "needs at least one"),
        (
            'title = "t"\n[[people]]\nid = "a"\nfirst_name = "A"\n'
            '[[steps]]\nwho = "b"\nsay = "hi"\n',
            "who = 'b' is not one of the people",
        ),
        (
            'title = "t"\n[[people]]\nid = "a"\nfirst_name = "A"\n[[steps]]\nadvance = "1y"\n',
            "step 1: cannot read",
        ),
        (
            'title = "t"\n[[people]]\nid = "a"\nfirst_name = "A"\n'
            '[[steps]]\nwho = "a"\nsay = "x"\npress = "y"\n',
            "one action per step",
        ),
    ],
)
def test_malformed_scenario_is_one_clear_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    assert str(path) in str(info.value) and problem in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_scenario_names_the_bundled_ones() -> None:
    with pytest.raises(ScenarioError, match=r"unknown scenario .nope.; bundled: .*emergency"):
        load_scenario("nope")


def test_cli_play_unknown_or_malformed_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("title = [", encoding="utf-8")
    for target in ("no_such_scenario", str(bad)):
        done = run_cli(["sandbox", "--play", target, "--port", str(_port())], tmp_path / "data")
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0 and "careline:" in done.stderr
    assert not (tmp_path / "data" / "sandbox").exists()  # nothing was started


async def test_clock_api_bad_requests(tmp_path: Path) -> None:
    sandbox = await _sandbox(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            for body in ({"advance": "soon"}, {"advance": 5}, {}, {"advance": "1h", "x": 1}):
                async with http.post(f"{sandbox.url}/sandbox/clock", json=body) as resp:
                    data = await resp.json()
                    assert resp.status == 400 and data["ok"] is False and data["error"]
            async with http.post(f"{sandbox.url}/sandbox/clock", data=b"{not json") as resp:
                assert resp.status == 400 and "JSON" in (await resp.json())["error"]
            async with http.post(f"{sandbox.url}/sandbox/clock", json={"advance": "next"}) as r:
                assert r.status == 400 and "nothing is scheduled" in (await r.json())["error"]
            async with http.post(f"{sandbox.url}/sandbox/clock", json={"advance": "1d"}) as r:
                moved = await r.json()
                assert r.status == 200 and moved["offset_s"] == 86400
            async with http.post(
                f"{sandbox.url}/sandbox/people", json={"first_name": "X", "role": "admin"}
            ) as r:
                assert r.status == 400
    finally:
        await sandbox.stop()
