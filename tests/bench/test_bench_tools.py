"""The benchmark suite's own tools (``bench/``): the load generator, the profile summary, the
verdicts, the cleanup. No timings are asserted: these check that the bench counts and reports
what happened, so its figures can be trusted."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.fixtures import delete_prefix
from bench.httpload import build_request, closed_loop, open_connections, open_loop, percentile
from bench.procstat import process_detail
from bench.profiling import summarise
from bench.report import derive, markdown


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) == 0.0


async def _server() -> TestServer:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        status = 404 if request.path == "/missing" else 200
        return web.Response(body=body[::-1], status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_closed_loop_counts_every_answer_and_its_status() -> None:
    server = await _server()
    try:
        conns = await open_connections([("127.0.0.1", int(server.port or 0))], 4)
        requests = [build_request("POST", "/missing" if i % 5 == 0 else "/ok", b"x" * (i + 1)) for i in range(50)]
        result = await closed_loop(conns, requests.__getitem__, duration=60, limit=len(requests))
        for conn in conns:
            conn.close()
    finally:
        await server.close()
    assert result.sent == result.completed == 50
    assert result.statuses == {200: 40, 404: 10}
    assert result.errors == 10
    assert len(result.latencies) == 50


async def test_open_loop_sends_exactly_count_requests_and_reads_their_bodies() -> None:
    server = await _server()
    bodies: list[bytes] = []
    scheduled: list[int] = []
    try:
        conns = await open_connections([("127.0.0.1", int(server.port or 0))], 2)
        requests = [build_request("POST", "/ok", f"request {i}".encode()) for i in range(30)]

        def request(i: int) -> bytes:
            return requests[i]

        result = await open_loop(conns, request, rate=500.0, count=30, on_sent=lambda i, at: scheduled.append(i))
        # The same connections still work after the run: answers were read to their end.
        done: Any = []
        conns[0].send(build_request("POST", "/ok", b"abc"), lambda status, body: done.append((status, body)))
        while not done:
            await asyncio.sleep(0.01)
        bodies.append(done[0][1])
        for conn in conns:
            conn.close()
    finally:
        await server.close()
    assert result.sent == result.completed == 30
    assert result.statuses == {200: 30}
    assert scheduled == list(range(30))
    assert bodies == [b"cba"]


def test_profile_summary_shares_self_and_inclusive_time() -> None:
    collapsed = "\n".join(
        [
            "main (bench/server.py:1);Intake.submit (delivery/intake.py:10);verify (ensign/protocol/crypto.py:5);"
            "crypto_sign_open (nacl/bindings/crypto_sign.py:90) 6",
            "main (bench/server.py:1);Intake.submit (delivery/intake.py:10);"
            "MessageQueue.enqueue (delivery/queue.py:300);Redis.execute_command (redis/asyncio/client.py:9) 3",
            "main (bench/server.py:1);_SelectorSocketTransport.write (asyncio/selector_events.py:1) 1",
            "not a sample line",
        ]
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 10
    assert summary["areas"] == {
        "crypto (PyNaCl / libsodium)": 0.6,
        "Redis client (redis-py)": 0.3,
        "event loop (asyncio)": 0.1,
    }
    assert summary["functions"]["Intake.submit (the whole pipeline)"] == 0.9
    assert summary["functions"]["MessageQueue.enqueue (EVALSHA)"] == 0.3
    assert summary["top"]["crypto_sign_open (nacl/bindings/crypto_sign.py)"] == 0.6


def test_verdicts_compare_with_the_targets() -> None:
    results: dict[str, Any] = {
        "submit": {
            "max": {"rate": 3000.0, "server_cpu_us_per_msg": 330.0, "connections": 64},
            "loads": [{"fraction": 0.75, "p99_ms": 30.0, "p50_ms": 5.0, "rate": 2250.0, "offered_rate": 2250.0,
                       "errors": 0}],
        },
        "floor": {"cpu_us_per_msg": 200.0, "crypto_us_per_msg": 150.0, "rate": 4000.0, "steps_us": {}},
        "resolver": {"gateway": {"answers_per_s": 1900.0}},
        "inbox": {
            "one_ack": [
                {"queued": 1000, "queue_ack_p50_us": 100.0, "bulk_ack_us_per_id": 4.0, "http_ack_p50_ms": 1.0,
                 "http_fetch_page_p50_ms": 5.0},
                {"queued": 100000, "queue_ack_p50_us": 110.0, "bulk_ack_us_per_id": 8.0, "http_ack_p50_ms": 2.0,
                 "http_fetch_page_p50_ms": 5.0},
            ],
            "memory_big_queue": {"messages": 100000, "redis_bytes_per_msg": 7600, "envelope_bytes": 6200,
                                 "ratio": 1.23},
        },
    }
    derived = derive(results)
    checks = {name: check["ok"] for name, check in derived["checks"].items()}
    assert checks == {
        "submit_rate": True,
        "p99_at_75_ms": False,
        "cost_over_crypto": False,  # 2.2×
        "gateway_rate": False,
        "ack_growth": False,  # one ack over HTTP got twice as slow
        "memory_over_envelope": True,
    }
    assert derived["cost_over_crypto"] == 2.2
    assert derived["cost_over_floor"] == 1.65  # shown, no longer a target
    assert derived["ack_growth"] == 2.0
    table = markdown(results, derived)
    assert "**3,000 msg/s**" in table and "**missed**" in table


def test_crypto_floor_is_measured_again_while_the_host_speed_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor is the ratio's denominator: a try during which the host slowed (or that ran at
    another speed than the maximum it is divided into) is not the one that counts."""
    import bench.submit as submit

    def scripted(monkeypatch: pytest.MonkeyPatch, verifies: list[float], floors: list[float]) -> None:
        monkeypatch.setattr(submit, "calibrate", lambda: verifies.pop(0))
        monkeypatch.setattr(submit, "crypto_floor_us", lambda suite, prepared: floors.pop(0))

    # Slowed during the first try (53 → 75), steady in the second: the second counts.
    scripted(monkeypatch, [53.0, 75.0, 54.0, 54.5], [284.0, 255.0])
    floor = submit.steady_crypto_floor(None, [], reference=53.7)  # type: ignore[arg-type]
    assert floor == {"us": 255.0, "verify_us": [54.0, 54.5], "tries": 2, "steady": True,
                     "each": [{"us": 284.0, "verify_us": [53.0, 75.0]}, {"us": 255.0, "verify_us": [54.0, 54.5]}]}

    # Steady within itself but at another speed than the maximum's, every time: the closest try
    # counts and the result says it is not steady.
    scripted(monkeypatch, [70.0, 70.0, 66.0, 66.0, 68.0, 68.0], [330.0, 310.0, 320.0])
    floor = submit.steady_crypto_floor(None, [], reference=53.0)  # type: ignore[arg-type]
    assert (floor["us"], floor["verify_us"], floor["tries"], floor["steady"]) == (310.0, [66.0, 66.0], 3, False)

    results: dict[str, Any] = {
        "submit": {"max": {"rate": 1800.0, "server_cpu_us_per_msg": 540.0, "connections": 64, "verify_us": 53.0,
                           "verify_us_after": 53.4}},
        "floor": {"cpu_us_per_msg": 350.0, "crypto_us_per_msg": 310.0, "rate": 3000.0, "steps_us": {},
                  "crypto_verify_us": [66.0, 66.0], "crypto_tries": 3, "crypto_steady": False},
    }
    table = markdown(results, derive(results))
    assert "verify 53.0 and 53.4 µs around the maximum, 66.0 and 66.0 µs around the crypto floor, measured 3 times" in table
    assert "≤ 2×: **not judged**" in table and "≤ 2×: met" not in table


def test_process_detail_splits_cpu_and_counts_the_times_a_process_slept() -> None:
    before = process_detail(os.getpid())
    assert before is not None
    spun_from = os.times().user
    while os.times().user < spun_from + 0.1:  # user time; /proc counts in clock ticks (10 ms)
        sum(range(20_000))
    for _ in range(3):
        time.sleep(0.01)  # each sleep blocks the process once
    after = process_detail(os.getpid())
    assert after is not None
    assert after[0] - before[0] >= 0.09 and after[2] - before[2] >= 3
    row = {"fraction": 0.75, "p99_ms": 9.0, "p50_ms": 2.0, "rate": 100.0, "offered_rate": 100.0, "errors": 0,
           "server_cpu_us_per_msg": 700.0, "user_us_per_msg": 640.0, "system_us_per_msg": 60.0, "sleeps_per_msg": 0.3}
    table = markdown({"submit": {"loads": [row]}}, derive({"submit": {"loads": [row]}}))
    assert "700 µs CPU per message (user 640 + system 60 µs; slept 0.30 times per message)" in table


async def test_delete_prefix_deletes_only_keys_under_it(redis: aioredis.Redis, redis_prefix: str) -> None:
    mine, other = f"{redis_prefix}bench:", f"{redis_prefix}kept:"
    pipe = redis.pipeline(transaction=False)
    for i in range(1200):  # more than one SCAN page and one UNLINK batch
        pipe.set(f"{mine}{i}", b"x")
    pipe.set(f"{other}1", b"y")
    await pipe.execute()
    assert await delete_prefix(redis, mine) == 1200
    # A set: SCAN may return a key more than once (while Redis resizes its table after the deletes).
    assert {k async for k in redis.scan_iter(match=f"{redis_prefix}*")} == {f"{other}1".encode()}


def test_ablation_switches_turn_off_only_the_named_pieces_and_refuse_unknown_ones() -> None:
    from bench.fixtures import ServiceSpec
    from bench.server import switch_off

    spec = ServiceSpec.create("redis://127.0.0.1:6379/0", "bench:test:", [])
    settings = spec.settings(8083)
    off = switch_off(settings, frozenset({"address", "sender_pair"}))
    assert (off.limits.address, off.limits.sender, off.limits.pair) == (None, None, None)
    assert off.limits.login == settings.limits.login and off.keys == settings.keys
    assert switch_off(settings, frozenset()) == settings
    with pytest.raises(SystemExit, match="unknown piece"):
        switch_off(settings, frozenset({"crypto"}))


def test_ablation_rows_give_each_variant_against_the_whole_and_the_crypto_floor() -> None:
    results: dict[str, Any] = {"ablation": {"rounds": 2, "crypto_floor_us": [300, 320], "variants": [
        {"off": "nothing", "cpu_us": [800, 820], "ratio_to_whole": 1.0, "ratio_to_crypto_floor": 2.62},
        {"off": "all of them", "cpu_us": [640, 660], "ratio_to_whole": 0.803, "ratio_to_crypto_floor": 2.1},
    ]}}
    table = markdown(results, derive(results))
    assert "all of them switched off" in table and "**0.803×** the whole service" in table
    assert "**2.10×** the crypto floor" in table


def test_compare_runs_a_base_revision_from_its_own_checkout_and_removes_it() -> None:
    import subprocess

    from bench.compare import _worktree
    from bench.services import ROOT, ServiceProcess

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    with _worktree("HEAD") as tree:
        checked_out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert checked_out.stdout == head.stdout and (tree / "delivery" / "intake.py").is_file()
        process = ServiceProcess.delivery(Path("spec.json"), 8085, Path("/tmp"), root=tree)
        assert process.root == tree  # started from there, with its packages first on the path
    assert not tree.exists()
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True)
    assert str(tree) not in listed.stdout


def test_compare_runs_the_service_on_the_interpreter_it_is_given() -> None:
    import sys

    from bench.services import ServiceProcess

    other = ServiceProcess.delivery(Path("spec.json"), 8085, Path("/tmp"), python="/opt/other/bin/python")
    assert other.argv[:3] == ["/opt/other/bin/python", "-m", "bench.server"]
    assert ServiceProcess.delivery(Path("spec.json"), 8085, Path("/tmp")).argv[0] == sys.executable


async def test_paired_compare_charges_each_service_its_own_answers() -> None:
    """--paired: connections spread over both services; each side's CPU is divided by the
    answers read on its own connections, not by the loop's total."""
    from bench.compare import _per_server

    first, second = await _server(), await _server()
    try:
        ports = {"base": int(first.port or 0), "new": int(second.port or 0)}
        conns = await open_connections([("127.0.0.1", ports["base"]), ("127.0.0.1", ports["new"])], 3)
        assert [c.port for c in conns] == [ports["base"], ports["new"], ports["base"]]
        requests = [build_request("POST", "/ok", b"x") for _ in range(60)]
        result = await closed_loop(conns, requests.__getitem__, duration=30, limit=60)
        for conn in conns:
            conn.close()
        assert result.completed == 60 == sum(c.answered for c in conns)
        served = {side: sum(c.answered for c in conns if c.port == port) for side, port in ports.items()}
        assert served["base"] > served["new"] > 0  # two connections against one
        figures = _per_server(conns, ports, {"base": 0.006, "new": 0.006}, "closed")
        assert figures["base"]["closed"] == pytest.approx(6000 / served["base"])
        assert figures["new"]["closed"] == pytest.approx(6000 / served["new"])
    finally:
        await first.close()
        await second.close()


def test_compare_table_gives_both_medians_and_the_median_ratio() -> None:
    from bench.compare import _table

    result = {"rounds": 3, "verify_us": [53.0, 54.0], "summary": {
        "closed loop: CPU µs per message": {"base_median": 650.0, "new_median": 600.0, "median_ratio": 0.923,
                                            "ratios": [0.92, 0.95, 0.9]}}}
    table = _table(result, "1ac472e", "this checkout")
    assert "| closed loop: CPU µs per message | 650.0 | 600.0 | **0.923** (0.92, 0.95, 0.90) |" in table
    assert "median of 3 rounds" in table and "53.0 µs of CPU before and 54.0 µs after" in table


async def test_minimal_server_does_the_protocol_work_it_is_measured_for(redis_url: str, redis: aioredis.Redis,
                                                                         redis_prefix: str) -> None:
    """bench.minimal is the yardstick of what a submission cannot do without: it must really open,
    verify, postmark and store (else its figures flatter the floor), and refuse a forgery."""
    import json

    from aiohttp.test_utils import TestClient

    from bench.fixtures import ServiceSpec, make_envelopes, make_users
    from bench.minimal import minimal_app, records_prefix
    from ensign.protocol.crypto import EncryptionKeyPair
    from ensign.protocol.postmark import open_postmark, verify_postmark

    users = make_users(2, workers=1)
    spec = ServiceSpec.create(redis_url, redis_prefix, users)
    good, second = make_envelopes(users, spec.encryption_public_key, 2, workers=1)
    receiver = users[good.receiver]
    client = TestClient(TestServer(minimal_app(spec), host="127.0.0.1"))
    await client.start_server()
    try:
        answer = await client.post("/rpc", data=good.body)
        assert answer.status == 200 and (await answer.json())["result"] == "success"
        rpc = json.loads(second.body)
        forged = json.loads(rpc["params"][0])
        forged["message"] = forged["message"][:-8] + ("A" * 8 if forged["message"][-8:] != "A" * 8 else "B" * 8)
        rpc["params"] = [json.dumps(forged)]
        refused = await client.post("/rpc", data=json.dumps(rpc).encode())
        assert refused.status == 400
    finally:
        await client.close()
    keys = [key async for key in redis.scan_iter(match=f"{records_prefix(spec)}*")]
    assert keys == [f"{records_prefix(spec)}{receiver.name}".encode()]
    (record,) = await redis.lrange(keys[0], 0, -1)
    stored = json.loads(record)
    sent = json.loads(json.loads(good.body)["params"][0])
    assert stored["message"] == sent["message"]
    assert stored["metadata"]["deliveryInformation"]["to"] == receiver.name
    postmark = open_postmark(stored["postmark"], EncryptionKeyPair(public_key=receiver.encryption_public_key,
                                                                   secret_key=receiver.encryption_secret_key))
    assert verify_postmark(postmark, stored["message"], spec.signing_public_key)
