"""Service processes under test, started and stopped by the bench (never anyone else's).

Each service is a separate OS process serving HTTP on 127.0.0.1, its log lines going to a file
in a temporary directory (shown when it fails to start). The bench stops exactly the processes
it started, by their pid, with SIGTERM (graceful stop), then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

__all__ = ["ServiceProcess", "free_port", "login", "signup"]

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    """One service process: ``argv`` run from ``root`` (this repository, or another checkout of it
    whose code it then runs: :mod:`bench.compare`), answering ``ready_path``."""

    name: str
    argv: Sequence[str]
    port: int
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ready_path: str = "/health"
    root: Path = ROOT
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @classmethod
    def delivery(
        cls, spec: Path, port: int, workdir: Path, workers: int = 1, without: Sequence[str] = (), root: Path = ROOT,
        python: str = sys.executable,
    ) -> ServiceProcess:
        """``python -m bench.server``: this interpreter, or another with the project installed."""
        argv = [python, "-m", "bench.server", str(spec), str(port), "--workers", str(workers)]
        if without:
            argv += ["--without", ",".join(without)]
        return cls(f"delivery:{port}", argv, port, workdir / f"delivery-{port}.log", ready_path="/hello", root=root)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> ServiceProcess:
        self._log = self.log_path.open("wb")
        # The root's packages come first on the path, before the installed (editable) ones.
        path = os.pathsep.join(p for p in (str(self.root), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, **self.env, "PYTHONPATH": path}
        self.process = subprocess.Popen(self.argv, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start-up:\n{self.tail()}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}{self.ready_path}") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer within {READY_TIMEOUT:.0f} s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def children(self) -> list[int]:
        """Pids of the workers of ``--workers`` (children spawned by multiprocessing; its resource
        tracker, a child too, is left out)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        workers = []
        for pid in text.split():
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.append(int(pid))
            except OSError:
                continue
        return workers

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    async def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def signup(http: aiohttp.ClientSession, base: str, name: str, profile: dict[str, Any]) -> None:
    """dm3 sign-up: ``POST /profile/{name}`` with the signed profile creates the account."""
    async with http.post(f"{base}/profile/{name}", json=profile) as response:
        if response.status != 200:
            raise RuntimeError(f"sign-up of {name} failed: {response.status} {await response.text()}")


async def login(http: aiohttp.ClientSession, base: str, name: str, signing_secret_key: str) -> str:
    """``GET /auth`` challenge, signed with the profile key, ``POST /auth``: the session token."""
    from ensign.protocol.crypto import sign

    async with http.get(f"{base}/auth/{name}") as response:
        challenge = await response.json()
    body = {"challenge": challenge, "signature": sign(signing_secret_key, challenge)}
    async with http.post(f"{base}/auth/{name}", json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"login of {name} failed: {response.status} {await response.text()}")
        token = await response.json()
    assert isinstance(token, str)
    return token
