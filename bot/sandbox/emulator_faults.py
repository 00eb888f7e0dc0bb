"""Rate limits and fault injection for the Bot API emulator.

Kept apart from the HTTP layer so the decisions (429 or not, which fault)
are plain, deterministic functions of time and a seeded RNG.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Methods that produce or change a message: these are the ones Telegram
# flood-limits and the default target of fault injection. sendChatAction is
# left out on purpose: bots call it before replies, and counting it would
# halve a chat's budget in a way Telegram does not.
SENDING_METHODS = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendvoice",
        "sendaudio",
        "sendvideo",
        "sendinvoice",
        "editmessagetext",
        "editmessagecaption",
        "editmessagereplymarkup",
    }
)


@dataclass
class RateLimits:
    """Flood limits per bot; defaults follow Telegram's published guidance."""

    enabled: bool = True
    global_per_s: float = 30.0  # per bot, all chats
    global_burst: int = 30
    per_chat_per_s: float = 1.0  # per bot per chat
    per_chat_burst: int = 3
    # Telegram's ~30/s is the limit for bulk notifications; a reply to a chat that wrote to the
    # bot within this many seconds is bound by the per-chat limit only.
    # https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
    reply_window_s: float = 60.0
    # allow_paid_broadcast: up to this many bulk messages a second, 0.1 Star for each one
    # above the free global_per_s. https://core.telegram.org/bots/api#paid-broadcasts
    paid_per_s: float = 1000.0


@dataclass
class TokenBucket:
    """Classic token bucket; ``tokens`` refill at ``rate`` per second up to ``burst``."""

    rate: float
    burst: int
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last look."""
        if now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if one is available now)."""
        self.refill(now)
        if self.tokens >= 1.0:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """Telegram's retry_after: whole seconds, rounded up, at least 1."""
    if math.isinf(wait):
        return 3600
    return max(1, math.ceil(wait))


class RateLimiter:
    """Global and per-chat token buckets for every bot."""

    def __init__(self, limits: RateLimits) -> None:
        """Create a limiter with the given limits (buckets are made lazily)."""
        self.limits = limits
        self._global: dict[int, TokenBucket] = {}
        self._paid: dict[int, TokenBucket] = {}
        self._chat: dict[tuple[int, int], TokenBucket] = {}
        self._inbound: dict[tuple[int, int], float] = {}
        self._second: dict[int, tuple[int, int]] = {}  # bot -> (second, bulk messages in it)
        self.stars: dict[int, float] = {}  # Stars charged for paid broadcasts, per bot

    def inbound(self, bot_id: int, chat_id: int, now: float) -> None:
        """A person in ``chat_id`` wrote to the bot: messages to them are replies for a while."""
        self._inbound[(bot_id, chat_id)] = now

    def reset(self, limits: RateLimits | None = None) -> None:
        """Forget all buckets, optionally switching to new limits."""
        if limits is not None:
            self.limits = limits
        self._global.clear()
        self._paid.clear()
        self._chat.clear()
        self._second.clear()

    def acquire(self, bot_id: int, chat_id: int | None, now: float, *, paid: bool = False) -> int:
        """Take a token from the buckets that apply (the chat's; the bot's bulk bucket unless
        the chat wrote recently, the paid one with ``allow_paid_broadcast``); return 0 on
        success or retry_after seconds."""
        if not self.limits.enabled:
            return 0
        lim = self.limits
        wrote = self._inbound.get((bot_id, chat_id)) if chat_id is not None else None
        bulk = wrote is None or now - wrote >= lim.reply_window_s
        g: TokenBucket | None = None
        wait = 0.0
        if bulk:
            table, rate, burst = (
                (self._paid, lim.paid_per_s, int(lim.paid_per_s))
                if paid
                else (self._global, lim.global_per_s, lim.global_burst)
            )
            g = table.get(bot_id)
            if g is None:
                g = TokenBucket(rate, burst, float(burst), now)
                table[bot_id] = g
            wait = g.wait_time(now)
        c: TokenBucket | None = None
        if chat_id is not None:
            c = self._chat.get((bot_id, chat_id))
            if c is None:
                c = TokenBucket(
                    lim.per_chat_per_s, lim.per_chat_burst, float(lim.per_chat_burst), now
                )
                self._chat[(bot_id, chat_id)] = c
            wait = max(wait, c.wait_time(now))
        if wait > 0:
            return retry_after_seconds(wait)
        # take from both only when both have a token, so a refusal costs nothing
        if g is not None:
            g.tokens -= 1.0
            second = int(now)
            last, count = self._second.get(bot_id, (second, 0))
            count = count + 1 if last == second else 1
            self._second[bot_id] = (second, count)
            if paid and count > lim.global_per_s:  # only messages above the free rate cost
                self.stars[bot_id] = round(self.stars.get(bot_id, 0.0) + 0.1, 1)
        if c is not None:
            c.tokens -= 1.0
        return 0


@dataclass
class FaultRule:
    """One fault-injection rule; see docs/EMULATOR.md for the meaning of each field."""

    bot_id: int | None = None  # None: every bot
    methods: frozenset[str] | None = None  # lower-case names; None: SENDING_METHODS
    all_methods: bool = False  # methods == ["*"]: every Bot API method
    rate_429: float = 0.0
    retry_after: int = 5
    rate_5xx: float = 0.0
    status_5xx: int | None = None  # 500 or 502; None: pick one at random
    delay_ms: tuple[float, float] = (0.0, 0.0)  # fixed when both ends are equal
    drop_rate: float = 0.0
    drop_after_effect: bool = False
    expires_at: float | None = None  # monotonic time; None: until cleared
    seed: int | None = None
    rule_id: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    injected: dict[str, int] = field(
        default_factory=lambda: {"429": 0, "5xx": 0, "dropped": 0, "delayed": 0}
    )

    def matches(self, bot_id: int, method: str) -> bool:
        """Does this rule apply to a call of ``method`` by ``bot_id``?"""
        if self.bot_id is not None and self.bot_id != bot_id:
            return False
        if self.all_methods:
            return True
        return method in (self.methods if self.methods is not None else SENDING_METHODS)

    def scope(self) -> tuple[int | None, frozenset[str] | None, bool]:
        """Rules with equal scope replace each other (see FaultInjector.add)."""
        return (self.bot_id, self.methods, self.all_methods)

    def describe(self, method_names: dict[str, str] | None = None) -> dict[str, Any]:
        """JSON view of the rule for the client API."""
        names = method_names or {}
        if self.all_methods:
            methods: list[str] | str = "*"
        else:
            chosen = self.methods if self.methods is not None else SENDING_METHODS
            methods = sorted(names.get(m, m) for m in chosen)
        return {
            "id": self.rule_id,
            "bot_id": self.bot_id,
            "methods": methods,
            "rate_429": self.rate_429,
            "retry_after": self.retry_after,
            "rate_5xx": self.rate_5xx,
            "status_5xx": self.status_5xx,
            "delay_ms": list(self.delay_ms),
            "drop_rate": self.drop_rate,
            "drop_after_effect": self.drop_after_effect,
            "expires_in_s": (
                None
                if self.expires_at is None
                else max(0.0, round(self.expires_at - time.monotonic(), 3))
            ),
            "seed": self.seed,
            "injected": dict(self.injected),
        }


@dataclass
class FaultDecision:
    """What the injector wants done with one call."""

    delay_s: float = 0.0
    drop_before: bool = False
    drop_after: bool = False
    status_5xx: int | None = None
    retry_after: int | None = None  # an injected or penalty 429


class FaultInjector:
    """Holds the active rules and the "in retry_after" penalties they cause."""

    def __init__(self, seed: int | None = None) -> None:
        """``seed`` makes rules without their own seed reproducible too."""
        self._master = random.Random(seed)  # noqa: S311 - simulation, not security
        self.rules: list[FaultRule] = []
        self._next_id = 1
        # bucket key -> monotonic deadline; while in it, every call gets 429
        self.penalties: dict[tuple[int, str], float] = {}

    def add(self, rule: FaultRule) -> FaultRule:
        """Install a rule, replacing an existing rule of the same scope."""
        rule.rule_id = self._next_id
        self._next_id += 1
        seed = rule.seed if rule.seed is not None else self._master.getrandbits(64)
        rule.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.rules = [r for r in self.rules if r.scope() != rule.scope()]
        self.rules.append(rule)
        return rule

    def clear(self, rule_id: int | None = None) -> int:
        """Remove one rule (or all, with their penalties); return how many went."""
        before = len(self.rules)
        if rule_id is None:
            self.rules = []
            self.penalties.clear()
        else:
            self.rules = [r for r in self.rules if r.rule_id != rule_id]
        return before - len(self.rules)

    def active_rules(self, now: float) -> list[FaultRule]:
        """Rules still in force; expired ones are dropped here."""
        self.rules = [r for r in self.rules if r.expires_at is None or r.expires_at > now]
        return self.rules

    def penalty_left(self, key: tuple[int, str], now: float) -> int:
        """retry_after still owed on ``key``, or 0."""
        deadline = self.penalties.get(key)
        if deadline is None:
            return 0
        if deadline <= now:
            del self.penalties[key]
            return 0
        return retry_after_seconds(deadline - now)

    def decide(
        self, bot_id: int, method: str, bucket: tuple[int, str], now: float
    ) -> FaultDecision:
        """Roll the dice of every matching rule for one call.

        Every rule draws the same number of random values per call in a fixed
        order, so a seeded run is reproducible whatever the outcome.
        """
        decision = FaultDecision()
        left = self.penalty_left(bucket, now)
        if left:
            decision.retry_after = left
            return decision
        for rule in self.active_rules(now):
            if not rule.matches(bot_id, method):
                continue
            lo, hi = rule.delay_ms
            delay = lo if hi <= lo else rule.rng.uniform(lo, hi)
            r_drop, r_5xx, r_429, r_kind = (rule.rng.random() for _ in range(4))
            if delay > 0:
                decision.delay_s += delay / 1000.0
                rule.injected["delayed"] += 1
            if decision.drop_before or decision.drop_after or decision.status_5xx:
                continue
            if decision.retry_after:
                continue
            if r_drop < rule.drop_rate:
                rule.injected["dropped"] += 1
                if rule.drop_after_effect:
                    decision.drop_after = True
                else:
                    decision.drop_before = True
            elif r_5xx < rule.rate_5xx:
                rule.injected["5xx"] += 1
                decision.status_5xx = rule.status_5xx or (500 if r_kind < 0.5 else 502)
            elif r_429 < rule.rate_429:
                rule.injected["429"] += 1
                decision.retry_after = max(1, rule.retry_after)
                self.penalties[bucket] = now + decision.retry_after
        return decision


def normalize_methods(methods: Iterable[str] | str | None) -> tuple[frozenset[str] | None, bool]:
    """Turn a user-given method list into (lower-case set or None, all_methods)."""
    if methods is None:
        return None, False
    if isinstance(methods, str):
        methods = [methods]
    names = [m.strip().lower() for m in methods]
    if "*" in names or "all" in names:
        return None, True
    return frozenset(names), False
