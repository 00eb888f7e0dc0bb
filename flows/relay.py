"""Relaying messages between the two bots: the short header each relayed message starts
with, and which files can be passed on, before anything is queued.

Every relayed message starts with a short header: to the doctor the case tag and the
patient's first name (``#12 · Alice:``; the tag is how a doctor's reply finds its case, see
``handlers.common.cases.tag_of``), to the patient the doctor's name (``Dr Vega:``). The
doctor's full card (title, department, hospital, verified mark, rating) is not repeated: the
patient gets it once, with the notice that the doctor has taken the case.

A file id belongs to one bot, so a photo, voice note or document a patient sends to the
patient bot reaches the doctor through the outbox sender: ``getFile`` + download through the
source bot, upload through the target bot (see :meth:`bot.telegram.reply.Replier.relay_file`).
Telegram caps both ends: a bot can download at most 20 MB (getFile) and upload photos up to
10 MB and other files up to 50 MB. Handlers check a file here first and tell the person at once
instead of queueing something that can only fail.
"""

from __future__ import annotations

import re

from locales import Html, Translator

MB = 1024 * 1024
MAX_DOWNLOAD = 20 * MB  # getFile refuses bigger files
MAX_UPLOAD = {"photo": 10 * MB}  # multipart uploads; everything else up to MAX_UPLOAD_OTHER
MAX_UPLOAD_OTHER = 50 * MB

# Kinds of media that can be relayed (each has a matching send method: sendPhoto, ...).
SUPPORTED_KINDS = frozenset({"photo", "voice", "document", "audio", "video"})

MSG_TOO_BIG = "relay.too_big"
MSG_UNSUPPORTED = "relay.unsupported"
MSG_UNDELIVERED = "relay.undelivered"
MSG_TO_DOCTOR = "relay.to_doctor"
MSG_TO_DOCTOR_BARE = "relay.to_doctor.bare"  # a file without a caption
MSG_TO_PATIENT = "relay.to_patient"
MSG_TO_PATIENT_BARE = "relay.to_patient.bare"
MSG_DOCTOR_NAME = "relay.doctor_name"
MSG_YOUR_DOCTOR = "relay.your_doctor"  # a doctor with no name on record

# "Dr", "Dr.", "Doctor", "Доктор", "Д-р", "Врач" before the name and "医生"/"大夫" after it: the
# header adds the title in the patient's language, so a name typed with one does not get two.
_TITLE_BEFORE = re.compile(r"^(?:dr\.?|doctor|доктор|д-р\.?|врач)(?:\s+|(?<=\.)(?=\S))", re.I)
_TITLE_AFTER = re.compile(r"\s*(?:医生|大夫)$")


def bare_name(name: str | None) -> str:
    """A doctor's name without a title typed in front of (or, in Chinese, after) it."""
    text = " ".join((name or "").split())
    text = _TITLE_BEFORE.sub("", text, count=1)
    return _TITLE_AFTER.sub("", text).strip()


def doctor_name(tr: Translator, name: str | None) -> str:
    """The doctor as a patient sees them in a relayed message ("Dr Mira Holt", "Mira Holt
    医生"), or "Your doctor" when no name is on record."""
    bare = bare_name(name)
    return tr.plain(MSG_DOCTOR_NAME, name=bare) if bare else tr.plain(MSG_YOUR_DOCTOR)


def to_doctor(tr: Translator, number: int, first_name: str, text: str | None) -> Html:
    """A patient's message (or a file's caption) as the doctor gets it: ``#12 · Alice: …``."""
    if not text:
        return tr(MSG_TO_DOCTOR_BARE, number=number, name=first_name)
    return tr(MSG_TO_DOCTOR, number=number, name=first_name, text=text)


def to_patient(tr: Translator, name: str | None, text: str | None) -> Html:
    """A doctor's message (or a file's caption) as the patient gets it: ``Dr Vega: …``
    (``name``: the doctor's name as on record)."""
    doctor = doctor_name(tr, name)
    if not text:
        return tr(MSG_TO_PATIENT_BARE, doctor=doctor)
    return tr(MSG_TO_PATIENT, doctor=doctor, text=text)


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
