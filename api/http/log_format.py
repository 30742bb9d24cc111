"""Log records as lines a machine can read: logfmt (the default) or one JSON object per line.

Every line starts with `ts` (RFC 3339, UTC, milliseconds), `level` and `logger`. Our own
messages are written as `event=name key=%s ...`: the template tells which text each argument
became, so a value with spaces, quotes or `=` is quoted as a whole (logfmt) or becomes one JSON
string, rather than being split at its spaces. Text that is not a `key=value` field (uvicorn's
own lines, a library's message, a literal word in a template) goes to `msg`; a traceback to
`exc`, escaped onto the same line, so every line of the log is one record.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache

import orjson

Fields = list[tuple[str, str]]

_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)=(.*)", re.DOTALL)
_SPECIFIER = re.compile(
    r"%(\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])"
)
_NEEDS_QUOTES = re.compile(r'[^\x21-\x7e]|["=\\]')
_HEAD = ("ts", "level", "logger")


def rfc3339(created: float) -> str:
    """`created` (seconds since the epoch) as `2026-12-07T13:13:26.552Z`."""
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def _from_text(text: str, fields: Fields, words: list[str]) -> None:
    """Fields from formatted text: each `key=value` word starts a field, and a word that is not
    one continues the field before it (a value that had spaces); words before any field are
    free text."""
    for word in text.split(" "):
        if not word:
            continue
        match = _FIELD.fullmatch(word)
        if match is not None:
            fields.append((match.group(1), match.group(2)))
        elif fields:
            key, value = fields[-1]
            fields[-1] = (key, f"{value} {word}")
        else:
            words.append(word)


@dataclass(frozen=True, slots=True)
class _Piece:
    """One space-separated token of a template: a field's key (None for free text), the
    token's own format string and how many arguments it takes."""

    key: str | None
    token: str
    count: int
    formatted: bool


@lru_cache(maxsize=1024)
def _pieces(template: str) -> tuple[_Piece, ...] | None:
    """A template split once (a process logs a few hundred templates, many times each); None
    when it does not split cleanly (named or `*` specifiers)."""
    pieces = []
    for token in template.split(" "):
        if not token:
            continue
        specifiers = _SPECIFIER.findall(token)
        if any(
            name or width == "*" or precision == "*" for name, width, precision, _ in specifiers
        ):
            return None
        count = sum(1 for *_, kind in specifiers if kind != "%")
        field = _FIELD.fullmatch(token)
        key = field.group(1) if field is not None and "%" not in field.group(1) else None
        pieces.append(_Piece(key, token, count, bool(specifiers)))
    return tuple(pieces)


def _from_template(template: str, args: tuple[object, ...]) -> tuple[Fields, list[str]] | None:
    """Fields from a `key=%s` template and its arguments, each argument's text the whole value
    of its field; None when the template does not split cleanly, or its specifiers do not
    match the arguments, for the caller to read the formatted text instead."""
    pieces = _pieces(template)
    if pieces is None or sum(piece.count for piece in pieces) != len(args):
        return None
    fields: Fields = []
    words: list[str] = []
    used = 0
    for piece in pieces:
        text = piece.token % args[used : used + piece.count] if piece.formatted else piece.token
        used += piece.count
        if piece.key is not None:
            fields.append((piece.key, text[len(piece.key) + 1 :]))
        elif piece.count:
            _from_text(text, fields, words)  # an argument that is itself `k=v` pairs
        else:
            words.append(text)
    return fields, words


def message_fields(record: logging.LogRecord) -> tuple[Fields, str]:
    """The record's `key=value` fields, in order, and its free text."""
    template, args = record.msg, record.args
    # Without arguments the template is the text itself (an f-string's, say): read as text.
    if (
        isinstance(template, str)
        and template.startswith("event=")
        and isinstance(args, tuple)
        and args
    ):
        try:
            parsed = _from_template(template, args)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            fields, words = parsed
            return fields, " ".join(words)
    text = record.getMessage()
    if not text.startswith("event="):
        return [], text
    fields, words = [], []
    _from_text(text, fields, words)
    return fields, " ".join(words)


def _record_fields(formatter: logging.Formatter, record: logging.LogRecord) -> Fields:
    fields, text = message_fields(record)
    head = [
        ("ts", rfc3339(record.created)),
        ("level", record.levelname),
        ("logger", record.name),
    ]
    tail: Fields = []
    if text:
        tail.append(("msg", text))
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    if record.exc_text:
        tail.append(("exc", record.exc_text))
    if record.stack_info:
        tail.append(("stack", formatter.formatStack(record.stack_info)))
    # A message field named like a head field would make the line ambiguous: it gets a prefix.
    own = [(f"field_{key}" if key in _HEAD else key, value) for key, value in fields]
    return head + own + tail


def logfmt_value(value: str) -> str:
    """`value` bare when it is one word of printable ASCII without quotes, `=` or backslashes,
    else double-quoted with JSON's escapes (so a newline stays on the line as `\\n`)."""
    if value and _NEEDS_QUOTES.search(value) is None:
        return value
    return orjson.dumps(value).decode()


class LogfmtFormatter(logging.Formatter):
    """One logfmt line per record: `ts=... level=... logger=... event=... key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one logfmt line."""
        return " ".join(f"{k}={logfmt_value(v)}" for k, v in _record_fields(self, record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts`, `level`, `logger`, then the message's fields (`event`
    first for our own lines), `msg` for free text and `exc` for a traceback; values are
    strings, as the message wrote them."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON object on one line."""
        return orjson.dumps(dict(_record_fields(self, record))).decode()


LOG_FORMATS = {"logfmt": LogfmtFormatter, "json": JsonFormatter}
"""LOG_FORMAT's values and their formatters."""
