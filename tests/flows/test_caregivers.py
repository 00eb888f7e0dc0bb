"""Family caregivers (flows/caregivers.py) on SQLite and PostgreSQL with the real vault, consent
rows and audit chain: invite, accept, decline, revoke, stop, expiry, a link used twice, the
patient opening their own link, a link bound to a picked user, the limit of five, who gets
which alert, and erasure."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flows import caregivers as cg
from flows import privacy
from flows.caregivers import CaregiverError
from storage.audit import verify_chain
from storage.models import AuditRecord, Caregiver, Consent, OutboxMessage, Patient
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PATIENT_TG = 810001
CARER_TG = 810002
OTHER_TG = 810003


async def _patient(
    uow: UnitOfWork, tg: int, name: str = "Mira Testperson", locale: str = "en"
) -> Patient:
    patient = await uow.patients.add(
        Patient(tg_user_id=tg, locale=locale, onboarding_state="done", consent_version="1")
    )
    await uow.patients.set_field(patient, "name", name)
    return patient


async def _by_tg(uow: UnitOfWork, tg: int) -> Patient:
    patient = await uow.patients.by_tg_user(tg)
    assert patient is not None
    return patient


async def _actions(uow: UnitOfWork, record_id: str) -> list[str]:
    rows = await uow.session.scalars(
        select(AuditRecord.action)
        .where(AuditRecord.record_type == "caregiver", AuditRecord.record_id == record_id)
        .order_by(AuditRecord.seq)
    )
    return list(rows)


async def test_invite_accept_revoke(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, PATIENT_TG)
        inv = await cg.invite(uow, patient, "missed", False, "Oskar", now=T0)
        await uow.commit()
    token = inv.token
    assert "-" not in token and len(token) >= 20
    async with db.uow() as uow:
        row = await uow.session.get(Caregiver, inv.caregiver.id)
        assert row is not None
        # Only the hash of the token is stored; the name is ciphertext.
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.status == "invited" and cg.aware(row.expires_at) == T0 + timedelta(hours=48)
        assert row.name_enc is not None and b"Oskar" not in row.name_enc
        assert await cg.name_of(uow, row) == "Oskar"
        offer = await cg.preview(uow, token, CARER_TG, now=T0 + timedelta(hours=1))
        assert offer.label == "Mira" and offer.caregiver.scope == "missed"
        assert await cg.by_user(uow, CARER_TG) == []  # not before accepting
        offer = await cg.accept(uow, token, CARER_TG, "Oskar T.", now=T0 + timedelta(hours=1))
        await uow.commit()
    async with db.uow() as uow:
        row = await uow.session.get(Caregiver, inv.caregiver.id)
        assert row is not None
        assert row.status == "active" and row.tg_user_id == CARER_TG and row.token_hash is None
        assert await cg.name_of(uow, row) == "Oskar"  # the patient's name for them wins
        consents = await uow.session.scalars(select(Consent).where(Consent.kind == "caregiver"))
        assert [(c.version, c.decision) for c in consents] == [("missed", "granted")]
        assert [c.id for c in await cg.by_user(uow, CARER_TG)] == [row.id]
        assert await cg.current(uow, row.id, CARER_TG) is not None
        assert await cg.current(uow, row.id, OTHER_TG) is None
        # Used twice: the token is gone.
        with pytest.raises(CaregiverError) as err:
            await cg.accept(uow, token, OTHER_TG, "Eve", now=T0 + timedelta(hours=2))
        assert err.value.msgid == "caregivers.link.used"
        patient = await _by_tg(uow, PATIENT_TG)
        listed = await cg.for_patient(uow, patient, now=T0 + timedelta(hours=2))
        assert [c.id for c in listed] == [row.id]
        gone, was_active = await cg.revoke(uow, patient, row.id, now=T0 + timedelta(hours=3))
        assert was_active and gone.status == "revoked"
        await uow.commit()
    async with db.uow() as uow:
        assert await cg.current(uow, inv.caregiver.id, CARER_TG) is None
        assert await cg.by_user(uow, CARER_TG) == []
        assert await cg.former_label(uow, inv.caregiver.id) == "Mira"
        with pytest.raises(CaregiverError) as err:
            await cg.stop(uow, inv.caregiver.id, CARER_TG)
        assert err.value.msgid == "caregivers.no_longer"
        patient = await _by_tg(uow, PATIENT_TG)
        with pytest.raises(CaregiverError):
            await cg.revoke(uow, patient, inv.caregiver.id)
        assert await _actions(uow, inv.caregiver.id) == [
            "caregiver.invite",
            "caregiver.accept",
            "caregiver.revoke",
        ]
        audit = await uow.session.scalars(select(AuditRecord.details))
        assert not any("Oskar" in d or "Mira" in d for d in audit)
        assert (await verify_chain(uow.session)).ok


async def test_bad_links(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, PATIENT_TG)
        expired = await cg.invite(uow, patient, "reminders", False, None, now=T0)
        fresh = await cg.invite(uow, patient, "checkins", True, None, now=T0 + timedelta(hours=47))
        bound = await cg.invite(
            uow, patient, "missed", False, None, now=T0 + timedelta(hours=47, minutes=1)
        )
        picked = await cg.bind_user(uow, patient, CARER_TG, now=T0 + timedelta(hours=47))
        assert picked.id == bound.caregiver.id  # the newest unbound invitation
        with pytest.raises(CaregiverError) as err:
            await cg.bind_user(uow, patient, PATIENT_TG)
        assert err.value.msgid == "caregivers.pick.self"
        await uow.commit()
    now = T0 + timedelta(hours=49)

    async def refused(token: str, tg: int) -> str:
        async with db.uow() as uow:
            with pytest.raises(CaregiverError) as err:
                await cg.accept(uow, token, tg, "X", now=now)
            await uow.commit()
        return err.value.msgid

    assert await refused(expired.token, CARER_TG) == "caregivers.link.expired"
    assert await refused(expired.token, CARER_TG) == "caregivers.link.expired"  # stays expired
    assert await refused(fresh.token, PATIENT_TG) == "caregivers.link.self"
    assert await refused(bound.token, OTHER_TG) == "caregivers.link.other_user"
    assert await refused("not a token!", CARER_TG) == "caregivers.link.malformed"
    assert await refused("", CARER_TG) == "caregivers.link.malformed"
    assert await refused("A" * 200, CARER_TG) == "caregivers.link.malformed"
    assert await refused("A" * 32, CARER_TG) == "caregivers.link.used"  # well-formed, unknown
    assert cg.token_from_payload("cg_abc") == "abc"
    assert cg.token_from_payload("ref_abc") is None
    async with db.uow() as uow:
        row = await uow.session.get(Caregiver, expired.caregiver.id)
        assert row is not None and row.status == "expired"
        # The picked person may accept; they are named after their Telegram first name.
        offer = await cg.accept(uow, bound.token, CARER_TG, " Oskar\u202e ", now=now)
        assert await cg.name_of(uow, offer.caregiver) == "Oskar"
        # The same person cannot become a caregiver twice for one patient.
        with pytest.raises(CaregiverError) as err:
            await cg.accept(uow, fresh.token, CARER_TG, "Oskar", now=now)
        assert err.value.msgid == "caregivers.link.already"
        declined = await cg.decline(uow, fresh.token, OTHER_TG, now=now)
        assert declined.caregiver.status == "declined" and declined.caregiver.token_hash is None
        await uow.commit()
    assert await refused(fresh.token, OTHER_TG) == "caregivers.link.used"


async def test_limit_of_five(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, PATIENT_TG)
        tokens = [
            (await cg.invite(uow, patient, "missed", False, f"Carer {n}", now=T0)).token
            for n in range(cg.MAX_ACTIVE)
        ]
        with pytest.raises(CaregiverError) as err:
            await cg.invite(uow, patient, "missed", False, None, now=T0)
        assert err.value.msgid == "caregivers.error.limit"
        for n, token in enumerate(tokens):
            await cg.accept(uow, token, 820000 + n, None, now=T0)
        with pytest.raises(CaregiverError):
            await cg.invite(uow, patient, "missed", False, None, now=T0)
        # Revoking one makes room again.
        first = (await cg.for_patient(uow, patient, now=T0))[0]
        await cg.revoke(uow, patient, first.id, now=T0)
        spare = await cg.invite(uow, patient, "missed", False, None, now=T0)
        await uow.commit()
    # A sixth acceptance is refused even if the invitation was made when there was room.
    async with db.uow() as uow:
        patient = await _by_tg(uow, PATIENT_TG)
        await cg.accept(uow, spare.token, 829999, None, now=T0)
        extra = Caregiver(
            id="f" * 32,
            patient_id=patient.id,
            scope="missed",
            status="invited",
            token_hash=cg.hash_token("B" * 32),
            expires_at=T0 + timedelta(hours=48),
        )
        uow.session.add(extra)
        await uow.session.flush()
        with pytest.raises(CaregiverError) as err:
            await cg.accept(uow, "B" * 32, 830000, None, now=T0)
        assert err.value.msgid == "caregivers.link.full"
        assert err.value.params["max"] == cg.MAX_ACTIVE


async def test_for_alert_scopes_and_language(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, PATIENT_TG, locale="ru")
        carer_patient = await _patient(uow, 840003, "Ling Testperson", locale="zh_Hans")
        ids = {}
        for n, scope in enumerate(cg.SCOPES):
            inv = await cg.invite(uow, patient, scope, scope == "checkins", None, now=T0)
            await cg.accept(uow, inv.token, 840000 + n + 1, f"C{n}", now=T0)
            ids[scope] = inv.caregiver.id
        await cg.invite(uow, patient, "checkins", False, None, now=T0)  # invited only
        other = await _patient(uow, 850000)
        inv = await cg.invite(uow, other, "checkins", False, None, now=T0)
        await cg.accept(uow, inv.token, 850001, None, now=T0)
        await uow.commit()
    async with db.uow() as uow:

        async def need(n: str) -> set[str]:
            return {c.id for c in await cg.for_alert(uow, patient.id, n)}

        assert await need("reminders") == set(ids.values())
        assert await need("missed") == {ids["missed"], ids["checkins"]}
        assert await need("checkins") == {ids["checkins"]}
        with pytest.raises(ValueError, match="unknown caregiver need"):
            await cg.for_alert(uow, patient.id, "everything")
        rows = {c.scope: c for c in await cg.for_alert(uow, patient.id, "reminders")}
        assert rows["checkins"].details is True and rows["missed"].details is False
        # Language: the caregiver's own record if they are a patient, else the patient's.
        assert carer_patient.tg_user_id == rows["checkins"].tg_user_id
        assert await cg.locale_of(uow, rows["checkins"]) == "zh_Hans"
        assert await cg.locale_of(uow, rows["missed"]) == "ru"
        p = await uow.patients.get(patient.id)
        assert p is not None
        assert await cg.patient_label(uow, p) == "Mira"


async def test_stop_and_erasure(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, PATIENT_TG)
        a = await cg.invite(uow, patient, "missed", False, "Ana", now=T0)
        b = await cg.invite(uow, patient, "reminders", False, "Ben", now=T0)
        await cg.invite(uow, patient, "reminders", False, "Pending", now=T0)
        await cg.accept(uow, a.token, CARER_TG, None, now=T0)
        await cg.accept(uow, b.token, OTHER_TG, None, now=T0)
        stopped = await cg.stop(uow, b.caregiver.id, OTHER_TG, now=T0)
        assert stopped.caregiver.status == "revoked" and stopped.label == "Mira"
        with pytest.raises(CaregiverError):
            await cg.stop(uow, a.caregiver.id, OTHER_TG)  # not theirs
        await uow.commit()
    async with db.uow() as uow:
        patient = await _by_tg(uow, PATIENT_TG)
        await privacy.erase(uow, patient, bot="patient", now=T0)
        await uow.commit()
    async with db.uow() as uow:
        assert list(await uow.session.scalars(select(Caregiver))) == []
        rows = list(
            await uow.session.scalars(select(OutboxMessage).where(OutboxMessage.bot == "patient"))
        )
        told = {r.chat_id: await uow.outbox.params(r) for r in rows}
        # Only the active caregiver is told; the one who stopped is not.
        assert set(told) == {CARER_TG}
        assert "Mira" in told[CARER_TG]["text"] and "deleted" in told[CARER_TG]["text"]
        assert "Testperson" not in json.dumps(told[CARER_TG])
