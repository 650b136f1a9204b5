"""A lean HTTP/1.1 load generator: keep-alive connections, pre-built requests, open and closed loop.

aiohttp's client costs more CPU per request than the requests it sends cost the server to parse,
and on a two-core machine the load generator shares the cores with the service and Redis. This
client writes pre-encoded request bytes and parses only the status line and ``Content-Length``,
so most of the machine stays with the service under test.

* :func:`closed_loop` — every connection sends its next request as soon as the previous answer
  arrived: the most the service can do with that many clients (``connections`` in flight).
* :func:`open_loop` — requests are *scheduled* at a fixed rate, whatever the service does, and
  latency is measured from the scheduled time, not from when a connection was free to send it
  (no coordinated omission: a stalled service shows up as latency, not as a lower request rate).

Only ``Content-Length`` bodies are understood (every route measured here answers with one).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Connection", "LoadResult", "build_request", "closed_loop", "open_connections", "open_loop", "percentile"]

Target = tuple[str, int]
Done = Callable[[int, bytes], None]


def build_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._done: Done | None = None
        self._need = -1  # bytes of the whole answer once its head is parsed, -1 before
        self._status = 0
        self._head = 0
        self.answered = 0  # answers read on this connection (per-server counts when it is one of several)
        self.port = 0  # the server's, set by open_connections
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        if self._done is not None:
            done, self._done = self._done, None
            done(0, b"")

    def send(self, request: bytes, done: Done) -> None:
        """Write ``request``; ``done(status, body)`` is called with the answer (status 0: connection lost)."""
        assert self._done is None, "one request at a time per connection"
        assert self._transport is not None
        self._done = done
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while self._done is not None:
            if self._need < 0:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buffer[:end]).decode("latin-1")
                self._status = int(head[9:12])
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                self._head = end + 4
                self._need = end + 4 + length
            if len(buffer) < self._need:
                return
            body = bytes(buffer[self._head : self._need])
            del buffer[: self._need]
            self._need = -1
            self.answered += 1
            done, self._done = self._done, None
            done(self._status, body)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_connections(targets: Sequence[Target], count: int) -> list[Connection]:
    """``count`` connections spread round-robin over ``targets``."""
    loop = asyncio.get_running_loop()
    out = []
    for i in range(count):
        host, port = targets[i % len(targets)]
        _, protocol = await loop.create_connection(Connection, host, port)
        protocol.port = port
        out.append(protocol)
    return out


@dataclass
class LoadResult:
    """What one run did: completed requests, their latencies (seconds), statuses, wall time."""

    sent: int = 0
    completed: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    offered_rate: float | None = None

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def p(self, q: float) -> float:
        """The ``q`` quantile of latency in milliseconds."""
        return percentile(self.latencies, q) * 1000


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in 0…1) of ``values``; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def closed_loop(
    connections: Sequence[Connection],
    requests: Callable[[int], bytes],
    *,
    duration: float,
    warmup: float = 0.0,
    limit: int | None = None,
) -> LoadResult:
    """Each connection sends request ``requests(i)`` (i = 0, 1, 2, …) as soon as its previous
    answer arrived, for ``warmup + duration`` seconds or until ``limit`` requests were sent.

    Only answers completed after the warm-up count towards the result.
    """
    result = LoadResult()
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    counter = 0
    in_flight = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    def launch(conn: Connection) -> None:
        nonlocal counter, in_flight
        if time.perf_counter() >= stop_at or (limit is not None and counter >= limit):
            if in_flight == 0 and not finished.done():
                finished.set_result(None)
            return
        index = counter
        counter += 1
        in_flight += 1
        sent_at = time.perf_counter()

        def done(status: int, _body: bytes) -> None:
            nonlocal in_flight
            in_flight -= 1
            now = time.perf_counter()
            if sent_at >= measure_from:
                result.completed += 1
                result.latencies.append(now - sent_at)
                result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 0:
                if not finished.done():
                    finished.set_exception(ConnectionError("the service closed a connection"))
                return
            launch(conn)

        conn.send(requests(index), done)

    for conn in connections:
        launch(conn)
    await finished
    result.sent = counter
    result.elapsed = min(time.perf_counter(), stop_at) - measure_from if limit is None else time.perf_counter() - start
    return result


async def open_loop(
    connections: Sequence[Connection],
    requests: Callable[[int], bytes],
    *,
    rate: float,
    count: int,
    on_sent: Callable[[int, float], None] | None = None,
) -> LoadResult:
    """Send ``count`` requests scheduled ``1/rate`` seconds apart, whatever the service does.

    A request whose time has come goes out on an idle connection; if none is idle it waits for
    one, and that wait is part of its latency (measured from its scheduled time). ``on_sent(i,
    scheduled)`` is called as request ``i`` is scheduled (push latency uses it).
    """
    result = LoadResult(offered_rate=rate)
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    idle: deque[Connection] = deque(connections)
    pending: deque[tuple[int, float]] = deque()
    outstanding = 0
    start = time.perf_counter()

    def dispatch(conn: Connection, index: int, scheduled: float) -> None:
        def done(status: int, _body: bytes) -> None:
            nonlocal outstanding
            now = time.perf_counter()
            result.completed += 1
            result.latencies.append(now - scheduled)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            outstanding -= 1
            if status == 0:
                if not finished.done():
                    finished.set_exception(ConnectionError("the service closed a connection"))
                return
            if pending:
                dispatch(conn, *pending.popleft())
            else:
                idle.append(conn)
            if outstanding == 0 and result.sent == count and not finished.done():
                finished.set_result(None)

        conn.send(requests(index), done)

    while result.sent < count:
        now = time.perf_counter()
        due = min(count, int((now - start) * rate) + 1)
        while result.sent < due:
            index = result.sent
            scheduled = start + index / rate
            result.sent += 1
            outstanding += 1
            if on_sent is not None:
                on_sent(index, scheduled)
            if idle:
                dispatch(idle.popleft(), index, scheduled)
            else:
                pending.append((index, scheduled))
        if result.sent < count:
            await asyncio.sleep(max(0.0, start + result.sent / rate - time.perf_counter()))
    if outstanding:
        await finished
    result.elapsed = time.perf_counter() - start
    return result
