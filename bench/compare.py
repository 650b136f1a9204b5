"""Side by side: this checkout's delivery process against another revision's, or against itself
with pieces switched off; the two alternate in rounds, so the host's drift hits both alike.

    .venv/bin/python -m bench.compare --base 1ac472e           # a git revision (temporary worktree)
    .venv/bin/python -m bench.compare --without sender_pair    # this code, pieces off (bench.server)
    .venv/bin/python -m bench.compare --base HEAD~2 --rounds 8 --rates 300,1100
    .venv/bin/python -m bench.compare --python /tmp/other-venv/bin/python   # this code, another interpreter
    .venv/bin/python -m bench.compare --base 1ac472e --paired  # both at once, sharing every moment

Each round starts the two services in turn (which goes first alternates) and runs against each a
closed loop (64 clients, the most it does) and an open loop at each ``--rates`` (latency from
the scheduled send time), measuring the service's CPU per message and the open loops' p99. It
prints each side's medians and the median of the rounds' new ÷ base ratios: the figure to quote,
since absolute figures move by tens of percent between minutes on a shared host.

``--paired`` runs the two services at the same time instead, the load generator's connections
spread over both (each envelope goes to one), so whatever the host does in a second it does to
both: each round's ratio is then of two measurements taken in the same seconds, where taking
turns leaves ±5–10 % between them on a shared host (the same code against itself read 0.97× and
1.05× over ten rounds). The open loops offer each service the rate given (both together twice
it); only CPU per message is compared, since each service's latency then includes the other's
work on the shared cores.

Same Redis (``REDIS_URL``), users, envelopes and key prefix handling as the suite
(:mod:`bench.__main__`). A base revision runs from a detached ``git worktree`` made for the run
and removed after it, with this checkout's virtualenv: a revision needing other packages than
those installed cannot be compared this way. ``--python`` runs the new side's service on another
interpreter, which must have the project installed (``make install PYTHON=… VENV=…``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from . import submit
from .__main__ import RESULTS, _redis_pid
from .fixtures import ServiceSpec, make_envelopes, make_users, redis_url
from .httpload import Connection, closed_loop, open_connections, open_loop
from .procstat import CpuMeter, calibrate
from .server import PIECES
from .services import ROOT, ServiceProcess
from .suite import Durations, Suite

__all__ = ["compare"]


@contextmanager
def _worktree(revision: str) -> Iterator[Path]:
    """A detached checkout of ``revision`` in a temporary directory, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ensign-bench-base-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), revision], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


async def _measure(
    suite: Suite, requests: list[bytes], root: Path | None, without: tuple[str, ...], rates: list[float], phase: float,
    python: str | None = None,
) -> dict[str, float]:
    """One side of one round: CPU per message closed loop and at each rate, and each rate's p99."""
    server = await suite.start_delivery(without=without, root=root, python=python)
    d = suite.durations
    out: dict[str, float] = {}
    try:
        await submit.warm_up(suite, [server], requests)
        result, used = await submit._closed(suite, [server], requests, phase, d.connections)
        await suite.clear_queues()
        out["closed loop: CPU µs per message"] = (used["server"] or 0.0) / max(1, result.completed) * 1e6
        for rate in rates:
            conns = await open_connections([("127.0.0.1", server.port)], d.connections)
            try:
                meter = submit._meter(suite, [server])
                meter.start()
                run = await open_loop(conns, requests.__getitem__, rate=rate, count=max(1, int(rate * phase)))
                cpu = meter.stop()
            finally:
                for conn in conns:
                    conn.close()
            await suite.clear_queues()
            out[f"{rate:g}/s: CPU µs per message"] = (cpu["server"] or 0.0) / max(1, run.completed) * 1e6
            out[f"{rate:g}/s: p99 ms"] = run.p(0.99)
    finally:
        await suite.stop(server)
    return out


def _per_server(
    conns: list[Connection], ports: dict[str, int], used: dict[str, float | None], label: str
) -> dict[str, dict[str, float]]:
    """Each side's CPU µs per message over one paired loop: its process's CPU over the answers read
    on its connections."""
    out: dict[str, dict[str, float]] = {}
    for side, port in ports.items():
        answered = sum(c.answered for c in conns if c.port == port)
        out[side] = {label: (used.get(side) or 0.0) / max(1, answered) * 1e6}
    return out


async def _measure_paired(
    suite: Suite, requests: list[bytes], roots: dict[str, Path | None], without: tuple[str, ...], rates: list[float],
    phase: float, python: str | None = None,
) -> dict[str, dict[str, float]]:
    """One paired round: both sides served at once (``--paired``), CPU per message each."""
    servers: dict[str, ServiceProcess] = {}
    try:
        for side, root in roots.items():
            new = side == "new"
            servers[side] = await suite.start_delivery(
                without=without if new else (), root=root, python=python if new else None
            )
        both = list(servers.values())
        ports = {side: server.port for side, server in servers.items()}
        d = suite.durations
        await submit.warm_up(suite, both, requests)
        out: dict[str, dict[str, float]] = {side: {} for side in servers}
        loops: list[tuple[str, float | None]] = [("closed loop: CPU µs per message", None)]
        loops += [(f"{rate:g}/s: CPU µs per message", rate) for rate in rates]
        for label, rate in loops:
            conns = await open_connections([("127.0.0.1", s.port) for s in both], d.connections)
            try:
                meter = CpuMeter({side: server.pid for side, server in servers.items()})
                meter.start()
                if rate is None:
                    await closed_loop(conns, requests.__getitem__, duration=phase, limit=len(requests))
                else:
                    count = max(2, int(2 * rate * phase))
                    await open_loop(conns, requests.__getitem__, rate=2 * rate, count=count)
                used = meter.stop()
            finally:
                for conn in conns:
                    conn.close()
            await suite.clear_queues()
            for side, figures in _per_server(conns, ports, used, label).items():
                out[side].update(figures)
        return out
    finally:
        for server in servers.values():
            await suite.stop(server)


async def compare(
    base_root: Path | None, without: tuple[str, ...], rounds: int, rates: list[float], phase: float,
    python: str | None = None, paired: bool = False,
) -> dict[str, Any]:
    """Alternate base (``base_root``'s code, or this code whole) and new (this code, ``without``
    those pieces, on ``python`` if given) for ``rounds`` rounds; each figure per round for both,
    and the ratios' medians."""
    url = redis_url()
    durations = Durations()
    users = make_users(durations.users)
    spec = ServiceSpec.create(url, Suite.new_prefix(), users)
    envelopes = make_envelopes(users, spec.encryption_public_key, durations.envelopes)
    redis = aioredis.from_url(url, max_connections=256)
    suite = Suite(redis, url, durations, users, envelopes, spec, Suite.new_workdir(), RESULTS, await _redis_pid(redis), {})
    spec.save(suite.spec_path)
    sides = {"base": (base_root, (), None), "new": (None, without, python)}
    figures: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    verify_before = calibrate()
    try:
        requests = suite.prebuilt()
        first = await suite.start_delivery()
        await submit.sign_up_all(suite, first)
        await suite.stop(first)
        for index in range(rounds):
            order = ("base", "new") if index % 2 == 0 else ("new", "base")
            if paired:
                roots = {side: sides[side][0] for side in order}
                measured = await _measure_paired(suite, requests, roots, without, rates, phase, python)
                for side in order:
                    figures[side].append(measured[side])
            else:
                for side in order:
                    root, off, interpreter = sides[side]
                    figures[side].append(await _measure(suite, requests, root, off, rates, phase, interpreter))
            line = "; ".join(f"{k}: {figures['base'][-1][k]:.1f} → {figures['new'][-1][k]:.1f}" for k in figures["new"][-1])
            print(f"round {index + 1}: {line}", file=sys.stderr, flush=True)
    finally:
        await suite.close()
        await redis.aclose()
    summary = {}
    for key in figures["new"][0]:
        base = [f[key] for f in figures["base"]]
        new = [f[key] for f in figures["new"]]
        ratios = [n / b for n, b in zip(new, base) if b]
        summary[key] = {"base_median": statistics.median(base), "new_median": statistics.median(new),
                        "median_ratio": statistics.median(ratios), "ratios": ratios}
    return {"rounds": rounds, "rates": rates, "phase_s": phase, "without": list(without), "paired": paired,
            "verify_us": [verify_before, calibrate()], "per_round": figures, "summary": summary}


def _table(result: dict[str, Any], base: str, new: str) -> str:
    lines = [f"| measurement | {base} (median) | {new} (median) | new ÷ base (median of {result['rounds']} rounds) |",
             "| --- | --- | --- | --- |"]
    for key, s in result["summary"].items():
        spread = ", ".join(f"{r:.2f}" for r in s["ratios"])
        lines.append(f"| {key} | {s['base_median']:,.1f} | {s['new_median']:,.1f} | **{s['median_ratio']:.3f}** ({spread}) |")
    verify = result["verify_us"]
    lines.append(f"\nHost speed: one Ed25519 verify took {verify[0]:.1f} µs of CPU before and {verify[1]:.1f} µs after.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", help="a git revision to compare this checkout with")
    parser.add_argument("--without", default="", help=f"pieces this checkout runs without: {', '.join(PIECES)}")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rates", default="300,1100", help="open-loop rates, messages per second")
    parser.add_argument("--python", help="another interpreter (with the project installed) to run this checkout on")
    parser.add_argument("--phase", type=float, default=3.0, help="seconds per loop")
    parser.add_argument("--paired", action="store_true", help="run both services at once (CPU per message only)")
    args = parser.parse_args()
    without = tuple(p.strip() for p in args.without.split(",") if p.strip())
    unknown = set(without) - set(PIECES)
    if unknown or [args.base is not None, bool(without), args.python is not None].count(True) != 1:
        parser.error(f"give one of --base REVISION, --without PIECES (pieces: {', '.join(PIECES)}) or --python PATH")
    if args.python is not None and not (Path(args.python).is_file() and os.access(args.python, os.X_OK)):
        parser.error(f"--python {args.python} is not an executable file")
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.rounds < 1 or args.phase <= 0 or any(r <= 0 for r in rates):
        parser.error("--rounds, --phase and every rate must be positive")
    started = time.perf_counter()
    if args.base is not None:
        with _worktree(args.base) as root:
            result = asyncio.run(compare(root, (), args.rounds, rates, args.phase, paired=args.paired))
        labels = (args.base, "this checkout")
    elif args.python is not None:
        result = asyncio.run(compare(None, (), args.rounds, rates, args.phase, python=args.python, paired=args.paired))
        labels = (sys.executable, args.python)
    else:
        result = asyncio.run(compare(None, without, args.rounds, rates, args.phase, paired=args.paired))
        labels = ("whole service", f"without {', '.join(without)}")
    result["base"], result["python"], result["seconds"] = args.base, args.python, round(time.perf_counter() - started, 1)
    print(_table(result, *labels))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"compare-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
