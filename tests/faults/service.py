"""One delivery-service process of the fault suite, run as production runs ``ensign delivery``.

    python -m tests.faults.service SPEC_JSON PORT CHAIN_URL

The production app, Redis client (:func:`ensign.redis_client.open_redis`) and serving loop
(:func:`stack.serve.serve`: SIGTERM drains, then stops). The spec (:class:`bench.fixtures.ServiceSpec`)
names Redis (through the suite's proxy) and the users. Names and chain reads go over HTTP to the
suite's chain stub (through another proxy, so the suite can slow it down or cut it): the
production :class:`~ensign.ens.lookup.NameLookup` with its cache (entries kept
:data:`CACHE_TTL` seconds, so lookups keep reaching the stub), resolving from the stub's table.
"""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.fixtures import ServiceSpec
from ensign.ens.cache import CacheSettings
from ensign.ens.lookup import NameLookup, ResolvedUserProfile
from ensign.errors import NotFound, ServiceUnavailable
from ensign.protocol.models import SignedUserProfile

CACHE_TTL = 2.0
# Seconds one call to the chain stub may take: an RPC client's timeout (web3's is 10 s).
CHAIN_TIMEOUT = 3.0


class ChainStub:
    """HTTP client of the suite's chain stub: ``GET /name/<name>``, ``GET /block``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http: aiohttp.ClientSession | None = None

    async def get(self, path: str) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHAIN_TIMEOUT))
        try:
            async with self._http.get(f"{self.url}{path}") as response:
                if response.status == 404:
                    raise NotFound(f"{path} is not on the chain")
                if response.status != 200:
                    raise ServiceUnavailable(f"the chain answered HTTP {response.status}")
                return await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ServiceUnavailable("the chain cannot be reached") from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    # -- delivery.ports.Chain (the suite's accounts have no spam rules) -------------------------

    async def transaction_count(self, address: str) -> int:
        return 0

    async def balance(self, address: str) -> int:
        return 0

    async def token_balance(self, token: str, address: str) -> int:
        return 0

    async def block_number(self) -> int:
        return int((await self.get("/block"))["number"])


class StubLookup(NameLookup):
    """The production lookup and cache; a cache miss asks the chain stub."""

    def __init__(self, chain: ChainStub) -> None:
        super().__init__(None, cache=CacheSettings(ttl=CACHE_TTL, negative_ttl=CACHE_TTL, max_entries=10_000))
        self._chain = chain

    async def _address(self, name: str) -> str:
        return str((await self._chain.get(f"/name/{name}"))["address"])

    async def _user_profile(self, name: str) -> ResolvedUserProfile:
        entry = await self._chain.get(f"/name/{name}")
        return ResolvedUserProfile(name, entry["address"], SignedUserProfile.from_json(entry["profile"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("spec", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("chain_url")
    parser.add_argument("--cluster", action="store_true", help="REDIS_CLUSTER")
    parser.add_argument("--wait-replicas", type=int, default=0, help="REDIS_WAIT_REPLICAS")
    args = parser.parse_args()

    from ensign.logs import configure_logging
    from stack.serve import serve

    spec = ServiceSpec.load(args.spec)
    settings = spec.settings(args.port)
    redis_settings = dataclasses.replace(settings.redis, cluster=args.cluster)
    settings = dataclasses.replace(settings, redis=redis_settings, redis_wait_replicas=args.wait_replicas)
    configure_logging("WARNING", redact={"REDIS_URL": settings.redis.url})

    async def build() -> web.Application:
        from delivery.app import create_app
        from ensign.redis_client import open_redis

        redis = await open_redis(settings.redis, attempts=30)
        chain = ChainStub(args.chain_url)
        lookup = StubLookup(chain)
        app = create_app(settings, redis=redis, directory=lookup, chain=chain, sweep_interval=None)

        async def close(app: web.Application) -> None:
            await lookup.close()
            await chain.close()
            await redis.aclose()

        app.on_cleanup.append(close)
        return app

    asyncio.run(serve(build, name="delivery", host="127.0.0.1", port=args.port, port_variable="DELIVERY_PORT"))


if __name__ == "__main__":
    main()
