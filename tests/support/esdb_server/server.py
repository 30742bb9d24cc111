"""The gRPC server: EventStoreDB 24.x's client services over one embedded store."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
from esdbclient.protos.Grpc import gossip_pb2_grpc, persistent_pb2_grpc, streams_pb2_grpc

from eventstore.embedded import SQLiteEventStore
from eventstore.port import EventStore

from .backend import Backend
from .gossip import GossipService
from .persistent import PersistentService
from .streams import StreamsService

logger = logging.getLogger(__name__)


class TestServer:
    """A running server: `url` is the connection string clients use."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        store: EventStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store = store
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._persistent: PersistentService | None = None

    @property
    def url(self) -> str:
        """`esdb://host:port?Tls=false` for this server."""
        return f"esdb://{self.host}:{self.port}?Tls=false"

    async def start(self) -> None:
        """Binds (a free port when 0 was asked for) and starts serving."""
        server = grpc.aio.server()
        self.port = server.add_insecure_port(f"{self.host}:{self._requested_port}")
        if self.port == 0:
            raise OSError(f"cannot bind {self.host}:{self._requested_port}")
        backend = Backend(self.store)
        self._persistent = PersistentService(backend)
        await self._persistent.start()
        streams_pb2_grpc.add_StreamsServicer_to_server(StreamsService(backend), server)  # type: ignore[no-untyped-call]
        persistent_pb2_grpc.add_PersistentSubscriptionsServicer_to_server(self._persistent, server)  # type: ignore[no-untyped-call]
        gossip_pb2_grpc.add_GossipServicer_to_server(GossipService(self.host, self.port), server)  # type: ignore[no-untyped-call]
        await server.start()
        self._server = server
        logger.info("event=esdb_test_server_listening url=%s", self.url)

    async def stop(self, grace: float | None = 0.5) -> None:
        """Stops serving (open calls are cancelled after `grace` seconds) and the groups."""
        if self._persistent is not None:
            await self._persistent.stop()
            self._persistent = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def wait(self) -> None:
        """Blocks until the server terminates."""
        if self._server is not None:
            await self._server.wait_for_termination()


async def open_server(data_dir: Path, *, host: str = "127.0.0.1", port: int = 0) -> TestServer:
    """Opens the embedded store in `data_dir` and starts a server over it."""
    store = await SQLiteEventStore.open(data_dir)
    server = TestServer(store, host=host, port=port)
    try:
        await server.start()
    except BaseException:
        await server.stop()
        await store.close()
        raise
    return server
