"""Where the submit path spends its CPU: py-spy sampling the service process, summarised.

py-spy reads the process's stacks from outside: nothing is added to the service's code, and the
process is paused only for the instant each sample is read (it serves about 10 % fewer messages
while sampled; ``--nonblocking`` would not pause it, but then a large share of its coroutine stacks
come back cut short, which hides who called what). Idle samples (the event loop waiting in
``epoll``) are left out: every sample is CPU.
Time in C functions (libsodium, the JSON scanner, socket calls) counts for the Python function
that called them.

Reports, next to the other results:

* ``profile-submit.collapsed`` — the raw stacks, one line per stack with its sample count
  (``speedscope`` and ``flamegraph.pl`` read it);
* ``profile-submit.txt`` — the summary below as text;
* the ``profile`` part of the run's JSON: ``areas`` (self time by where the code lives: aiohttp,
  redis-py, logging, the JSON codec, libsodium through PyNaCl, marshmallow, our ``delivery`` and
  ``ensign.protocol`` …) and ``functions`` (inclusive time of the steps that matter, counted once
  per stack), as shares of all samples; ``top`` (the functions with the most self time).

py-spy is a benchmark-only dependency (``pip install py-spy``, a binary wheel); it needs to be
allowed to read another process's memory (ptrace), which root and the process's own user
normally are. Without it the bench skips the profile and says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["available", "py_spy", "record", "summarise", "write_text"]

RATE = 250  # samples per second

# First match wins: (substring of "file", area). py-spy shows paths relative to their sys.path entry.
_AREAS: tuple[tuple[str, str], ...] = (
    ("logging/", "logging"),
    ("ensign/logs.py", "logging"),
    ("stack/serve.py", "logging"),
    ("json/", "JSON codec (stdlib json)"),
    ("nacl/", "crypto (PyNaCl / libsodium)"),
    ("marshmallow/", "schema (marshmallow)"),
    ("aiohttp/", "HTTP server (aiohttp)"),
    ("multidict/", "HTTP server (aiohttp)"),
    ("yarl/", "HTTP server (aiohttp)"),
    ("redis/", "Redis client (redis-py)"),
    ("socketio/", "push (socket.io)"),
    ("engineio/", "push (socket.io)"),
    ("prometheus_client/", "metrics (prometheus_client)"),
    ("asyncio/", "event loop (asyncio)"),
    ("selectors.py", "event loop (asyncio)"),
    ("delivery/", "delivery/ (our service code)"),
    ("ensign/protocol/", "ensign/protocol/ (our protocol code)"),
    ("ensign/ens/", "ensign/ens/ (name lookup and cache)"),
    ("resolver/", "resolver/ (gateway)"),
    ("ensign/", "ensign/ (other)"),
    ("eth_", "eth-* libraries"),
    ("Crypto/", "eth-* libraries"),
    ("web3/", "eth-* libraries"),
)

# The steps whose inclusive time says what the submit path does: (substring of "file:function", label).
_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("web_protocol.py:RequestHandler.data_received", "aiohttp: read and parse requests"),
    ("web_protocol.py:RequestHandler._handle_request", "aiohttp: handler, middlewares, response"),
    ("web.py:request_log", "request_log_middleware (request id, metrics, log line)"),
    ("web_rpc.py:rpc", "web_rpc.rpc (JSON-RPC handler)"),
    ("intake.py:Intake.submit", "Intake.submit (the whole pipeline)"),
    ("canonical.py:canonical_size", "canonical_size(envelope)"),
    ("canonical.py:parse_json", "parse_json (envelope string)"),
    ("models.py:EncryptionEnvelop.from_json", "EncryptionEnvelop.from_json (schema)"),
    ("envelope.py:open_delivery_information", "open_delivery_information (decrypt)"),
    ("envelope.py:verify_envelope", "verify_envelope (Ed25519 + hash)"),
    ("postmark.py:create_postmark", "create_postmark (sign + encrypt)"),
    ("intake.py:stored_envelope", "stored_envelope (build)"),
    ("queue.py:MessageQueue.enqueue", "MessageQueue.enqueue (EVALSHA)"),
    ("accounts.py:Accounts.get", "Accounts.get (HGETALL)"),
    ("accounts.py:Accounts.exists", "Accounts.exists (EXISTS)"),
    ("lookup.py:NameLookup.address", "NameLookup.address (cached)"),
    ("lookup.py:NameLookup.user_profile", "NameLookup.user_profile (cached)"),
    ("logging/__init__.py:Logger.info", "logging: log.info calls"),
    ("metrics.py:Histogram.observe", "prometheus: histogram observe"),
    ("push.py:", "push: pub/sub listener"),
    ("web_response.py:json_response", "aiohttp: json_response"),
    ("redis/", "redis-py (all calls)"),
    ("json/__init__.py:loads", "json.loads (all calls)"),
    ("json/__init__.py:dumps", "json.dumps (all calls)"),
    ("canonical.py:stringify", "stringify (all calls)"),
)


def py_spy() -> str | None:
    """The py-spy executable: beside this Python (a virtualenv's bin), else on ``PATH``."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    """Whether py-spy is installed."""
    return py_spy() is not None


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` into ``out`` (collapsed stacks); wait on the result."""
    executable = py_spy()
    if executable is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    return subprocess.Popen(
        [executable, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(RATE),
         "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _parse_frame(frame: str) -> tuple[str, str]:
    """``"function (file:line)"`` → ``(function, file)``."""
    function, _, location = frame.rpartition(" (")
    if not function:
        return frame, ""
    return function, location.rstrip(")").rpartition(":")[0]


def _area(path: str) -> str:
    for needle, area in _AREAS:
        if needle in path:
            return area
    return "other (stdlib and the rest)"


def summarise(collapsed: str) -> dict[str, Any]:
    """Areas (self time), steps (inclusive time) and the top self-time functions of a py-spy raw
    (collapsed stacks) profile, as shares of all samples."""
    areas: dict[str, int] = {}
    steps: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse_frame(f) for f in stack.split(";")]
        function, path = frames[-1]
        areas[_area(path)] = areas.get(_area(path), 0) + count
        leaf = f"{function} ({path})"
        own[leaf] = own.get(leaf, 0) + count
        seen: set[str] = set()
        for function, path in frames:
            key = f"{path}:{function}"
            for needle, label in _FUNCTIONS:
                if needle in key and label not in seen:
                    seen.add(label)
                    steps[label] = steps.get(label, 0) + count

    def shares(counts: dict[str, int], limit: int | None = None) -> dict[str, float]:
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return {k: round(v / total, 4) for k, v in ordered} if total else {}

    return {"samples": total, "areas": shares(areas), "functions": shares(steps), "top": shares(own, 25)}


def write_text(summary: dict[str, Any], path: Path, header: str) -> None:
    """The summary as a plain-text report."""
    lines = [header, f"{summary['samples']} samples of CPU (idle excluded)", ""]
    for title, key in (("CPU by area (self time)", "areas"), ("CPU by step (inclusive)", "functions"),
                       ("functions with the most self time", "top")):
        lines.append(title)
        lines += [f"  {share:6.1%}  {name}" for name, share in summary[key].items()]
        lines.append("")
    path.write_text("\n".join(lines))
