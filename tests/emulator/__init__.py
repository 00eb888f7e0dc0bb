"""Tests of the Telegram Bot API emulator (bot/sandbox/emulator*.py)."""
