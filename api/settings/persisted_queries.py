"""`PERSISTED_QUERIES` and its manifest, read and checked with the other settings.

Apart from the store (`api.graphql.persisted_queries`) so that the settings (`api.settings.config`)
need nothing of the GraphQL endpoint: the settings sit below it, and the endpoint is handed what
they read.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

MANIFEST_FORMAT = "apollo-persisted-query-manifest"


class Mode(enum.StrEnum):
    """`PERSISTED_QUERIES`: which requests may name their document by hash."""

    AUTO = "auto"
    ONLY = "only"
    OFF = "off"


def sha256_of(document: str) -> str:
    """The hash APQ clients send: SHA-256 of the document's UTF-8 text, in lower-case hex."""
    return hashlib.sha256(document.encode()).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """The operations of an Apollo persisted-query manifest, by id (their body's SHA-256).

    Raises `ValueError` naming the file and what is wrong with it: unreadable, not the manifest
    format, or an operation whose id is not the SHA-256 of its body (clients hash the body, so
    such an entry could never be asked for)."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or manifest.get("version") != 1
        or not isinstance(manifest.get("operations"), list)
    ):
        raise ValueError(
            f'{path} is not an Apollo persisted-query manifest: expected {{"format": '
            f'"{MANIFEST_FORMAT}", "version": 1, "operations": [...]}}'
        )
    operations: dict[str, str] = {}
    for index, operation in enumerate(manifest["operations"]):
        body = operation.get("body") if isinstance(operation, dict) else None
        op_id = operation.get("id") if isinstance(operation, dict) else None
        if not isinstance(body, str) or not isinstance(op_id, str):
            raise ValueError(f"{path}: operation {index} needs a string id and body")
        if sha256_of(body) != op_id.lower():
            raise ValueError(
                f"{path}: operation {index} ({operation.get('name')!r}) has id {op_id!r}, which "
                "is not the SHA-256 of its body"
            )
        operations[op_id.lower()] = body
    return operations


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistedQuerySettings:
    """`PERSISTED_QUERIES` and, for `only`, the manifest's operations by hash."""

    mode: Mode = Mode.AUTO
    manifest: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PersistedQuerySettings:
        """The settings in `env`; `ValueError` naming the variable when they cannot be used."""
        raw = env.get("PERSISTED_QUERIES", "").strip().lower() or Mode.AUTO.value
        try:
            mode = Mode(raw)
        except ValueError:
            raise ValueError(
                f"PERSISTED_QUERIES must be one of auto, only, off (got {raw!r})"
            ) from None
        manifest_path = env.get("PERSISTED_QUERIES_MANIFEST", "").strip()
        if mode is not Mode.ONLY:
            if manifest_path:
                raise ValueError(
                    "PERSISTED_QUERIES_MANIFEST is set but PERSISTED_QUERIES is not `only`: set "
                    "PERSISTED_QUERIES=only to serve the manifest's operations alone"
                )
            return cls(mode=mode)
        if not manifest_path:
            raise ValueError(
                "PERSISTED_QUERIES=only needs PERSISTED_QUERIES_MANIFEST: the path of an Apollo "
                "persisted-query manifest (JSON) listing the operations to serve"
            )
        try:
            manifest = load_manifest(Path(manifest_path))
        except ValueError as error:
            raise ValueError(f"PERSISTED_QUERIES_MANIFEST: {error}") from None
        return cls(mode=mode, manifest=manifest)
