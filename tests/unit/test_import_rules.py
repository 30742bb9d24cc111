"""The house's layering, read from the source with `ast` (nothing is imported or run).

domain imports nothing of ours; eventstore nothing of domain or application; application not api;
projections and relay (the Kafka relay) not api, and nothing below api imports relay; projections
and relay are siblings, neither importing the other (what both need, the group-worker skeleton
`eventstore.group_worker` and the order events' filter and decode errors in `application.codec`,
lives below them); telemetry (traces) and metrics (Prometheus instruments), used by every layer,
import none of ours; and no two packages import each other, directly or around a cycle.
Inside `api`, four rooms import only downwards: `api.http` < `api.settings` < `api.graphql` <
`api.wiring`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "api",
    "application",
    "domain",
    "eventstore",
    "metrics",
    "projections",
    "relay",
    "telemetry",
)

FORBIDDEN: dict[str, set[str]] = {
    "domain": {"api", "application", "eventstore", "projections", "relay"},
    "eventstore": {"api", "application", "domain", "projections", "relay"},
    "application": {"api", "projections", "relay"},
    "projections": {"api", "relay"},
    "relay": {"api", "projections"},
    "telemetry": {"api", "application", "domain", "eventstore", "projections", "relay"},
    "metrics": {"api", "application", "domain", "eventstore", "projections", "relay", "telemetry"},
}


def _imports(package: str) -> dict[str, set[tuple[str, int]]]:
    """Our packages each module of `package` imports: target package -> (file, line)."""
    found: dict[str, set[tuple[str, int]]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names, line = [alias.name for alias in node.names], node.lineno
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names, line = [node.module], node.lineno
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    where = (str(path.relative_to(ROOT)), line)
                    found.setdefault(top, set()).add(where)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_its_layer_may(package: str) -> None:
    imported = _imports(package)
    broken = {target: sorted(imported[target]) for target in FORBIDDEN[package] & set(imported)}
    assert broken == {}


def test_no_import_cycle_between_packages() -> None:
    graph = {package: set(_imports(package)) for package in PACKAGES}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(package for package in PACKAGES if reaches(package, package, {package}))
    assert cycles == []


def test_the_rules_see_imports() -> None:
    # The reader itself must find what is there, or every rule above passes vacuously.
    assert "domain" in _imports("application")
    assert "eventstore" in _imports("application")
    assert "telemetry" in _imports("application")
    assert "eventstore" in _imports("relay")  # the group-worker skeleton, among others


ADAPTERS = {
    "eventstore.embedded": sorted((ROOT / "eventstore" / "embedded").rglob("*.py")),
    "eventstore.postgres": sorted((ROOT / "eventstore" / "postgres").rglob("*.py")),
    "eventstore.esdb": sorted((ROOT / "eventstore" / "esdb").rglob("*.py")),
}
"""Each store adapter (module prefix) and its files: what two of them share lives beside them in
`eventstore/` (streams, rows, notify, catchup, persistent/)."""


def _modules_imported(path: Path) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, node.lineno))
    return found


def test_what_the_stores_share_imports_no_adapter() -> None:
    # The SQL core and the persistent engine sit below the adapters, or a dialect's change
    # would reach every store through them.
    shared = [
        *(ROOT / "eventstore" / "sql").rglob("*.py"),
        *(ROOT / "eventstore" / "persistent").rglob("*.py"),
    ]
    assert shared
    reaching = [
        (str(path.relative_to(ROOT)), line, module)
        for path in shared
        for module, line in _modules_imported(path)
        if any(module.startswith(adapter) for adapter in ADAPTERS)
    ]
    assert reaching == []


def test_the_store_adapters_do_not_import_each_other() -> None:
    assert all(ADAPTERS.values())
    crossing = [
        (str(path.relative_to(ROOT)), line, module)
        for adapter, paths in ADAPTERS.items()
        for path in paths
        for module, line in _modules_imported(path)
        if any(module.startswith(other) for other in ADAPTERS if other != adapter)
    ]
    assert crossing == []


def _module_path(module: str) -> Path | None:
    """Where our module `module` lives (None: not ours, or not a module but a name in one)."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _reachable(start: str) -> set[str]:
    """Our modules `start` imports, directly or through others (lazy imports included)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        path = _module_path(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from package import module` names a module too
                todo += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return seen


COMPOSITION_ROOT = "api.wiring.bootstrap"
"""Builds the clients and wires the process: what requests use is typed in
`api.graphql.services`."""


@pytest.mark.parametrize(
    "room",
    [
        "api.graphql.context",
        "api.graphql.schema",
        "api.graphql.view",
        "api.wiring.health",
        "api.wiring.metrics_page",
    ],
)
def test_what_a_request_runs_does_not_import_the_composition_root(room: str) -> None:
    reached = _reachable(room)
    assert (
        "api.graphql.services" in reached
    )  # the types it is handed (and a sign the reader follows)
    assert COMPOSITION_ROOT not in reached


def test_the_composition_root_is_found_where_it_is_imported() -> None:
    # The rule above would pass vacuously if the reader could not see the root at all.
    assert COMPOSITION_ROOT in _reachable("api.wiring.app")


API_ROOMS = ("api.http", "api.settings", "api.graphql", "api.wiring")
"""api's rooms, bottom first; each imports only the rooms before it: HTTP and websocket plumbing,
the settings read from the environment, the GraphQL schema with its endpoint and rules, and the
process's wiring (composition root, app, CLI)."""
API_OWN_FILES = ["__init__.py", "__main__.py"]
"""The only modules directly in `api/`: every other one lives in a room."""


def _rooms_imported(room: str) -> dict[str, set[tuple[str, int]]]:
    """The api rooms the modules of `room` import (lazy imports included): room -> (file, line)."""
    found: dict[str, set[tuple[str, int]]] = {}
    for path in sorted(ROOT.joinpath(*room.split(".")).rglob("*.py")):
        for module, line in _modules_imported(path):
            parts = module.split(".")
            if parts[0] == "api" and len(parts) > 1 and f"api.{parts[1]}" != room:
                found.setdefault(f"api.{parts[1]}", set()).add((str(path.relative_to(ROOT)), line))
    return found


@pytest.mark.parametrize("room", API_ROOMS)
def test_an_api_room_imports_only_the_rooms_below_it(room: str) -> None:
    below = set(API_ROOMS[: API_ROOMS.index(room)])
    imported = _rooms_imported(room)
    assert {
        target: sorted(where) for target, where in imported.items() if target not in below
    } == {}


def test_every_api_module_lives_in_a_room() -> None:
    assert sorted(path.name for path in (ROOT / "api").glob("*.py")) == API_OWN_FILES
    packages = {path.name for path in (ROOT / "api").iterdir() if (path / "__init__.py").is_file()}
    assert packages == {room.split(".")[1] for room in API_ROOMS}


def test_the_room_rule_sees_imports() -> None:
    # Each room above the floor uses the one below it, or the rule above could pass vacuously.
    assert "api.http" in _rooms_imported("api.settings")
    assert "api.settings" in _rooms_imported("api.graphql")
    assert "api.graphql" in _rooms_imported("api.wiring")
