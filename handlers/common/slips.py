"""The referral slip sent to the patient, shared by both bots and the appointment handlers:
its signer, its verify address, and sending it (rendered with the referral's booked hospital
appointment, if any)."""

from __future__ import annotations

from bot.settings import Settings
from flows import referrals as core
from flows import trust
from flows.domain import Patient, Referral
from flows.outbox import Replier
from flows.signing import Signer
from locales import Translator
from storage.uow import UnitOfWork


def signer(uow: UnitOfWork) -> Signer:
    """The slip signer over the clinic's key ring."""
    return trust.signer(uow)


def verify_url(settings: Settings, code: str) -> str:
    """The verify page of a slip (its QR adds the token)."""
    return f"{settings.public_url.rstrip('/')}/r/{code}"


async def patient_chat(uow: UnitOfWork, referral: Referral) -> tuple[Patient, Translator] | None:
    patient = await uow.patients.get(referral.patient_id)
    if patient is None or patient.tg_user_id is None:
        return None
    return patient, Translator(patient.locale)


async def send_slip(
    uow: UnitOfWork,
    referral: Referral,
    settings: Settings,
    *,
    content: core.SlipContent | None = None,
    token: str | None = None,
) -> str:
    """Render the slip (with the referral's booked hospital appointment, if any, in the
    patient's zone) and queue it to the patient as a protected document; records the file's
    hash. Returns "sent", "no_patient" or "no_font"."""
    found = await patient_chat(uow, referral)
    if found is None:
        return "no_patient"
    patient, ptr = found
    if content is None or token is None:
        content = await core.content_of(uow, referral)
        token = await core.slip_token(uow, referral, signer(uow))
    from flows import slip  # the PDF stack (~55 MB) is loaded on the first slip

    appointment = await core.slip_appointment(uow, referral, patient.timezone)
    try:
        pdf = slip.render_slip(
            content, token, verify_url(settings, content.code), appointment=appointment
        )
    except slip.SlipError:
        return "no_font"
    await core.attach_file(uow, referral, pdf)
    reply = Replier(uow, "patient", patient.tg_user_id)
    caption = ptr(
        "ref.slip.caption",
        code=content.code,
        hospital=content.target_hospital,
        urgency=ptr.plain(f"ref.urgency.{content.urgency}"),
        valid_until=content.valid_until.isoformat(),
    )
    await reply.document(f"referral-{content.code}.pdf", pdf, caption, protect=True)
    return "sent"
