"""Where the submit path spends its time: pyinstrument in the service process, summarised.

The bench starts a service process with ``--profile OUT``; the process installs SIGUSR1 (start
sampling) and SIGUSR2 (stop, write the reports) on its event loop, so only the measured window
is profiled, not start-up or the warm-up. Sampling is every millisecond on the event-loop thread,
with ``async_mode="disabled"``: each sample is the real stack on the CPU, and time the loop spends
waiting in ``epoll`` shows as idle.

Reports: ``OUT.txt`` (pyinstrument's call tree), ``OUT.html`` (interactive), ``OUT.pyisession``
(the samples, for ``pyinstrument --load``), ``OUT.json``:

* ``areas`` — self time by where the code lives (aiohttp, redis-py, logging, the JSON codec,
  libsodium through PyNaCl, marshmallow, our ``delivery`` and ``ensign.protocol`` …), as shares of
  the busy (non-idle) time. Time in C functions counts for the Python function that called them.
* ``functions`` — inclusive time of the functions that dominate, counted once per stack.

pyinstrument is a benchmark-only dependency (``pip install pyinstrument``); without it the bench
skips the profile and says so.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

__all__ = ["available", "install_signal_profiler", "summarise"]

INTERVAL = 0.001

# First match wins: (substring of the file path, area).
_AREAS: tuple[tuple[str, str], ...] = (
    ("/selectors.py", "idle (waiting in epoll)"),
    ("/logging/", "logging"),
    ("/delivery/logs.py", "logging"),
    ("ensign/serve.py", "logging"),
    ("/json/", "JSON codec (stdlib json)"),
    ("/nacl/", "crypto (PyNaCl / libsodium)"),
    ("/marshmallow/", "schema (marshmallow)"),
    ("/aiohttp/", "HTTP server (aiohttp)"),
    ("/multidict/", "HTTP server (aiohttp)"),
    ("/yarl/", "HTTP server (aiohttp)"),
    ("/redis/", "Redis client (redis-py)"),
    ("/socketio/", "push (socket.io)"),
    ("/engineio/", "push (socket.io)"),
    ("/prometheus_client/", "metrics (prometheus_client)"),
    ("/asyncio/", "event loop (asyncio)"),
    ("/delivery/", "delivery/ (our service code)"),
    ("/ensign/protocol/", "ensign/protocol/ (our protocol code)"),
    ("/resolver/", "resolver/ (name lookup cache)"),
    ("/ensign/", "ensign/ (other)"),
    ("/eth_", "eth-* libraries"),
    ("/web3/", "eth-* libraries"),
    ("/python3.", "Python standard library (other)"),
)

# Functions whose inclusive time says what the submit path does (substring match on "file:function").
_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("web_protocol.py:data_received", "aiohttp: parse request bytes"),
    ("web_protocol.py:_handle_request", "aiohttp: run handler + middlewares"),
    ("web_protocol.py:finish_response", "aiohttp: write response"),
    ("web_rpc.py:rpc", "delivery.web_rpc.rpc (handler)"),
    ("intake.py:submit", "Intake.submit (whole pipeline)"),
    ("canonical.py:canonical_size", "canonical_size(envelope)"),
    ("canonical.py:parse_json", "parse_json(params[0])"),
    ("models.py:from_json", "EncryptionEnvelop.from_json (schema)"),
    ("envelope.py:open_delivery_information", "open_delivery_information"),
    ("envelope.py:verify_envelope", "verify_envelope (Ed25519 + hash)"),
    ("postmark.py:create_postmark", "create_postmark (sign + encrypt)"),
    ("intake.py:stored_envelope", "stored_envelope"),
    ("canonical.py:stringify", "stringify (all calls)"),
    ("queue.py:enqueue", "MessageQueue.enqueue (EVALSHA)"),
    ("accounts.py:get", "Accounts.get (HGETALL)"),
    ("accounts.py:exists", "Accounts.exists (EXISTS)"),
    ("lookup.py:address", "NameLookup.address (cached)"),
    ("lookup.py:user_profile", "NameLookup.user_profile (cached)"),
    ("logging/__init__.py:info", "logging: log.info calls"),
    ("web_ops.py:request_context_middleware", "request_context_middleware"),
    ("client.py:observe", "prometheus: histogram observe"),
    ("push.py:_listen", "push listener (pub/sub)"),
    ("json/__init__.py:loads", "json.loads (all calls)"),
    ("json/__init__.py:dumps", "json.dumps (all calls)"),
)


def available() -> bool:
    """Whether pyinstrument is installed."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return False
    return True


def install_signal_profiler(out: Path) -> None:
    """On the running loop: SIGUSR1 starts sampling, SIGUSR2 stops it and writes the reports."""
    import asyncio

    from pyinstrument import Profiler

    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {}

    def start() -> None:
        profiler = Profiler(interval=INTERVAL, async_mode="disabled")
        profiler.start()
        state["profiler"] = profiler

    def stop() -> None:
        profiler = state.pop("profiler", None)
        if profiler is None:
            return
        session = profiler.stop()
        out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
        profiler.write_html(out.with_suffix(".html"))
        session.save(str(out.with_suffix(".pyisession")))
        out.with_suffix(".json").write_text(json.dumps(summarise(session.root_frame()), indent=1))

    loop.add_signal_handler(signal.SIGUSR1, start)
    loop.add_signal_handler(signal.SIGUSR2, stop)


def _area(path: str | None) -> str:
    path = path or ""
    for needle, area in _AREAS:
        if needle in path:
            return area
    return "other"


def summarise(root: Any) -> dict[str, Any]:
    """CPU by area (self time) and the inclusive time of the functions that matter (``root`` is a
    pyinstrument frame)."""
    areas: dict[str, float] = {}
    inclusive: dict[str, float] = {}

    def walk(frame: Any, on_path: frozenset[str], parent_area: str) -> None:
        children = list(frame.children)
        own = frame.time - sum(child.time for child in children)
        path = frame.file_path or ""
        # pyinstrument's synthetic "[self]" frames and C functions ("<built-in>") belong to the code
        # that called them: time in libsodium called from nacl/ is crypto, json.loads' C scanner JSON.
        synthetic = frame.is_synthetic or not path or path.startswith("<")
        area = parent_area if synthetic else _area(path)
        areas[area] = areas.get(area, 0.0) + own
        key = f"{path}:{frame.function}"
        counted = on_path
        for needle, label in _FUNCTIONS:
            if needle in key and label not in on_path:
                inclusive[label] = inclusive.get(label, 0.0) + frame.time
                counted = counted | {label}
        for child in children:
            walk(child, counted, area)

    if root is not None:
        walk(root, frozenset(), "other")
    idle = areas.pop("idle (waiting in epoll)", 0.0)
    busy = sum(areas.values())
    return {
        "sampled_seconds": busy + idle,
        "busy_seconds": busy,
        "idle_seconds": idle,
        "areas": {k: round(v / busy, 4) for k, v in sorted(areas.items(), key=lambda kv: -kv[1])} if busy else {},
        "functions": {k: round(v / busy, 4) for k, v in sorted(inclusive.items(), key=lambda kv: -kv[1])} if busy else {},
    }
