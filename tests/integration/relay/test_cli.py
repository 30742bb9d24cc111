"""`orders relay kafka` refuses what it cannot run, with a message saying what to set."""

from __future__ import annotations

import pytest

from api.wiring import cli


def run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> int:
    for name in ("ESDB_URL", "DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cli.main(["relay", "kafka"])


def test_without_bootstrap_servers_it_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}) == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def test_on_the_embedded_store_it_points_at_orders_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}) == 2
    assert "orders serve" in capsys.readouterr().err


def test_a_bad_kafka_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_IDEMPOTENT": "perhaps"}
    assert run(monkeypatch, env) == 2
    assert "KAFKA_IDEMPOTENT" in capsys.readouterr().err


def test_serve_refuses_a_bad_kafka_setting_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ESDB_URL", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")  # without the SASL credentials
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    assert cli.main(["serve"]) == 2
    assert "KAFKA_SASL_USERNAME" in capsys.readouterr().err
