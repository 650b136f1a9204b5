"""One delivery-service process for the benchmarks, run as production runs ``ensign delivery``.

    python -m bench.server SPEC_JSON PORT [--workers N]

Same app (:func:`delivery.app.create_app`), same Redis client
(:func:`ensign.redis_client.open_redis`), same logging (:func:`ensign.logs.configure_logging`: JSON
lines at INFO on stderr, one per request from the app's middleware plus the app's own), same
serving loop (:func:`stack.serve.serve` on uvloop, stops on SIGTERM) and, with ``--workers``, the
same worker processes (:func:`stack.workers.run_workers`: ``SO_REUSEPORT``, metrics summed). Only
the directory differs: :class:`bench.fixtures.FixedNameLookup`, warmed before serving, so every
name lookup is a cache hit.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from pathlib import Path

from aiohttp import web

from bench.fixtures import FixedNameLookup, NullChain, ServiceSpec
from ensign.config import DeliverySettings

#: What ``--without`` can switch off, for :mod:`bench.ablation` only (never in production): each
#: piece of a submission's path that is not its cryptography, one at a time.
PIECES = {
    "log": "the request's log line",
    "address": "the client address's rate bucket (a Redis round trip before the body is read)",
    "sender_pair": "the sender's and the pair's rate buckets (taken in the queue insert's call)",
    "deadline": "the request deadline middleware",
    "push": "the push listener (it hears only the accounts with sockets here: none in the closed loop)",
    "seal": "the at-rest seal of the stored record (it is stored in clear, as a record written before sealing)",
}


def switch_off(settings: DeliverySettings, without: frozenset[str]) -> DeliverySettings:
    """``settings`` with the pieces named in ``without`` off, and those that are code patched out."""
    unknown = without - set(PIECES)
    if unknown:
        raise SystemExit(f"unknown piece(s): {', '.join(sorted(unknown))}; choose from {', '.join(PIECES)}")
    limits = settings.limits
    if "address" in without:
        limits = dataclasses.replace(limits, address=None)
    if "sender_pair" in without:
        limits = dataclasses.replace(limits, sender=None, pair=None)
    if "deadline" in without:
        import delivery.app

        def no_deadline(*args: object, **kwargs: object) -> object:
            @web.middleware
            async def passthrough(request: web.Request, handler: object) -> web.StreamResponse:
                return await handler(request)  # type: ignore[operator, no-any-return]

            return passthrough

        delivery.app.deadline_middleware = no_deadline  # type: ignore[assignment]
    if "push" in without:
        import delivery.push

        delivery.push.PushListener.start = lambda self: None  # type: ignore[method-assign]
    if "seal" in without:
        import delivery.at_rest

        # A plain envelope is what the queue reads back unchanged (AtRest.open).
        delivery.at_rest.AtRest.seal = lambda self, envelope, account: envelope  # type: ignore[method-assign]
    return dataclasses.replace(settings, limits=limits)


def serve_one(
    spec_path: Path, port: int, *, metrics_dir: str | None = None, reuse_port: bool = False,
    without: frozenset[str] = frozenset(),
) -> None:
    from ensign.logs import configure_logging
    from stack.serve import run, serve

    spec = ServiceSpec.load(spec_path)
    settings = switch_off(spec.settings(port), without)
    configure_logging(settings.log_level, redact={"REDIS_URL": settings.redis.url})
    if "log" in without:
        logging.getLogger("ensign.request").setLevel(logging.WARNING)

    async def build() -> web.Application:
        from delivery.app import create_app
        from ensign.redis_client import open_redis

        # The client ``ensign delivery`` opens: timeouts, health checks, connection retries.
        redis = await open_redis(settings.redis)
        lookup = FixedNameLookup(spec.users)
        await lookup.warm()
        app = create_app(settings, redis=redis, directory=lookup, chain=NullChain(), metrics_dir=metrics_dir)

        async def close(app: web.Application) -> None:
            await lookup.close()
            await redis.aclose()

        app.on_cleanup.append(close)
        return app

    run(serve(build, name="delivery", host=settings.host, port=settings.port, port_variable="DELIVERY_PORT",
              reuse_port=reuse_port))


def _worker(spec_path: Path, index: int, port: int, metrics_dir: str) -> None:
    serve_one(spec_path, port, metrics_dir=metrics_dir, reuse_port=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("spec", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--without", default="", help=f"comma-separated pieces to switch off: {', '.join(PIECES)}")
    args = parser.parse_args()
    without = frozenset(p for p in args.without.split(",") if p)
    if args.workers == 1:
        serve_one(args.spec, args.port, without=without)
        return
    from ensign.logs import configure_logging
    from stack.workers import run_workers

    configure_logging("INFO")
    raise SystemExit(run_workers(functools.partial(_worker, args.spec), count=args.workers, host="127.0.0.1",
                                 port=args.port, port_variable="DELIVERY_PORT"))


if __name__ == "__main__":
    main()
