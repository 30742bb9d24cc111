"""One setting's value at a time: each parser takes the variable's name and its raw text (None:
unset or empty) and returns the value, or raises `SettingsError` naming the variable and the form
it accepts (`PORT must be a port number, got 'abc'`). `api.config` reads the environment and calls
these; nothing here reads it.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping

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


def seconds(name: str, raw: str | None, default: float) -> float:
    """A number of seconds, 0 or more."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise SettingsError(f"{name} must be a number of seconds, 0 or more, got {raw!r}")
    return value


def deadline(name: str, raw: str | None, default: float) -> float:
    """A deadline: seconds, more than 0."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        raise SettingsError(f"{name} must be a number of seconds, more than 0, got {raw!r}")
    return value
