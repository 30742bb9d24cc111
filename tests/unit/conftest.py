"""tests/unit does no I/O: a test here that opens a socket, an SQLite database or a subprocess
fails at once. Such a test belongs in tests/integration."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from typing import NoReturn

import pytest


def _refuse(*_: object, **__: object) -> NoReturn:
    raise AssertionError("a unit test does no I/O: move it to tests/integration")


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse network connections, SQLite and subprocesses for the test's duration."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "bind", _refuse)
    monkeypatch.setattr(sqlite3, "connect", _refuse)
    monkeypatch.setattr(subprocess, "Popen", _refuse)
