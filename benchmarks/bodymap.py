"""The body map Mini App's first paint at phone width in Chromium.

    python -m benchmarks.bodymap [--loads 30] [--lang en|ru|zh_Hans] [--warmup 3]
    python -m benchmarks.bodymap --quick              # a smoke-test size

Goal (the issue): first paint <= 1 s at phone width in Chromium. This prints the figure; it
asserts nothing.

What runs: the page's own routes (``bot/bodymap_web.py``: ``GET /m/bodymap`` and its one
script) on an aiohttp server on 127.0.0.1, no database (the page needs none), and Debian's
Chromium (``/usr/bin/chromium``, headless, ``--no-sandbox``) driven by Playwright. Each load
is a fresh browser context at 360 x 740 (device scale 2, touch), so nothing is cached; the
page is opened with launch data in its fragment as Telegram opens it. The figure of a load is
the ``first-contentful-paint`` entry of ``performance.getEntriesByType('paint')`` (ms from
navigation start), read once the page's ``load`` event has fired; ``first-paint`` is printed
beside it. ``--warmup`` loads first are not counted (Chromium's own start-up caches).

The last line on stdout is one JSON object: ``{"loads", "lang", "fcp_p50_ms", "fcp_p95_ms",
"fcp_max_ms", "fp_p50_ms", "bytes"}`` (``bytes``: the page's HTML size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

from aiohttp import web

from bot.bodymap_web import BodyMapApi
from bot.sandbox import webapp

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update"]  # fmt: skip
TOKEN = "100001:benchmark-only-token"  # noqa: S105 - signs fake launch data, never sent


# The paint entries once first-contentful-paint is recorded (it is reported with the first
# frame presented, which can come after the load event): an observer, not a pause.
PAINTS = """new Promise((resolve) => {
  const paints = () => Object.fromEntries(
    performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]));
  const ready = () => paints()["first-contentful-paint"] !== undefined;
  if (ready()) return resolve(paints());
  new PerformanceObserver(() => { if (ready()) resolve(paints()); })
    .observe({ type: "paint", buffered: true });
})"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run(loads: int, lang: str, warmup: int) -> dict[str, object]:
    """Serve the page, load it ``warmup + loads`` times, return the figures."""
    from playwright.async_api import async_playwright

    app = web.Application()
    BodyMapApi(None, token=TOKEN).mount(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    data = webapp.init_data(TOKEN, {"id": 1, "first_name": "Bench"}, 1_700_000_000)
    url = webapp.launch_url(f"http://127.0.0.1:{port}/m/bodymap?lang={lang}&i=abcdef12", data)
    fcp: list[float] = []
    fp: list[float] = []
    size = 0
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                for n in range(warmup + loads):
                    context = await browser.new_context(
                        viewport={"width": 360, "height": 740},
                        device_scale_factor=2,
                        has_touch=True,
                    )
                    page = await context.new_page()
                    response = await page.goto(url, wait_until="load")
                    if response is not None:
                        size = len(await response.body())
                    entries = await page.evaluate(PAINTS)
                    await context.close()
                    if n < warmup:
                        continue
                    fcp.append(float(entries["first-contentful-paint"]))
                    fp.append(float(entries.get("first-paint", entries["first-contentful-paint"])))
                    print(f"load {n - warmup + 1}: fcp {fcp[-1]:.1f} ms", file=sys.stderr)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    return {
        "loads": loads,
        "lang": lang,
        "fcp_p50_ms": round(statistics.median(fcp), 1),
        "fcp_p95_ms": round(_pct(fcp, 0.95), 1),
        "fcp_max_ms": round(max(fcp), 1),
        "fp_p50_ms": round(statistics.median(fp), 1),
        "bytes": size,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--lang", choices=("en", "ru", "zh_Hans"), default="en")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5 loads, 1 warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.loads, args.warmup = 5, 1
    if not CHROMIUM.exists():
        print(f"careline: {CHROMIUM} is not installed", file=sys.stderr)
        return 2
    result = asyncio.run(run(args.loads, args.lang, args.warmup))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
