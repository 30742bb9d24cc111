"""Reading the deployment files the way Docker Compose does, closely enough to check them: YAML with
compose's `!override` / `!reset` tags, `${VAR:-default}` interpolation, and a file layered over
another. Also the environment variables the service's code reads, taken from its source."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import uvicorn.config
import yaml

from api.http.limits import BudgetLimits, ConnectionLimits, QueryLimits, RequestLimits, env_name
from api.settings.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Override:
    """A value tagged `!override`: it replaces the base file's value instead of merging with it."""

    value: Any


class _ComposeLoader(yaml.SafeLoader):
    """A safe loader that understands compose's merge-control tags."""


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    return Override(None)  # `!reset` removes the base value: an override with nothing


_ComposeLoader.add_constructor("!override", _override)
_ComposeLoader.add_constructor("!reset", _reset)

# `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`.
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str) -> str:
    """`text` as compose sees it with no variable set: defaults used, required ones as `<NAME>`."""

    def value(match: re.Match[str]) -> str:
        op = match.group("op") or ""
        return match.group("arg") if op.endswith("-") else f"<{match.group('name')}>"

    return _VARIABLE.sub(value, text)


def _interpolated(value: Any) -> Any:
    if isinstance(value, str):
        return interpolate(value)
    if isinstance(value, dict):
        return {key: _interpolated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolated(item) for item in value]
    if isinstance(value, Override):
        return Override(_interpolated(value.value))
    return value


def load_compose(name: str) -> dict[str, Any]:
    """One compose file from the repository root, interpolated."""
    text = (REPO_ROOT / name).read_text()
    loaded = yaml.load(text, Loader=_ComposeLoader)
    assert isinstance(loaded, dict), f"{name} is not a mapping"
    return dict(_interpolated(loaded))


def merge(base: Any, layer: Any) -> Any:
    """`layer` over `base`: mappings merge key by key, `!override` replaces, the rest is replaced
    (compose concatenates some lists, e.g. ports; no check here depends on that)."""
    if isinstance(layer, Override):
        return layer.value
    if isinstance(base, dict) and isinstance(layer, dict):
        merged = dict(base)
        for key, value in layer.items():
            if isinstance(value, Override) and value.value is None:
                merged.pop(key, None)  # `!reset`
            else:
                merged[key] = merge(base[key], value) if key in base else _plain(value)
        return merged
    return _plain(layer)


def _plain(value: Any) -> Any:
    """A layer value with its tags resolved (a tag under a new key has nothing to override)."""
    if isinstance(value, Override):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def active_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services `docker compose up` starts without `--profile`."""
    services: dict[str, dict[str, Any]] = config["services"]
    return {name: spec for name, spec in services.items() if not spec.get("profiles")}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (compose accepts a mapping or `K=V` lines)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(str(line).split("=", 1) for line in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _names_read_by(function: Callable[..., object]) -> set[str]:
    """Upper-case string literals passed as the first argument to a `.get(...)` or `get(...)` call
    in `function`'s source: the environment variables it reads."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if called != "get" or not isinstance(first, ast.Constant):
            continue
        if isinstance(first.value, str) and first.value.isupper():
            names.add(first.value)
    return names


def variables_the_code_reads() -> set[str]:
    """Every environment variable the service reads (`Settings.from_env`, the one place that
    reads them; HEALTH_FILE included), the limits' among them (each a field's name in upper case,
    read through the limits' own `from_env`), and those uvicorn reads itself for `orders serve`
    (FORWARDED_ALLOW_IPS: serve leaves it to uvicorn)."""
    limits = (ConnectionLimits, QueryLimits, RequestLimits, BudgetLimits)
    return (
        _names_read_by(Settings.from_env)
        | {env_name(spec.name) for cls in limits for spec in fields(cls)}
        | _names_read_by(uvicorn.config.Config.__init__)
    )


def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions in order (comments dropped, `\\` continuations joined)."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append(Instruction(keyword=keyword.upper(), arguments=arguments.strip()))
    return instructions


# The profile the cluster file puts the single node under to keep it from starting: a switch,
# not a deployment (with it, the single node and the cluster's first node would share port 2113).
OFF_SWITCH_PROFILES = frozenset({"single-node"})

FILE_SETS: dict[str, tuple[str, ...]] = {
    "single": ("docker-compose.yml",),
    "cluster": ("docker-compose.yml", "docker-compose.cluster.yml"),
}
"""The deployments: the base file alone, and the cluster file layered over it."""


def load_layers(names: tuple[str, ...]) -> dict[str, Any]:
    """Compose files layered in order, as `-f a -f b` does."""
    config: dict[str, Any] = {}
    for name in names:
        config = dict(merge(config, load_compose(name))) if config else load_compose(name)
    return config


def profiles_of(config: dict[str, Any]) -> set[str]:
    """Every profile some service of `config` belongs to, the off switches left out."""
    names = {str(p) for spec in config["services"].values() for p in spec.get("profiles") or []}
    return names - OFF_SWITCH_PROFILES


def enabled_services(config: dict[str, Any], profiles: frozenset[str]) -> dict[str, Any]:
    """The services `docker compose --profile p ... up` starts: those without a profile and those
    of an enabled one."""
    services: dict[str, dict[str, Any]] = config["services"]
    return {
        name: spec
        for name, spec in services.items()
        if not spec.get("profiles") or profiles & set(spec["profiles"])
    }


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """A service's dependencies and their conditions (compose accepts a list or a mapping)."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {str(name): "service_started" for name in depends}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in depends.items()
    }


def published_host_ports(service: dict[str, Any]) -> list[str]:
    """The host ports a service publishes (`"8000:8000"`, `"127.0.0.1:8000:8000"`, the long
    form); a bare container port publishes a random one, which never collides."""
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                published.append(str(port["published"]))
            continue
        parts = str(port).split(":")
        if len(parts) >= 2:
            published.append(parts[-2])
    return published
