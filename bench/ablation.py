"""Ablation: what each piece of a submission's path that is not cryptography costs, by switching it
off (``bench.server --without``) and measuring the service's CPU per message again.

Each round measures the crypto floor (:func:`bench.submit.crypto_floor_us`) in this process, then
starts one service process per variant in turn — everything on, each piece of
:data:`bench.server.PIECES` off alone, all of them off — and runs the same closed loop
(``connections`` clients) against each. The host's speed drifts by tens of percent between minutes,
so each variant is compared with the whole service and the crypto floor of its own round, and the
medians of the rounds' ratios are reported.
"""

from __future__ import annotations

import statistics
from typing import Any

from .server import PIECES
from .submit import _closed, crypto_floor_us, parsed_envelopes, warm_up
from .suite import Suite

__all__ = ["ROUNDS", "run_ablation"]

ROUNDS = 5
PHASE = 3.0  # seconds of closed loop per variant and round: short, so a round spans little drift
FLOOR_MESSAGES = 1000


async def run_ablation(suite: Suite, requests: list[bytes], rounds: int = ROUNDS) -> dict[str, Any]:
    """CPU per message of the service with each piece off, against the whole service's and the
    crypto floor's of the same round."""
    variants: list[tuple[str, tuple[str, ...]]] = [("nothing", ())]
    variants += [(piece, (piece,)) for piece in PIECES]
    variants.append(("all of them", tuple(PIECES)))
    prepared = parsed_envelopes(suite, FLOOR_MESSAGES)
    d = suite.durations
    phase = min(PHASE, d.phase)
    floors: list[float] = []
    cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(rounds):
        floors.append(crypto_floor_us(suite, prepared))
        for name, without in variants:
            server = await suite.start_delivery(without=without)
            try:
                await warm_up(suite, [server], requests)
                result, used = await _closed(suite, [server], requests, phase, d.connections)
                await suite.clear_queues()
            finally:
                await suite.stop(server)
            seconds = used.get("server")
            cpu[name].append(seconds / result.completed * 1e6 if seconds is not None and result.completed else float("nan"))
    whole = cpu["nothing"]
    out: dict[str, Any] = {
        "rounds": rounds, "connections": d.connections, "phase_s": phase,
        "crypto_floor_us": [round(v) for v in floors], "variants": [],
    }
    for name, _ in variants:
        out["variants"].append({
            "off": name,
            "what": PIECES.get(name, ""),
            "cpu_us": [round(v) for v in cpu[name]],
            "ratio_to_whole": round(statistics.median(v / w for v, w in zip(cpu[name], whole)), 3),
            "ratio_to_crypto_floor": round(statistics.median(v / f for v, f in zip(cpu[name], floors)), 2),
        })
    return out
