"""A patient books and pays a video consultation in the sandbox page; at the booked time both
chats get the video room, the room's stand-in page opens, the doctor runs the call to its end.

The real sandbox (`bot.py sandbox`) runs in-process, as in test_booking_pay.py. A new patient
onboards; /book, "Video call", "First available doctor" (only the demo GP takes video calls),
the first offered time; Pay on the Stars invoice card. The page's clock control ("Next event",
event by event) then brings the sandbox to the booked time, so the sweeper fires the booking's
start: the patient's chat shows "join ... in the video room: <link>" with "The video isn't
working", the GP's chat (opened beside) "the video room is ready: <link>" with the call
buttons. The patient's link opens the sandbox's stand-in room page (bot/sandbox/web.py), which
names the room and says whether a signed token came with it (none: the sandbox has no Jitsi
secret). The doctor presses "We are connected", then "Finished": the card is edited (the link
leaves the doctor's view) and the close hint follows. Screenshots of the patient's room link,
the room page and the doctor's chat after Finished go to $CARELINE_SCREENSHOT_DIR (or pytest's
temp dir).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Response, expect

from bot.sandbox.demo import DEMO_DOCTORS
from bot.sandbox.runner import Sandbox
from bot.sandbox.web import MEET_PATH
from flows import booking as booking_flow
from handlers.common.bookings import zone_label
from tests.browser.test_booking_pay import PATIENT_ZONE, pattern, slot_start, stars
from tests.browser.test_journey import (
    PATIENT,
    PATIENT_BOT,
    WAIT_MS,
    create_patient,
    onboard,
    open_doctor_beside,
    t,
)
from tests.browser.test_real_sandbox import real_sandbox  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

MAX_CLOCK_STEPS = 12  # "Next event" presses to the booked time (reminders stop it on the way)
# A room link in a chat: the stand-in page's address, with a signed token when there is one.
ROOM_LINK = re.compile(rf"(https?://\S+?{re.escape(MEET_PATH)}/[A-Za-z0-9]+(?:\?jwt=[\w.-]+)?)")


async def sandbox_now(page: Page, sandbox: Sandbox) -> datetime:
    """Sandbox now, from the clock API the page uses."""
    answer = await page.request.get(f"{sandbox.url.rstrip('/')}/sandbox/clock")
    return datetime.fromisoformat((await answer.json())["now"])


def is_clock_move(response: Response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/sandbox/clock")


async def test_patient_books_a_video_call_and_both_join_the_room(
    browser: Browser,
    real_sandbox: Sandbox,  # noqa: F811 - the fixture imported above
    screenshot_dir: Path,
) -> None:
    sandbox = real_sandbox
    base = sandbox.url.rstrip("/")
    settings = sandbox.app.settings
    print(f"\nvideo booking screenshots: {screenshot_dir}")  # noqa: T201 - where to look
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)
    toasts = page.get_by_test_id("toast")

    async def shot(target: Page, name: str) -> None:
        await target.evaluate("document.activeElement && document.activeElement.blur()")
        await target.screenshot(path=str(screenshot_dir / f"{name}.png"))

    gp = next(d for d in DEMO_DOCTORS if d.department == "general")
    gp_name = f"{gp.first_name} {gp.last_name}"
    patient = await create_patient(page, *PATIENT)
    await onboard(patient)

    # /book: "Video call", "First available doctor", the first free time.
    video = t("svc.mode.video")
    await patient.say("/book")
    await patient.step(t("book.ask_mode"), video)
    await patient.step(t("book.ask_doctor", mode=video), t("book.first_available"))
    zone = zoneinfo.ZoneInfo(PATIENT_ZONE)
    times = (await patient.sees(t("book.ask_slot", zone=zone_label(zone)))).get_by_test_id(
        "inline-button"
    )
    await expect(times.first).to_be_enabled(timeout=WAIT_MS)
    label = (await times.first.inner_text()).strip()
    await times.first.click()
    await patient.sees(t("book.held", when=label, minutes=booking_flow.HOLD_MINUTES))
    start = slot_start(label, zone)

    # The Stars invoice: Pay; the card turns paid and the booking is confirmed with the GP.
    amount = f"⭐ {stars('video')}"
    card = patient.root.get_by_test_id("message-invoice").last
    await expect(card).to_be_visible(timeout=WAIT_MS)
    await expect(card.get_by_test_id("invoice-amount")).to_have_text(amount)
    await card.get_by_test_id("invoice-pay").click()
    await expect(card.get_by_test_id("invoice-status")).to_have_attribute(
        "data-status", "paid", timeout=WAIT_MS
    )
    confirmed = pattern(
        "book.confirmed", mode=video, when=label, zone=zone_label(zone), doctor=gp_name
    )
    await expect(patient.bot.filter(has_text=confirmed).last).to_be_visible(timeout=WAIT_MS)
    row = page.get_by_test_id("person").filter(has_text=" ".join(PATIENT))
    uid = await row.get_attribute("data-user-id")
    response = await page.request.get(f"{base}/client/payments?bot={PATIENT_BOT}&user_id={uid}")
    charges: list[dict[str, Any]] = (await response.json())["payments"]
    assert [(c["status"], c["total_amount"]) for c in charges] == [("paid", stars("video"))]
    booking_id = booking_flow.booking_id_of(charges[0]["invoice_payload"])
    assert booking_id, charges
    ref = booking_id[:8]
    booked_at = await sandbox_now(page, sandbox)

    # The GP's chat beside: the booking notice is there; no room yet.
    doctor = await open_doctor_beside(page, gp_name)
    notice = pattern("book.doctor_notice", ref=ref, mode=video, when=None, zone=None)
    await expect(doctor.bot.filter(has_text=notice)).to_have_count(1, timeout=WAIT_MS)
    await expect(doctor.bot.filter(has_text=t("book.call.started"))).to_have_count(0)

    # The page's clock: "Next event" until the booked time (the 15-minute reminder and any
    # other noticed event stop it on the way; it never jumps past the booking's start).
    # Each reminder passed on the way is waited for in both chats before the next press, as a
    # person would (and it must show a time before the booked one).
    reminders = {
        name: start - before
        for name, before in booking_flow.REMINDERS.items()
        if start - before > booked_at
    }
    assert booked_at < start, (label, start)
    for _ in range(MAX_CLOCK_STEPS):
        async with page.expect_response(is_clock_move, timeout=WAIT_MS) as moved:
            await page.get_by_test_id("clock-next-event").click()
        state = await (await moved.value).json()
        assert state["ok"], state
        clock = datetime.fromisoformat(state["now"])
        for name, due in list(reminders.items()):
            if due > clock:
                continue
            del reminders[name]
            remind = t(f"book.remind.{name}", mode=video, when=label, zone=zone_label(zone))
            reminded = await patient.sees(remind)
            remind_doctor = pattern(
                f"book.remind_doctor.{name}", ref=ref, mode=video, when=None, zone=None
            )
            await expect(doctor.bot.filter(has_text=remind_doctor)).to_have_count(
                1, timeout=WAIT_MS
            )
            stamp = await reminded.get_by_test_id("message-time").get_attribute("datetime")
            assert stamp, "the reminder shows no time"
            assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) < start, stamp
        if clock >= start:
            break
    else:
        raise AssertionError(f"the clock did not reach {start} in {MAX_CLOCK_STEPS} steps")
    await page.wait_for_function(
        """(target) => {
            const el = document.querySelector('[data-testid="clock-now"]');
            return el !== null && Date.parse(el.dataset.iso) >= target;
        }""",
        arg=start.timestamp() * 1000,
        timeout=WAIT_MS,
    )

    # The patient: "join <GP> in the video room: <link>", the link a link, and the button.
    joined = pattern("book.start.video", doctor=gp_name, link=None)
    invite = patient.bot.filter(has_text=joined).last
    await expect(invite).to_be_visible(timeout=WAIT_MS)
    await expect(invite.get_by_role("button", name=t("book.video_failed"))).to_be_enabled()
    found = ROOM_LINK.search(await invite.inner_text())
    assert found, await invite.inner_text()
    patient_url = found.group(1)
    parts = urlsplit(patient_url)
    assert f"{parts.scheme}://{parts.netloc}" == base, patient_url  # the stand-in, not Jitsi
    room = parts.path.rsplit("/", 1)[1]
    assert parts.path == f"{MEET_PATH}/{room}" and room.startswith("careline"), patient_url
    signed = settings.jitsi_app_secret is not None
    assert ("jwt=" in parts.query) is signed, patient_url
    link = invite.locator("a").filter(has_text=room)
    await expect(link).to_have_count(1)
    await expect(link).to_have_attribute("href", patient_url)

    # The doctor: "the video room is ready: <link>" (the same room) with the call buttons.
    room_ready = pattern("book.start.video_doctor", number=None, link=None)
    ready = doctor.bot.filter(has_text=room_ready).filter(has_text=room)
    await expect(ready).to_have_count(1, timeout=WAIT_MS)
    ready_text = await ready.inner_text()
    case = room_ready.search(ready_text)
    assert case, ready_text
    number = int(case.group(1))
    doctor_link = ROOM_LINK.search(ready_text)
    assert doctor_link and urlsplit(doctor_link.group(1)).path == parts.path, ready_text
    buttons = ready.get_by_test_id("inline-button")
    await expect(buttons).to_have_text(
        [
            t("book.call.started"),
            t("book.call.to_phone"),
            t("book.call.to_text"),
            t("book.call.finished"),
        ]
    )

    # Screenshot: the patient's chat with the room link (the toasts of the clock gone).
    await invite.scroll_into_view_if_needed()
    await expect(invite).to_be_in_viewport(ratio=1)
    await expect(toasts).to_have_count(0, timeout=WAIT_MS)
    await shot(page, "video-01-patient-room-link")

    # The patient opens the link: a new browser page, the sandbox's stand-in for the room.
    async with context.expect_page(timeout=WAIT_MS) as opened:
        await link.click()
    room_page = await opened.value
    await room_page.wait_for_load_state()
    assert room_page.url == patient_url
    await expect(room_page).to_have_title("Video room (sandbox)")
    await expect(room_page.get_by_role("heading", level=1)).to_have_text("Video room")
    token = "a signed token" if signed else "no token"
    await expect(room_page.locator("p").first).to_have_text(f"Room {room}, opened with {token}.")
    await expect(room_page.locator("code").first).to_have_text(room)
    await shot(room_page, "video-02-room-page")
    await room_page.close()

    # The doctor: "We are connected" (noted), later "Finished": the card loses its link and
    # buttons, and the close hint follows.
    await ready.get_by_role("button", name=t("book.call.started"), exact=True).click()
    await expect(toasts.filter(has_text=t("book.call.done.start"))).to_be_visible(timeout=WAIT_MS)
    await ready.get_by_role("button", name=t("book.call.finished"), exact=True).click()
    await expect(toasts.filter(has_text=t("book.call.done.finished"))).to_be_visible(
        timeout=WAIT_MS
    )
    ended = doctor.bot.filter(has_text=t("book.call.ended.finished", number=number))
    await expect(ended).to_have_count(1, timeout=WAIT_MS)
    await expect(ended.get_by_test_id("message-edited")).to_be_visible()
    await expect(ended.get_by_test_id("inline-button")).to_have_count(0)
    await expect(doctor.bot.filter(has_text=room)).to_have_count(0)  # the link has gone
    hint = await doctor.sees(t("book.call.close_hint", number=number))
    await expect(doctor.bot.last).to_contain_text(t("book.call.close_hint", number=number))
    await expect(hint).to_be_in_viewport()
    # The patient keeps the room link and is not told the call was missed.
    await expect(link).to_be_visible()
    await expect(patient.bot.filter(has_text=t("book.call.missed"))).to_have_count(0)
    await expect(toasts).to_have_count(0, timeout=WAIT_MS)
    await shot(page, "video-03-doctor-finished")
    assert errors == []
    await context.close()
