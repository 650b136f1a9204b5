"""A small asyncio TCP proxy the fault suite puts between two processes, to cut and slow links.

``TcpProxy(upstreams)`` listens on a free 127.0.0.1 port and forwards each accepted connection to
the first upstream that accepts it, starting with the next one in turn (so it also serves as the
one front port of two delivery processes: a process that is down is skipped). An upstream is a
``(host, port)`` pair or the path of a Unix socket (the embedded Redis listens on one). Faults:

* :meth:`cut` ``("reset")`` closes every open connection and closes new ones at once;
* :meth:`cut` ``("blackhole")`` keeps connections open but forwards nothing (a stalled peer: the
  client's own timeout must fire);
* :meth:`cut` ``("replies")`` forwards requests but holds back what the upstream answers (a
  one-way partition: Redis runs the command, the client never hears that it did);
* :attr:`delay` seconds before each forwarded chunk (a slow link);
* :meth:`restore` forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

__all__ = ["TcpProxy"]

CHUNK = 65_536


class TcpProxy:
    def __init__(self, upstreams: Sequence[tuple[str, int] | str]) -> None:
        self.upstreams = list(upstreams)
        self.mode = "open"  # "open", "reset", "blackhole" or "replies"
        self.delay = 0.0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def cut(self, mode: str = "reset") -> None:
        """Stop forwarding: ``reset`` closes every connection, ``blackhole`` stalls them, ``replies``
        stalls the upstream's answers only."""
        self.mode = mode
        if mode == "reset":
            self._close_all()

    def restore(self) -> None:
        """Forward again; connections stalled by a blackhole are closed (their peers timed out)."""
        if self.mode in ("blackhole", "replies"):
            self._close_all()
        self.mode = "open"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._close_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            writer.transport.abort()
            return
        self._writers.add(writer)
        upstream = await self._connect()
        if upstream is None:
            self._writers.discard(writer)
            writer.transport.abort()
            return
        up_reader, up_writer = upstream
        self._writers.add(up_writer)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, stalled=("blackhole",))),
            asyncio.ensure_future(self._pump(up_reader, writer, stalled=("blackhole", "replies"))),
        ]
        for pump in pumps:
            self._tasks.add(pump)
            pump.add_done_callback(self._tasks.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.upstreams)):
            upstream = self.upstreams[self._next % len(self.upstreams)]
            self._next += 1
            with contextlib.suppress(OSError):
                if isinstance(upstream, str):
                    return await asyncio.open_unix_connection(upstream)
                return await asyncio.open_connection(*upstream)
        return None

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stalled: tuple[str, ...]) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                while self.mode in stalled:
                    await asyncio.sleep(0.05)
                if self.mode == "reset":
                    return
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
