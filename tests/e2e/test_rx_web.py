"""The prescription check page (``/rx/<code>`` in bot/verify_web.py) over aiohttp's test server
on both databases, with prescriptions issued through flows/prescriptions.py: every verdict
(valid, pending, rejected, expired, revoked, dispensed, forged and altered tokens, unknown
codes, a slip's token on /rx/ and a prescription's token on /r/); whom it is for and what it
holds shown only with the QR's token or the code plus the right year of birth (wrong years
counted apart from slips'); dispensing in full and in part, once; a cross-origin POST, a form
of another prescription or of a slip refused and audited; two pharmacies at once (exactly one
wins); bad entries keep nothing; escaping, headers, languages, 503 and 429.
``python bot.py rx verify``: tests/e2e/test_rx_cli.py; in a browser: tests/browser/test_rx_page.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.ratelimit import RateLimiter
from bot.verify_web import BORN_TRIES, RX, RX_COOKIE, SLIP, VerifyPage
from flows import prescriptions as rxf
from flows import referrals as rf
from flows import trust
from flows.signing import Signer, b64u, unb64u
from storage.crypto import KeyRing
from storage.models import AuditRecord, Consultation, Doctor, OutboxMessage
from storage.uow import Database
from tests.flows.test_referrals import issued, people

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # issued (Shanghai: 2 March; valid until 4 March)
NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
JURISDICTION = "generic"
LINES = (
    "Amoxicillin; 500 mg; 1 capsule three times a day; 21 capsules; 7\n"
    "Ibuprofen; 400 mg; 1 tablet up to three times a day; 20 tablets; 5"
)
DIAGNOSIS = "Acute bacterial sinusitis"
IDENTITY = ("Lin Testpatient", "1961", "Female")  # tests.flows.test_referrals.people
CONTENTS = ("Amoxicillin", "Ibuprofen", "capsules", DIAGNOSIS, "LIC-0042")


@dataclass
class Issued:
    """An issued prescription: its id, code, QR token, and who is involved."""

    rx_id: str
    code: str
    token: str
    doctor_id: str
    patient_id: str
    content: rxf.RxContent


async def issued_rx(
    db: Database,
    *,
    tg: int = 7300,
    review: str = "",
    now: datetime = T0,
    locale: str | None = None,
    lines: str = LINES,
) -> Issued:
    """Issue a prescription through the flow: a verified doctor's accepted case, the medicines
    typed, the diagnosis, 3 days' validity, no chronic rule. ``review``: "" (none needed),
    "approve" / "reject" (a verified pharmacist decides) or "pending" (nobody has yet)."""
    async with db.uow() as uow:
        patient, doctor = await people(uow, tg)
        if locale:
            patient.locale = locale
        case = await uow.consultations.add(
            Consultation(
                patient_id=patient.id,
                department="general",
                state="active",
                doctor_id=doctor.id,
                requested_at=now,
                accepted_at=now,
            )
        )
        rx = await rxf.begin(uow, doctor, case, now, JURISDICTION, review=bool(review))
        await rxf.add_item(uow, doctor, rx, lines, JURISDICTION)
        await rxf.set_adding(uow, rx, adding=False)
        await rxf.set_answer(uow, doctor, rx, "diagnosis", DIAGNOSIS, JURISDICTION)
        await rxf.set_answer(uow, doctor, rx, "validity", "3", JURISDICTION)
        await rxf.set_answer(uow, doctor, rx, "chronic", "-", JURISDICTION)
        content, token = await rxf.issue(uow, doctor, rx, now, trust.signer(uow), JURISDICTION)
        if review in ("approve", "reject"):
            pharmacist = await uow.doctors.add(
                Doctor(
                    tg_user_id=tg + 2000,
                    locale="en",
                    status="verified",
                    verified_until=now + timedelta(days=300),
                    departments="",
                    role="pharmacist",
                )
            )
            if review == "approve":
                await rxf.approve(uow, pharmacist, rx.id, now)
            else:
                await rxf.reject(uow, pharmacist, rx.id, "Dose too high for the patient", now)
        await uow.commit()
        assert rx.code is not None
        return Issued(rx.id, rx.code, token, doctor.id, patient.id, content)


async def _client(verify: VerifyPage) -> TestClient:
    app = web.Application()
    verify.mount(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def page(db: Database) -> AsyncIterator[tuple[TestClient, VerifyPage]]:
    verify = VerifyPage(db, per_minute=1000, now=lambda: NOW)
    client = await _client(verify)
    try:
        yield client, verify
    finally:
        await client.close()


def _origin(client: TestClient) -> dict[str, str]:
    return {"Origin": str(client.make_url("/")).rstrip("/")}


def _dispense_form(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The dispensing form's action and its fields in order (hidden, pharmacy, quantities)."""
    found = re.search(
        r'<form method="post" action="([^"]+/dispense[^"]*)" class=dispense>(.*?)</form>',
        text,
        re.S,
    )
    assert found, "no dispensing form on the page"
    fields = re.findall(r'<input (?:type="hidden" )?name="(\w+)"[^>]*?value="([^"]*)"', found[2])
    return found.group(1).replace("&amp;", "&"), fields


def _with(fields: list[tuple[str, str]], pharmacy: str, *quantities: str) -> list[tuple[str, str]]:
    """The form as a pharmacist fills it: the pharmacy's name, and the quantities given (the
    prefilled ones where none is given)."""
    out = [(k, pharmacy if k == "pharmacy" else v) for k, v in fields if k != "q"]
    prefilled = [v for k, v in fields if k == "q"]
    given = list(quantities) + prefilled[len(quantities) :]
    return out + [("q", q) for q in given]


async def _row(db: Database, rx_id: str) -> tuple[str, dict[str, Any]]:
    async with db.uow() as uow:
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        return rx.status, await uow.prescriptions.dispensing(rx)


async def _audits(db: Database, rx_id: str, action: str) -> list[tuple[str, dict[str, Any]]]:
    async with db.uow() as uow:
        rows = await uow.session.scalars(
            select(AuditRecord)
            .where(AuditRecord.record_id == rx_id, AuditRecord.action == action)
            .order_by(AuditRecord.seq)
        )
        return [(r.actor, json.loads(r.details)) for r in rows]


def _altered(token: str) -> str:
    """The token with one character of its signature changed."""
    head, sig = token.split(".")
    i = len(sig) // 2
    return f"{head}.{sig[:i]}{'A' if sig[i] != 'A' else 'B'}{sig[i + 1 :]}"


def _shows_nobody(text: str) -> None:
    for shown in IDENTITY + CONTENTS:
        assert shown not in text, shown


# --- verdicts ------------------------------------------------------------------------------------


async def test_valid_by_qr_link_shows_everything(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    resp = await client.get(f"/rx/{rx.code}", params={"t": rx.token, "lang": "en"})
    text = await resp.text()
    assert resp.status == 200
    assert "Valid prescription: may be dispensed" in text and "Prescription check" in text
    for shown in IDENTITY + CONTENTS + ("Dr Ivo Sample", "2026-03-02", "2026-03-04"):
        assert shown in text, shown
    assert "1 capsule three times a day" in text and "21 capsules" in text
    action, fields = _dispense_form(text)
    assert action == f"/rx/{rx.code}/dispense?lang=en"
    assert [k for k, _ in fields] == ["form", "pharmacy", "q", "q"]
    assert [v for k, v in fields if k == "q"] == ["21", "20"]  # prefilled as prescribed
    assert fields[0][1].split(".")[1] == "token"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{RX_COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/rx" in cookie
    assert [a for a, _ in await _audits(db, rx.rx_id, "rx.verify")] == ["pharmacy:web"]
    assert (await _audits(db, rx.rx_id, "rx.verify"))[0][1] == {"status": "valid", "via": "token"}


async def test_a_typed_code_alone_shows_the_verdict_prescriber_and_dates_only(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    for typed in (rx.code, rx.code.lower().replace("-", "")):
        resp = await client.get(f"/rx/{typed}", params={"lang": "en"})
        text = await resp.text()
        assert resp.status == 200 and "Valid prescription" in text
        assert "Dr Ivo Sample" in text and "2026-03-02" in text and "2026-03-04" in text
        _shows_nobody(text)
        assert "Attending physician" not in text  # the prescriber's name, nothing more
        assert "/dispense" not in text and 'name="pharmacy"' not in text
        assert 'name="born"' in text and "scan the QR code" in text  # asks for QR or year
        assert RX_COOKIE not in resp.headers.get("Set-Cookie", "")
    # The code form goes to the canonical page.
    typed = rx.code.lower().replace("-", "")
    resp = await client.get("/rx/", params={"code": typed, "lang": "ru"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/rx/{rx.code}?lang=ru"
    resp = await client.get("/rx", params={"lang": "en"})
    assert resp.status == 200 and "Prescription code" in await resp.text()
    vias = [d["via"] for _, d in await _audits(db, rx.rx_id, "rx.verify")]
    assert vias == ["code", "code"]


async def test_code_and_year_of_birth(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    """The right year shows everything and the form; wrong ones show nobody, say so and count
    per prescription (not with slips): after BORN_TRIES it takes no more years for an hour."""
    client, verify = page
    rx = await issued_rx(db)
    resp = await client.post(f"/rx/{rx.code}?lang=en", data={"born": "１９６１"})
    text = await resp.text()
    assert resp.status == 200 and "Lin Testpatient" in text and "Amoxicillin" in text
    _, fields = _dispense_form(text)
    assert fields[0][1].split(".")[1] == "born"
    assert "1961" not in str(resp.url)  # posted, never in the URL
    for wrong in range(1962, 1962 + BORN_TRIES):
        resp = await client.post(f"/rx/{rx.code}?lang=en", data={"born": str(wrong)})
        text = await resp.text()
        assert resp.status == 200 and "does not match this prescription" in text
        _shows_nobody(text)
        assert "/dispense" not in text
    born = verify.born_limiter
    assert isinstance(born, RateLimiter)
    assert f"rx:{rx.code}" in born._hits  # counted apart from slips
    assert rx.code not in born._hits
    resp = await client.post(f"/rx/{rx.code}?lang=ru", data={"born": "1961"})
    text = await resp.text()
    assert resp.status == 429 and "Lin Testpatient" not in text
    assert "Слишком много неверных" in text and int(resp.headers["Retry-After"]) >= 3600
    # The QR link still works; a slip is not locked by a prescription's guesses.
    resp = await client.get(f"/rx/{rx.code}", params={"t": rx.token})
    assert resp.status == 200 and "Lin Testpatient" in await resp.text()
    vias = [d["via"] for _, d in await _audits(db, rx.rx_id, "rx.verify")]
    assert vias.count("code") == 1 + BORN_TRIES and vias[-1] == "token"


async def test_wrong_years_count_against_the_clients_rate_limit(db: Database) -> None:
    verify = VerifyPage(db, per_minute=4, now=lambda: NOW)
    client = await _client(verify)
    try:
        rx = await issued_rx(db)
        statuses = []
        for year in range(1900, 1907):
            resp = await client.post(f"/rx/{rx.code}", data={"born": str(year)})
            statuses.append(resp.status)
            _shows_nobody(await resp.text())
        assert statuses[:4] == [200] * 4 and set(statuses[4:]) == {429}
    finally:
        await client.close()


async def test_pending_rejected_expired_and_revoked(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, verify = page
    pending = await issued_rx(db, tg=7301, review="pending")
    rejected = await issued_rx(db, tg=7302, review="reject")
    approved = await issued_rx(db, tg=7303, review="approve")
    cases = (
        (pending, "Not yet approved by a pharmacist: do not dispense"),
        (rejected, "Rejected by a pharmacist: do not dispense"),
    )
    for rx, words in cases:
        text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
        assert words in text and "Amoxicillin" in text and "/dispense" not in text
        text = await (await client.get(f"/rx/{rx.code}")).text()
        assert words in text and "Dr Ivo Sample" in text
        _shows_nobody(text)
    text = await (await client.get(f"/rx/{approved.code}", params={"t": approved.token})).text()
    assert "Valid prescription" in text and "/dispense" in text

    verify.now = lambda: datetime(2026, 3, 6, tzinfo=UTC)
    text = await (await client.get(f"/rx/{approved.code}", params={"t": approved.token})).text()
    assert "Expired: do not dispense" in text and "valid only until 2026-03-04" in text
    assert "/dispense" not in text
    verify.now = lambda: NOW

    async with db.uow() as uow:
        doctor = await uow.doctors.get(approved.doctor_id)
        assert doctor is not None
        await rxf.revoke(uow, doctor, approved.rx_id, NOW)
        await uow.commit()
    text = await (await client.get(f"/rx/{approved.code}", params={"t": approved.token})).text()
    assert "Revoked by the doctor: do not dispense" in text and "/dispense" not in text


async def test_forged_altered_unknown_and_crossed_tokens_reveal_nothing(
    db: Database, page: tuple[TestClient, VerifyPage], tmp_path: Path
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    # The same payload signed by another system's key.
    other_ring, _ = KeyRing.load_or_create(tmp_path / "other-keys.json")
    payload = json.loads(unb64u(rx.token.split(".")[0]))
    payload.pop("kid")
    foreign = Signer(other_ring).sign(payload)
    # A payload edited (one byte) under the genuine signature.
    head, sig = rx.token.split(".")
    raw = bytearray(unb64u(head))
    raw[-3] ^= 1
    edited = b64u(bytes(raw)) + "." + sig
    for bad in (foreign, _altered(rx.token), edited):
        resp = await client.get(f"/rx/{rx.code}", params={"t": bad, "lang": "en"})
        text = await resp.text()
        assert resp.status == 200 and "Not genuine: do not dispense" in text, bad
        _shows_nobody(text)
        assert "Dr Ivo Sample" not in text and "/dispense" not in text
    # A genuine token under another code.
    other = rf.new_code()
    text = await (await client.get(f"/rx/{other}", params={"t": rx.token})).text()
    assert "Not genuine" in text
    _shows_nobody(text)
    # A code nobody issued, and a malformed one.
    resp = await client.get(f"/rx/{other}", params={"lang": "en"})
    assert resp.status == 404 and "Not found" in await resp.text()
    resp = await client.get("/rx/nonsense")
    assert resp.status == 404
    _shows_nobody(await resp.text())
    # A referral slip's token on /rx/, a prescription's token on /r/: forged both ways.
    _, slip_code, slip_token, _ = await issued(db, Signer(db.ring))
    text = await (await client.get(f"/rx/{slip_code}", params={"t": slip_token})).text()
    assert "Not genuine: do not dispense" in text and "Lin Testpatient" not in text
    text = await (await client.get(f"/r/{rx.code}", params={"t": rx.token})).text()
    assert "Not genuine" in text and "Lin Testpatient" not in text and "Amoxicillin" not in text
    # Nor does a slip's code alone open on /rx/ (nor a prescription's on /r/).
    assert (await client.get(f"/rx/{slip_code}")).status == 404
    assert (await client.get(f"/r/{rx.code}")).status == 404


async def test_token_after_hash_is_posted_and_checked(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    text = await (await client.get(f"/rx/{rx.code}")).text()
    assert f'id=tk method="post" action="/rx/{rx.code}?lang=en"' in text and "<script>" in text
    resp = await client.post(f"/rx/{rx.code}?lang=en", data={"t": rx.token})
    text = await resp.text()
    assert resp.status == 200 and "Lin Testpatient" in text and "<script>" not in text
    assert "/dispense" in text


async def test_three_languages(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    client, _ = page
    rx = await issued_rx(db)
    seen = {}
    for lang, words in (
        ("en", "Valid prescription: may be dispensed"),
        ("ru", "Рецепт действителен: можно отпустить"),
        ("zh_Hans", "处方有效：可以发药"),
    ):
        text = await (await client.get(f"/rx/{rx.code}", params={"lang": lang})).text()
        assert words in text, lang
        seen[lang] = words
    assert len(set(seen.values())) == 3
    resp = await client.get(
        f"/rx/{rx.code}", headers={"Accept-Language": "fr-FR, zh-CN;q=0.9, en;q=0.5"}
    )
    text = await resp.text()
    assert "处方有效" in text and 'lang="zh-Hans"' in text and "处方核验" in text
    resp = await client.get(f"/rx/{rx.code}", headers={"Accept-Language": "ru-RU"})
    assert "Проверка рецепта" in await resp.text()


# --- dispensing ----------------------------------------------------------------------------------


async def test_dispense_in_full_then_never_again(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    action, fields = _dispense_form(text)
    form = _with(fields, "Riverside Pharmacy")
    resp = await client.post(action, data=form, headers=_origin(client))
    text = await resp.text()
    assert resp.status == 200 and "Dispensed — record kept" in text and "partly" not in text
    assert "Riverside Pharmacy" in text and "Amoxicillin" in text
    status, record = await _row(db, rx.rx_id)
    assert status == "dispensed"
    assert record["pharmacy"] == "Riverside Pharmacy" and record["quantities"] == [21, 20]
    assert record["partial"] is False
    assert [a for a, _ in await _audits(db, rx.rx_id, "rx.dispense")] == ["pharmacy:web"]
    assert await _audits(db, rx.rx_id, "rx.dispense.web") == [
        ("pharmacy:web", {"address": "127.0.0.1", "shown_by": "token"})
    ]
    # The same form again: refused, audited, nothing changes.
    resp = await client.post(action, data=form, headers=_origin(client))
    text = await resp.text()
    assert resp.status == 409 and "already been dispensed" in text
    assert "record kept" not in text
    assert "Already dispensed on 2026-03-03 at Riverside Pharmacy" in text
    refused = await _audits(db, rx.rx_id, "rx.dispense.refused")
    assert refused == [("pharmacy:web", {"address": "127.0.0.1", "reason": "dispensed"})]
    assert len(await _audits(db, rx.rx_id, "rx.dispense")) == 1
    # The page now says so, and offers no form.
    text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    assert "Already dispensed on 2026-03-03 at Riverside Pharmacy" in text
    assert "partly" not in text and "/dispense" not in text
    # By code alone the verdict (with its date and pharmacy), not the patient.
    text = await (await client.get(f"/rx/{rx.code}")).text()
    assert "Already dispensed on 2026-03-03 at Riverside Pharmacy" in text
    _shows_nobody(text)


async def test_dispense_in_part(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    client, _ = page
    rx = await issued_rx(db)
    text = await (await client.post(f"/rx/{rx.code}?lang=ru", data={"born": "1961"})).text()
    action, fields = _dispense_form(text)
    resp = await client.post(
        action, data=_with(fields, "Аптека № 1", "14", "0"), headers=_origin(client)
    )
    text = await resp.text()
    assert resp.status == 200 and "Отпущен (частично) — запись сохранена" in text
    status, record = await _row(db, rx.rx_id)
    assert status == "dispensed" and record["quantities"] == [14, 0] and record["partial"]
    assert (await _audits(db, rx.rx_id, "rx.dispense.web"))[0][1]["shown_by"] == "born"
    text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    assert "Already dispensed (partly) on 2026-03-03 at Аптека № 1" in text
    assert re.search(r"<td>21 capsules</td><td>7</td><td>14</td>", text)  # what was given
    # The patient is told at once (a dispensing they did not ask for would be seen).
    async with db.uow() as uow:
        rows = (
            await uow.session.scalars(select(OutboxMessage).where(OutboxMessage.bot == "patient"))
        ).all()
        told = [await uow.outbox.open_payload(r.id, r.payload_enc) for r in rows if r.payload_enc]
    assert any(rx.code in str(t.get("text")) and "Аптека № 1" in str(t.get("text")) for t in told)


async def test_bad_entries_keep_nothing(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    client, _ = page
    rx = await issued_rx(db)
    text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    action, fields = _dispense_form(text)
    same = _origin(client)
    for pharmacy, quantities, words in (
        ("   ", ("21", "20"), "Type the name of your pharmacy."),
        ("P" * 200, ("21", "20"), "at most 120 characters"),
        ("Riverside", ("30", "20"), "The quantity of Amoxicillin is more than prescribed"),
        ("Riverside", ("lots", "20"), "The quantity of Amoxicillin is not a number"),
        ("Riverside", ("0", "0"), "type a quantity above 0"),
        ("Riverside", (), "one quantity for each"),
    ):
        form = [kv for kv in _with(fields, pharmacy) if kv[0] != "q"]
        form += [("q", q) for q in quantities]
        resp = await client.post(action, data=form, headers=same)
        text = await resp.text()
        assert resp.status == 422 and words in text, (form, text)
        assert "Lin Testpatient" in text and "record kept" not in text
        # The form again, with what was typed and a fresh token for this browser.
        action, fields = _dispense_form(text)
        assert dict(fields)["pharmacy"] == pharmacy
        assert [v for k, v in fields if k == "q"] == list(quantities or ("21", "20"))
        assert (await _row(db, rx.rx_id)) == ("active", {})
    assert await _audits(db, rx.rx_id, "rx.dispense") == []
    assert await _audits(db, rx.rx_id, "rx.dispense.refused") == []
    resp = await client.post(action, data=_with(fields, "Riverside", "21", "20"), headers=same)
    assert resp.status == 200 and "Dispensed — record kept" in await resp.text()


async def test_cross_origin_dispense_is_refused_and_audited(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    action, fields = _dispense_form(text)
    form = _with(fields, "Evil Pharmacy")
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/rx/x"},
        {},
    ):
        resp = await client.post(action, data=form, headers=headers)
        text = await resp.text()
        assert resp.status == 403 and "did not come from this page" in text, headers
        assert (await _row(db, rx.rx_id))[0] == "active"
    refused = await _audits(db, rx.rx_id, "rx.dispense.refused")
    assert refused == [("pharmacy:web", {"address": "127.0.0.1", "reason": "origin"})] * 4
    # From the page itself (its Referer): dispensed.
    referer = {"Referer": str(client.make_url(f"/rx/{rx.code}"))}
    resp = await client.post(action, data=_with(fields, "Riverside"), headers=referer)
    assert resp.status == 200 and (await _row(db, rx.rx_id))[0] == "dispensed"


async def test_a_form_of_another_prescription_or_a_slip_is_refused(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, verify = page
    a = await issued_rx(db, tg=7310)
    b = await issued_rx(db, tg=7320)
    same = _origin(client)
    action_a, fields_a = _dispense_form(
        await (await client.get(f"/rx/{a.code}", params={"t": a.token})).text()
    )
    # A's form posted to B.
    resp = await client.post(
        action_a.replace(a.code, b.code), data=_with(fields_a, "Riverside"), headers=same
    )
    assert resp.status == 403 and "too old or incomplete" in await resp.text()
    assert await _audits(db, b.rx_id, "rx.dispense.refused") == [
        ("pharmacy:web", {"address": "127.0.0.1", "reason": "form"})
    ]
    # An edited token (shown by year of birth, claimed as by QR), a stale one, no cookie.
    stamp, via, mac = fields_a[0][1].split(".")
    for form in (f"{stamp}.born.{mac}", f"{int(stamp) - 31 * 60}.{via}.{mac}", "1.token.x"):
        edited = [("form", form), *_with(fields_a, "Riverside")[1:]]
        assert (await client.post(action_a, data=edited, headers=same)).status == 403
    client.session.cookie_jar.clear()
    resp = await client.post(action_a, data=_with(fields_a, "Riverside"), headers=same)
    assert resp.status == 403
    assert (await _row(db, a.rx_id))[0] == "active" and (await _row(db, b.rx_id))[0] == "active"

    # A slip's "mark used" form and nonce are no prescription form, and the other way round.
    _, slip_code, slip_token, _ = await issued(db, Signer(db.ring))
    slip_page = await client.get(f"/r/{slip_code}", params={"t": slip_token})
    slip_form = re.search(r'name="form" value="([^"]+)"', await slip_page.text())
    assert slip_form is not None
    slip_nonce = slip_page.cookies["careline_verify"].value
    assert verify._form_ok(slip_code, slip_form[1], slip_nonce, SLIP) == "token"
    assert verify._form_ok(slip_code, slip_form[1], slip_nonce, RX) is None
    rx_page = await client.get(f"/rx/{a.code}", params={"t": a.token})
    _, rx_fields = _dispense_form(await rx_page.text())
    rx_nonce = rx_page.cookies[RX_COOKIE].value
    assert verify._form_ok(a.code, rx_fields[0][1], rx_nonce, RX) == "token"
    assert verify._form_ok(a.code, rx_fields[0][1], rx_nonce, SLIP) is None
    client.session.cookie_jar.update_cookies({RX_COOKIE: slip_nonce})
    resp = await client.post(
        f"/rx/{slip_code}/dispense", data={"form": slip_form[1], "pharmacy": "x"}, headers=same
    )
    assert resp.status == 403
    client.session.cookie_jar.update_cookies({"careline_verify": rx_nonce})
    resp = await client.post(f"/r/{a.code}/use", data={"form": rx_fields[0][1]}, headers=same)
    assert resp.status == 403


async def test_two_pharmacies_at_once_exactly_one_wins(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rx = await issued_rx(db)
    base = str(client.make_url("/")).rstrip("/")
    jar = aiohttp.CookieJar(unsafe=True)  # a second browser, with its own cookie
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as other:
        async with other.get(f"/rx/{rx.code}", params={"t": rx.token}) as resp:
            action_b, fields_b = _dispense_form(await resp.text())
        action_a, fields_a = _dispense_form(
            await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
        )

        async def post_b() -> tuple[int, str]:
            async with other.post(
                action_b, data=_with(fields_b, "Pharmacy B", "10"), headers={"Origin": base}
            ) as resp:
                return resp.status, await resp.text()

        async def post_a() -> tuple[int, str]:
            resp = await client.post(
                action_a, data=_with(fields_a, "Pharmacy A"), headers={"Origin": base}
            )
            return resp.status, await resp.text()

        results = await asyncio.gather(post_a(), post_b())
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409], statuses
    winner = "Pharmacy A" if results[0][0] == 200 else "Pharmacy B"
    status, record = await _row(db, rx.rx_id)
    assert status == "dispensed" and record["pharmacy"] == winner
    assert len(await _audits(db, rx.rx_id, "rx.dispense")) == 1
    assert len(await _audits(db, rx.rx_id, "rx.dispense.web")) == 1
    loser = next(text for status, text in results if status == 409)
    assert "already been dispensed" in loser and "record kept" not in loser


async def test_losing_the_race_inside_the_flow(
    db: Database, page: tuple[TestClient, VerifyPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As PostgreSQL plays it: the page saw a valid prescription, but another pharmacy's
    UPDATE landed first, so the flow's conditional UPDATE changes nothing. Refused (409) with
    the fresh verdict, the flow's refusal audited; nothing of this pharmacy's is kept."""
    from storage.prescriptions import PrescriptionRepository

    client, _ = page
    rx = await issued_rx(db)
    action, fields = _dispense_form(
        await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    )
    real = PrescriptionRepository.mark_once

    async def other_pharmacy_first(self: PrescriptionRepository, rx_id: str, **kw: Any) -> bool:
        assert await real(self, rx_id, **kw)  # the other pharmacy's UPDATE
        return await real(self, rx_id, **kw)  # ours: no row left to change

    monkeypatch.setattr(PrescriptionRepository, "mark_once", other_pharmacy_first)
    resp = await client.post(action, data=_with(fields, "Late Pharmacy"), headers=_origin(client))
    text = await resp.text()
    assert resp.status == 409 and "already been dispensed" in text
    assert "Already dispensed" in text and "Valid prescription" not in text
    assert "record kept" not in text and "Late Pharmacy" not in text
    refused = await _audits(db, rx.rx_id, "rx.dispense.refused")
    assert refused == [("pharmacy:web", {"reason": "already"})]
    assert await _audits(db, rx.rx_id, "rx.dispense.web") == []


async def test_markup_is_escaped(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    client, _ = page
    rx = await issued_rx(
        db, lines='<img src=x onerror=alert(1)>; 5 mg; "><script>x</script>; 10 tabs; 3'
    )
    text = await (await client.get(f"/rx/{rx.code}", params={"t": rx.token})).text()
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<script>x" not in text
    action, fields = _dispense_form(text)
    form = _with(fields, "<b>Bold</b> Pharmacy")
    assert (await client.post(action, data=form, headers=_origin(client))).status == 200
    text = await (await client.get(f"/rx/{rx.code}")).text()
    assert "<b>Bold</b>" not in text and "&lt;b&gt;Bold&lt;/b&gt; Pharmacy" in text
    resp = await client.get("/rx/", params={"code": "<b>x</b>", "lang": "<i>"})
    text = await resp.text()
    assert resp.status == 404 and "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


async def test_no_database_and_rate_limit(db: Database) -> None:
    verify = VerifyPage(None)
    client = await _client(verify)
    try:
        resp = await client.get("/rx/ABC-DEF-GHJ")
        assert resp.status == 503 and "not available yet" in await resp.text()
        resp = await client.post("/rx/ABC-DEF-GHJ/dispense", data={}, headers=_origin(client))
        assert resp.status == 503
    finally:
        await client.close()
    verify = VerifyPage(db, per_minute=5, now=lambda: NOW)
    client = await _client(verify)
    try:
        statuses = [(await client.get("/rx/ABC-DEF-GHJ")).status for _ in range(7)]
        assert statuses[:5] == [404] * 5 and statuses[5:] == [429] * 2
        resp = await client.get("/rx/", params={"lang": "zh_Hans"})
        assert resp.status == 429 and resp.headers["Retry-After"] == "60"
        assert "处方核验" in await resp.text()
        # One budget per client across slips and prescriptions.
        assert (await client.get("/r/ABC-DEF-GHJ")).status == 429
    finally:
        await client.close()


async def test_a_failure_shows_no_stack_trace(
    db: Database, page: tuple[TestClient, VerifyPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = page
    rx = await issued_rx(db)

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(rxf, "verify_code", broken)
    resp = await client.get(f"/rx/{rx.code}", params={"lang": "en"})
    text = await resp.text()
    assert resp.status == 500 and "Something went wrong" in text
    assert "secret internals" not in text and "Traceback" not in text
    assert RX.base == "/rx"
