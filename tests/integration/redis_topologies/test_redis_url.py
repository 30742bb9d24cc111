"""REDIS_URL's Sentinel and Cluster forms: one that cannot name a master or a cluster stops
`orders serve` with one line naming the setting (exit 2, no traceback, no password echoed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.test_settings import _serve

BAD_URLS = [
    ("redis+sentinel://h1:26379,h2:26379", "needs the master's service name"),
    ("redis+sentinel://:hunter2@h1:26379/mymaster/zero", "database that is not a number"),
    ("redis+cluster://:hunter2@h1:70x0,h2:7001", "port that is not a number: 'h1:70x0'"),
    ("redis+cluster://:hunter2@", "a node without a host"),
]


@pytest.mark.parametrize(("url", "says"), BAD_URLS, ids=[url for url, _ in BAD_URLS])
def test_a_url_naming_no_master_or_cluster_stops_serve(url: str, says: str, tmp_path: Path) -> None:
    done = _serve({"HOST": "127.0.0.1", "REDIS_URL": url}, tmp_path)
    assert done.returncode == 2, done
    assert "REDIS_URL" in done.stderr, done.stderr
    assert says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr
