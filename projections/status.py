"""Projection statuses: each worker records its own in Redis; the `projections` query reads them."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

from eventstore.group_worker import RunnerState
from projections.keys import ProjectionKeys
from projections.views import ProjectionStatus

STALE_AFTER = 10.0
"""A worker silent this long is reported as stopped (it records every second or so)."""
LOST = f"no worker reported for {STALE_AFTER:g} s: lost"
"""The `lastError` of a projection whose workers all stopped reporting without stopping."""

_SEVERITY = {
    RunnerState.ERROR: 3,
    RunnerState.CATCHING_UP: 2,
    RunnerState.RUNNING: 1,
    RunnerState.STOPPED: 0,
}


def _state(raw: object) -> RunnerState:
    # A record written by a newer worker may name a state this one does not know.
    try:
        return RunnerState(str(raw))
    except ValueError:
        return RunnerState.STOPPED


async def record_status(
    redis: Redis, keys: ProjectionKeys, worker: str, status: ProjectionStatus
) -> None:
    """Record one worker's status (with the time, so a dead worker ages out)."""
    payload = {
        "name": status.name,
        "position": status.position,
        "lag": status.lag,
        "state": status.state.value,
        "parked": status.parked,
        "lastError": status.last_error,
        "at": time.time(),
    }
    await redis.hset(keys.workers, worker, orjson.dumps(payload))


async def forget_worker(redis: Redis, keys: ProjectionKeys, worker: str) -> None:
    """Remove a worker's record (it stopped cleanly)."""
    await redis.hdel(keys.workers, worker)


def _merge(name: str, records: list[dict[str, Any]], now: float) -> ProjectionStatus:
    live = [r for r in records if now - float(r["at"]) <= STALE_AFTER]
    if not live:
        latest = max(records, key=lambda r: float(r["at"]))
        return ProjectionStatus(
            name=name,
            position=latest["position"],
            lag=int(latest["lag"]),
            state=RunnerState.STOPPED,
            parked=int(latest["parked"]),
            # Its workers did not stop cleanly (that forgets their records): they were lost.
            last_error=latest["lastError"] or LOST,
        )
    errors = sorted((r for r in live if r["lastError"]), key=lambda r: float(r["at"]))
    positions = [int(r["position"]) for r in live if r["position"] is not None]
    return ProjectionStatus(
        name=name,
        position=max(positions) if positions else None,
        lag=min(int(r["lag"]) for r in live),
        state=max((_state(r["state"]) for r in live), key=_SEVERITY.__getitem__),
        parked=max(int(r["parked"]) for r in live),
        last_error=errors[-1]["lastError"] if errors else None,
    )


KNOWN_PROJECTIONS = ("orders",)
"""Projections listed even before any worker has recorded a status (then as "stopped")."""


async def projection_statuses(redis: Redis, keys: ProjectionKeys) -> list[ProjectionStatus]:
    """One status per projection, merged over its workers (the most severe state wins). A known
    projection no worker has reported on yet is listed as stopped, with no position."""
    raw = await redis.hgetall(keys.workers)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for value in raw.values():
        record: dict[str, Any] = orjson.loads(value)
        by_name.setdefault(str(record["name"]), []).append(record)
    now = time.time()
    never_reported = [
        ProjectionStatus(
            name=name, position=None, lag=0, state=RunnerState.STOPPED, parked=0, last_error=None
        )
        for name in KNOWN_PROJECTIONS
        if name not in by_name
    ]
    merged = [_merge(name, records, now) for name, records in by_name.items()]
    return sorted(never_reported + merged, key=lambda status: status.name)


def views_behind(statuses: list[ProjectionStatus]) -> str | None:
    """Why the views are known to be behind the log, or None: a projection whose workers fail
    (state error: the log or Redis cannot be read, or a crash being retried), or whose workers
    were lost (their last report is older than STALE_AFTER and none stopped cleanly). A miss
    in such views may be an order that exists."""
    for status in statuses:
        if status.state is RunnerState.ERROR:
            return f"projection {status.name}: {status.last_error or 'error'}"
        if status.state is RunnerState.STOPPED and status.last_error is not None:
            return f"projection {status.name}: {status.last_error}"
    return None
