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

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping

from graphql import GraphQLError, GraphQLSchema, parse, validate

from api.settings.persisted_queries import MANIFEST_FORMAT as MANIFEST_FORMAT
from api.settings.persisted_queries import Mode as Mode
from api.settings.persisted_queries import PersistedQuerySettings as PersistedQuerySettings
from api.settings.persisted_queries import load_manifest as load_manifest
from api.settings.persisted_queries import sha256_of as sha256_of

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
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
