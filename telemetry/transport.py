"""The OTLP/HTTP exporter's requests on one kept-alive connection of the standard library's
`http.client`, as the exporter's transport (`BaseHTTPTransport`): the SDK's client around it
keeps the endpoint, headers, compression, timeout and retries of the OTEL_EXPORTER_OTLP_*
variables. Imported only when tracing is on.

Why: the SDK's transport is a requests session, which costs about five times more CPU a request
(its settings merged, the environment and ~/.netrc read again, the connection pool's checks) and
releases and takes back the GIL several times more; with the event loop busy, each of those is a
wait for the loop to let go (measured: 628 against 131 µs a request on a quiet process, 1,555
against 533 µs beside a busy thread). Used only where requests adds nothing: an `http://`
endpoint that no proxy variable applies to, without OpenTelemetry's credential provider
(`telemetry.export` decides).
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import urlsplit

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

_CONNECTION_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True, slots=True)
class DirectResult(BaseHTTPResult):
    """A response read whole (or the error that came instead)."""

    body: bytes = b""
    header_map: Message | None = field(default=None, hash=False, compare=False)

    def content(self) -> bytes:
        """The response's body."""
        return self.body

    def headers(self) -> Mapping[str, str]:
        """The response's headers (case-insensitive, as `email.message.Message` is)."""
        if self.header_map is None:
            return {}
        return {name.lower(): value for name, value in self.header_map.items()}


class DirectTransport(BaseHTTPTransport):
    """Requests to one `http://` endpoint on one connection, kept alive, opened again after an
    error or when the server closes it. Used by one thread at a time (the exporter's)."""

    def __init__(self) -> None:
        self._connection: http.client.HTTPConnection | None = None
        self._target: tuple[str, str] = ("", "")
        """The URL the connection is for, and the path to request."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        """Send one request and read its response whole (an error as the result, not raised)."""
        try:
            connection, path = self._connect(url, timeout)
            connection.request(method, path, body=data, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
        except _CONNECTION_ERRORS as error:
            self.close()
            return DirectResult(error=error)
        if response.will_close:
            self.close()
        return DirectResult(
            status_code=response.status, reason=response.reason, body=body, header_map=response.msg
        )

    def _connect(self, url: str, timeout: float | None) -> tuple[http.client.HTTPConnection, str]:
        connection = self._connection
        if connection is None or self._target[0] != url:
            self.close()
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise http.client.InvalidURL(f"not a plain http:// endpoint: {url}")
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
            self._connection, self._target = connection, (url, path)
        elif connection.sock is not None:
            connection.sock.settimeout(timeout)
        connection.timeout = timeout
        return connection, self._target[1]

    def is_connection_error(self, exception: Exception | None) -> bool:
        """Whether the request failed before a response (the client retries those)."""
        return isinstance(exception, _CONNECTION_ERRORS)

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
