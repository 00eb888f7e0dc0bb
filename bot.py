"""Careline entry point: ``python bot.py --help``. Only ever run as a script."""

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main())
