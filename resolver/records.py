"""Where the gateway reads a name's records: the ``RecordSource`` protocol and its two sources.

The gateway has no database. For every CCIP-Read request it asks the profile backend, the one
source of truth for names (``/work/notes/profiles-design.md``)::

    GET {backend_url}/records/{name}        name = normalised full ENS name, percent-encoded
    200 {"name": "<normalised name>", "address": "0x<EIP-55>" | null,
         "texts": {"<key>": "<value>", ...}, "contenthash": "0x..." | null}
    404 {"error": "not_found", "message": "..."}      -> no such name (``None``)

Any other status, a malformed body, a timeout or a refused connection raises
:class:`~ensign.errors.ServiceUnavailable`, which the gateway answers with a 5xx so EIP-3668
clients move on to the resolver's next URL.

``InMemoryRecordSource`` serves fixed records, for unit tests and for running a gateway without
a backend.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import aiohttp
from yarl import URL

from ensign.errors import EncodingError
from ensign.protocol.safe_json import parse_json
from ensign.ens.fetch import read_capped
from resolver.errors import InvalidRequest, ServiceUnavailable

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
# A backend answer larger than this is not a profile record: refuse it rather than buffer it.
MAX_RECORDS_BYTES = 256 * 1024


@dataclass(frozen=True)
class NameRecords:
    """The records of one name, as the gateway serves them.

    :param name: the normalised full ENS name
    :param address: EIP-55 address of the ``addr`` record (coin type 60), ``None`` when unset
    :param texts: text records by key, e.g. ``network.dm3.profile``
    :param contenthash: raw bytes of the ``contenthash`` record, ``None`` when unset
    """

    name: str
    address: str | None = None
    texts: Mapping[str, str] = field(default_factory=dict)
    contenthash: bytes | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: a source may hand the same object to concurrent requests.
        object.__setattr__(self, "texts", MappingProxyType(dict(self.texts)))

    @classmethod
    def from_json(cls, body: Any) -> NameRecords:
        """Parse the backend's ``GET /records/{name}`` body; ``ValueError`` names what is wrong."""
        if not isinstance(body, dict):
            raise ValueError("body is not a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("name is missing")
        address = body.get("address")
        if address is not None and not (isinstance(address, str) and _ADDRESS.match(address)):
            raise ValueError("address is not a 0x-hex address")
        texts = body.get("texts") or {}
        if not isinstance(texts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in texts.items()):
            raise ValueError("texts is not an object of strings")
        contenthash = body.get("contenthash")
        if contenthash is not None and not (isinstance(contenthash, str) and _HEX.match(contenthash)):
            raise ValueError("contenthash is not 0x-hex bytes")
        return cls(
            name=name,
            address=address,
            texts=texts,
            contenthash=bytes.fromhex(contenthash[2:]) if contenthash else None,
        )


@runtime_checkable
class RecordSource(Protocol):
    """Gives the gateway the records of a name."""

    async def records(self, name: str) -> NameRecords | None:
        """The records of the normalised ``name``, or ``None`` when the name is unknown.

        Raises :class:`~ensign.errors.ServiceUnavailable` when the source cannot answer.
        """
        ...

    async def close(self) -> None:
        """Release connections; the gateway calls it on shutdown."""
        ...


class InMemoryRecordSource:
    """Fixed records held in a dict, keyed by normalised name."""

    def __init__(self, records: Iterable[NameRecords] = ()) -> None:
        self._records: dict[str, NameRecords] = {r.name: r for r in records}

    def set(self, records: NameRecords) -> None:
        """Add or replace the records of ``records.name``."""
        self._records[records.name] = records

    def remove(self, name: str) -> None:
        """Forget ``name`` (no error when absent)."""
        self._records.pop(name, None)

    async def records(self, name: str) -> NameRecords | None:
        return self._records.get(name)

    async def close(self) -> None:
        return None


class BackendRecordSource:
    """Reads records from the profile backend over HTTP (``GET {backend_url}/records/{name}``).

    :param backend_url: base URL of the backend, e.g. ``http://127.0.0.1:8081``
    :param timeout: seconds for one request, connection included (default 5)
    :param session: an aiohttp session to reuse; by default one is opened on first use and closed
        by :meth:`close`
    """

    def __init__(self, backend_url: str, *, timeout: float = 5.0, session: aiohttp.ClientSession | None = None) -> None:
        self._base = URL(backend_url.rstrip("/"))
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    def url_for(self, name: str) -> URL:
        """The backend URL for ``name``; every character outside RFC 3986's unreserved set is escaped."""
        labels = name.split(".")
        if not name or any(label in ("", ".", "..") for label in labels):
            raise InvalidRequest(f"{name!r} is not a full ENS name")
        path = self._base.raw_path.rstrip("/") + "/records/" + quote(name, safe="")
        return self._base.with_path(path, encoded=True)

    async def records(self, name: str) -> NameRecords | None:
        url = self.url_for(name)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(url, timeout=self._timeout, allow_redirects=False) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise ServiceUnavailable(f"the profile backend answered HTTP {response.status}")
                raw = await read_capped(response.content, MAX_RECORDS_BYTES)
                if len(raw) > MAX_RECORDS_BYTES:
                    raise ServiceUnavailable("the profile backend's answer is too large")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ServiceUnavailable("the profile backend cannot be reached") from exc
        try:
            return NameRecords.from_json(parse_json(raw, what="the backend's answer"))
        except (ValueError, EncodingError) as exc:
            raise ServiceUnavailable(f"the profile backend gave a malformed answer: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
