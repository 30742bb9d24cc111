"""Log lines a machine can read: every record is one strict logfmt line (or one JSON object),
values from arguments are whole values whatever they hold, free text goes to `msg` and a
traceback stays on its line."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from api.http.log_format import JsonFormatter, LogfmtFormatter, rfc3339
from api.settings.config import Settings, SettingsError
from tests.support.logfmt import parse_logfmt


def _record(
    msg: str, *args: object, name: str = "api.test", exc: bool = False
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError('bad "input" = here')
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)
    record.created = 1796649206.552  # 2026-12-07T13:13:26.552Z
    return record


def _both(record: logging.LogRecord) -> tuple[dict[str, str], dict[str, object]]:
    return parse_logfmt(LogfmtFormatter().format(record)), json.loads(
        JsonFormatter().format(record)
    )


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1796649206.552) == "2026-12-07T13:13:26.552Z"
    assert rfc3339(1796649206.0) == "2026-12-07T13:13:26.000Z"


def test_an_argument_with_spaces_quotes_and_equals_is_one_value() -> None:
    reason = "ConnectionError: Error 111 connecting to 'h:6379'. a=b \"quoted\""
    record = _record("event=health_check_failed part=%s reason=%s retries=%d", "redis", reason, 3)
    logfmt, as_json = _both(record)
    expected = {"event": "health_check_failed", "part": "redis", "reason": reason, "retries": "3"}
    assert logfmt == {
        "ts": "2026-12-07T13:13:26.552Z",
        "level": "WARNING",
        "logger": "api.test",
        **expected,
    }
    assert as_json == logfmt


def test_repr_arguments_and_literal_words() -> None:
    logfmt, _ = _both(_record("event=feed_task_failed task=%s (restarting)", "pump"))
    assert logfmt["task"] == "pump"
    assert logfmt["msg"] == "(restarting)"
    logfmt, _ = _both(_record("event=writer_died error=%r", OSError("disk full")))
    assert logfmt["error"] == "OSError('disk full')"


def test_an_argument_made_of_pairs_gives_its_fields() -> None:
    logfmt, _ = _both(
        _record("event=connections_refused reason=max_connections %s", "http=6 websocket=1")
    )
    assert (logfmt["http"], logfmt["websocket"]) == ("6", "1")


def test_free_text_lines_go_to_msg() -> None:
    logfmt, as_json = _both(
        _record(
            "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
            "http",
            "127.0.0.1",
            8000,
            name="uvicorn.error",
        )
    )
    assert logfmt["msg"] == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
    assert "event" not in logfmt
    assert as_json["logger"] == "uvicorn.error"


def test_a_message_built_without_arguments_keeps_values_with_spaces_whole() -> None:
    logfmt, _ = _both(_record("event=outage part=store error=the disk is full count=2"))
    assert logfmt["error"] == "the disk is full"
    assert logfmt["count"] == "2"


def test_a_traceback_stays_on_its_line() -> None:
    line = LogfmtFormatter().format(_record("event=unexpected_error path=%s", "order", exc=True))
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["exc"].startswith("Traceback (most recent call last):\n")
    assert 'ValueError: bad "input" = here' in fields["exc"]
    assert json.loads(JsonFormatter().format(_record("x", exc=True)))["exc"] == fields["exc"]


def test_fields_named_like_the_head_do_not_overwrite_it() -> None:
    logfmt, _ = _both(_record("event=odd level=%s ts=%s", "x", "y"))
    assert logfmt["level"] == "WARNING"
    assert (logfmt["field_level"], logfmt["field_ts"]) == ("x", "y")


def test_log_format_and_shutdown_grace_are_read_and_checked_by_name() -> None:
    assert Settings.from_env({}).log_format == "logfmt"
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.from_env({}).shutdown_grace == 5.0
    assert Settings.from_env({"SHUTDOWN_GRACE": "0.5"}).shutdown_grace == 0.5
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(SettingsError, match="SHUTDOWN_GRACE"):
            Settings.from_env({"SHUTDOWN_GRACE": bad})
