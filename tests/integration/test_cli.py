"""The `orders` command line: its commands, and the refusals that need no server."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from api.wiring.cli import PROJECTIONS, build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def test_the_contract_commands_exist() -> None:
    assert {"serve", "project", "rebuild", "token", "demo", "schema"} <= _subcommands(
        build_parser()
    )


def test_command_options_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--no-projectors"]).no_projectors is True
    assert parser.parse_args(["project", "--workers", "3"]).workers == 3
    assert parser.parse_args(["rebuild", "orders"]).projection == "orders"
    demo = parser.parse_args(["demo"])
    assert (demo.url, demo.count) == (None, 200)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment: the embedded store under an empty DATA_DIR, a known secret."""
    for name in ("ESDB_URL", "DATABASE_URL", "REDIS_URL", "HEALTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JWT_SECRET", "x" * 32)
    return tmp_path / "data"


def test_project_on_the_embedded_store_says_why_and_exits_2(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["project"]) == 2
    err = capsys.readouterr().err
    assert "embedded event store" in err
    assert "ESDB_URL" in err
    assert not env.exists()  # nothing was opened


def test_rebuild_of_an_unknown_projection_lists_the_known_ones(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rebuild", "customers"]) == 2
    err = capsys.readouterr().err
    assert "unknown projection 'customers'" in err
    assert f"known: {', '.join(PROJECTIONS)}" in err


def test_rebuild_without_an_event_store_in_data_dir_exits_2(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rebuild", "orders"]) == 2
    assert "no event store at" in capsys.readouterr().err
    assert not env.exists()  # it did not create an empty store to rebuild from
