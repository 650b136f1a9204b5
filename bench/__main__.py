"""Ensign's benchmarks: the delivery service and the resolver on this machine, against real Redis.

    .venv/bin/python -m bench            # the whole suite, about 3 minutes on two cores
    .venv/bin/python -m bench --quick    # a smoke run, well under a minute
    .venv/bin/python -m bench --only submit,floor --wait-calm 600

Redis is ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). The run writes only keys under its
own prefix ``bench:<random>:`` and deletes exactly those at the end, also after a failure; the big
queue needs about 750 MB of Redis memory for a moment (100,000 messages of 6 KB).

What runs, in order (each part is a module of this package):

=========  ================================================================================
submit     one delivery process (``bench.server``: the production app, logging and serving
           loop; profile lookups cached); closed-loop maximum; Redis memory of the queues it
           filled; then (after the floor) open-loop 25/50/75/100 % of the maximum
floor      the per-message work without HTTP, in this process, right after the maximum; the
           service's CPU per message over it
minimal    the least a service of this protocol does per submission (``bench.minimal``: HTTP,
           JSON-RPC and envelope parsing, the cryptography, one batched Redis write), served as
           the service is: its maximum, its ratio to the crypto floor, p99 at 75 % of its maximum
push       submit → socket.io ``message`` latency
inbox      fetch and ack throughput; one ack at 1,000 vs 100,000 queued; memory per message
multi      one multi-recipient envelope to 100 receivers against 100 single sends: the
           service's CPU per receiver each way, the sender's CPU, bytes sent and queued
scale      one process, then ``--workers N`` (every core) on one port; the ratio and who used the CPU
profile    a delivery process sampled by py-spy under load (skipped without py-spy)
resolver   ``ensign backend`` + ``ensign resolver``: gateway answers/s; lookups cold and warm
ablation   the service's CPU per message with each non-cryptographic piece of its path switched
           off in turn (``bench.server --without``), as a share of the whole service's; only
           with ``--only``: about 8 minutes
=========  ================================================================================

Output: a Markdown table on stdout, and ``bench/results/<UTC time>.json`` plus ``latest.json``,
``latest.md`` (git-ignored). The service processes, the load generator (this process) and Redis
share the machine's cores: read CPU-per-operation figures as the cost, rates as what this
machine gave.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from . import ablation, inbox, minimal, multi, push, report, resolver, submit
from .fixtures import ServiceSpec, make_envelopes, make_users, redis_url
from .procstat import calibrate, machine
from .suite import Durations, Suite

PARTS = ("submit", "floor", "minimal", "push", "inbox", "multi", "scale", "profile", "resolver", "ablation")
#: What a run without --only runs: the ablation (about 8 minutes more) only when asked for.
DEFAULT_PARTS = tuple(part for part in PARTS if part != "ablation")
RESULTS = Path(__file__).resolve().parent / "results"
CALM_LOAD = 1.5


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument("--only", default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated parts of {','.join(PARTS)} (default all but ablation)")
    parser.add_argument("--wait-calm", type=float, default=0.0, metavar="SECONDS",
                        help=f"first wait up to SECONDS for the 1-minute load average to drop to {CALM_LOAD}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and Markdown results")
    return parser.parse_args()


def _wait_calm(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] > CALM_LOAD and time.monotonic() < deadline:
        print(f"load average {os.getloadavg()[0]:.2f} > {CALM_LOAD}: waiting", file=sys.stderr, flush=True)
        time.sleep(15)


async def _redis_pid(redis: aioredis.Redis) -> int | None:
    """Redis' pid when it runs on this machine (its CPU is then measured too)."""
    pid = (await redis.info("server")).get("process_id")
    if not isinstance(pid, int):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return None
    return pid if "redis" in comm else None


async def _run(parts: set[str], durations: Durations, out: Path, results: dict[str, Any]) -> None:
    url = redis_url()
    # Users and envelopes are made in worker processes, before this process opens any connection.
    step = time.perf_counter()
    # The multi-recipient part needs a sender and its receivers among the users.
    users = make_users(max(durations.users, durations.multi_recipients + 1) if "multi" in parts else durations.users)
    spec = ServiceSpec.create(url, Suite.new_prefix(), users)
    envelopes = make_envelopes(users, spec.encryption_public_key, durations.envelopes)
    print(f"made {len(users)} users and {len(envelopes)} envelopes in {time.perf_counter() - step:.1f} s", file=sys.stderr)
    redis = aioredis.from_url(url, max_connections=256)
    info = await redis.info("server")
    results["machine"] = {**machine(str(info.get("redis_version"))), "load_before": results.pop("load_before"),
                          "verify_us_before": calibrate()}
    out.mkdir(parents=True, exist_ok=True)
    suite = Suite(redis, url, durations, users, envelopes, spec, Suite.new_workdir(), out, await _redis_pid(redis),
                  results)
    spec.save(suite.spec_path)

    def done(part: str) -> None:
        nonlocal step
        print(f"{part}: {time.perf_counter() - step:.1f} s", file=sys.stderr, flush=True)
        step = time.perf_counter()

    try:
        step = time.perf_counter()
        requests = suite.prebuilt()
        server = await suite.start_delivery()
        await submit.sign_up_all(suite, server)
        if parts & {"submit", "push"}:
            results["submit"] = await submit.run_max(suite, server, requests)
            done("submit (max)")
        if "floor" in parts:
            # Right after the maximum: the host's speed drifts within minutes, the ratio needs both.
            # The host's speed around the maximum, which the crypto floor is measured to match.
            maximum = results.get("submit", {}).get("max", {})
            around = [maximum[key] for key in ("verify_us", "verify_us_after") if maximum.get(key)]
            reference = sum(around) / len(around) if around else None
            results["floor"] = await submit.run_floor(suite, min(len(envelopes), 5000), reference)
            done("floor")
        max_rate = results.get("submit", {}).get("max", {}).get("rate", 0.0)
        if "minimal" in parts:
            results["minimal"] = await minimal.run_minimal(suite, requests)
            done("minimal")
        if "submit" in parts:
            results["submit"]["loads"] = await submit.run_loads(suite, server, requests, max_rate)
            results["submit"]["round_trip"] = await submit.round_trip_cpu(redis)
            done("submit (loads)")
        if "push" in parts:
            results["push"] = await push.run_push(suite, server, requests, max_rate)
            done("push")
        if "inbox" in parts:
            results["inbox"] = await inbox.run_inbox(suite, server)
            done("inbox")
        if "multi" in parts:
            results["multi"] = await multi.run_multi(suite, server)
            done("multi")
        if "scale" in parts:
            results["scale"] = await submit.run_scale(suite, server, requests)
            done("scale")
        await suite.stop(server)
        if "profile" in parts:
            results["profile"] = await submit.run_profile(suite, requests)
            done("profile")
        if "resolver" in parts:
            results["resolver"] = await resolver.run_resolver(suite)
            done("resolver")
        if "ablation" in parts:
            results["ablation"] = await ablation.run_ablation(suite, requests)
            done("ablation")
    finally:
        await suite.close()
        await redis.aclose()
    results["machine"]["verify_us_after"] = calibrate()


def main() -> int:
    args = _arguments()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        print(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    if args.wait_calm:
        _wait_calm(args.wait_calm)
    durations = Durations.quick() if args.quick else Durations()
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "durations": asdict(durations),
                               "parts": sorted(parts)}
    results["load_before"] = os.getloadavg()
    started = time.perf_counter()
    asyncio.run(_run(parts, durations, args.out, results))
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["derived"] = report.derive(results)
    table = report.markdown(results, results["derived"])
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=1)
    (args.out / f"{stamp}.json").write_text(text)
    (args.out / "latest.json").write_text(text)
    (args.out / "latest.md").write_text(table)
    print(f"results: {args.out / (stamp + '.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
