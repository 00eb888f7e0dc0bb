"""The body map Mini App end to end: the intake's complaint step offers "Show on a body" (an
inline web_app button), the emulator opens it with launch data signed by the patient bot's
token as Telegram would, the page's own call posts the marks, the intake moves on in the chat
with the location and severity (the red-flag checklist and triage still run), and the
doctor's case card carries the picture and the regions in the doctor's language.

Bad input gets a clear answer and changes nothing: a forged or replayed initData, another
bot's token, stale or future launch data, a body over 4,096 bytes, not JSON, an unknown
region, intensity 11, an intake that moved on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.bodymap_web import MAX_BODY, BodyMapApi
from bot.sandbox import webapp
from flows.intake import State
from storage.models import utcnow
from tests.e2e.conftest import (
    DOCTOR_BOT,
    PATIENT_BOT,
    PATIENT_TOKEN,
    Clinic,
)
from tests.e2e.test_consultation import add_doctor
from tests.e2e.test_intake import Patient, has_button, has_text, intakes_of, new_patient

# `clinic` (tests/e2e/conftest.py) runs on both databases: for the whole path and a valid
# result; the rest (bad input, the page, how marks and words combine) does not depend on the
# database and runs on SQLite only.


@pytest.fixture
async def api(clinic: Clinic) -> AsyncIterator[TestClient]:
    app = web.Application()
    BodyMapApi(
        clinic.app.db, token=PATIENT_TOKEN, settings=clinic.settings,
        on_commit=clinic.app.sender.poke,
    ).mount(app)  # fmt: skip
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def webapp_button(msg: dict[str, Any]) -> dict[str, Any]:
    """The message's web_app button."""
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
    [button] = [b for row in rows for b in row if "web_app" in b]
    return button


async def at_complaint(p: Patient) -> dict[str, Any]:
    """/intake -> Me; returns the complaint question (with the body map button)."""
    await p.start()
    return await p.press(p.t("intake.subject.self"), has_button(p.t("bodymap.button")))


async def open_map(clinic: Clinic, p: Patient, msg: dict[str, Any]) -> tuple[str, str]:
    """Open the Mini App as Telegram would: (initData, the intake tag from its URL)."""
    opened = await clinic.client.open_web_app(p.uid, PATIENT_BOT, msg["message_id"])
    url = urlsplit(opened["url"])
    tag = parse_qs(url.query)["i"][0]
    fragment = parse_qs(url.fragment)
    assert unquote(fragment["tgWebAppData"][0]) == unquote(opened["init_data"])
    return opened["init_data"], tag


async def post(api: TestClient, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    resp = await api.post("/m/bodymap", data=data, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


MARKS = [
    {"region": "chest_left", "intensity": 3, "type": "pressing"},
    {"region": "upper_arm_left", "intensity": 2, "type": ""},
]


async def test_body_map_to_intake_to_the_doctors_card(clinic: Clinic, api: TestClient) -> None:
    doc = await add_doctor(clinic, "Dr Lena Varga", departments="cardiology", locale="ru")
    p = await new_patient(clinic, "en")
    question = await at_complaint(p)
    button = webapp_button(question)
    assert button["text"] == p.t("bodymap.button")
    assert button["web_app"]["url"].startswith("http://127.0.0.1:8080/m/bodymap?lang=en&i=")
    init_data, tag = await open_map(clinic, p, question)
    [intake] = await intakes_of(clinic)
    assert intake.id.startswith(tag)

    since = await clinic.seq(p.uid)
    status, answer = await post(api, {"initData": init_data, "intake": tag, "marks": MARKS})
    assert (status, answer) == (200, {"ok": True})
    regions = (
        f"{p.t('bodymap.region.chest_left')} — 3/10, {p.t('bodymap.type.pressing')}; "
        f"{p.t('bodymap.region.upper_arm_left')} — 2/10"
    )
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_text(p.t("bodymap.received", regions=regions)), since=since
    )
    # Chest pain was chosen; the onset is asked, the severity (3, the highest) is not.
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("intake.duration.days_4_7")), since=since
    )
    checklist = await p.press(
        p.t("intake.duration.days_4_7"), has_button(p.t("intake.red_flags.none"))
    )
    assert p.t("redflag.chest_pain.button") in json.dumps(checklist, ensure_ascii=False)

    # The same launch data again: refused, and nothing changes or is said twice.
    await clinic.settled()
    before = await clinic.seq(p.uid)
    status, answer = await post(api, {"initData": init_data, "intake": tag, "marks": MARKS})
    assert (status, answer["error"]) == (409, "replayed")
    await clinic.settled()
    assert await clinic.seq(p.uid) == before

    summary = await p.after_red_flags("chest_pain")
    assert f"{p.t('bodymap.summary.location')} {regions}" in summary["text"]
    assert f"{p.t('intake.summary.severity')} " in summary["text"]
    await p.confirm()
    await clinic.settled()
    [intake] = await intakes_of(clinic)
    assert (intake.state, intake.disposition) == (State.TRIAGED.value, "consultation_24")

    # The doctor's card: the picture (in the doctor's language) and the card with "Где:".
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(doc.uid, DOCTOR_BOT, "/queue")
    photo = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, lambda m: bool(m.get("photo")), since=since
    )
    ru_regions = (
        f"{doc.t('bodymap.region.chest_left')} — 3/10, {doc.t('bodymap.type.pressing')}; "
        f"{doc.t('bodymap.region.upper_arm_left')} — 2/10"
    )
    assert ru_regions in photo["caption"]
    assert photo["protect_content"] is True
    picture = await clinic.client.download(photo["photo"]["download_url"])
    assert picture.startswith(b"\x89PNG")
    card = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, lambda m: doc.t("bodymap.summary.location") in (m.get("text") or "")
    )
    assert ru_regions in card["text"]


@pytest.mark.parametrize("clinic", ["sqlite"], indirect=True)
async def test_high_intensity_on_the_chest_still_meets_triage_and_the_checklist(
    clinic: Clinic, api: TestClient
) -> None:
    p = await new_patient(clinic, "ru")
    question = await at_complaint(p)
    init_data, tag = await open_map(clinic, p, question)
    marks = [{"region": "chest_right", "intensity": 8, "type": "sharp"}]
    since = await clinic.seq(p.uid)
    assert (await post(api, {"initData": init_data, "intake": tag, "marks": marks}))[0] == 200
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("intake.duration.days_1_3")), since=since
    )
    await p.press(p.t("intake.duration.days_1_3"), has_button(p.t("intake.red_flags.none")))
    await p.after_red_flags("chest_pain")
    result = await p.confirm()
    assert "112" in result["text"]
    [intake] = await intakes_of(clinic)
    assert intake.disposition == "emergency_ambulance"  # severe_chest_pain: severity >= 7


@pytest.mark.parametrize("clinic", ["sqlite"], indirect=True)
async def test_marks_that_fit_several_complaints_let_the_patient_pick(
    clinic: Clinic, api: TestClient
) -> None:
    p = await new_patient(clinic, "zh_Hans")
    question = await at_complaint(p)
    init_data, tag = await open_map(clinic, p, question)
    marks = [{"region": "head", "intensity": 6}, {"region": "lower_back", "intensity": 4}]
    since = await clinic.seq(p.uid)
    assert (await post(api, {"initData": init_data, "intake": tag, "marks": marks}))[0] == 200
    picked = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: (m.get("text") or "").startswith(p.t("bodymap.pick")[:8]),
        since=since,
    )  # fmt: skip
    complaints = f"{p.t('intake.category.headache')}, {p.t('intake.category.back_joint')}"
    assert complaints in picked["text"]
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("bodymap.button")), since=since
    )  # the complaint question again, with the map
    await p.press(p.t("intake.category.headache"), has_button(p.t("intake.duration.today")))
    # The severity question is answered by the map (6): the checklist comes next.
    await p.press(p.t("intake.duration.today"), has_button(p.t("intake.red_flags.none")))


def _init(token: str = PATIENT_TOKEN, uid: int = 1, shift: timedelta = timedelta()) -> str:
    user = {"id": uid, "first_name": "Tester", "language_code": "en"}
    return webapp.init_data(token, user, int((utcnow() + shift).timestamp()))


def _tamper(init_data: str) -> str:
    """The same launch data with another user id and the original hash."""
    return init_data.replace("%22id%22%3A", "%22id%22%3A9", 1)


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda uid, tag: {"initData": _tamper(_init(uid=uid)), "intake": tag, "marks": MARKS},
         401, "forged"),
        (lambda uid, tag: {"initData": _init("100009:another-bot", uid), "intake": tag,
                           "marks": MARKS}, 401, "forged"),
        (lambda uid, tag: {"initData": "", "intake": tag, "marks": MARKS}, 401, "forged"),
        (lambda uid, tag: {"initData": _init(uid=uid, shift=timedelta(hours=-2)),
                           "intake": tag, "marks": MARKS}, 401, "expired"),
        (lambda uid, tag: {"initData": _init(uid=uid, shift=timedelta(hours=1)),
                           "intake": tag, "marks": MARKS}, 401, "expired"),
        (lambda uid, tag: {"initData": _init(uid=uid), "intake": tag,
                           "marks": [{"region": "tail", "intensity": 3}]}, 422, "bad_region"),
        (lambda uid, tag: {"initData": _init(uid=uid), "intake": tag,
                           "marks": [{"region": "head", "intensity": 11}]}, 422,
         "bad_intensity"),
        (lambda uid, tag: {"initData": _init(uid=uid), "intake": tag,
                           "marks": [{"region": "head", "intensity": 3, "type": "x"}]}, 422,
         "bad_type"),
        (lambda uid, tag: {"initData": _init(uid=uid), "intake": tag, "marks": []}, 422,
         "no_marks"),
        (lambda uid, tag: {"initData": _init(uid=uid), "intake": "00000000", "marks": MARKS},
         409, "not_in_intake"),
        (lambda uid, tag: {"initData": _init(uid=uid + 1), "intake": tag, "marks": MARKS},
         409, "not_in_intake"),
        (lambda uid, tag: ["not", "an", "object"], 400, "bad_json"),
        (lambda uid, tag: b"{not json", 400, "bad_json"),
        (lambda uid, tag: json.dumps({"initData": _init(uid=uid), "intake": tag,
                                      "marks": MARKS, "pad": "x" * MAX_BODY}).encode(),
         413, "too_large"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("clinic", ["sqlite"], indirect=True)
async def test_bad_results_get_a_clear_answer_and_change_nothing(
    clinic: Clinic, api: TestClient, make: Any, status: int, code: str
) -> None:
    p = await new_patient(clinic, "en")
    await at_complaint(p)
    [intake] = await intakes_of(clinic)
    await clinic.settled()
    before = await clinic.seq(p.uid)
    async with clinic.app.db.uow() as uow:
        answers_before = await uow.intakes.answers(intake)
    body = make(p.uid, intake.id[:8])
    raw = body if isinstance(body, bytes) else None
    got_status, answer = await post(api, body, raw)
    assert (got_status, answer["ok"], answer["error"]) == (status, False, code)
    await clinic.settled()
    assert await clinic.seq(p.uid) == before  # nothing said in the chat
    [after] = await intakes_of(clinic)
    assert after.state == State.COMPLAINT.value
    async with clinic.app.db.uow() as uow:
        assert await uow.intakes.answers(after) == answers_before


async def test_a_valid_result_with_its_own_launch_data_is_taken(
    clinic: Clinic, api: TestClient
) -> None:
    """The happy path of the table above: the same request shape, correctly signed."""
    p = await new_patient(clinic, "en")
    await at_complaint(p)
    [intake] = await intakes_of(clinic)
    body = {"initData": _init(uid=p.uid), "intake": intake.id[:8], "marks": MARKS}
    assert await post(api, body) == (200, {"ok": True})
    [after] = await intakes_of(clinic)
    assert after.state == State.ONSET.value
    async with clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(after)
    assert answers["category"] == "chest_pain"
    assert answers["bodymap"]["marks"] == MARKS
    assert answers["prefill"] == {"severity": 3}


@pytest.mark.parametrize("clinic", ["sqlite"], indirect=True)
async def test_the_page_is_served_in_the_patients_language(api: TestClient) -> None:
    resp = await api.get("/m/bodymap?lang=ru&i=abcdef12")
    assert resp.status == 200
    text = await resp.text()
    assert '<html lang="ru">' in text
    assert 'aria-label="Левая половина груди"' in text
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    script = await api.get("/m/bodymap.js")
    assert script.status == 200
    assert "tgWebAppData" in await script.text()


@pytest.mark.parametrize("clinic", ["sqlite"], indirect=True)
async def test_words_typed_after_an_ambiguous_map_keep_its_severity(
    clinic: Clinic, api: TestClient
) -> None:
    """Marks that fit two complaints, then the patient names one in words: the map's
    intensity still answers the severity question."""
    p = await new_patient(clinic, "en")
    question = await at_complaint(p)
    init_data, tag = await open_map(clinic, p, question)
    marks = [{"region": "head", "intensity": 6}, {"region": "lower_back", "intensity": 4}]
    since = await clinic.seq(p.uid)
    assert (await post(api, {"initData": init_data, "intake": tag, "marks": marks}))[0] == 200
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("bodymap.button")), since=since
    )
    await p.say("I have a headache", has_button(p.t("intake.duration.today")))
    await p.press(p.t("intake.duration.today"), has_button(p.t("intake.red_flags.none")))
    [intake] = await intakes_of(clinic)
    async with clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(intake)
    assert answers["category"] == "headache" and answers["severity"] == 6
