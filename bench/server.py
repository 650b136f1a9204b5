"""One delivery-service process for the benchmarks, run as production runs ``ensign delivery``.

    python -m bench.server SPEC_JSON PORT

Same app (:func:`delivery.app.create_app`), same Redis client
(:func:`ensign.redis_client.open_redis`), same logging (:func:`ensign.logs.configure_logging`: JSON
lines at INFO on stderr, one per request from the app's middleware plus the app's own), same
serving loop (:func:`stack.serve.serve`, stops on SIGTERM). Only the directory differs:
:class:`bench.fixtures.FixedNameLookup`, warmed before serving, so every name lookup is a cache
hit.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web

from bench.fixtures import FixedNameLookup, NullChain, ServiceSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("spec", type=Path)
    parser.add_argument("port", type=int)
    args = parser.parse_args()

    from ensign.logs import configure_logging
    from stack.serve import serve

    spec = ServiceSpec.load(args.spec)
    settings = spec.settings(args.port)
    configure_logging(settings.log_level, redact={"REDIS_URL": settings.redis.url})

    async def build() -> web.Application:
        from delivery.app import create_app
        from ensign.redis_client import open_redis

        # The client ``ensign delivery`` opens: timeouts, health checks, connection retries.
        redis = await open_redis(settings.redis)
        lookup = FixedNameLookup(spec.users)
        await lookup.warm()
        app = create_app(settings, redis=redis, directory=lookup, chain=NullChain())

        async def close(app: web.Application) -> None:
            await lookup.close()
            await redis.aclose()

        app.on_cleanup.append(close)
        return app

    asyncio.run(
        serve(build, name="delivery", host=settings.host, port=settings.port, port_variable="DELIVERY_PORT")
    )


if __name__ == "__main__":
    main()
