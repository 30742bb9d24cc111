"""Persisted queries: Apollo's automatic persisted queries (APQ) and a manifest allow-list.

A client sends `extensions.persistedQuery = {"version": 1, "sha256Hash": H}`, at first without the
document. The server answers PERSISTED_QUERY_NOT_FOUND until it holds a document for H; the client
then sends the document with its hash once, and later requests send only the hash. Over GET that
keeps URLs short, over any transport it saves the upload of large documents.

`PERSISTED_QUERIES` says how:
- `auto` (default): APQ as above; the server learns the documents clients send with their hash.
- `only`: the operations of `PERSISTED_QUERIES_MANIFEST` (Apollo's persisted-query manifest, the
  file `generate-persisted-query-manifest` writes) and nothing else: a production allow-list. A
  hash it does not list is PERSISTED_QUERY_NOT_IN_LIST, a document it does not list is
  QUERY_NOT_IN_SAFELIST (the Apollo router's codes).
- `off`: documents only. A hash-only request is PERSISTED_QUERY_NOT_SUPPORTED, which makes
  Apollo's and urql's links stop hashing and send documents; a hash next to a document is ignored.

The store keeps texts, not parsed trees: a hit runs the stored text through the normal path, whose
parser and validation caches make a known document cheap. Only documents that parse and validate
against the schema are stored, each at most `MAX_DOCUMENT_BYTES`, and the least recently used go
first once the texts together pass `MAX_STORE_BYTES`, so clients sending unique documents cannot
grow memory.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from graphql import GraphQLError, GraphQLSchema, parse, validate

logger = logging.getLogger(__name__)

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
NOT_IN_SAFELIST = "QUERY_NOT_IN_SAFELIST"
BAD_USER_INPUT = "BAD_USER_INPUT"

MAX_DOCUMENT_BYTES = 65_536
"""The longest document the store keeps (longer ones still run when sent in full)."""
MAX_STORE_BYTES = 4 * 1_048_576
"""All stored texts together; the least recently used go first past it."""
MAX_TOKENS = 4000
"""The parser's token bound while checking a document for the store, unless given (the view
gives the request limits' own)."""
MANIFEST_FORMAT = "apollo-persisted-query-manifest"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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


class PersistedQueryError(GraphQLError):
    """A persisted-query request that cannot run; its code tells the client what to do."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})
        self.code = code


def _requested_hash(extensions: object) -> str | None:
    """The hash of `extensions.persistedQuery`, if the request has one; a malformed one is a
    BAD_USER_INPUT error. Other keys (urql adds `miss`) are the client's business."""
    if not isinstance(extensions, Mapping):
        return None
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, Mapping) or persisted.get("version") != 1:
        raise PersistedQueryError(
            "extensions.persistedQuery must be {version: 1, sha256Hash: <hex>}: only version 1 "
            "of Apollo's persisted queries is supported.",
            BAD_USER_INPUT,
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha.lower()):
        raise PersistedQueryError(
            "extensions.persistedQuery.sha256Hash must be a SHA-256 in hex (64 characters).",
            BAD_USER_INPUT,
        )
    return sha.lower()


class PersistedQueries:
    """The documents this server runs by hash, and the rules of `PERSISTED_QUERIES`."""

    def __init__(
        self,
        settings: PersistedQuerySettings,
        schema: GraphQLSchema,
        *,
        max_store_bytes: int = MAX_STORE_BYTES,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        self.mode = settings.mode
        self._manifest = dict(settings.manifest)
        self._schema = schema
        self._max_store_bytes = max_store_bytes
        self._max_document_bytes = max_document_bytes
        self._max_tokens = max_tokens
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        """Documents learnt (APQ), not counting a manifest's."""
        return len(self._documents)

    def document(self, query: str | None, extensions: object) -> str | None:
        """The document to run for a request's `query` and `extensions`.

        Without a persisted-query extension the query is returned as it is (strawberry refuses a
        missing one), except in `only` mode, where it must be listed. Raises
        `PersistedQueryError` for a request that must not run."""
        if self.mode is Mode.OFF:
            return self._off(query, extensions)
        sha = _requested_hash(extensions)
        if self.mode is Mode.ONLY:
            return self._only(query, sha)
        if sha is None:
            return query
        if query is None:
            held = self._documents.get(sha)
            if held is None:
                raise PersistedQueryError("PersistedQueryNotFound", NOT_FOUND)
            self._documents.move_to_end(sha)
            return held
        if sha256_of(query) != sha:
            raise PersistedQueryError(
                "provided sha does not match query: extensions.persistedQuery.sha256Hash must be "
                "the SHA-256 of the query's UTF-8 text.",
                BAD_USER_INPUT,
            )
        if sha not in self._documents:
            self._remember(sha, query)
        return query

    def _off(self, query: str | None, extensions: object) -> str | None:
        if query is None and isinstance(extensions, Mapping) and "persistedQuery" in extensions:
            raise PersistedQueryError("PersistedQueryNotSupported", NOT_SUPPORTED)
        return query

    def _only(self, query: str | None, sha: str | None) -> str:
        if query is None:
            if sha is None:
                raise PersistedQueryError(
                    "This server runs only the operations of its persisted-query manifest: "
                    "send one's id as extensions.persistedQuery.sha256Hash.",
                    NOT_IN_LIST,
                )
            listed = self._manifest.get(sha)
            if listed is None:
                raise PersistedQueryError(
                    f"Persisted query {sha} is not in this server's persisted-query manifest.",
                    NOT_IN_LIST,
                )
            return listed
        actual = sha256_of(query)
        if sha is not None and sha != actual:
            raise PersistedQueryError(
                "provided sha does not match query: extensions.persistedQuery.sha256Hash must be "
                "the SHA-256 of the query's UTF-8 text.",
                BAD_USER_INPUT,
            )
        if actual not in self._manifest:
            raise PersistedQueryError(
                "This server runs only the operations of its persisted-query manifest, and this "
                "document is not one of them.",
                NOT_IN_SAFELIST,
            )
        return query

    def _remember(self, sha: str, query: str) -> None:
        """Keep `query` if it is small enough and a valid document of the schema."""
        size = len(query.encode())
        if size > self._max_document_bytes:
            return
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError:
            return  # the normal path reports it
        if validate(self._schema, document):
            return
        self._documents[sha] = query
        self._bytes += size
        while self._bytes > self._max_store_bytes:
            _, evicted = self._documents.popitem(last=False)
            self._bytes -= len(evicted.encode())
        logger.debug("event=persisted_query_stored sha=%s bytes=%d", sha[:12], size)
