"""CCIP gateway micro-benchmark: namehash, request decoding, and one gateway GET round trip.

    .venv/bin/python bench/bench_ccip.py [--rounds 200]

Prints per-call times (median and p90, milliseconds). "first" is the first call for a name the
process has not seen (what an uncached ENSIP-15 normalisation costs); "repeat" is the same name
again, the common case on a gateway that answers the same few names all day. The GET goes through
the real aiohttp app (in-memory records, aiohttp's test server on 127.0.0.1), so it includes
decoding, signing and HTTP. Touches no Redis and no network beyond the loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

from aiohttp.test_utils import TestClient, TestServer
from eth_account import Account
from eth_utils.crypto import keccak

from ensign.config import GatewaySettings
from resolver import ccip
from resolver.gateway import create_app
from resolver.records import InMemoryRecordSource, NameRecords

RESOLVER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NAME = "alice.user.ensign.eth"  # four labels
ADDRESS = "0x71C7656EC7ab88b098defB751B7401B5f6d8976F"
T = TypeVar("T")


def plain_namehash(name: str) -> bytes:
    """Namehash of an ASCII lower-case name, computed here so building a request warms no cache."""
    node = b"\x00" * 32
    for label in reversed(name.split(".")):
        node = keccak(node + keccak(text=label))
    return node


def text_call(name: str, key: str = "email") -> bytes:
    return ccip.encode_resolve_call(ccip.dns_encode(name), ccip.encode_text_call(plain_namehash(name), key))


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def first_calls(fn: Callable[[T], object], prepare: Callable[[str], T], rounds: int) -> list[float]:
    """Times of ``fn(prepare(name))`` on ``rounds`` names never seen before; ``prepare`` is not timed."""
    samples = []
    for i in range(rounds):
        argument = prepare(f"fresh{i}x{time.perf_counter_ns()}.user.ensign.eth")
        start = time.perf_counter()
        fn(argument)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def report(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(f"{label:<44} median {statistics.median(samples):8.3f} ms   p90 {p90:8.3f} ms   (n={len(samples)})")


async def gateway_round_trips(rounds: int) -> list[float]:
    signer = Account.create()
    records = InMemoryRecordSource([NameRecords(name=NAME, address=ADDRESS, texts={"email": "alice@example.com"})])
    app = create_app(GatewaySettings(signer_key=signer.key.hex()), records=records)
    path = f"/{RESOLVER.lower()}/0x{text_call(NAME).hex()}.json"
    samples = []
    async with TestClient(TestServer(app)) as client:
        for _ in range(rounds + 5):
            start = time.perf_counter()
            response = await client.get(path)
            await response.read()
            samples.append((time.perf_counter() - start) * 1e3)
            assert response.status == 200, response.status
    return samples[5:]  # the first requests warm up connections and the app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds

    call_data = text_call(NAME)
    assert plain_namehash(NAME) == ccip.namehash(NAME)  # also loads web3's normaliser tables untimed
    report("namehash, 4 labels, first", first_calls(ccip.namehash, str, rounds))
    report("namehash, 4 labels, repeat", timed(lambda: ccip.namehash(NAME), rounds))
    report(
        "decode_resolve_request text, first",
        first_calls(ccip.decode_resolve_request, text_call, rounds),
    )
    report("decode_resolve_request text, repeat", timed(lambda: ccip.decode_resolve_request(call_data), rounds))
    report("gateway GET text round trip, repeat", asyncio.run(gateway_round_trips(rounds)))


if __name__ == "__main__":
    main()
