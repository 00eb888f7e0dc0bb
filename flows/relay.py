"""Relaying files between the two bots: what can be passed on, before anything is queued.

A file id belongs to one bot, so a photo, voice note or document a patient sends to the
patient bot reaches the doctor through the outbox sender: ``getFile`` + download through the
source bot, upload through the target bot (see :meth:`bot.telegram.reply.Replier.relay_file`).
Telegram caps both ends: a bot can download at most 20 MB (getFile) and upload photos up to
10 MB and other files up to 50 MB. Handlers check a file here first and tell the person at once
instead of queueing something that can only fail.
"""

from __future__ import annotations

MB = 1024 * 1024
MAX_DOWNLOAD = 20 * MB  # getFile refuses bigger files
MAX_UPLOAD = {"photo": 10 * MB}  # multipart uploads; everything else up to MAX_UPLOAD_OTHER
MAX_UPLOAD_OTHER = 50 * MB

# Kinds of media that can be relayed (each has a matching send method: sendPhoto, ...).
SUPPORTED_KINDS = frozenset({"photo", "voice", "document", "audio", "video"})

MSG_TOO_BIG = "relay.too_big"
MSG_UNSUPPORTED = "relay.unsupported"
MSG_UNDELIVERED = "relay.undelivered"


def max_size(kind: str) -> int:
    """The biggest file of this kind that can be relayed, in bytes."""
    return min(MAX_DOWNLOAD, MAX_UPLOAD.get(kind, MAX_UPLOAD_OTHER))


def check_size(kind: str, size: int | None) -> str | None:
    """The message id to show when a file of this kind and size can't be relayed, else None.

    ``size`` is Telegram's ``file_size`` (it may be missing: then only the kind is checked and
    the sender finds out, marking the outbox row ``failed``)."""
    if kind not in SUPPORTED_KINDS:
        return MSG_UNSUPPORTED
    if size is not None and size > max_size(kind):
        return MSG_TOO_BIG
    return None
