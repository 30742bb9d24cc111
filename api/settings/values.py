"""One setting's value at a time: each parser takes the variable's name and its raw text (None:
unset or empty) and returns the value, or raises `SettingsError` naming the variable and the form
it accepts (`PORT must be a port number, got 'abc'`). `api.settings.config` reads the environment
and calls these; nothing here reads it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import string
from collections.abc import Callable, Mapping
from pathlib import Path

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash (32 bytes) can be brute-forced from one token (RFC 7518)."""

SECRET_HINT = "e.g. `openssl rand -hex 32`"


class SettingsError(ValueError):
    """A setting the service cannot run with; the message names it and says what to do."""


Getter = Callable[[str], str | None]
"""A variable's raw text by name, stripped; None when unset or empty."""


def getter(env: Mapping[str, str]) -> Getter:
    """How `env` is read: unset and empty (or blank) mean the same, the default."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    return get


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (so only local users reach it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def whole(raw: str) -> int | None:
    """A whole number written in ASCII digits, or None."""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def whole_at_least_1(raw: str) -> int | None:
    """A whole number, at least 1, or None."""
    value = whole(raw)
    return value if value is not None and value >= 1 else None


def port_number(raw: str) -> int | None:
    """A port number, 0 to 65535 (0: any free port), or None."""
    value = whole(raw)
    return value if value is not None and 0 <= value <= 65_535 else None


def listening_port(raw: str) -> int | None:
    """A port number one can be told to connect to, 1 to 65535, or None."""
    value = port_number(raw)
    return value if value else None


def parsed(
    name: str,
    raw: str | None,
    default: int,
    parse: Callable[[str], int | None],
    form: str,
) -> int:
    """`parse(raw)`, refused as not `form` when it gives None; `default` when unset."""
    if raw is None:
        return default
    value = parse(raw)
    if value is None:
        raise SettingsError(f"{name} must be {form}, got {raw!r}")
    return value


def choice(
    name: str,
    raw: str | None,
    default: str,
    accepted: tuple[str, ...],
    normal: Callable[[str], str],
) -> str:
    """One of `accepted`, compared after `normal` (the case the names are written in)."""
    if raw is None:
        return default
    if normal(raw) not in accepted:
        raise SettingsError(f"{name} must be one of {', '.join(accepted)}, got {raw!r}")
    return normal(raw)


def flag(name: str, raw: str | None, default: bool) -> bool:
    """true or false, in the spellings people use (1/0, yes/no, on/off)."""
    if raw is None:
        return default
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def url(name: str, raw: str | None, schemes: tuple[str, ...]) -> str | None:
    """A URL starting with one of `schemes`."""
    if raw is not None and not raw.lower().startswith(schemes):
        # Only the scheme is echoed: the rest of a URL may hold a password.
        scheme, sep, _ = raw.partition("://")
        shown = repr(f"{scheme}://...") if sep else "a value with no scheme"
        starts = ", ".join(schemes)
        raise SettingsError(f"{name} must be a URL starting with {starts}, got {shown}")
    return raw


def provider_url(name: str, raw: str | None) -> str | None:
    """An identity provider's URL: https only, except on a loopback host (a provider started
    beside the service)."""
    if raw is None:
        return None
    scheme, sep, rest = raw.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if sep and scheme.lower() == "https" and host:
        return raw
    if sep and scheme.lower() == "http" and host and is_loopback(host):
        return raw
    raise SettingsError(
        f"{name} must be an https:// URL (http:// only on a loopback host), got {raw!r}"
    )


def claim_path(name: str, raw: str | None, default: str) -> str:
    """A token claim's name, a dotted path to one, or a whole namespaced (URL) claim."""
    if raw is None:
        return default
    if raw.startswith("http") or all(raw.split(".")):
        return raw
    raise SettingsError(
        f"{name} must be a claim name or a dotted path to one (e.g. realm_access.roles), "
        f"got {raw!r}"
    )


def long_secret(name: str, value: str | None) -> str | None:
    """A secret of at least MIN_SECRET_BYTES bytes (bytes, not characters)."""
    if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{name} is {len(value.encode())} bytes; it must be at least "
            f"{MIN_SECRET_BYTES} ({SECRET_HINT})."
        )
    return value


def seconds(name: str, raw: str | None, default: float, *, above_zero: bool = False) -> float:
    """A number of seconds: 0 or more, or with `above_zero` (a deadline) more than 0."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan  # refused below, as are "nan" and "inf" themselves
    above_floor = value > 0 if above_zero else value >= 0
    if not (above_floor and value < math.inf):
        least = "more than 0" if above_zero else "0 or more"
        raise SettingsError(f"{name} must be a number of seconds, {least}, got {raw!r}")
    return value


def deadline(name: str, raw: str | None, default: float) -> float:
    """A deadline: seconds, more than 0."""
    return seconds(name, raw, default, above_zero=True)


_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
"""One dot-separated label of a host name (RFC 1123; `_` too, as container names have it)."""

TOPIC_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._-")
MAX_TOPIC_LENGTH = 249
"""Kafka's own limits on a topic's name: a longer one, or another character, is refused by the
broker only once the relay runs (and retries for ever)."""


def topic_name(name: str, raw: str | None, default: str) -> str:
    """A Kafka topic's name."""
    if raw is None:
        return default
    if len(raw) <= MAX_TOPIC_LENGTH and raw not in (".", "..") and set(raw) <= TOPIC_CHARACTERS:
        return raw
    raise SettingsError(
        f"{name} must be a Kafka topic name (at most {MAX_TOPIC_LENGTH} letters, digits, '.', "
        f"'_' or '-'), got {raw!r}"
    )


def _host_and_port(server: str) -> tuple[str, str | None]:
    if server.endswith("]"):  # an IPv6 address without a port
        return server, None
    host, sep, port = server.rpartition(":")
    return (host, port) if sep else (server, None)


def servers(name: str, raw: str) -> str:
    """A comma-separated list of host[:port] (a broker's default port when none is given)."""
    for server in raw.split(","):
        host, port = _host_and_port(server.strip())
        bad_port = port is not None and listening_port(port) is None
        if not host or any(c.isspace() for c in host) or bad_port:
            raise SettingsError(
                f"{name} must be host:port pairs separated by commas (e.g. kafka:9092), got {raw!r}"
            )
    return raw


def host_name(name: str, raw: str | None, default: str) -> str:
    """An address to listen on: an IP address (IPv6 with or without brackets) or a host name."""
    if raw is None:
        return default
    try:
        ipaddress.ip_address(raw.strip("[]"))
        return raw
    except ValueError:
        pass
    labels = raw.removesuffix(".").split(".")
    if len(raw) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels):
        return raw
    raise SettingsError(f"{name} must be an IP address or a host name, got {raw!r}")


def existing_file(name: str, raw: str | None) -> str | None:
    """The path of a file that is there (read later, when a connection is made)."""
    if raw is None or Path(raw).is_file():
        return raw
    raise SettingsError(f"{name} must be the path of a file, got {raw!r} (no file there)")
