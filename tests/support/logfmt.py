"""A strict logfmt reader for the service's log: tests parse every line a real run writes.

A line is `key=value` pairs separated by single spaces. A key is a word (`[A-Za-z_][\\w.-]*`); a
value is either bare (one or more printable ASCII characters other than `"`, `=` and `\\`) or
double-quoted with JSON's escapes. Anything else, or a key given twice, is an error.
"""

from __future__ import annotations

import json
import re

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_BARE = re.compile(r"[\x21-\x7e]+")
_QUOTED = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"')


class LogfmtError(ValueError):
    """A line that is not strict logfmt; the message quotes it and says where it breaks."""


def parse_logfmt(line: str) -> dict[str, str]:
    """The pairs of one logfmt line, in order."""
    pairs: dict[str, str] = {}
    pos = 0

    def fail(why: str) -> LogfmtError:
        return LogfmtError(f"{why} at column {pos}: {line!r}")

    while True:
        key = _KEY.match(line, pos)
        if key is None:
            raise fail("expected a key")
        pos = key.end()
        if not line.startswith("=", pos):
            raise fail(f"expected '=' after {key.group()!r}")
        pos += 1
        quoted = _QUOTED.match(line, pos)
        if quoted is not None:
            value = json.loads(quoted.group())
            pos = quoted.end()
        else:
            bare = _BARE.match(line, pos)
            if bare is None:
                raise fail("expected a value")
            value = bare.group()
            if any(c in value for c in '"=\\'):
                raise fail(f"unquoted value {value!r} holds a quote, '=' or backslash")
            pos = bare.end()
        if key.group() in pairs:
            raise fail(f"key {key.group()!r} given twice")
        pairs[key.group()] = value
        if pos == len(line):
            return pairs
        if line[pos] != " ":
            raise fail("expected a space between pairs")
        pos += 1
