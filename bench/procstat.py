"""CPU accounting from ``/proc``: seconds of CPU a process used, and how busy the machine was.

Benchmarks on a shared two-core machine are read best as CPU per operation: a process's CPU time
does not count the time it waited for a core, so it separates "this costs X µs of CPU" from
"the machine was full". Linux only; on other systems every reading is ``None``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "calibrate", "machine", "process_detail"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (``None`` when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_detail(pid: int) -> tuple[float, float, int] | None:
    """User CPU seconds, system CPU seconds and voluntary context switches (the times it blocked,
    waiting for something) of ``pid`` so far; ``None`` when they cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(fields[11]) / _TICK, int(fields[12]) / _TICK, int(line.split()[1])
    return None


def machine_busy() -> tuple[float, float] | None:
    """``(busy, total)`` CPU seconds of the whole machine so far (all cores), from ``/proc/stat``."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in line[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / _TICK, total / _TICK


@dataclass
class CpuMeter:
    """CPU used by named processes between :meth:`start` and :meth:`stop`.

    ``readings`` maps each name to CPU seconds used in the interval; ``"machine"`` is the share of
    all cores that was busy (0…1), whatever process used it.
    """

    pids: dict[str, int]

    def start(self) -> None:
        self._before = {name: process_cpu(pid) for name, pid in self.pids.items()}
        self._machine = machine_busy()

    def stop(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            before, after = self._before.get(name), process_cpu(pid)
            out[name] = None if before is None or after is None else after - before
        end = machine_busy()
        if self._machine is not None and end is not None and end[1] > self._machine[1]:
            out["machine"] = (end[0] - self._machine[0]) / (end[1] - self._machine[1])
        else:
            out["machine"] = None
        return out


def calibrate(rounds: int = 5, calls: int = 400) -> float:
    """CPU µs of one Ed25519 verify (libsodium), the median of ``rounds``: this host's speed now.

    A shared or virtual host runs the same instructions at different speeds from hour to hour; a
    run's figures are comparable with another run's after dividing by this.
    """
    import statistics
    import time

    import nacl.bindings as sodium

    public, secret = sodium.crypto_sign_keypair()
    signed = sodium.crypto_sign(b"x" * 200, secret)
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            sodium.crypto_sign_open(signed, public)
        samples.append((time.process_time() - started) / calls * 1e6)
    return round(statistics.median(samples), 1)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine(redis_version: str) -> dict[str, object]:
    """What the numbers were measured on: cores, CPU model, memory, Python, Redis, load."""
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        mem_kb = 0
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "redis": redis_version,
        "load_before": _load(),
        "commit": commit,
    }
