"""The bundled sandbox scenarios (bot/sandbox/scenarios/*.toml) replayed end to end against a
real sandbox (emulator, both bots, the sandbox clock and people API), with no pauses; and the
scenario loader's and the clock API's answers to bad input."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.play import Player, ReplayError, ScenarioError, bundled, load_scenario
from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings


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
