"""Server-made ids: random version-4 UUIDs from the operating system's CSPRNG.

Order ids, event ids and correlation ids are handed to clients, and a client that could predict
the next one could place another customer's order id first. So every id comes from `os.urandom`
(never from `random`, whose Mersenne Twister state is recoverable from a few hundred outputs).

`uuid.uuid4()` would do, but it calls `os.urandom(16)` per id: a system call that releases the
GIL, which under load (the store's threads busy) costs up to a switch interval per id. Drawing
the bytes in blocks and slicing them keeps the same source at a fraction of the cost.
"""

from __future__ import annotations

import os
import threading
import uuid

BLOCK_BYTES = 4096
"""Bytes drawn from os.urandom at a time: 256 ids."""

_UUID_BYTES = 16
_VERSION_AND_VARIANT = (0xF000 << 64) | (0xC000 << 48)
"""The bits RFC 9562 fixes in a version-4 UUID: the version nibble and the variant's two bits."""
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


class RandomUuids:
    """Version-4 UUIDs sliced from blocks of `os.urandom` bytes; safe to use from any thread.

    Bytes are never reused: each id takes the next 16 bytes of the block, and a forked child
    starts from a fresh block (it must not hand out the ids its parent will)."""

    def __init__(self, block_bytes: int = BLOCK_BYTES) -> None:
        if block_bytes <= 0 or block_bytes % _UUID_BYTES:
            raise ValueError("block_bytes must be a positive multiple of 16")
        self._block_bytes = block_bytes
        self._lock = threading.Lock()
        self._block = b""
        self._offset = 0

    def discard(self) -> None:
        """Forget the bytes drawn so far: the next id starts a fresh block."""
        with self._lock:
            self._block = b""
            self._offset = 0

    def next(self) -> uuid.UUID:
        """A new random UUID, version 4 (RFC 9562: version and variant bits set)."""
        with self._lock:
            offset = self._offset
            if offset >= len(self._block):
                self._block = os.urandom(self._block_bytes)
                offset = 0
            self._offset = offset + _UUID_BYTES
            raw = self._block[offset : offset + _UUID_BYTES]
        # What `uuid.UUID(bytes=raw, version=4)` makes, without its second conversion.
        return uuid.UUID(int=int.from_bytes(raw) & ~_VERSION_AND_VARIANT | _VERSION_4)


_PROCESS_UUIDS = RandomUuids()
# A child sharing its parent's unread bytes would repeat the parent's next ids.
os.register_at_fork(after_in_child=_PROCESS_UUIDS.discard)


def random_uuid() -> uuid.UUID:
    """A new unpredictable version-4 UUID from this process's CSPRNG-fed source."""
    return _PROCESS_UUIDS.next()
