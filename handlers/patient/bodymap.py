"""The body map's result in the chat: after the Mini App sent its marks (bot/bodymap_web.py),
the patient bot says what was marked and asks the intake's next question, through the outbox
in the same transaction as the intake's change."""

from __future__ import annotations

from collections.abc import Sequence

from bot.settings import Settings
from flows import bodymap
from flows.domain import Patient
from flows.outbox import Replier
from flows.questionnaire import load
from handlers.patient import intake_render as view
from locales import Translator
from storage.uow import UnitOfWork


async def take_marks(
    uow: UnitOfWork, patient: Patient, tag: str, marks: Sequence[bodymap.Mark], settings: Settings
) -> bodymap.Applied:
    """The marks into the patient's intake ``tag`` (:func:`flows.bodymap.apply`; raises
    :class:`flows.intake.StaleButton` when it is not at its complaint step), then the chat:
    "Marked on the body: …" and the next question — or, when the marks fit several
    complaints, which ones, and the complaint question again."""
    q = load()
    applied = await bodymap.apply(
        uow, patient, q, tag, marks, jurisdiction=settings.jurisdiction.value
    )
    tr = Translator(patient.locale)
    reply = Replier(uow, "patient", patient.tg_user_id)
    regions = view.marks_text(tr, marks)
    if applied.category is None:
        names = ", ".join(tr.plain(f"intake.category.{c}") for c in applied.suggested)
        await reply.text(tr("bodymap.pick", regions=regions, complaints=names or "—"))
    else:
        await reply.text(tr("bodymap.received", regions=regions))
    known = await uow.patients.history(patient)
    await view.show(reply, tr, q, applied.outcome, known, settings)
    return applied
