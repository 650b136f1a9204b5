"""The least a delivery service of this protocol can do per submission, served as the service is
served: what the per-message targets leave for everything else.

    python -m bench.minimal SPEC_JSON PORT      # the server; the bench starts and stops it

Its ``POST /rpc`` does only what no delivery service can leave out: read the body, parse the
JSON-RPC request and the envelope in it (the schema included), decrypt the delivery information,
verify the sender's signature, sign and encrypt the postmark, write the stored record's canonical
JSON, and append it to a Redis list with one script call batched per event-loop turn
(:class:`delivery.batching.ScriptBatcher`, as the service's inserts are). Nothing else: no rate
limits, request log, deadline, metrics, account or revocation checks, at-rest sealing, duplicate
detection or push. Same HTTP server, event loop and start-up (:func:`stack.serve.serve`: uvloop,
``gc.freeze``), same protocol code, same Redis client.

:func:`run_minimal` measures it like the service: the most it does (closed loop), its CPU per
message against the crypto floor of the same minute, and the open loop at 75 % of its own maximum
(the p99 target's load). Its records go under ``<prefix>minimal:`` and are deleted after each
loop. It is a yardstick, never run in production.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from .fixtures import ServiceSpec, delete_prefix
from .httpload import open_connections, open_loop
from .services import ServiceProcess, free_port
from .submit import _closed, _meter, crypto_floor_us, parsed_envelopes, warm_up
from .suite import Suite

__all__ = ["LOAD_SHARE", "minimal_app", "run_minimal"]

#: The open loop's load, as a share of the minimal server's own maximum (the p99 target's).
LOAD_SHARE = 0.75
FLOOR_MESSAGES = 1000
#: How long (ms) a record stays in Redis should a run be interrupted before its cleanup.
RECORD_TTL_MS = 60_000

_APPEND_LUA = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def records_prefix(spec: ServiceSpec) -> str:
    """Where the minimal server's records go."""
    return f"{spec.prefix}minimal:"


def minimal_app(spec: ServiceSpec) -> web.Application:
    """The app (module docstring); its Redis client is opened on the serving loop at start-up."""
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from delivery.batching import ScriptBatcher
    from delivery.intake import stored_envelope
    from ensign.protocol.canonical import stringify_bytes
    from ensign.protocol.crypto import EncryptionKeyPair
    from ensign.protocol.envelope import open_delivery_information, verify_envelope
    from ensign.protocol.models import EncryptionEnvelop, SignedUserProfile
    from ensign.protocol.postmark import create_postmark
    from ensign.protocol.safe_json import parse_json

    profiles = {u["name"]: SignedUserProfile.from_json(u["profile"]).profile for u in spec.users}
    ds_keys = EncryptionKeyPair(public_key=spec.encryption_public_key, secret_key=spec.encryption_private_key)
    prefix = records_prefix(spec)
    app = web.Application()
    append_key = web.AppKey("append", AsyncScript)
    batcher_key = web.AppKey("batcher", ScriptBatcher)

    async def clients(app: web.Application) -> AsyncIterator[None]:
        redis = aioredis.from_url(spec.redis_url, max_connections=64)
        app[append_key] = redis.register_script(_APPEND_LUA)
        app[batcher_key] = ScriptBatcher(redis)
        yield
        await redis.aclose()

    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"minimal": True})

    async def rpc(request: web.Request) -> web.Response:
        try:
            body = parse_json(await request.read())
            envelope = EncryptionEnvelop.from_json(parse_json(body["params"][0]))
            info = open_delivery_information(envelope, ds_keys)
            verify_envelope(envelope, profiles[info.from_].public_signing_key)
            postmark = create_postmark(envelope.message, spec.signing_private_key,
                                       profiles[info.to].public_encryption_key, int(time.time() * 1000))
        except Exception as exc:  # a yardstick, not the service: any refusal is a plain 400
            return web.json_response({"error": type(exc).__name__}, status=400)
        stored = stringify_bytes(stored_envelope(envelope.to_json(), info.to_json(), postmark))
        await request.app[batcher_key].call(request.app[append_key], keys=[prefix + info.to], args=[stored, RECORD_TTL_MS])
        return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": "success"})

    app.cleanup_ctx.append(clients)
    app.router.add_get("/hello", hello)
    app.router.add_post("/rpc", rpc)
    return app


async def run_minimal(suite: Suite, requests: list[bytes]) -> dict[str, Any]:
    """The minimal server's maximum, CPU per message and ratio to the crypto floor, and its open
    loop at :data:`LOAD_SHARE` of that maximum."""
    d = suite.durations
    prepared = parsed_envelopes(suite, FLOOR_MESSAGES)
    port = free_port()
    server = ServiceProcess(f"minimal:{port}", [sys.executable, "-m", "bench.minimal", str(suite.spec_path), str(port)],
                            port, suite.workdir / f"minimal-{port}.log", ready_path="/hello")
    suite.processes.append(server)
    await server.start()
    records = records_prefix(suite.spec)
    try:
        await warm_up(suite, [server], requests)
        floor_before = crypto_floor_us(suite, prepared)
        result, used = await _closed(suite, [server], requests, d.phase, d.connections)
        floor_after = crypto_floor_us(suite, prepared)
        await delete_prefix(suite.redis, records)
        floor = (floor_before + floor_after) / 2
        cpu = (used.get("server") or 0.0) / max(1, result.completed) * 1e6
        rate = result.rate * LOAD_SHARE
        conns = await open_connections([("127.0.0.1", server.port)], d.connections)
        try:
            meter = _meter(suite, [server])
            meter.start()
            loaded = await open_loop(conns, requests.__getitem__, rate=rate, count=max(1, min(len(requests), int(rate * d.phase))))
            loaded_cpu = meter.stop()
        finally:
            for conn in conns:
                conn.close()
        await delete_prefix(suite.redis, records)
    finally:
        await suite.stop(server)
    return {
        "max": {"rate": round(result.rate, 1), "completed": result.completed, "statuses": result.statuses,
                "p99_ms": round(result.p(0.99), 1), "server_cpu_us_per_msg": round(cpu, 1)},
        "crypto_floor_us": round(floor, 1),
        "ratio_to_crypto_floor": round(cpu / floor, 2) if floor else None,
        "load": {"share": LOAD_SHARE, "offered": round(rate, 1), "rate": round(loaded.rate, 1),
                 "completed": loaded.completed, "statuses": loaded.statuses,
                 "p50_ms": round(loaded.p(0.5), 1), "p99_ms": round(loaded.p(0.99), 1),
                 "server_cpu_us_per_msg": round((loaded_cpu.get("server") or 0.0) / max(1, loaded.completed) * 1e6, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("spec", type=Path)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    from stack.serve import run, serve

    spec = ServiceSpec.load(args.spec)
    run(serve(minimal_app(spec), name="minimal", host="127.0.0.1", port=args.port, port_variable="PORT"))


if __name__ == "__main__":
    main()
