"""Server-made ids come from the OS's CSPRNG, never from `random`: from observed ids, the Mersenne
Twister's state (and so every next order, event and correlation id) can be recovered.

A statistical test cannot tell a good PRNG from a CSPRNG, so these tests assert the source: the ids
are the bytes os.urandom gave, and no state of `random` changes them.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator

import pytest

import application.ids
from api.http.request_record import correlation_id_of
from application.idempotency import IdempotencyIds
from application.ids import RandomUuids, random_uuid


def _as_uuid4(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw, version=4)


@pytest.fixture
def urandom_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """os.urandom replaced by a known byte sequence; the list holds every block it handed out."""
    handed_out: list[bytes] = []
    counter = iter(range(1, 1 << 30))

    def known_bytes(size: int) -> bytes:
        block = b"".join(next(counter).to_bytes(4, "big") for _ in range(size // 4))
        handed_out.append(block)
        return block

    monkeypatch.setattr(os, "urandom", known_bytes)
    application.ids._PROCESS_UUIDS.discard()
    yield handed_out
    monkeypatch.undo()
    application.ids._PROCESS_UUIDS.discard()  # the next test's ids from the real os.urandom again


UNKEYED = IdempotencyIds.random()

SERVER_IDS: list[tuple[str, Callable[[], str]]] = [
    ("order id", lambda: UNKEYED.new_order_id("c-1", None)),
    ("event id", lambda: str(UNKEYED.event_ids(1, "o-1", None, None)[0])),
    ("correlation id", lambda: correlation_id_of(None)),
]


@pytest.mark.parametrize(("kind", "make"), SERVER_IDS, ids=[kind for kind, _ in SERVER_IDS])
def test_every_server_made_id_is_os_urandom_bytes(
    urandom_calls: list[bytes], kind: str, make: Callable[[], str]
) -> None:
    made = [uuid.UUID(make()) for _ in range(3)]
    assert len(urandom_calls) == 1, f"{kind}: drawn in one block, not one system call per id"
    block = urandom_calls[0]
    assert made == [_as_uuid4(block[i * 16 : (i + 1) * 16]) for i in range(3)], kind


def test_ids_ignore_the_state_of_random() -> None:
    random.seed(1234)
    first = [random_uuid() for _ in range(5)]
    random.seed(1234)
    again = [random_uuid() for _ in range(5)]
    assert set(first).isdisjoint(again)
    state = random.getstate()
    try:
        random.setstate(state)
        one = UNKEYED.new_order_id("c-1", None)
        random.setstate(state)
        assert UNKEYED.new_order_id("c-1", None) != one
    finally:
        random.setstate(state)


def test_a_block_is_sliced_without_reuse_and_refilled() -> None:
    blocks: list[bytes] = []
    source = RandomUuids(block_bytes=32)

    def recorded(size: int) -> bytes:
        blocks.append(bytes(range(len(blocks) * size, (len(blocks) + 1) * size)))
        return blocks[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "urandom", recorded)
        made = [source.next() for _ in range(5)]
    raw = b"".join(blocks)
    assert len(blocks) == 3
    assert made == [_as_uuid4(raw[i * 16 : (i + 1) * 16]) for i in range(5)]


def test_ids_are_version_4_with_the_rfc_variant() -> None:
    for made in (random_uuid() for _ in range(1000)):
        assert made.version == 4
        assert made.variant == uuid.RFC_4122


def test_block_size_must_hold_whole_ids() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        RandomUuids(block_bytes=24)
