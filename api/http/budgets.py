"""Budgets: what one caller may hold or spend at once, so that no caller starves the others.

One mechanism serves every check. A `Budget` counts units held per key (requests in flight,
open connections, subscriptions) against a limit, with `try_acquire` / `release`; a
`RateBudget` is a token bucket per key (commands per second). The key is the caller's identity
(`identity_of`): the token's subject, or the client address for a caller that has not said who
it is; a global cap is the same `Budget` with one key. Entries go when they fall back to zero
(or to a full bucket), so idle identities cost no memory.

A caller past a budget gets the retryable `RateLimited` error (`extensions.code` RATE_LIMITED,
`retryAfter` in seconds), and `LimitedLog` writes one line per identity and budget per period,
never one per refusal.

Everything here runs on the event loop's thread (the protocols' callbacks and the app alike),
so nothing needs a lock.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from graphql import GraphQLError

from api.http.auth import Principal
from api.http.limits import BudgetLimits
from metrics.instruments import count_budget_refusal

logger = logging.getLogger(__name__)

RATE_LIMITED: Final = "RATE_LIMITED"
"""The contract's code for a caller whose own budget is spent."""

LOG_EVERY: Final = 10.0
"""Seconds between two lines about the same identity and budget."""

ANONYMOUS: Final = "address"
"""The kind of identity of a caller that has not authenticated: its client address."""


def identity_of(principal: Principal | None, address: str | None) -> str:
    """The key a caller's budgets are counted under: `customer:<sub>` / `staff:<sub>` for a
    token, `address:<ip>` without one."""
    if principal is not None:
        return f"{principal.role.value}:{principal.sub}"
    return f"{ANONYMOUS}:{address or 'unknown'}"


def is_budgeted(principal: Principal | None) -> bool:
    """Whether the per-identity budgets apply: to customers and anonymous callers. Staff are the
    operator's own people and tools (the dashboard, `orders demo`, the benchmarks), bounded only
    by the global caps: a staff token can already do anything a flood could."""
    return principal is None or not principal.is_staff


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds to wait, at least one (clients sleep on it; 0 would spin)."""
    return max(1, math.ceil(seconds))


class RateLimited(GraphQLError):
    """The caller's own budget (`budget`) is spent; retry after `retry_after` seconds."""

    def __init__(self, budget: str, retry_after: float, message: str | None = None) -> None:
        seconds = retry_after_seconds(retry_after)
        super().__init__(
            message or f"Too many {budget} for this caller; retry in {seconds} s.",
            extensions={"code": RATE_LIMITED, "retryAfter": seconds, "budget": budget},
        )
        self.retry_after = seconds


@dataclass(slots=True)
class _Pending:
    last_logged: float
    count: int = 0


class LimitedLog:
    """Who was limited, quietly: the first refusal of an identity on a budget is logged at once,
    later ones are counted and logged with the next refusal at least `every` seconds on
    (`event=rate_limited identity=... budget=... count=N`, N the refusals the line covers)."""

    SWEEP_AT = 1024

    def __init__(self, every: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic):
        self._every = every
        self._clock = clock
        self._pending: dict[tuple[str, str], _Pending] = {}

    def limited(self, identity: str, budget: str) -> None:
        """One refusal of `identity` on `budget`."""
        count_budget_refusal(budget)
        now = self._clock()
        key = (identity, budget)
        pending = self._pending.get(key)
        if pending is not None and now - pending.last_logged < self._every:
            pending.count += 1
            return
        count = 1 + (pending.count if pending is not None else 0)
        self._pending[key] = _Pending(last_logged=now)
        self._write(identity, budget, count)
        if len(self._pending) > self.SWEEP_AT:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Forget identities quiet for a period, writing what they still owed the log."""
        for key, pending in list(self._pending.items()):
            if now - pending.last_logged >= self._every:
                del self._pending[key]
                if pending.count:
                    self._write(*key, pending.count)

    @staticmethod
    def _write(identity: str, budget: str, count: int) -> None:
        logger.warning("event=rate_limited identity=%s budget=%s count=%d", identity, budget, count)


class Budget:
    """At most `limit` units held at once per key. `try_acquire` takes one unit or refuses
    (and tells the log); `release` gives it back. A key is forgotten when it holds nothing."""

    def __init__(self, name: str, limit: int, log: LimitedLog | None = None) -> None:
        self.name = name
        self.limit = limit
        self._log = log
        self._held: dict[str, int] = {}

    def try_acquire(self, key: str) -> bool:
        """Take one unit for `key`; False (nothing taken) when it already holds `limit`."""
        held = self._held.get(key, 0)
        if held >= self.limit:
            if self._log is not None:
                self._log.limited(key, self.name)
            return False
        self._held[key] = held + 1
        return True

    def release(self, key: str) -> None:
        """Give back one unit `key` took."""
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)

    def held(self, key: str) -> int:
        """Units `key` holds now."""
        return self._held.get(key, 0)

    @property
    def keys(self) -> int:
        """How many keys hold anything (idle ones are not kept)."""
        return len(self._held)


class RateBudget:
    """A token bucket per key: `burst` tokens, refilled at `rate` a second. `try_spend(key, n)`
    spends `n` when the bucket holds them (or, for `n` over `burst`, when it is full, leaving a
    debt the refill pays back, so a large request is slow but never impossible). A full bucket is
    the same as none, so keys that are full again are forgotten."""

    SWEEP_EVERY = 256

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: int,
        log: LimitedLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.rate = rate
        self.burst = burst
        self._log = log
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._spends = 0

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def try_spend(self, key: str, n: int = 1) -> float:
        """Spend `n` tokens of `key`: 0.0 when spent, else the seconds until they could be
        (nothing is spent then)."""
        now = self._clock()
        tokens = self._tokens(key, now)
        need = min(n, self.burst)
        if tokens < need:
            if self._log is not None:
                self._log.limited(key, self.name)
            return (need - tokens) / self.rate
        self._buckets[key] = (tokens - n, now)
        self._spends += 1
        if self._spends % self.SWEEP_EVERY == 0:
            self._sweep(now)
        return 0.0

    def _sweep(self, now: float) -> None:
        for key in [k for k in self._buckets if self._tokens(k, now) >= self.burst]:
            del self._buckets[key]

    @property
    def keys(self) -> int:
        """How many keys have spent tokens not yet refilled (at the last sweep)."""
        return len(self._buckets)


class IdentityBudgets:
    """The per-identity budgets of one serving process (`BudgetLimits`), shared by the HTTP view,
    the websocket handlers and the command rate, with one log of who was limited."""

    def __init__(self, limits: BudgetLimits, log: LimitedLog | None = None) -> None:
        self.limits = limits
        self.log = log or LimitedLog()
        self.requests = Budget("requests", limits.max_requests_per_identity, self.log)
        self.websockets = Budget("websockets", limits.max_websockets_per_identity, self.log)
        self.subscriptions = Budget(
            "subscriptions", limits.max_subscriptions_per_identity, self.log
        )
        self.commands = RateBudget(
            "commands", rate=limits.commands_per_second, burst=limits.command_burst, log=self.log
        )

    def per_socket(self) -> Budget:
        """A new websocket's own count of operations running on it."""
        return Budget(
            "subscriptions_per_socket", self.limits.max_subscriptions_per_socket, self.log
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request or websocket counts as, and against which budgets: the identity's, unless
    `budgeted` is False (staff)."""

    identity: str
    budgeted: bool
    budgets: IdentityBudgets

    @classmethod
    def of(
        cls, principal: Principal | None, address: str | None, budgets: IdentityBudgets
    ) -> Caller:
        """The caller `principal` (None: anonymous, known by `address`)."""
        return cls(identity_of(principal, address), is_budgeted(principal), budgets)


CALLER_STATE = "budget_caller"
"""The attribute of a request's (or websocket's) `state` holding its `Caller`."""
