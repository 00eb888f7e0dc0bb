"""Browser-test fixtures: Debian's Chromium driven by Playwright, never a downloaded browser."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "apt-get update && apt-get install -y chromium chromium-driver"


def chromium_path() -> Path:
    """Debian's Chromium, or skip (fail under CI) when it is not installed."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; browser tests need it in CI: {INSTALL_HINT}")
    pytest.skip(f"{CHROMIUM} is not installed ({INSTALL_HINT})")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium from /usr/bin/chromium (Playwright's async API)."""
    executable = chromium_path()
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $CARELINE_SCREENSHOT_DIR when set, else a temp dir."""
    target = Path(os.environ.get("CARELINE_SCREENSHOT_DIR") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target
