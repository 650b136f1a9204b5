"""Resolver: CCIP-Read gateway answers per second, and profile lookups cold and warm.

* **gateway** — ``ensign backend`` and ``ensign resolver`` run as production runs them (their own
  processes, settings from the environment, the gateway reading the backend over HTTP, the
  backend on Redis under the bench's prefix). A closed loop of EIP-3668 ``GET
  /{sender}/{data}.json`` requests for the ``network.dm3.profile`` text and the ``addr`` record of
  registered names: signed answers per second, and the CPU each process spends per answer.
* **lookup** — :class:`ensign.ens.lookup.NameLookup` on the embedded chain (py-evm, our
  OffchainResolver and Universal Resolver stand-in), through an in-process gateway with the dev
  stack's batch gateway, reading the same backend. *Cold*: the first ``user_profile`` of a name
  (the chain call, the CCIP-Read round trips, the profile's signature check). *Warm*: the same
  lookups from the cache, as the delivery service sees them in production.
* **namehash / request decoding** — the gateway's per-request work on a name it has seen before
  and on one it has not (ENSIP-15 normalisation is cached).

On a real deployment a cold lookup costs the node's ``eth_call`` latency plus the gateway's round
trip instead of py-evm executing the contracts in process.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from eth_account import Account

from ensign.config import ChainSettings, GatewaySettings
from ensign.ens import ccip

from .fixtures import ADDR_DOMAIN
from .httpload import build_request, closed_loop, open_connections, percentile
from .procstat import CpuMeter
from .services import ServiceProcess, free_port
from .suite import Suite

__all__ = ["run_resolver"]

from ensign.protocol.records import PROFILE_RECORD_NAME as PROFILE_KEY
# The OffchainResolver address the gateway signs for; any address works for the measurement.
RESOLVER_ADDRESS = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
# Distinct requests for the signing measurement: more than the gateway answers in warm-up and phase.
_FRESH_REQUESTS = 60_000


def _ensign() -> str:
    return str(Path(sys.executable).with_name("ensign"))


def _resolve_call(name: str, record: bytes) -> bytes:
    return ccip.encode_resolve_call(ccip.dns_encode(name), record)


def _plain_namehash(name: str) -> bytes:
    # Computed without ccip's ENSIP-15 cache, so building a request warms nothing.
    from eth_utils.crypto import keccak

    node = b"\x00" * 32
    for label in reversed(name.split(".")):
        node = keccak(node + keccak(text=label))
    return node


def _micro(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def _first_calls(fn: Callable[[Any], object], prepare: Callable[[str], Any], rounds: int) -> float:
    samples = []
    for i in range(rounds):
        argument = prepare(f"fresh{i}x{time.perf_counter_ns()}.user.ensign.eth")
        started = time.perf_counter()
        fn(argument)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def micro(rounds: int = 200) -> dict[str, float]:
    """Median µs of the gateway's per-request steps, on a name seen before and on a new one."""
    name = "alice.user.ensign.eth"
    text_call = _resolve_call(name, ccip.encode_text_call(_plain_namehash(name), PROFILE_KEY))
    ccip.namehash(name)  # loads the ENSIP-15 tables outside the timing
    return {
        "namehash_repeat_us": round(_micro(lambda: ccip.namehash(name), rounds), 1),
        "namehash_first_us": round(_first_calls(ccip.namehash, str, rounds), 1),
        "decode_request_repeat_us": round(_micro(lambda: ccip.decode_resolve_request(text_call), rounds), 1),
        "decode_request_first_us": round(
            _first_calls(
                ccip.decode_resolve_request,
                lambda n: _resolve_call(n, ccip.encode_text_call(_plain_namehash(n), PROFILE_KEY)),
                rounds,
            ),
            1,
        ),
    }


async def run_resolver(suite: Suite) -> dict[str, Any]:
    d = suite.durations
    signer = Account.create()
    backend_port, gateway_port = free_port(), free_port()
    backend = ServiceProcess(
        "backend", [_ensign(), "backend"], backend_port, suite.workdir / "backend.log",
        env={"REDIS_URL": suite.redis_url, "REDIS_PREFIX": f"{suite.prefix}backend:", "BACKEND_PORT": str(backend_port),
             "LOG_LEVEL": "INFO"},
    )
    gateway = ServiceProcess(
        "gateway", [_ensign(), "resolver"], gateway_port, suite.workdir / "gateway.log",
        env={"GATEWAY_SIGNER_KEY": "0x" + bytes(signer.key).hex(), "GATEWAY_PORT": str(gateway_port),
             "BACKEND_URL": f"http://127.0.0.1:{backend_port}", "LOG_LEVEL": "INFO"},
    )
    names = suite.users[: max(d.lookup_names * 2, 16)]
    out: dict[str, Any] = {"micro": micro()}
    for process in (backend, gateway):
        suite.processes.append(process)
        await process.start()
    try:
        async with aiohttp.ClientSession() as http:
            for user in names:
                body = {"signedUserProfile": user.profile, "address": user.address, "subdomain": ADDR_DOMAIN}
                async with http.post(f"http://127.0.0.1:{backend_port}/profile/address", json=body) as response:
                    if response.status not in (200, 201):
                        raise RuntimeError(f"backend refused a profile: {response.status} {await response.text()}")

        # Gateway answers per second: text and addr of every registered name.
        requests = []
        for user in names:
            node = _plain_namehash(user.name)
            for record in (ccip.encode_text_call(node, PROFILE_KEY), ccip.encode_addr_call(node)):
                path = f"/{RESOLVER_ADDRESS}/0x{_resolve_call(user.name, record).hex()}.json"
                requests.append(build_request("GET", path))
        # The same records asked for by a different resolver address each time: the gateway reads
        # the backend and signs every answer (its reuse is per resolver and calldata).
        fresh = []
        for i in range(_FRESH_REQUESTS):
            user = names[i % len(names)]
            node = _plain_namehash(user.name)
            record = ccip.encode_text_call(node, PROFILE_KEY) if i % 2 else ccip.encode_addr_call(node)
            fresh.append(build_request("GET", f"/0x{i:040x}/0x{_resolve_call(user.name, record).hex()}.json"))
        out["gateway"] = await _gateway_load(suite, gateway, backend, lambda i: requests[i % len(requests)])
        out["gateway_signing"] = await _gateway_load(suite, gateway, backend, fresh.__getitem__, limit=len(fresh))
        out["lookup"] = await _lookups(suite, names[: d.lookup_names], backend_port)
    finally:
        for process in (gateway, backend):
            await suite.stop(process)
    return out


async def _gateway_load(
    suite: Suite, gateway: ServiceProcess, backend: ServiceProcess, request: Callable[[int], bytes], limit: int | None = None
) -> dict[str, Any]:
    """Closed loop of 16 clients against the gateway: answers/s and each process's CPU per answer."""
    d = suite.durations
    conns = await open_connections([("127.0.0.1", gateway.port)], 16)
    meter = CpuMeter({"gateway": gateway.pid, "backend": backend.pid})
    try:
        warm = await closed_loop(conns, request, duration=d.warmup, limit=limit)
        offset = warm.completed + warm.errors

        meter.start()
        result = await closed_loop(conns, lambda i: request(offset + i), duration=d.phase,
                                   limit=None if limit is None else limit - offset)
        cpu = meter.stop()
    finally:
        for conn in conns:
            conn.close()
    return {
        "answers_per_s": round(result.rate, 1),
        "p50_ms": round(result.p(0.5), 2),
        "p99_ms": round(result.p(0.99), 2),
        "errors": result.errors,
        "gateway_cpu_us_per_answer": round((cpu["gateway"] or 0) / max(1, result.completed) * 1e6, 1),
        "backend_cpu_us_per_answer": round((cpu["backend"] or 0) / max(1, result.completed) * 1e6, 1),
    }


async def _lookups(suite: Suite, users: list[Any], backend_port: int) -> dict[str, Any]:
    from stack.devchain import DevChain
    from resolver.gateway import create_app as create_gateway
    from ensign.ens.lookup import open_lookup

    signer = Account.create()
    settings = GatewaySettings(signer_key="0x" + bytes(signer.key).hex(), backend_url=f"http://127.0.0.1:{backend_port}")
    gateway = TestServer(create_gateway(settings, batch_gateway=True), host="127.0.0.1")
    await gateway.start_server()
    chain = await DevChain(
        gateway_url=f"http://127.0.0.1:{gateway.port}/{{sender}}/{{data}}.json",
        signers=[signer.address],
        offchain_names=[ADDR_DOMAIN, "user.ensign.eth"],
    ).start()
    lookup = await open_lookup(ChainSettings(), w3=chain.w3)
    try:
        cold, warm_profile, warm_address = [], [], []
        for user in users:
            started = time.perf_counter()
            resolved = await lookup.user_profile(user.name)
            cold.append(time.perf_counter() - started)
            assert resolved.address == user.address
        for _ in range(50):
            for user in users:
                started = time.perf_counter()
                await lookup.user_profile(user.name)
                warm_profile.append(time.perf_counter() - started)
                started = time.perf_counter()
                await lookup.address(user.name)
                warm_address.append(time.perf_counter() - started)
        return {
            "names": len(users),
            "cold_p50_ms": round(percentile(cold, 0.5) * 1e3, 1),
            "cold_max_ms": round(max(cold) * 1e3, 1),
            "warm_profile_p50_us": round(percentile(warm_profile, 0.5) * 1e6, 1),
            "warm_address_p50_us": round(percentile(warm_address, 0.5) * 1e6, 1),
        }
    finally:
        await lookup.close()
        await chain.close()
        await gateway.close()
