"""Referral slips (flows/referrals.py) on SQLite and PostgreSQL: draft → issue → token →
verdict, and every way a slip goes wrong: a tampered token, a token from another system, an
altered record, expiry, revocation, use (once), key rotation, typed codes with mistakes, and
a PDF or photo of the slip (QR found with pypdfium2 + zxing-cpp)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import segno
from sqlalchemy import select

from flows import referrals as rf
from flows.signing import Signer, b64u, unb64u
from storage.crypto import KeyRing
from storage.models import AuditRecord, Doctor, Hospital, Patient, Referral, ScheduledEvent
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def people(uow: UnitOfWork, tg: int = 7100) -> tuple[Patient, Doctor]:
    """A patient in Shanghai with minimal identity, and a verified doctor."""
    patient = await uow.patients.add(
        Patient(
            tg_user_id=tg,
            locale="zh_Hans",
            onboarding_state="done",
            consent_version="1",
            timezone="Asia/Shanghai",
        )
    )
    await uow.patients.set_field(patient, "name", "Lin Testpatient")
    await uow.patients.set_field(patient, "birth_year", "1961")
    await uow.patients.set_field(patient, "sex", "female")
    doctor = await uow.doctors.add(
        Doctor(
            tg_user_id=tg + 1000,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=300),
            departments="general",
        )
    )
    for field, value in (
        ("name", "Dr Ivo Sample"),
        ("title", "Attending physician"),
        ("licence", "LIC-0042"),
        ("hospital", "Example Online Clinic"),
    ):
        await uow.doctors.set_field(doctor, field, value)
    return patient, doctor


async def issued(
    db: Database,
    signer: Signer,
    *,
    urgency: str = "within_2w",
    valid: date | None = None,
    now: datetime = T0,
) -> tuple[str, str, str, str]:
    """Issue one slip; returns (referral id, code, token, doctor id)."""
    async with db.uow() as uow:
        patient, doctor = await people(uow)
        hospital = Hospital(name="Example City Hospital", locale="zh_Hans", departments="[]")
        uow.session.add(hospital)
        await uow.session.flush()
        ref = await rf.start_draft(uow, doctor, patient.id, findings="BP 150/95 twice")
        await rf.save_draft(
            uow,
            ref,
            {
                "hospital_id": hospital.id,
                "target_department": "Cardiology",
                "reason": "Suspected secondary hypertension",
                "urgency": urgency,
                "valid_until": (valid or date(2026, 3, 20)).isoformat(),
            },
        )
        ref, content, token = await rf.issue(uow, doctor, ref.id, now, signer)
        await uow.commit()
        assert content.target_hospital == "Example City Hospital"
        assert content.hospital_locale == "zh_Hans"
        assert content.patient_name == "Lin Testpatient"
        assert content.doctor_licence == "LIC-0042"
        assert ref.code is not None
        return ref.id, ref.code, token, doctor.id


@pytest.fixture
def signer(keyring: KeyRing) -> Signer:
    return Signer(keyring)


# --- codes -------------------------------------------------------------------------------------


def test_codes_are_well_formed_and_forgiving() -> None:
    seen = set()
    for _ in range(200):
        code = rf.new_code()
        assert len(code) == 11 and code.count("-") == 2
        assert all(c in rf.CODE_ALPHABET for c in code.replace("-", ""))
        assert not set(code) & set("ILOU")
        assert rf.normalize_code(code) == code
        seen.add(code)
    assert len(seen) == 200
    code = "K7Q-4M9-XD" + rf._check_symbol("K7Q4M9XD")
    assert rf.normalize_code(code.lower()) == code
    assert rf.normalize_code(code.replace("-", "")) == code
    assert rf.normalize_code(" " + code.replace("-", " ") + " ") == code
    # Typed O for 0 and I / L for 1.
    with_zero = "A0B-1C0-D1" + rf._check_symbol("A0B1C0D1")
    assert rf.normalize_code("aOb-IcO-dL" + with_zero[-1]) == with_zero


def test_a_wrong_check_symbol_or_symbol_is_rejected() -> None:
    code = rf.new_code()
    body, check = code.replace("-", "")[:8], code[-1]
    wrong = next(c for c in rf.CODE_ALPHABET if c != check)
    assert rf.normalize_code(body + wrong) is None
    # Any single wrong symbol in the body is caught.
    for i in range(8):
        for c in rf.CODE_ALPHABET:
            if c != body[i]:
                assert rf.normalize_code(body[:i] + c + body[i + 1 :] + check) is None
    assert rf.normalize_code("") is None
    assert rf.normalize_code("K7Q-4M9") is None
    assert rf.normalize_code("<script>") is None


def test_token_and_code_from_scanned_text() -> None:
    url = rf.slip_url("https://clinic.example/", "K7Q-4M9-XDB", "abc.def")
    assert url == "https://clinic.example/r/K7Q-4M9-XDB?t=abc.def"
    assert rf.token_from_text(url) == "abc.def"
    assert rf.token_from_text("https://clinic.example/r/X#abc.def") == "abc.def"
    assert rf.token_from_text("abc.def") == "abc.def"
    assert rf.token_from_text("") is None


def test_machine_allows_only_the_lifecycle() -> None:
    assert rf.next_state("draft", "issue") == rf.State.ISSUED
    assert rf.next_state("issued", "use") == rf.State.USED
    assert rf.next_state("issued", "revoke") == rf.State.REVOKED
    assert rf.next_state("issued", "expire") == rf.State.EXPIRED
    assert rf.next_state("used", "use") is None
    assert rf.next_state("revoked", "use") is None
    assert rf.next_state("draft", "use") is None
    assert rf.next_state("expired", "revoke") is None
    assert rf.next_state("nonsense", "issue") is None


def test_canonical_content_is_stable() -> None:
    content = rf.SlipContent(
        code="K7Q-4M9-XDB",
        patient_name="Лин",
        birth_year="1961",
        sex="female",
        doctor_name="Dr Ivo Sample",
        doctor_title="",
        doctor_licence="LIC-1",
        doctor_hospital="",
        target_hospital="示例医院",
        target_department="",
        reason="r",
        urgency="routine",
        findings="",
        issued_on=date(2026, 3, 2),
        valid_until=date(2026, 4, 2),
        locale="ru",
    )
    raw = rf.canonical(content)
    assert json.loads(raw)["target_hospital"] == "示例医院"
    assert list(json.loads(raw)) == sorted(json.loads(raw))
    assert rf.content_hash(content) == hashlib.sha256(raw).hexdigest()
    assert rf.SlipContent.from_dict(json.loads(raw)) == content


# --- issuing and verdicts ----------------------------------------------------------------------


async def test_issue_then_token_and_code_are_valid(db: Database, signer: Signer) -> None:
    rid, code, token, _ = await issued(db, signer)
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None and ref.status == "issued"
        assert ref.key_id == signer.active_kid
        # The content is ciphertext: no name in the stored bytes.
        assert ref.content_enc is not None and b"Testpatient" not in ref.content_enc
        verdict = await rf.verify_token(uow, token, signer, T0 + timedelta(days=1))
        assert verdict.status == "valid", verdict
        assert verdict.patient_name == "Lin Testpatient"
        assert verdict.birth_year == "1961" and verdict.sex == "female"
        assert verdict.target_department == "Cardiology"
        assert verdict.valid_until == date(2026, 3, 20)
        by_code = await rf.verify_code(uow, code.lower().replace("-", ""), signer, T0)
        assert by_code.status == "valid" and by_code.code == code
        expiry = await uow.session.scalar(
            select(ScheduledEvent).where(ScheduledEvent.kind == rf.EXPIRE)
        )
        assert expiry is not None and expiry.subject == rid
        # Valid until 20 March inclusive in Shanghai: stops at 21 March 00:00 local.
        assert expiry.due_at.replace(tzinfo=UTC) == datetime(2026, 3, 20, 16, 0, tzinfo=UTC)
        actions = [
            r.action
            for r in await uow.session.scalars(
                select(AuditRecord).where(AuditRecord.record_id == rid)
            )
        ]
        assert actions == ["referral.draft", "referral.issue"]


async def test_tampered_token_is_forged(db: Database, signer: Signer) -> None:
    _rid, _, token, _ = await issued(db, signer)
    head, sig = token.split(".")
    raw = bytearray(unb64u(head))
    async with db.uow() as uow:
        # Change one byte of the payload: the signature no longer matches.
        i = raw.index(b'"exp":"') + len(b'"exp":"2026-03-')
        raw[i] = ord("9") if raw[i] != ord("9") else ord("8")
        verdict = await rf.verify_token(uow, b64u(bytes(raw)) + "." + sig, signer, T0)
        assert verdict.status == "forged" and verdict.patient_name is None
        # One flipped character of the signature.
        flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
        assert (await rf.verify_token(uow, f"{head}.{flipped}", signer, T0)).status == "forged"
        for junk in ("", "x", "a.b.c", "<script>.x", "A" * 5000, token + "x"):
            v = await rf.verify_token(uow, junk, signer, T0)
            assert v.status == "forged" and v.code is None, junk


async def test_token_from_another_system_is_not_trusted(
    db: Database, signer: Signer, tmp_path: Path
) -> None:
    _rid, _, token, _ = await issued(db, signer)
    other_ring, _ = KeyRing.load_or_create(tmp_path / "other" / "keys.json")
    other = Signer(other_ring)
    payload = json.loads(unb64u(token.split(".")[0]))
    # Another system's genuine signature over our referral's exact payload: forged.
    fake = other.sign({k: v for k, v in payload.items() if k != "kid"})
    async with db.uow() as uow:
        assert (await rf.verify_token(uow, fake, signer, T0)).status == "forged"
        # Claiming our key id with their signature: forged too.
        body = dict(payload)
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        sig = Ed25519PrivateKey.generate().sign(raw)
        claim = f"{b64u(raw)}.{b64u(sig)}"
        assert (await rf.verify_token(uow, claim, signer, T0)).status == "forged"
        # Our genuine signature over a referral we never issued: unknown, nothing revealed.
        ghost = signer.sign(
            {"rid": "0" * 32, "iss": "2026-03-02", "exp": "2026-03-20", "h": "0" * 64}
        )
        verdict = await rf.verify_token(uow, ghost, signer, T0)
        assert verdict.status == "unknown" and verdict.patient_name is None


async def test_validly_signed_token_with_an_altered_field_is_forged(
    db: Database, signer: Signer
) -> None:
    rid, _, token, _ = await issued(db, signer)
    payload = json.loads(unb64u(token.split(".")[0]))
    async with db.uow() as uow:
        # Signed by us, but the content hash does not match the slip's (an altered slip).
        altered = signer.sign(
            {"rid": rid, "iss": payload["iss"], "exp": payload["exp"], "h": "ab" * 32}
        )
        v = await rf.verify_token(uow, altered, signer, T0)
        assert v.status == "forged" and v.patient_name is None
        # Signed by us with a later expiry than the slip says.
        later = signer.sign({**{k: payload[k] for k in ("rid", "iss", "h")}, "exp": "2027-01-01"})
        assert (await rf.verify_token(uow, later, signer, T0)).status == "forged"
        # The stored record altered behind our back (content no longer matches its hash).
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        content = await rf.content_of(uow, ref)
        changed = rf.SlipContent.from_dict({**content.to_dict(), "urgency": "emergency"})
        ref.content_enc = await uow.vault.seal(
            ref.patient_id,
            "referrals",
            "content_enc",
            ref.id,
            rf.canonical(changed).decode(),
        )
        assert (await rf.verify_token(uow, token, signer, T0)).status == "forged"
        assert (await rf.verify_code(uow, ref.code or "", signer, T0)).status == "forged"


async def test_expiry(db: Database, signer: Signer) -> None:
    rid, code, token, _ = await issued(db, signer, valid=date(2026, 3, 5))
    last_moment = datetime(2026, 3, 5, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    async with db.uow() as uow:
        assert (await rf.verify_token(uow, token, signer, last_moment)).status == "valid"
        after = last_moment + timedelta(minutes=1)
        v = await rf.verify_token(uow, token, signer, after)
        assert v.status == "expired" and v.patient_name == "Lin Testpatient"
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        # A desk cannot mark an expired slip used.
        assert not await rf.mark_used(uow, ref, after, by="desk", actor="desk:test")
        assert ref.status == "expired"
        await uow.commit()
    async with db.uow() as uow:
        assert (await rf.verify_code(uow, code, signer, T0)).status == "expired"


async def test_expiry_event_marks_it_expired(db: Database, signer: Signer) -> None:
    rid, _, _, _ = await issued(db, signer, valid=date(2026, 3, 5))
    async with db.uow() as uow:
        event = await uow.session.scalar(
            select(ScheduledEvent).where(ScheduledEvent.kind == rf.EXPIRE)
        )
        assert event is not None
        await rf.on_expire(uow, event, T0)  # early: nothing happens
        ref = await uow.session.get(Referral, rid)
        assert ref is not None and ref.status == "issued"
        await rf.on_expire(uow, event, datetime(2026, 3, 6, tzinfo=UTC))
        assert ref.status == "expired"


async def test_revoked_and_used(db: Database, signer: Signer) -> None:
    rid, _code, token, doctor_id = await issued(db, signer)
    async with db.uow() as uow:
        doctor = await uow.doctors.get(doctor_id)
        assert doctor is not None
        stranger = await uow.doctors.add(Doctor(tg_user_id=1, locale="en", status="verified"))
        assert await rf.revoke(uow, stranger, rid, T0) is None
        ref = await rf.revoke(uow, doctor, rid, T0 + timedelta(hours=1))
        assert ref is not None and ref.status == "revoked"
        assert await rf.revoke(uow, doctor, rid, T0) is None  # only once
        assert not await rf.mark_used(uow, ref, T0, by="desk", actor="desk:test")
        await uow.commit()
    async with db.uow() as uow:
        v = await rf.verify_token(uow, token, signer, T0 + timedelta(hours=2))
        assert v.status == "revoked"
        pending = await uow.session.scalar(
            select(ScheduledEvent).where(
                ScheduledEvent.kind == rf.EXPIRE, ScheduledEvent.status == "pending"
            )
        )
        assert pending is None

    rid2, code2, token2, _ = await issued_second(db, signer, doctor_id)
    async with db.uow() as uow:
        ref2 = await uow.session.get(Referral, rid2)
        assert ref2 is not None
        assert await rf.mark_used(uow, ref2, T0, by="desk", actor="desk:web")
        assert not await rf.mark_used(uow, ref2, T0, by="desk", actor="desk:web")
        assert not await rf.mark_used(uow, ref2, T0, by="patient", actor="patient:x")
        await uow.commit()
    async with db.uow() as uow:
        v = await rf.verify_token(uow, token2, signer, T0)
        assert v.status == "used" and v.used_on is not None
        uses = list(
            await uow.session.scalars(
                select(AuditRecord).where(
                    AuditRecord.record_id == rid2, AuditRecord.action == "referral.use"
                )
            )
        )
        assert len(uses) == 1 and uses[0].actor == "desk:web"
        assert json.loads(uses[0].details) == {"by": "desk", "code": code2}


async def issued_second(db: Database, signer: Signer, doctor_id: str) -> tuple[str, str, str, str]:
    """A second slip of the same doctor for a new patient."""
    async with db.uow() as uow:
        doctor = await uow.doctors.get(doctor_id)
        assert doctor is not None
        patient = await uow.patients.add(
            Patient(tg_user_id=7999, locale="ru", onboarding_state="done", consent_version="1")
        )
        await uow.patients.set_field(patient, "name", "Вера Тестова")
        ref = await rf.start_draft(uow, doctor, patient.id)
        await rf.save_draft(
            uow,
            ref,
            {"target_hospital": "Городская больница", "reason": "Осмотр", "urgency": "routine"},
        )
        ref, content, token = await rf.issue(uow, doctor, ref.id, T0, signer)
        assert content.valid_until == date(2026, 3, 2) + timedelta(days=90)
        await uow.commit()
        return ref.id, ref.code or "", token, doctor.id


async def test_issue_refuses_incomplete_or_foreign_drafts(db: Database, signer: Signer) -> None:
    async with db.uow() as uow:
        patient, doctor = await people(uow)
        ref = await rf.start_draft(uow, doctor, patient.id)
        with pytest.raises(rf.ReferralError) as err:
            await rf.issue(uow, doctor, ref.id, T0, signer)
        assert err.value.msgid == "referral.error.no_target"
        await rf.save_draft(uow, ref, {"target_hospital": "Example Hospital"})
        with pytest.raises(rf.ReferralError) as err:
            await rf.issue(uow, doctor, ref.id, T0, signer)
        assert err.value.msgid == "referral.error.no_reason"
        with pytest.raises(rf.ReferralError):
            await rf.save_draft(uow, ref, {"urgency": "whenever"})
        await rf.save_draft(uow, ref, {"reason": "Check", "valid_until": "2026-03-01"})
        with pytest.raises(rf.ReferralError) as err:
            await rf.issue(uow, doctor, ref.id, T0, signer)
        assert err.value.msgid == "referral.error.valid_past"
        other = await uow.doctors.add(Doctor(tg_user_id=2, locale="en", status="verified"))
        await rf.save_draft(uow, ref, {"valid_until": "2026-03-10"})
        with pytest.raises(rf.ReferralError) as err:
            await rf.issue(uow, other, ref.id, T0, signer)
        assert err.value.msgid == "referral.error.not_found"
        ref, _, _ = await rf.issue(uow, doctor, ref.id, T0, signer)
        with pytest.raises(rf.ReferralError) as err:
            await rf.issue(uow, doctor, ref.id, T0, signer)
        assert err.value.msgid == "referral.error.not_draft"


async def test_rotation_keeps_old_slips_valid(db: Database, signer: Signer) -> None:
    rid, _code, old_token, doctor_id = await issued(db, signer)
    old_kid = signer.active_kid
    new_kid = signer.ring.add_signing_key()
    assert new_kid != old_kid and signer.active_kid == new_kid
    # Another process reading the keys file sees both keys (only the new one private).
    reread = KeyRing.load(signer.ring.path)
    assert reread.signing_key_ids == sorted([old_kid, new_kid])
    old = reread.signing_key(old_kid)
    assert old is not None and old.private is None
    async with db.uow() as uow:
        assert (await rf.verify_token(uow, old_token, Signer(reread), T0)).status == "valid"
    rid2, _, new_token, _ = await issued_second(db, signer, doctor_id)
    assert json.loads(unb64u(new_token.split(".")[0]))["kid"] == new_kid
    async with db.uow() as uow:
        ref2 = await uow.session.get(Referral, rid2)
        assert ref2 is not None and ref2.key_id == new_kid
        assert (await rf.verify_token(uow, new_token, signer, T0)).status == "valid"
        # Re-sending the old slip signs it again with the new key; both tokens verify.
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        again = await rf.slip_token(uow, ref, signer)
        assert again != old_token
        assert (await rf.verify_token(uow, again, signer, T0)).status == "valid"
        assert (await rf.verify_token(uow, old_token, signer, T0)).status == "valid"


def _qr_png(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()


def _qr_pdf(text: str, extra: str = "") -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 3, 2, tzinfo=UTC))
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Referral slip" + extra)
    pdf.image(io.BytesIO(_qr_png(text)), x=20, y=30, w=70)
    return bytes(pdf.output())


async def test_verify_file_pdf_and_photo(db: Database, signer: Signer) -> None:
    rid, code, token, _ = await issued(db, signer)
    url = rf.slip_url("https://clinic.example", code, token)
    pdf = _qr_pdf(url)
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        await rf.attach_file(uow, ref, pdf)
        await uow.commit()
    async with db.uow() as uow:
        assert (await rf.verify_file(uow, pdf, signer, T0)).status == "valid"
        assert (await rf.verify_file(uow, _qr_png(url), signer, T0)).status == "valid"
        # The same QR in a PDF that is not the one issued: the file was altered.
        altered = _qr_pdf(url, extra=" (edited)")
        v = await rf.verify_file(uow, altered, signer, T0)
        assert v.status == "forged" and v.reason == "file" and v.patient_name is None
        # A QR of another system, a file without a QR, and junk.
        assert (
            await rf.verify_file(uow, _qr_png("https://elsewhere.example/x"), signer, T0)
        ).status == "forged"
        blank = io.BytesIO()
        segno.make("x").save(blank, kind="png", scale=1)
        from PIL import Image

        white = io.BytesIO()
        Image.new("RGB", (200, 200), "white").save(white, format="PNG")
        assert (await rf.verify_file(uow, white.getvalue(), signer, T0)).reason == "no_qr"
        assert (await rf.verify_file(uow, b"not a slip", signer, T0)).status == "unknown"
        assert (await rf.verify_file(uow, b"%PDF-1.4 broken", signer, T0)).status == "unknown"
        # A QR whose URL names another code than its token's referral.
        other = rf.slip_url("https://clinic.example", rf.new_code(), token)
        assert (await rf.verify_file(uow, _qr_png(other), signer, T0)).status == "forged"


def test_old_keys_file_loads_and_gains_a_signing_key(tmp_path: Path) -> None:
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    raw = json.loads(ring.path.read_text())
    for field in ("signing_keys", "signing_active"):
        raw.pop(field)
    ring.path.write_text(json.dumps(raw))
    loaded = KeyRing.load(ring.path)
    assert loaded.signing_active_id is not None
    assert loaded.key_ids == ring.key_ids
    again = KeyRing.load(ring.path)
    assert again.signing_active_id == loaded.signing_active_id  # saved, not made anew
    sk = again.signing_key()
    assert sk is not None and sk.private is not None
    assert base64.b64decode(json.loads(ring.path.read_text())["signing_keys"][sk.kid]["public"])


async def test_real_slip_pdf_round_trip(db: Database, signer: Signer) -> None:
    """Issue → the real slip PDF (flows/slip.py) → its QR decoded → valid; one byte of the
    file changed → forged; past expiry → expired; revoked → revoked."""
    from flows import slip

    if slip.find_cjk_font() is None:
        pytest.skip("no CJK font for the Chinese slip (install fonts-droid-fallback)")
    rid, code, token, doctor_id = await issued(db, signer)
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        content = await rf.content_of(uow, ref)
        pdf = slip.render_slip(content, token, f"https://clinic.example/r/{code}")
        await rf.attach_file(uow, ref, pdf)
        await uow.commit()
    texts = rf._qr_texts(pdf)
    assert texts and rf.token_from_text(texts[0]) == token and rf.code_from_text(texts[0]) == code
    async with db.uow() as uow:
        assert (await rf.verify_file(uow, pdf, signer, T0)).status == "valid"
        # One byte of the file changed (inside the document's metadata): forged.
        at = pdf.index(code.encode()) if code.encode() in pdf else len(pdf) // 2
        tampered = bytearray(pdf)
        tampered[at] = ord("Z") if tampered[at] != ord("Z") else ord("Y")
        v = await rf.verify_file(uow, bytes(tampered), signer, T0)
        assert v.status == "forged" and v.reason == "file" and v.patient_name is None
        later = datetime(2026, 3, 21, tzinfo=UTC)
        assert (await rf.verify_file(uow, pdf, signer, later)).status == "expired"
        doctor = await uow.doctors.get(doctor_id)
        assert doctor is not None
        assert await rf.revoke(uow, doctor, rid, T0) is not None
        assert (await rf.verify_file(uow, pdf, signer, T0)).status == "revoked"


async def test_a_copy_from_before_a_resend_under_a_new_key_still_verifies(
    db: Database, signer: Signer
) -> None:
    """The slip is sent again after a signing-key rotation (a new token, a new file, a new
    stored hash): the copy the patient printed earlier still checks valid byte for byte,
    and a changed byte in it is still forged."""
    from flows import slip

    if slip.find_cjk_font() is None:
        pytest.skip("no CJK font for the Chinese slip (install fonts-droid-fallback)")
    rid, code, token, _ = await issued(db, signer)
    url = f"https://clinic.example/r/{code}"
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        content = await rf.content_of(uow, ref)
        first = slip.render_slip(content, token, url)
        await rf.attach_file(uow, ref, first)
        await uow.commit()
    signer.ring.add_signing_key()
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        again_token = await rf.slip_token(uow, ref, signer)
        again = slip.render_slip(content, again_token, url)
        assert again != first
        await rf.attach_file(uow, ref, again)
        await uow.commit()
    async with db.uow() as uow:
        assert (await rf.verify_file(uow, again, signer, T0)).status == "valid"
        assert (await rf.verify_file(uow, first, signer, T0)).status == "valid"
        tampered = bytearray(first)
        at = len(first) // 2
        tampered[at] = (tampered[at] + 1) % 256
        v = await rf.verify_file(uow, bytes(tampered), signer, T0)
        assert v.status in ("forged", "unknown"), v


def test_a_changing_step_is_carried_without_the_callback_separator() -> None:
    """A step changed from the review card goes into button data: no ':' (aiogram's
    separator). Drafts stored with the old "c:" marker read the same."""
    from flows import referral_wizard as wiz

    assert ":" not in wiz.CHANGE
    for stored in ("c:urgency", "c.urgency"):
        assert wiz.normal_step(stored) == "c.urgency"
        assert wiz.base_step(stored) == "urgency"
        assert wiz.changing(stored)
    assert wiz.normal_step("urgency") == "urgency" and not wiz.changing("review")
