"""``python bot.py run --workers N``: N worker processes on this machine, sharing one
PostgreSQL database in webhook mode (docs/DEPLOY.md, docs/ARCHITECTURE.md "Workers").

Each worker is a whole Careline (both bots' dispatchers, the processor, the sender, the
sweeper, the import runner) with ``CARELINE_SHARED_INBOX`` on: the webhook port is shared
(``SO_REUSEPORT``: the kernel spreads Telegram's connections over the workers), every update
is stored in the inbox before it is acknowledged, and a worker processes a chat's updates only
while it holds that chat (bot/telegram/processor.py ``process_pending``), so one patient's
updates are handled in order and once whichever worker received them; the outbox sends a
chat's messages in order across workers. Only the first worker sets the webhook.

This process only supervises: it starts the workers, starts again one that dies (a worker
that dies five times within a minute stops the whole run: something is wrong, not
unlucky), and on SIGTERM or SIGINT asks every worker to stop gracefully (each finishes what
it has stored, then exits) and waits for them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess

log = logging.getLogger("careline.workers")

STOP_WAIT = 60.0  # seconds a worker gets to stop gracefully before it is killed
RESTARTS = 5  # deaths within RESTART_WINDOW that end the run
RESTART_WINDOW = 60.0


def _worker(index: int) -> None:
    """One worker process: a whole Careline that stops on SIGTERM."""
    import asyncio

    from bot.app import Careline
    from bot.logging import setup_logging
    from bot.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_level)

    async def main() -> None:
        app = await Careline.build(settings)
        app.worker_index = index
        await app.run_until_signal()

    asyncio.run(main())


def run_workers(count: int) -> int:
    """Supervise ``count`` workers until a signal; returns the exit code."""
    os.environ["CARELINE_SHARED_INBOX"] = "true"  # the workers' settings (and their checks)
    ctx = mp.get_context("spawn")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start(index: int) -> BaseProcess:
        proc = ctx.Process(target=_worker, args=(index,), name=f"careline-worker-{index}")
        proc.start()
        log.info("worker started", extra={"ctx": {"worker": index, "pid": proc.pid}})
        return proc

    workers = {i: start(i) for i in range(count)}
    deaths: list[float] = []
    code = 0
    while not stopping:
        time.sleep(0.5)
        for index, proc in list(workers.items()):
            if proc.is_alive() or stopping:
                continue
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
            log.error(
                "worker died; starting it again",
                extra={"ctx": {"worker": index, "exitcode": proc.exitcode}},
            )
            if len(deaths) >= RESTARTS:
                sys.stderr.write(
                    f"careline: workers died {len(deaths)} times within a minute; stopping "
                    "(see the log for why)\n"
                )
                stopping, code = True, 1
                break
            workers[index] = start(index)
    for proc in workers.values():
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    for proc in workers.values():
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            log.error("worker did not stop in time; killed", extra={"ctx": {"pid": proc.pid}})
            proc.kill()
            proc.join()
    return code
