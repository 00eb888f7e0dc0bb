"""Careline entry point: ``python bot.py --help``. Only ever run as a script."""

import os
import sys

from bot.cli import main

if __name__ == "__main__":
    # Everything Careline writes (keys file, database and its -wal/-shm, ...) is private to
    # this user: files 0600, directories 0700. Set here, not in main(), so in-process tests that
    # call main() leave their own process's umask alone.
    os.umask(0o077)
    sys.exit(main())
