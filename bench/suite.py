"""The state one bench run shares: its Redis prefix, users, service keys, envelopes and processes.

A run owns the key prefix ``bench:<random>:`` and deletes exactly the keys under it when it ends
(also after a failure). The service processes it starts are stopped by pid.
"""

from __future__ import annotations

import random
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from delivery.at_rest import AtRest
from delivery.queue import MessageQueue
from ensign.protocol.encoding import b64decode

from .fixtures import BenchUser, Envelope, ServiceSpec, delete_prefix
from .httpload import build_request
from .services import ServiceProcess, free_port

__all__ = ["Durations", "Suite"]


@dataclass(frozen=True)
class Durations:
    """How long and how big each measurement is; ``quick()`` for a smoke run."""

    users: int = 256
    envelopes: int = 16_000
    warmup: float = 2.0
    phase: float = 5.0
    connections: int = 64
    big_queue: int = 100_000
    inbox_receivers: int = 20
    inbox_queued: int = 1_000
    ack_samples: int = 400
    push_sockets: int = 64
    lookup_names: int = 20
    multi_recipients: int = 100
    multi_rounds: int = 40

    @classmethod
    def quick(cls) -> Durations:
        return cls(users=64, envelopes=4_000, warmup=0.5, phase=1.0, big_queue=10_000, inbox_receivers=8,
                   inbox_queued=500, ack_samples=100, push_sockets=16, lookup_names=5, multi_rounds=10)


@dataclass
class Suite:
    """One run: Redis, the prefix it owns, users, the delivery service's spec, the envelope pool."""

    redis: aioredis.Redis
    redis_url: str
    durations: Durations
    users: list[BenchUser]
    envelopes: list[Envelope]
    spec: ServiceSpec
    workdir: Path
    results_dir: Path
    redis_pid: int | None
    results: dict[str, Any] = field(default_factory=dict)
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.spec.prefix

    @property
    def spec_path(self) -> Path:
        return self.workdir / "spec.json"

    @property
    def queue(self) -> MessageQueue:
        """The queue as the service makes it: filled through it, messages are sealed the same way."""
        return MessageQueue(self.redis, prefix=self.prefix, at_rest=self.at_rest)

    @property
    def at_rest(self) -> AtRest:
        return AtRest(b64decode(self.spec.encryption_private_key, length=32))

    @staticmethod
    def new_prefix() -> str:
        return f"bench:{secrets.token_hex(4)}:"

    @staticmethod
    def new_workdir() -> Path:
        return Path(tempfile.mkdtemp(prefix="ensign-bench-"))

    def prebuilt(self) -> list[bytes]:
        """Every envelope of the pool as the bytes of its ``POST /rpc`` request."""
        return [build_request("POST", "/rpc", e.body) for e in self.envelopes]

    async def start_delivery(
        self, workers: int = 1, without: Sequence[str] = (), root: Path | None = None, python: str | None = None
    ) -> ServiceProcess:
        """A delivery process of this spec (``root``: run the code of that checkout instead;
        ``python``: on that interpreter instead of this one)."""
        process = ServiceProcess.delivery(self.spec_path, free_port(), self.workdir, workers, without,
                                          **({} if root is None else {"root": root}),
                                          **({} if python is None else {"python": python}))
        self.processes.append(process)
        return await process.start()

    async def stop(self, process: ServiceProcess) -> None:
        await process.stop()
        if process in self.processes:
            self.processes.remove(process)

    async def clear_queues(self) -> None:
        """Empty every user's queue (accounts stay), so the pool's envelopes are new deliveries again."""
        queue = self.queue
        for user in self.users:
            await queue.delete_queue(user.address)

    async def queued_total(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for user in self.users:
            pipe.zcard(self.queue.keys(user.address).queue)
        return sum(int(n) for n in await pipe.execute())

    def sample_users(self, count: int, seed: int = 7) -> list[BenchUser]:
        return random.Random(seed).sample(self.users, min(count, len(self.users)))

    async def close(self) -> None:
        for process in list(self.processes):
            await self.stop(process)
        await delete_prefix(self.redis, self.prefix)
