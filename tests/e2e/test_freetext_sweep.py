"""Every phrase of every held-out set, typed by an onboarded patient, end to end: never "I
didn't understand", and no update fails.

The phrases are the red-flag rounds (emergencies and benign look-alikes) and the prefill rounds
(ordinary complaints), in English, Chinese and Russian. CI sends a fixed sample per language;
``CARELINE_SWEEP=all`` sends every phrase (the nightly run, a few minutes).

Each phrase is the patient's first message of a conversation: after the bot has answered, the
intake it may have started is closed (as if the patient pressed Cancel), so the next phrase
starts afresh.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest
from sqlalchemy import update

from flows.intake import FINAL, State
from flows.onboarding import Step
from locales import Translator
from storage.models import Intake
from tests.e2e.conftest import PATIENT_BOT, Clinic
from tests.e2e.test_bad_input import advance

DATA = Path(__file__).resolve().parents[1] / "data"
LOCALES = ("en", "zh_Hans", "ru")
CI_SAMPLE = 30  # phrases per language in CI


def phrases(lang: str) -> list[str]:
    """Every phrase of ``lang`` in the red-flag and prefill sets."""
    files = [
        DATA / "redflag_phrases.tsv",
        *sorted((DATA / "redflag_rounds").glob("round-*.tsv")),
        *sorted((DATA / "understand_rounds").glob("prefill-*.tsv")),
    ]
    out: list[str] = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            out += [r["text"] for r in csv.DictReader(fh, delimiter="\t") if r["lang"] == lang]
    return list(dict.fromkeys(out))


def chosen(lang: str) -> list[str]:
    every = phrases(lang)
    if os.environ.get("CARELINE_SWEEP") == "all":
        return every
    return random.Random(f"sweep-{lang}").sample(every, min(CI_SAMPLE, len(every)))


async def close_open_intakes(clinic: Clinic) -> None:
    async with clinic.app.db.uow() as uow:
        await uow.session.execute(
            update(Intake)
            .where(Intake.state.not_in([s.value for s in FINAL]))
            .values(state=State.CANCELLED.value)
        )


@pytest.mark.parametrize("locale", LOCALES)
async def test_no_phrase_is_answered_i_did_not_understand(
    sqlite_clinic: Clinic, locale: str
) -> None:
    clinic = sqlite_clinic
    uid = await clinic.person("Mira", locale)
    await advance(clinic, uid, locale, Step.DONE)
    start = await clinic.seq(uid)
    sent = chosen(locale)
    assert len(sent) >= CI_SAMPLE
    for text in sent:
        since = await clinic.seq(uid)
        await clinic.client.send(uid, PATIENT_BOT, text)
        await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
        await close_open_intakes(clinic)
    # A last, plain message: its answer comes after every earlier reply.
    since = await clinic.seq(uid)
    await clinic.client.send(uid, PATIENT_BOT, "/help")
    await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
    msgs = (await clinic.client.messages(uid, PATIENT_BOT))["messages"]
    replies = [m.get("text") or "" for m in msgs if m["from"] == "bot" and m["seq"] > start]
    not_understood = Translator(locale).plain("error.not_understood")
    assert not_understood not in replies
    assert len(replies) >= len(sent)
    assert clinic.app.processor.failed == 0
