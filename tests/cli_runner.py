"""The operator's command line, run in this process: ``bot.cli.main(ARGS)`` as ``python bot.py
ARGS`` runs it, without an interpreter's start-up and imports (2-3 s a command).

What ``bot.py`` and the interpreter add around ``main`` is played here too: the umask 0o077,
the working directory (settings read ``.env`` from it), a clean CARELINE_* environment, the exit
code of ``sys.exit`` (argparse's ``--help`` and usage errors) and of an uncaught exception (its
traceback on stderr, exit 1). The process-wide state a command touches (environment, working
directory, umask, the root logger that ``run`` and ``sandbox`` set up) is put back afterwards.

What only a real process shows (``bot.py`` setting the umask, Ctrl-C on ``ops --watch``, a
bot's start-up and signals) keeps a real subprocess in the tests that are about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One command at a time in this process: environment, working directory, umask and standard
# streams are process-wide.
_ONE_AT_A_TIME = threading.Lock()


def _exit_code(code: object) -> int:
    """The process's exit code for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


class _LastResort(logging.Handler):
    """What a fresh process does with a WARNING or worse when no handler is set up (logging's
    last resort): the message alone, on stderr. Only the command's own records: a clinic
    running beside it on the test's loop keeps its logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        """Print the message, as ``logging.lastResort`` does."""
        if record.thread == self.thread:
            sys.stderr.write(self.format(record) + "\n")


def _no_service(*_: object) -> None:
    """A command about to wait for Ctrl-C (``run``, ``sandbox`` once started) would wait
    forever in here: it fails instead. Those run as real processes (:func:`run_bot_py`, the e2e
    harness); in-process runs are for commands that end, and refusals to start."""
    raise AssertionError("the command started a service that waits for a signal")


@contextlib.contextmanager
def _like_a_fresh_process(
    args: Sequence[str], data_dir: Path, env: dict[str, str]
) -> Iterator[None]:
    """Arguments, environment, working directory, umask and logging as ``python bot.py ARGS``
    starts with them, put back on the way out."""
    saved_argv = sys.argv
    sys.argv = ["bot.py", *args]  # argparse names the program after it
    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    saved_levels = {
        logger: logger.level
        for logger in [root, *logging.root.manager.loggerDict.values()]
        if isinstance(logger, logging.Logger)
    }
    root.addHandler(_LastResort())
    for key in [k for k in os.environ if k.startswith("CARELINE_")]:
        del os.environ[key]
    os.environ.update(clean_env(data_dir, **env))
    os.chdir(ROOT)
    saved_umask = os.umask(0o077)  # as bot.py sets it before main()
    waits_for_signals = asyncio.SelectorEventLoop.add_signal_handler
    asyncio.SelectorEventLoop.add_signal_handler = _no_service  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        asyncio.SelectorEventLoop.add_signal_handler = waits_for_signals  # type: ignore[method-assign]
        os.umask(saved_umask)
        os.chdir(saved_cwd)
        for key in [k for k in os.environ if k not in saved_env]:
            del os.environ[key]
        os.environ.update(saved_env)
        root.handlers[:] = saved_handlers
        for logger, level in saved_levels.items():
            logger.setLevel(level)
        sys.argv = saved_argv


def run_cli(args: Sequence[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python bot.py ARGS`` with a clean CARELINE_* environment (``CARELINE_DATA_DIR`` is
    ``data_dir``, then ``env``), run in this process; its exit code, stdout and stderr."""
    from bot.cli import main

    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop()
        raise AssertionError("run_cli inside an event loop: await run_cli_async(...) there")
    out, err = io.StringIO(), io.StringIO()
    with (
        _ONE_AT_A_TIME,
        _like_a_fresh_process(args, data_dir, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help (0), a usage error (2)
            code = _exit_code(exc.code)
        except Exception:  # noqa: BLE001 - the interpreter's answer to an uncaught exception
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


async def run_cli_async(
    args: Sequence[str], data_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """:func:`run_cli` from a test's event loop: the command runs in a thread (``main`` starts
    its own loop), so the test's loop and what runs on it (a clinic, its open transactions)
    keep going while the command waits, as beside a separate process."""
    return await asyncio.to_thread(run_cli, args, data_dir, **env)


def clean_env(data_dir: Path, **env: str) -> dict[str, str]:
    """This process's environment without its CARELINE_* settings, with ``CARELINE_DATA_DIR``
    and ``env``: what a real ``python bot.py`` process gets."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CARELINE_")}
    clean.update({"CARELINE_DATA_DIR": str(data_dir), **env})
    return clean


def run_bot_py(
    args: Sequence[str], data_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python bot.py ARGS`` as a real process, as :func:`run_cli` runs it in this one: for
    what only a process shows (bot.py's umask and exit code, all of stderr from start-up on)."""
    return subprocess.run(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=clean_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
