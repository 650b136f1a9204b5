"""Reading answers of other servers (profile links, the backend, CCIP-Read gateways)."""

from __future__ import annotations

from aiohttp import StreamReader

__all__ = ["read_capped"]


async def read_capped(content: StreamReader, cap: int) -> bytes:
    """Read a streamed answer to its end, or ``cap + 1`` bytes if it is longer (callers refuse it).

    ``StreamReader.read(n)`` returns whatever has arrived, so a chunked or slow answer would be cut
    after its first chunk; this keeps reading until the end or the cap.
    """
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = await content.read(cap + 1 - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
