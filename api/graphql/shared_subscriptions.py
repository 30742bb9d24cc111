"""One execution per distinct live query, shared by every websocket that subscribed to it.

A thousand dashboards subscribed to `dashboardStats`, or to `ordersUpdated` with the same
filters, would each run the same GraphQL execution for every change: about two thirds of the
server's work per pushed message. Subscribers with the same document, operation name, variables
and the same caller rights join one shared stream instead; each still gets its own messages, sent
on its own websocket.

Only the fields below are shared: their results depend on nothing but the arguments and the
caller's rights, and a subscriber joining late gets what it would have got on its own (changes
from now on; for `dashboardStats` the current stats first, which the shared stream keeps).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.utilities import get_operation_ast
from strawberry.types.execution import ExecutionResult

from api.http.auth import Principal
from api.http.ws_fanout import Written, frame_head
from metrics.instruments import WS_MESSAGES_PUSHED

logger = logging.getLogger(__name__)

SHARED_FIELDS: Final = frozenset({"ordersUpdated", "dashboardStats"})
"""Root subscription fields whose results depend only on their arguments and the caller's rights;
`dashboardStats` starts with the current stats, which the shared stream keeps for late joiners."""
REPLAYS_LAST: Final = frozenset({"dashboardStats"})
MEMBER_QUEUE = 256
"""Results a member may fall behind by (beyond what its socket's write buffer holds) before it
is dropped (its socket is not reading)."""

END: Final = None

MAX_CACHED_QUERY = 8192
"""Only query texts up to this many characters are remembered by `shared_field`; longer ones
are looked at each time, so the cache holds at most a few megabytes of text."""
MAX_TOKENS = 4000
"""Tokens `shared_field` parses at most; a longer document is not shared (the schema's own
limits then refuse it)."""


def shared_field(query: str, operation_name: str | None) -> str | None:
    """The root field when the operation is a subscription to exactly one shared field."""
    if not any(name in query for name in SHARED_FIELDS):
        return None
    if len(query) > MAX_CACHED_QUERY:
        return _shared_field(query, operation_name)
    return _cached_shared_field(query, operation_name)


@functools.lru_cache(maxsize=256)
def _cached_shared_field(query: str, operation_name: str | None) -> str | None:
    return _shared_field(query, operation_name)


def _shared_field(query: str, operation_name: str | None) -> str | None:
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError:
        return None
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return None
    if operation.operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or getattr(selections[0], "directives", None):
        return None
    name = getattr(getattr(selections[0], "name", None), "value", None)
    return name if name in SHARED_FIELDS else None


def rights_of(principal: Principal | None) -> tuple[str, str]:
    """What the results depend on about the caller: staff see alike; a customer only itself."""
    if principal is None:
        return ("anonymous", "")
    return (principal.role.value, "" if principal.is_staff else principal.sub)


@dataclass(eq=False, slots=True)
class SharedResult:
    """One result of a shared execution, with its graphql-transport-ws `next` message encoded
    once for every member: the messages differ only by operation id, so the payload is encoded
    by the first member to send it and only the id is spliced in for each (members that use the
    same id, as many clients do, share the whole message, and its websocket frame)."""

    result: ExecutionResult
    _payload: bytes | None = None
    _message: tuple[str, bytes] | None = None
    _frame: tuple[str, bytes, int] | None = None

    def next_message(
        self, operation_id: str, encode_payload: Callable[[ExecutionResult], bytes]
    ) -> bytes:
        """The encoded `next` message for `operation_id`."""
        message = self._message
        if message is not None and message[0] == operation_id:
            return message[1]
        if self._payload is None:
            self._payload = encode_payload(self.result)
        encoded = b'{"id":%b,"type":"next","payload":%b}' % (
            orjson.dumps(operation_id),
            self._payload,
        )
        self._message = (operation_id, encoded)
        return encoded

    def next_frame(
        self, operation_id: str, encode_payload: Callable[[ExecutionResult], bytes]
    ) -> tuple[str, int]:
        """The `next` message for `operation_id` as text, and its size in bytes."""
        encoded = self.next_message(operation_id, encode_payload)
        return encoded.decode(), len(encoded)

    def websocket_frame(
        self, operation_id: str, encode_payload: Callable[[ExecutionResult], bytes]
    ) -> tuple[bytes, int]:
        """The `next` message for `operation_id` as a whole server-to-client websocket text
        frame (`api.http.ws_fanout`), and the message's size in bytes (without the frame's head)."""
        frame = self._frame
        if frame is not None and frame[0] == operation_id:
            return frame[1], frame[2]
        if self._payload is None:
            self._payload = encode_payload(self.result)
        # Clients that number their operations share one frame; those that give each a UUID
        # (the graphql-ws client does) get theirs in one join.
        head = b'{"id":%b,"type":"next","payload":' % orjson.dumps(operation_id)
        size = len(head) + len(self._payload) + 1
        whole = b"".join((frame_head(size), head, self._payload, b"}"))
        self._frame = (operation_id, whole, size)
        return whole, size


Key = tuple[bytes, tuple[str, str]]
"""A digest of the operation (document, name, variables) and the caller's rights."""

Direct = Callable[[SharedResult], Written]
"""Sends a result to a member at once, without waking its task; HELD when it cannot now (the
socket's buffer is full, or the result needs the task: an error, an answer over the limit),
CLOSED when the member's operation or socket is over (nothing to send)."""

SENT: Final = 1
"""`Member.deliver`: sent at once."""
HELD: Final = 0
"""`Member.deliver`: waiting for the member's task."""
BEHIND: Final = -1
"""`Member.deliver`: the member is MEMBER_QUEUE results behind; drop it."""


class Member:
    """One subscriber of a shared stream. A result is sent at once by `direct` when nothing of
    the member's waits before it; else it waits in the member's inbox for its task
    (`next()`), and a member that falls MEMBER_QUEUE results behind is dropped: its
    subscription completes, and the others are not held back."""

    __slots__ = ("_busy", "_direct", "_inbox", "_waiter", "stream")

    def __init__(self, direct: Direct | None = None) -> None:
        self._direct = direct
        self.stream: _Stream | None = None  # the stream joined, until it is left
        self._inbox: collections.deque[SharedResult | None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._busy = False  # the task holds a result it has not sent yet

    def deliver(self, shared: SharedResult) -> int:
        """Hand `shared` over: SENT, HELD, or BEHIND (drop the member)."""
        inbox = self._inbox
        if not inbox and not self._busy and self._direct is not None:
            written = self._direct(shared)
            if written is not Written.HELD:
                return SENT if written is Written.SENT else HELD
        if inbox is None:
            inbox = self._inbox = collections.deque()
        if len(inbox) >= MEMBER_QUEUE:
            return BEHIND
        inbox.append(shared)
        self._wake()
        return HELD

    def end(self) -> None:
        """No more results: the member's task finishes what its inbox holds, then ends."""
        if self._inbox is None:
            self._inbox = collections.deque()
        self._inbox.append(END)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> SharedResult | None:
        """The next result `direct` did not send, in order; END when the stream ended for this
        member. Results delivered meanwhile wait behind the one returned until the next call."""
        self._busy = False
        while not self._inbox:
            self._inbox = None  # an empty deque is 600 bytes; most members never need one
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        shared = self._inbox.popleft()
        self._busy = shared is not END
        return shared


@dataclass(eq=False, slots=True)
class _Stream:
    """One running execution and the members it feeds."""

    key: Key
    replay_last: bool
    members: set[Member] = field(default_factory=set)
    last: SharedResult | None = None
    task: asyncio.Task[None] | None = None


class SharedSubscriptions:
    """The process's shared live queries (one per view)."""

    def __init__(self) -> None:
        self._streams: dict[Key, _Stream] = {}

    @staticmethod
    def key(
        query: str,
        operation_name: str | None,
        variables: Mapping[str, object] | None,
        principal: Principal | None,
    ) -> Key:
        """Subscribers with equal keys get equal results. The operation is kept as a digest:
        a key lives as long as its stream, and must not hold a subscriber's variables (which
        may be large) or document."""
        digest = hashlib.blake2b(digest_size=32)
        digest.update(orjson.dumps([query, operation_name]))
        digest.update(orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS))
        return (digest.digest(), rights_of(principal))

    def join(
        self,
        key: Key,
        field_name: str,
        make_start: Callable[[], Callable[[], AsyncGenerator[ExecutionResult, None]]],
        member: Member,
    ) -> None:
        """`member` receives the shared stream's results until it `leave`s (its `next()` gives
        END when the stream ends). When nobody runs the execution yet, `make_start()` says how
        to begin it (made only then: what it holds lives as long as the stream)."""
        stream = self._streams.get(key)
        if stream is None:
            stream = _Stream(key=key, replay_last=field_name in REPLAYS_LAST)
            self._streams[key] = stream
            pump = self._pump(stream, make_start())
            stream.task = asyncio.create_task(pump, name="shared-stream")
        if stream.replay_last and stream.last is not None:
            member.deliver(stream.last)
        stream.members.add(member)
        member.stream = stream

    def leave(self, key: Key, member: Member) -> None:
        """`member` gets nothing more; the stream stops when it was the last."""
        stream, member.stream = member.stream, None
        if stream is None:
            return
        stream.members.discard(member)
        if not stream.members and self._streams.get(key) is stream:
            del self._streams[key]
            if stream.task is not None:
                stream.task.cancel()

    @staticmethod
    def _fan_out(stream: _Stream, shared: SharedResult) -> None:
        """One loop over the members, on the stream's task: most are sent to at once. (Letting
        the event loop run every few hundred members was tried: at 10,000 subscribers the
        pushes then fell seconds behind.)"""
        sent = 0
        for member in tuple(stream.members):
            outcome = member.deliver(shared)
            if outcome is SENT:
                sent += 1
            elif outcome is BEHIND:
                # A member that does not read must not hold the others back.
                stream.members.discard(member)
                member.end()
        if sent:
            WS_MESSAGES_PUSHED.inc(sent)

    async def _pump(
        self, stream: _Stream, start: Callable[[], AsyncGenerator[ExecutionResult, None]]
    ) -> None:
        try:
            async with contextlib.aclosing(start()) as results:
                async for result in results:
                    shared = SharedResult(result)
                    if stream.replay_last:
                        stream.last = shared
                    self._fan_out(stream, shared)
                    if result.errors and result.data is None:
                        break  # refused, or failed without data: the operation is over
        finally:
            if self._streams.get(stream.key) is stream:
                del self._streams[stream.key]
            for member in tuple(stream.members):
                member.end()
