"""One multi-recipient envelope to N receivers against N single dm3 envelopes (N = 100).

Both go to the same delivery process, from one sender to the same N receivers, with the same
900-character text; every message is new (its own timestamp), so nothing takes the cheaper
"already queued" path. Measured:

* the service's CPU per receiver: its process CPU over the requests ÷ the receivers stored (each
  run is checked to have stored exactly one message per receiver per round);
* the sender's CPU to make them (this process, ``process_time``): one multi-recipient envelope,
  against N messages and envelopes;
* bytes submitted, and bytes queued per receiver before the postmark (a copy of a multi-recipient
  envelope carries the whole receiver list in its message, so it is larger than a single one).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from delivery.intake import stored_envelope
from ensign.protocol.canonical import stringify_bytes
from ensign.protocol.envelope import build_envelope
from ensign.protocol.message import create_message
from ensign.protocol.models import DeliveryInformation
from ensign.protocol.multi import MultiDeliveryInformation, build_multi_envelope, copy_for, create_multi_message

from .fixtures import MESSAGE_CHARS
from .httpload import build_request
from .services import ServiceProcess
from .submit import _closed, _summary
from .suite import Suite

__all__ = ["run_multi"]

#: Requests in flight: a multi-recipient request is N deliveries, so a few suffice to keep the
#: process busy; single envelopes use the suite's usual clients.
MULTI_CONNECTIONS = 4

# Worker-process state: sender (name, signing key), receivers [(name, encryption key)], DS key.
_job: dict[str, Any] = {}


def _init(sender: tuple[str, str], receivers: list[tuple[str, str]], ds_key: str) -> None:
    _job.update(sender=sender, receivers=receivers, ds=ds_key)


def _text(index: int) -> str:
    return (f"message {index} " * 100)[:MESSAGE_CHARS]


def _multi_body(index: int, timestamp: int) -> bytes:
    (name, key), receivers, ds = _job["sender"], _job["receivers"], _job["ds"]
    message = create_multi_message([r for r, _ in receivers], name, _text(index), key, timestamp=timestamp)
    envelope = build_multi_envelope(message, key, dict(receivers), ds)
    rpc = {"jsonrpc": "2.0", "id": index, "method": "ensign_submitMultiMessage", "params": [envelope.to_json()]}
    return json.dumps(rpc).encode()


def _single_bodies(index: int, timestamp: int) -> list[bytes]:
    (name, key), receivers, ds = _job["sender"], _job["receivers"], _job["ds"]
    bodies = []
    for receiver, receiver_key in receivers:
        message = create_message(receiver, name, _text(index), key, timestamp=timestamp)
        envelope = build_envelope(message, key, receiver_key, ds)
        rpc = {"jsonrpc": "2.0", "id": index, "method": "dm3_submitMessage", "params": [json.dumps(envelope.to_json())]}
        bodies.append(json.dumps(rpc).encode())
    return bodies


def _job_args(job: tuple[str, int, int]) -> bytes | list[bytes]:
    kind, index, timestamp = job
    return _multi_body(index, timestamp) if kind == "multi" else _single_bodies(index, timestamp)


def _sender_cost(rounds: int = 3) -> dict[str, float]:
    """CPU (µs) the sender spends on one message to every receiver, each way (this process)."""
    (name, key), receivers, ds = _job["sender"], _job["receivers"], _job["ds"]
    start = time.process_time()
    for i in range(rounds):
        message = create_multi_message([r for r, _ in receivers], name, _text(i), key, timestamp=i)
        build_multi_envelope(message, key, dict(receivers), ds)
    multi = (time.process_time() - start) / rounds
    start = time.process_time()
    for i in range(rounds):
        for receiver, receiver_key in receivers:
            build_envelope(create_message(receiver, name, _text(i), key, timestamp=i), key, receiver_key, ds)
    single = (time.process_time() - start) / rounds
    return {"multi_us": round(multi * 1e6), "single_us": round(single * 1e6)}


def _queued_bytes() -> dict[str, int]:
    """Bytes one receiver's queue record holds before the postmark, each way."""
    (name, key), receivers, ds = _job["sender"], _job["receivers"], _job["ds"]
    message = create_multi_message([r for r, _ in receivers], name, _text(0), key, timestamp=0)
    envelope = build_multi_envelope(message, key, dict(receivers), ds)
    info = MultiDeliveryInformation(to=tuple(r for r, _ in receivers), from_=name)
    multi = len(stringify_bytes(copy_for(envelope, info, 0, None).to_json()))
    receiver, receiver_key = receivers[0]
    single_env = build_envelope(create_message(receiver, name, _text(0), key, timestamp=0), key, receiver_key, ds)
    plain = DeliveryInformation(to=receiver, from_=name).to_json()
    single = len(stringify_bytes({k: v for k, v in stored_envelope(single_env.to_json(), plain, "").items() if k != "postmark"}))
    return {"multi": multi, "single": single}


async def run_multi(suite: Suite, server: ServiceProcess) -> dict[str, Any]:
    d = suite.durations
    count = min(d.multi_recipients, len(suite.users) - 1)
    sender, receivers = suite.users[0], suite.users[1 : count + 1]
    init = ((sender.name, sender.signing_secret_key), [(u.name, u.encryption_public_key) for u in receivers],
            suite.spec.encryption_public_key)
    base = 1_800_000_000_000
    jobs = [("multi", i, base + i) for i in range(d.multi_rounds)]
    jobs += [("single", i, base + 10_000 + i) for i in range(d.multi_rounds)]
    with ProcessPoolExecutor(2, initializer=_init, initargs=init) as pool:
        built = list(pool.map(_job_args, jobs))
    multi_requests = [_request(body) for body in built[: d.multi_rounds] if isinstance(body, bytes)]
    single_requests = [_request(b) for bodies in built[d.multi_rounds :] if isinstance(bodies, list) for b in bodies]
    _init(*init)
    sender_cost, queued = _sender_cost(), _queued_bytes()
    deliveries = d.multi_rounds * count

    out: dict[str, Any] = {"recipients": count, "rounds": d.multi_rounds}
    for kind, requests, connections in (("multi", multi_requests, MULTI_CONNECTIONS), ("single", single_requests, d.connections)):
        await suite.clear_queues()
        result, cpu = await _closed(suite, [server], requests, 3600.0, connections)
        stored = await suite.queued_total()
        if result.errors or stored != deliveries:
            raise RuntimeError(f"{kind}: {result.errors} errors, {stored} of {deliveries} messages stored")
        summary = _summary(result, cpu)
        busy = cpu.get("server")
        summary["server_cpu_us_per_recipient"] = None if busy is None else round(busy / deliveries * 1e6, 1)
        summary["recipients_per_s"] = round(deliveries / result.elapsed, 1)
        summary["connections"] = connections
        summary["bytes_submitted_per_message"] = round(sum(len(r) for r in requests) / d.multi_rounds)
        out[kind] = summary
    await suite.clear_queues()
    out["sender_cpu_us_per_message"] = sender_cost
    out["queued_bytes_per_recipient"] = queued
    multi_cpu, single_cpu = out["multi"]["server_cpu_us_per_recipient"], out["single"]["server_cpu_us_per_recipient"]
    if multi_cpu and single_cpu:
        out["server_ratio"] = round(single_cpu / multi_cpu, 2)
    return out


def _request(body: bytes) -> bytes:
    return build_request("POST", "/rpc", body)
