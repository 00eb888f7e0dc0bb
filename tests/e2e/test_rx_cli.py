"""``python bot.py rx verify FILE_OR_CODE`` (bot/verify_web.py ``rx_verify_cli``), run in this
process as the operator runs it: a typed code (the verdict, the prescriber and the dates, not
the patient), the prescription's PDF and its QR URL (the patient and the medicines too), a
forged token, a referral slip's token, an unknown code; exit 0 only when valid; the verdict in
the clinic's language (en, ru, zh_Hans); every check audited as ``admin:cli``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from flows import prescriptions as rxf
from flows import referrals as rf
from flows.signing import Signer
from storage.crypto import KeyRing
from storage.migrate import upgrade
from storage.models import AuditRecord
from storage.uow import Database
from tests.cli_runner import run_cli_async
from tests.e2e.test_rx_web import issued_rx
from tests.flows.test_referrals import issued

BASE_URL = "http://127.0.0.1:8080"


async def _database(tmp_path: Path) -> Database:
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}", ring)
    await upgrade(db.engine)
    return db


async def test_rx_verify_exit_codes_and_what_it_shows(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    today = datetime.now(UTC)  # issued now, so it is valid when the command runs
    rx = await issued_rx(db, now=today, locale="en")
    pdf: bytes | None = None
    try:
        from flows.rx_pdf import render_rx
    except ImportError:  # another helper writes it; the file check waits for it
        render_rx = None  # type: ignore[assignment]
    if render_rx is not None:
        pdf = render_rx(rx.content, rx.token, f"{BASE_URL}/rx/{rx.code}")
        async with db.uow() as uow:
            row = await uow.prescriptions.get(rx.rx_id)
            assert row is not None
            await rxf.attach_file(row, pdf)
            await uow.commit()
    _, slip_code, slip_token, _ = await issued(
        db, Signer(db.ring), valid=(today + timedelta(days=30)).date(), now=today
    )
    await db.dispose()

    by_code = await run_cli_async(["rx", "verify", rx.code.lower().replace("-", " ")], tmp_path)
    assert by_code.returncode == 0, by_code.stderr
    assert by_code.stdout.startswith("VALID: Valid prescription: may be dispensed")
    assert (
        "Dr Ivo Sample" in by_code.stdout and rx.content.valid_until.isoformat() in by_code.stdout
    )
    for hidden in ("Lin Testpatient", "1961", "Amoxicillin", "sinusitis"):
        assert hidden not in by_code.stdout, hidden
    assert "only when checked by the QR code or the file" in by_code.stdout

    by_url = await run_cli_async(
        ["rx", "verify", rxf.rx_url(BASE_URL, rx.code, rx.token)], tmp_path
    )
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    assert "VALID" in by_url.stdout and "Lin Testpatient" in by_url.stdout
    assert "Amoxicillin 500 mg: 1 capsule three times a day; 21 capsules; Days: 7" in by_url.stdout
    by_token = await run_cli_async(["rx", "verify", rx.token], tmp_path)
    assert by_token.returncode == 0 and "Ibuprofen" in by_token.stdout

    head, sig = rx.token.split(".")
    i = len(sig) // 2
    altered = f"{head}.{sig[:i]}{'A' if sig[i] != 'A' else 'B'}{sig[i + 1 :]}"
    forged = await run_cli_async(["rx", "verify", altered], tmp_path)
    assert forged.returncode == 1 and forged.stdout.startswith("FORGED: Not genuine")
    assert "Lin Testpatient" not in forged.stdout and "Amoxicillin" not in forged.stdout
    # A referral slip's token (its URL too) is no prescription's.
    slip = await run_cli_async(["rx", "verify", slip_token], tmp_path)
    assert slip.returncode == 1 and slip.stdout.startswith("FORGED")
    slip_url = rf.slip_url(BASE_URL, slip_code, slip_token)
    slip = await run_cli_async(["rx", "verify", slip_url], tmp_path)
    assert slip.returncode == 1 and slip.stdout.startswith("FORGED")
    wrong = rx.code[:-1] + ("X" if rx.code[-1] != "X" else "Y")  # a bad check symbol
    unknown = await run_cli_async(["rx", "verify", wrong], tmp_path)
    assert unknown.returncode == 1 and unknown.stdout.startswith("UNKNOWN: Not found")
    nobody = await run_cli_async(["rx", "verify", rf.new_code()], tmp_path)
    assert nobody.returncode == 1 and nobody.stdout.startswith("UNKNOWN")
    for run in (forged, slip, unknown, nobody):
        assert "Traceback" not in run.stderr

    if pdf is not None:
        (tmp_path / "rx.pdf").write_bytes(pdf)
        by_file = await run_cli_async(["rx", "verify", str(tmp_path / "rx.pdf")], tmp_path)
        assert by_file.returncode == 0, by_file.stdout + by_file.stderr
        assert "VALID" in by_file.stdout and "Lin Testpatient" in by_file.stdout
        assert "Amoxicillin" in by_file.stdout
        # One byte of the file changed: its hash no longer matches the one sent.
        (tmp_path / "edited.pdf").write_bytes(pdf.replace(b"/Producer", b"/Producex", 1))
        edited = await run_cli_async(["rx", "verify", str(tmp_path / "edited.pdf")], tmp_path)
        assert edited.returncode == 1 and edited.stdout.startswith("FORGED")
        assert "Lin Testpatient" not in edited.stdout

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}", db.ring)
    try:
        async with db.uow() as uow:
            rows = [
                (r.actor, json.loads(r.details)["via"])
                for r in await uow.session.scalars(
                    select(AuditRecord).where(
                        AuditRecord.record_id == rx.rx_id, AuditRecord.action == "rx.verify"
                    )
                )
            ]
        assert {actor for actor, _ in rows} == {"admin:cli"}
        vias = [via for _, via in rows]
        assert vias.count("code") == 1 and vias.count("token") == 2
        assert vias.count("file") == (1 if pdf is not None else 0)
    finally:
        await db.dispose()


async def test_rx_verify_speaks_the_clinics_language(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    rx = await issued_rx(db, now=datetime.now(UTC))
    await db.dispose()
    seen = set()
    for locale, words in (
        ("en", "VALID: Valid prescription: may be dispensed"),
        ("ru", "VALID: Рецепт действителен: можно отпустить"),
        ("zh_Hans", "VALID: 处方有效：可以发药"),
    ):
        run = await run_cli_async(
            ["rx", "verify", rx.token], tmp_path, CARELINE_DEFAULT_LOCALE=locale
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith(words), (locale, run.stdout)
        seen.add(run.stdout.splitlines()[0])
    assert len(seen) == 3
