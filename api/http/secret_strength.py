"""Whether a configured secret is strong enough to guard a service others can reach.

A secret that signs staff tokens (`JWT_SECRET`) or keys the idempotency ids
(`IDEMPOTENCY_SECRET`) is only as good as an attacker's cost of guessing it. Two kinds are
refused off loopback:

- the sample secrets this repository's own documents show (anyone who read the README could
  mint staff tokens with them);
- secrets whose estimated entropy is below `MIN_ENTROPY_BITS`. The estimate is deliberately
  simple and errs low: the length times the smaller of the Shannon entropy of the characters
  and of the steps between neighbouring characters. Repeats (`aaaa...`, `passwordpassword...`)
  score low on the first, runs (`abcdef...`, `123456...`) on the second; 32 random bytes as hex
  or base64 (`openssl rand -hex 32`) score above 180 bits. It cannot see dictionary words, which
  is why the documented samples are listed by name.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable

MIN_ENTROPY_BITS = 128
"""What a secret must be estimated to hold: the security level of HS256 against a forger."""

DOCUMENTED_SAMPLES = frozenset({"a-demo-secret-of-at-least-32-bytes"})
"""Secrets shown in the README, the contract or the compose files; `tests/security` checks that
every `JWT_SECRET=...` value those documents show is listed here."""


def _shannon_bits(symbols: Iterable[int]) -> float:
    counts = Counter(symbols)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return sum(-n / total * math.log2(n / total) for n in counts.values())


def estimated_entropy_bits(secret: str) -> float:
    """A low estimate of the bits of entropy in `secret` (see the module's docstring)."""
    points = [ord(ch) for ch in secret]
    steps = [b - a for a, b in itertools.pairwise(points)]
    per_char = min(_shannon_bits(points), _shannon_bits(steps))
    return len(points) * per_char


def weakness(secret: str) -> str | None:
    """Why `secret` is too weak to guard a reachable service, or None when it is not."""
    if secret in DOCUMENTED_SAMPLES:
        return "it is the sample secret shown in this project's documentation"
    bits = estimated_entropy_bits(secret)
    if bits < MIN_ENTROPY_BITS:
        return (
            f"it looks low-entropy (about {bits:.0f} bits estimated, at least "
            f"{MIN_ENTROPY_BITS} needed: repeated or sequential characters)"
        )
    return None
