"""The sender's choice of the next calls (pure unit tests, no database): replies take only
their chat's token, bulk calls share the bot-wide rate, paid broadcasts fill in up to the day's
budget, one call per chat at a time."""

from __future__ import annotations

import itertools
import time
from typing import Any

from bot.telegram.sender import BULK_AHEAD_S, BULK_BURST, Limits, OutboxSender
from storage.repositories import OutboxKey


def _sender(**limits: Any) -> OutboxSender:
    return OutboxSender(None, {"patient": None}, Limits(**limits))  # type: ignore[arg-type,dict-item]  # no database or bot needed to choose


def _rows(*chats: int) -> list[OutboxKey]:
    return [OutboxKey(i + 1, "patient", chat, "sendMessage") for i, chat in enumerate(chats)]


def test_bulk_waits_for_the_bot_wide_rate_but_replies_do_not() -> None:
    s = _sender(global_per_s=1.0, concurrency=1)  # the bot-wide burst is the concurrency
    now = time.monotonic()
    s.note_inbound("patient", 7)  # chat 7 just wrote
    chosen, _ = s._choose(_rows(1, 2, 3, 4, 5, 7), {}, 8, now)
    # the bulk calls the bot-wide bucket holds (its small burst), and the reply
    assert [k.chat_id for k, _, _ in chosen] == [1, 2, 3, 7]
    assert BULK_BURST == 3
    assert not any(paid for _, paid, _ in chosen)


def test_one_call_per_chat_at_a_time() -> None:
    s = _sender(global_per_s=100.0, per_chat_burst=10, concurrency=8)
    s.note_inbound("patient", 5)
    s.note_inbound("patient", 6)
    chosen, _ = s._choose(_rows(5, 5, 6, 5, 6), {}, 8, time.monotonic())
    assert [k.id for k, _, _ in chosen] == [1, 3]
    s._inflight = {k.id: k for k, _, _ in chosen}
    again, _ = s._choose(_rows(5, 5, 6, 5, 6)[1:], {}, 8, time.monotonic())
    assert again == []  # both chats still have a call in flight


def test_a_deferred_call_holds_back_its_chat() -> None:
    s = _sender(global_per_s=100.0, concurrency=8)
    s.note_inbound("patient", 5)
    s.note_inbound("patient", 6)
    rows = _rows(5, 6)
    chosen, _ = s._choose(rows, {("patient", 5): 0}, 8, time.monotonic())
    assert [k.chat_id for k, _, _ in chosen] == [6]


def test_paid_broadcasts_fill_in_within_the_budget() -> None:
    s = _sender(global_per_s=1.0, concurrency=1, paid_stars_per_day=0.3)
    start = time.monotonic()
    picked: list[bool] = []
    for step in range(101):  # one second, a look every 10 ms
        chosen, _ = s._choose(_rows(100 + step), {}, 1, start + step * 0.01)
        picked += [paid for _, paid, _ in chosen]
    # the free burst, three paid ones (0.1 Star each), then only the free rate
    assert picked[:6] == [False, False, False, True, True, True]
    assert picked.count(True) == 3 and s.stats.paid == 3
    assert picked.count(False) == 4  # the burst of 3 at 0 s and the token at 1 s


def test_no_budget_no_paid_broadcast() -> None:
    s = _sender(global_per_s=1.0, concurrency=1)
    chosen, _ = s._choose(_rows(*range(1, 11)), {}, 64, time.monotonic())
    assert [paid for _, paid, _ in chosen] == [False, False, False]


def test_bulk_calls_are_claimed_a_little_ahead_of_their_tokens() -> None:
    """At 30/s a look that comes late would lose the tokens it missed; instead bulk calls are
    claimed ahead (at most concurrency - 2 of them waiting), each told when its token is due,
    spaced at the bucket's rate and never beyond BULK_AHEAD_S; a reply (first in the look:
    it has the higher priority) takes only its chat's token."""
    s = _sender(global_per_s=30.0, concurrency=8)
    now = time.monotonic()
    s.note_inbound("patient", 999)
    rows = [OutboxKey(1, "patient", 999, "sendMessage")] + [
        OutboxKey(i + 2, "patient", i + 1, "sendMessage") for i in range(20)
    ]
    chosen, _ = s._choose(rows, {}, 8, now)
    assert next((k.chat_id, d) for k, _, d in chosen) == (999, 0.0)
    delays = [d for _, _, d in chosen[1:]]
    assert delays[:3] == [0.0, 0.0, 0.0]  # the burst
    ahead = delays[3:]
    assert len(ahead) == 4 and s._ahead == 4  # eight places in flight in all
    assert all(0 < d <= BULK_AHEAD_S for d in ahead)
    gaps = [b - a for a, b in itertools.pairwise(ahead)]
    assert all(abs(g - 1 / 30) < 1e-3 for g in gaps), gaps
    # With places free but the next token beyond reach: nothing, and when to look again.
    more, wait = s._choose(_rows(*range(100, 120)), {}, 8, now)
    assert len(more) == 2 and s._ahead == 6  # concurrency - 2 waiting at most
    more, wait = s._choose(_rows(*range(200, 220)), {}, 8, now)
    assert more == [] and wait > 0
    # Never more than the rate allows: over one second of looks every 10 ms, with every call
    # done at once, at most the burst, 30 tokens and what may be claimed ahead.
    taken = len(chosen) - 1 + 2
    for step in range(1, 101):
        s._ahead = 0
        got, _ = s._choose(
            _rows(*range(1000 + step * 10, 1010 + step * 10)), {}, 8, now + step / 100
        )
        taken += len(got)
    assert taken <= 3 + 30 + BULK_AHEAD_S * 30 + 1, taken


def test_a_worker_that_does_not_lead_sends_replies_but_no_bulk() -> None:
    """Several workers: only the leading one makes bulk calls (so ~30/s holds for all of
    them); the others still answer the chats that just wrote, and a chat whose bulk call
    waits for the leader is not overtaken by its own later calls."""
    s = _sender(global_per_s=100.0, concurrency=8)
    leading = False
    s.bulk_allowed = lambda: leading
    s.note_inbound("patient", 7)  # chat 7 just wrote: its calls are replies
    rows = [*_rows(1, 2, 7), OutboxKey(4, "patient", 1, "sendMessage")]
    chosen, _ = s._choose(rows, {}, 8, time.monotonic())
    assert [k.chat_id for k, _, _ in chosen] == [7]
    leading = True
    chosen, _ = s._choose(rows[:2], {}, 8, time.monotonic())
    assert [k.chat_id for k, _, _ in chosen] == [1, 2]


def test_a_chat_another_worker_holds_is_skipped_for_a_moment() -> None:
    """Several workers: a call refused because an earlier one of its chat is another
    worker's (perhaps a dead one's, until its lease ends) is not chosen again at once, so
    the sender does not spin on it; other chats go on."""
    s = _sender(global_per_s=100.0, concurrency=8)
    s.note_inbound("patient", 5)
    s.note_inbound("patient", 6)
    now = time.monotonic()
    s._held[("patient", 5)] = now + 1.0
    chosen, _ = s._choose(_rows(5, 6), {}, 8, now)
    assert [k.chat_id for k, _, _ in chosen] == [6]
    chosen, _ = s._choose(_rows(5), {}, 8, now + 1.5)
    assert [k.chat_id for k, _, _ in chosen] == [5]
