"""Pooled connections that PostgreSQL ended while they sat idle in the pool.

A PostgreSQL that restarts (or `pg_terminate_backend`) sends each session a FATAL error
("terminating connection due to administrator command") and then closes it. asyncpg reads the
error of an idle connection as a protocol fault and marks the connection busy consuming it;
until it also reads the end of the stream, a moment later, the pool still hands the connection
out, and its first operation is refused with `InternalClientError: cannot switch to state 15;
another operation (2) is in progress`. That is the "another operation is in progress" seen
during a PostgreSQL restart: the pool's race, not two users of one connection.

asyncpg refuses such an operation before sending anything, and the server rolled back whatever
that session had open when it ended it, so the operation can run again, once, on a fresh
connection: the first requests after a restart succeed instead of failing `UNAVAILABLE`.
"""

from __future__ import annotations

import asyncpg

_NOT_STARTED = "cannot switch to state"


def never_started(error: BaseException) -> bool:
    """Whether asyncpg refused to start an operation because its connection was still busy with
    something the server sent unasked (the session was ended under it): nothing was sent."""
    return isinstance(error, asyncpg.InternalClientError) and str(error).startswith(_NOT_STARTED)


class EndedConnection(Exception):
    """An operation refused by a connection the server had already ended (`never_started`),
    raised so that the caller runs it again on a fresh connection."""


class ConnectionEnded(ConnectionError):
    """PostgreSQL ended the connection (a restart, or its session terminated): what an operation
    refused by such a connection means, said so (asyncpg's own words name a busy connection)."""


def explained(error: BaseException) -> BaseException:
    """`error`, or for an operation refused by a connection the server had ended, an error that
    says so (with asyncpg's as its cause)."""
    if not never_started(error):
        return error
    ended = ConnectionEnded(
        "PostgreSQL ended the connection (it restarted, or the session was terminated)"
    )
    ended.__cause__ = error
    return ended
