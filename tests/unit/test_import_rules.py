"""The house's layering, read from the source with `ast` (nothing is imported or run).

domain imports nothing of ours; eventstore nothing of domain or application; application not api;
projections and relay (the Kafka relay) not api, and nothing below api imports relay; projections
and relay are siblings, neither importing the other (what both need, the group-worker skeleton
`eventstore.group_worker` and the order events' filter and decode errors in `application.codec`,
lives below them); telemetry (traces) and metrics (Prometheus instruments), used by every layer,
import none of ours; and no two packages import each other, directly or around a cycle.
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
    "eventstore.esdb": sorted((ROOT / "eventstore").glob("esdb*.py")),
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


COMPOSITION_ROOT = "api.bootstrap"
"""Builds the clients and wires the process: what requests use is typed in `api.services`."""


@pytest.mark.parametrize(
    "room", ["api.context", "api.schema", "api.view", "api.health", "api.metrics_page"]
)
def test_what_a_request_runs_does_not_import_the_composition_root(room: str) -> None:
    reached = _reachable(room)
    assert "api.services" in reached  # the types it is handed (and a sign the reader follows)
    assert COMPOSITION_ROOT not in reached


def test_the_composition_root_is_found_where_it_is_imported() -> None:
    # The rule above would pass vacuously if the reader could not see the root at all.
    assert COMPOSITION_ROOT in _reachable("api.app")
