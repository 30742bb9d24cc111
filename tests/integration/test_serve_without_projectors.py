"""`orders serve --no-projectors` on the embedded store: the command path serves, while /healthz
says the views are unavailable for as long as it runs (nothing in the process fills them), which is
why a caller that only sends commands waits for the command path's parts instead of a 200."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

import httpx

from tests.e2e.gql import GraphQLClient, Orders, accepted, make_token, new_id
from tests.support.processes import ServerProcess


async def _place_and_check_health(url: str, secret: str) -> None:
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        gql = GraphQLClient(http, make_token(secret, sub="staff", role="staff"))
        accepted(await Orders(gql).place(new_id()))
        health = await http.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert (body["store"], body["writes"], body["views"]) == ("ok", "ok", "unavailable")


def test_commands_are_taken_while_the_views_stay_unavailable(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(32)
    server = ServerProcess(
        command=[sys.executable, "-m", "api", "serve", "--no-projectors"],
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "server.log",
        ready_parts=("store", "writes"),
    )
    with server:
        asyncio.run(_place_and_check_health(server.url, secret))
