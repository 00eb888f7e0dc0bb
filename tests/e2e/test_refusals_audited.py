"""Every refusal in the patient bot is audited, over the Bot API emulator with the real bots.

A forged button of each callback prefix the patient bot has (plus one it has not), pressed by
an onboarded patient, by a stranger with no record and on another patient's case, and the
refused commands (a blocked patient's /intake, /appeal when not blocked, a broken invitation
link): each gets its usual answer and exactly one ``patient.refused`` audit record naming the
actor and the action (the command, or the button's prefix) — and nothing of what was sent
(no ids, tokens or text from the forged data) in its details.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from aiogram.filters.callback_data import CallbackData
from sqlalchemy import select

import handlers.patient  # noqa: F401 - every patient CallbackData class is defined
from handlers.patient.refusals import ACTION, _prefixes
from storage.models import AuditRecord, utcnow
from tests.e2e.conftest import PATIENT_BOT, Clinic
from tests.e2e.test_consultation import case_of, consult
from tests.e2e.test_intake import new_patient


def _patient_prefixes() -> set[str]:
    """The callback prefixes of the patient bot's buttons (its CallbackData classes)."""
    found: set[str] = set()
    todo = list(CallbackData.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("handlers.patient"):
            found.add(cls.__prefix__)
    return found


async def _refusals(clinic: Clinic) -> list[tuple[str, str, str, dict[str, Any]]]:
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(
            select(AuditRecord).where(AuditRecord.action == ACTION).order_by(AuditRecord.seq)
        )
        return [(r.actor, r.record_type, r.record_id, json.loads(r.details)) for r in rows]


async def _answered(clinic: Clinic, uid: int, since: int, data: str | None = None) -> None:
    """Wait until the bot answered this person (a message, or for a button press the answer
    to that very press: a late message left over from the previous press must not count): the
    update's transaction, audit record included, has committed."""
    cursor = since
    deadline = asyncio.get_running_loop().time() + 15
    while asyncio.get_running_loop().time() < deadline:
        batch = await clinic.client.events(uid, PATIENT_BOT, since=cursor, timeout=5)
        for event in batch["events"]:
            cursor = max(cursor, event["seq"])
            if data is not None:
                if event["kind"] == "callback_answer" and event["answer"]["data"] == data:
                    return
            elif event["kind"] == "callback_answer" or (
                event["kind"] == "message" and event["message"]["from"] == "bot"
            ):
                return
    raise TimeoutError(f"no answer to user {uid}")


async def _anchor(clinic: Clinic, uid: int) -> int:
    """A bot message in the chat to hang forged buttons on."""
    msgs = (await clinic.client.messages(uid, PATIENT_BOT))["messages"]
    return int(next(m for m in reversed(msgs) if m["from"] == "bot")["message_id"])


async def _press(clinic: Clinic, uid: int, data: str) -> None:
    since = await clinic.seq(uid)
    await clinic.client.click(uid, PATIENT_BOT, await _anchor(clinic, uid), data, force=True)
    await _answered(clinic, uid, since, data)


async def _say(clinic: Clinic, uid: int, text: str) -> None:
    since = await clinic.seq(uid)
    await clinic.client.send(uid, PATIENT_BOT, text)
    await _answered(clinic, uid, since)


def _one_new(
    before: list[Any], after: list[Any], actor: str, kind: str, what: str, sent: str
) -> dict[str, Any]:
    new = after[len(before) :]
    assert len(new) == 1, f"{sent!r}: {len(new)} refusal records: {new}"
    got_actor, got_kind, got_what, details = new[0]
    assert (got_actor, got_kind, got_what) == (actor, kind, what), (sent, new[0])
    assert set(details) == {"reason"} and details["reason"], (sent, details)
    text = json.dumps(details)
    for part in sent.replace(" ", ":").split(":")[1:]:
        if len(part) > 3:
            assert part not in text, f"{sent!r}: {part!r} in the audit details"
    return details


async def test_every_patient_refusal_is_audited(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    alice = await new_patient(clinic, "en")
    bob = await new_patient(clinic, "en")
    await consult(bob)
    bobs_case = (await case_of(clinic, bob.uid)).id
    stranger = await clinic.person("Zed", "en")
    await _say(clinic, stranger, "hello")  # a chat to hang buttons on; no record is made
    async with clinic.app.db.uow() as uow:
        a = await uow.patients.by_tg_user(alice.uid)
        assert a is not None and await uow.patients.by_tg_user(stranger) is None
        alice_ref = f"patient:{a.id}"
    nobody = secrets.token_hex(8)  # ids nobody has: forged data
    token = secrets.token_urlsafe(12)
    forged = {
        "dz": f"dz:t:{nobody}:1:0",
        "dk": f"dk:{nobody}:forgot",
        "de": f"de:{nobody}:1:nausea",
        "dc": f"dc:checked:{nobody}",
        "hx": f"hx:{nobody[:8]}:0",
        "prf": f"prf:again:{nobody}",
        "prx": f"prx:again:{nobody[:12]}",
        "pap": f"pap:times:{nobody}",  # another patient's referral or none
        "pc": f"pc:cancel:{bobs_case}",  # another patient's case
        "pr": f"pr:{bobs_case}:5",
        "ci": f"ci:opt:{nobody}:0:yes",
        "rd": "rd:everything",
        "hc": f"hc:{bobs_case}",
        "cg": "cg:takeover::",
        "cgo": f"cgo:a:{token}",
        "cgs": f"cgs:{nobody}",
        "cgu": "cgu:notanumber",
        "ik": f"ik:{nobody[:8]}:ans:1",
        "chk": f"chk:{nobody[:8]}:ans:better",
        "sf": "sf:maybe",
        "lang": "lang:xx",
        "ob": "ob:intro:",  # onboarding's first step, long done
        "pf": "pf:password",
        "del": "del:maybe",
        "pm": f"pm:ok:{nobody}:1:",
        "bk": f"bk:slot:{nobody}:",  # a time nobody offered
        "dev": f"dev:rev:{nobody}",  # a device that is not hers
        "unknown": f"zz:{nobody}",
    }
    ours = _patient_prefixes()
    assert ours <= _prefixes() and len(ours) >= 20
    assert ours <= set(forged), (
        f"patient-bot prefixes without a forged button: {ours - set(forged)}"
    )
    for what, data in forged.items():
        before = await _refusals(clinic)
        await _press(clinic, alice.uid, data)
        reason = _one_new(before, await _refusals(clinic), alice_ref, "button", what, data)
        if what in ("pc", "pr"):
            assert reason["reason"] == "not_yours"
        if what == "ob":
            assert reason["reason"] == "other_step"
    # The same buttons from someone with no record: refused and audited under a keyed hash.
    for what in ("pc", "pm", "dz", "del", "cg", "rd"):
        data = {"del": "del:1", "cg": "cg:invite::"}.get(what, forged[what])
        before = await _refusals(clinic)
        await _press(clinic, stranger, data)
        after = await _refusals(clinic)
        actor = after[-1][0]
        assert actor.startswith("user:") and str(stranger) not in actor
        details = _one_new(before, after, actor, "button", what, data)
        if what in ("pm", "dz", "del", "cg", "rd"):
            assert details["reason"] in ("not_onboarded", "stale"), (what, details)

    # Refused commands.
    before = await _refusals(clinic)
    await _say(clinic, alice.uid, "/appeal please unblock me")
    details = _one_new(before, await _refusals(clinic), alice_ref, "command", "/appeal", "")
    assert details == {"reason": "not_blocked"} and "unblock" not in json.dumps(details)
    before = await _refusals(clinic)
    await _say(clinic, alice.uid, f"/start cg_{token}")
    _one_new(before, await _refusals(clinic), alice_ref, "command", "/start", f"x:{token}")
    async with clinic.app.db.uow() as uow:
        b = await uow.patients.by_tg_user(bob.uid)
        assert b is not None
        b.blocked_at = utcnow()
        bob_ref = f"patient:{b.id}"
        await uow.commit()
    before = await _refusals(clinic)
    await _say(clinic, bob.uid, "/intake")
    details = _one_new(before, await _refusals(clinic), bob_ref, "command", "/intake", "")
    assert details == {"reason": "blocked"}
    before = await _refusals(clinic)
    await _press(clinic, bob.uid, "ik:x:begin:")
    details = _one_new(before, await _refusals(clinic), bob_ref, "button", "ik", "")
    assert details == {"reason": "blocked"}
    # Nothing else was refused along the way (the real conversations above were not).
    assert len(await _refusals(clinic)) == len(forged) + 6 + 4
