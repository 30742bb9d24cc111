"""The `event_store.client.gossip.Gossip` service: a one-node cluster whose only member leads."""

from __future__ import annotations

import time
import uuid
from typing import Any

from esdbclient.protos.Grpc import gossip_pb2, gossip_pb2_grpc

from .convert import uuid_message


class GossipService(gossip_pb2_grpc.GossipServicer):
    """Answers `Read` with this server as the alive leader, so discovery connects back here."""

    def __init__(self, host: str, port: int) -> None:
        self._instance_id = uuid.uuid4()
        self._host = host
        self._port = port

    async def Read(self, request: Any, context: Any) -> Any:
        """The cluster as EventStoreDB's gossip reports it."""
        member = gossip_pb2.MemberInfo(
            instance_id=uuid_message(self._instance_id),
            time_stamp=time.time_ns() // 100,
            state=gossip_pb2.MemberInfo.VNodeState.Leader,
            is_alive=True,
            http_end_point=gossip_pb2.EndPoint(address=self._host, port=self._port),
        )
        return gossip_pb2.ClusterInfo(members=[member])
