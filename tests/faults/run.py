"""A fault run: real dm3 submissions and receivers while faults are injected; then the invariant.

    python -m tests.faults --faults 1000 --minutes 35          # the long run (README)
    python -m tests.faults --cluster --faults 10               # primaries killed on a Cluster

What runs, all on 127.0.0.1, every process the run's own (stopped by pid at the end):

* Redis: one ``redis-server`` with ``appendonly yes`` (``--appendfsync``), or with ``--cluster``
  six nodes, three primaries with a replica each;
* the chain: an HTTP stub in this process serving names and profiles from a table, reached
  through a :class:`~tests.faults.proxy.TcpProxy` so it can be slowed and cut;
* two delivery processes (:mod:`tests.faults.service`: the production app and serving loop), each
  reaching Redis through its own proxy (so its link can be cut alone), both behind one front proxy
  port that skips a process that is down;
* senders: ``dm3_submitMessage`` of real envelopes (signed, encrypted, built as dm3 clients build
  them) at a steady rate; after an unclear answer (connection dropped, timeout, 503) the same
  envelope is sent again, as a client retries;
* receivers: every user logs in, fetches its queue and acknowledges what it got, in a loop.

Faults (``--cluster`` injects only the first): a Redis primary killed with SIGKILL (single server:
restarted on its append-only file; cluster: its replica is promoted, the old primary restarted
rejoins as a replica), a delivery process killed with SIGKILL and restarted, the link between a
delivery process and Redis reset, stalled, or cut one way (Redis runs the command, its answer never
arrives) and then restored, the chain slow and then down.

The invariant, checked at the end once every fault is healed and the queues drained: every
submission answered OK was fetched by its receiver; none was fetched again after its receiver's
acknowledgement was answered OK (so none is delivered twice, retries included); no answer was a 5xx
other than 503, every 503 carried ``Retry-After``, and no request outlived the client's timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.fixtures import BenchUser, ServiceSpec, make_users
from bench.services import ServiceProcess, free_port, signup
from ensign.protocol.crypto import sign
from ensign.protocol.envelope import build_envelope, envelope_id
from ensign.protocol.message import create_message

from .proxy import TcpProxy
from bench.redis_servers import RedisServer, role, start_cluster, wait_cluster_ok

__all__ = ["Deployment", "RunResult", "main", "run"]

# Seconds a client waits for any answer: longer means the service hung (Redis calls time out after
# 5 s, chain calls after 3 s, so a request that is answered at all is answered well before).
CLIENT_TIMEOUT = 20.0
# Seconds the run waits, once healed, for every OK submission to be fetched.
DRAIN_TIMEOUT = 90.0
POLL_IDLE = 0.3
# Seconds a sender keeps retrying one envelope before it gives up (bounds a run that cannot heal).
GIVE_UP = 120.0


@dataclass
class RunResult:
    """What a run saw (the table :func:`format_table` prints)."""

    faults: Counter[str] = field(default_factory=Counter)
    ok: dict[str, int] = field(default_factory=dict)  # message id -> receiver index
    delivered: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)  # acknowledgement answered OK
    duplicated: list[str] = field(default_factory=list)  # fetched after its ack was answered OK
    unknown: list[str] = field(default_factory=list)  # fetched but never answered OK (a retry's twin)
    unavailable: int = 0  # 503 answers
    without_retry_after: int = 0
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503
    refused: list[str] = field(default_factory=list)  # unexpected 4xx
    unclear: int = 0  # connection dropped before an answer
    hangs: int = 0  # no answer within CLIENT_TIMEOUT
    resubmitted_ok: int = 0  # OK only after at least one retry
    gave_up: int = 0  # never answered OK within GIVE_UP seconds
    longest_outage: float = 0.0
    seconds: float = 0.0
    diagnosis: list[str] = field(default_factory=list)
    _last_ok: float = 0.0

    @property
    def lost(self) -> set[str]:
        return set(self.ok) - self.delivered

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.server_errors or self.without_retry_after or self.hangs
                    or self.refused)

    def saw_ok(self, message_id: str, receiver: int) -> None:
        now = time.monotonic()
        if self._last_ok:
            self.longest_outage = max(self.longest_outage, now - self._last_ok)
        self._last_ok = now
        self.ok[message_id] = receiver


def format_table(result: RunResult, title: str) -> str:
    rows = [(f"faults injected: {kind}", str(n)) for kind, n in sorted(result.faults.items())]
    rows += [
        ("faults injected: total", str(sum(result.faults.values()))),
        ("run time (s)", f"{result.seconds:.0f}"),
        ("submissions answered OK", str(len(result.ok))),
        ("  of which OK only after a retry", str(result.resubmitted_ok)),
        ("submissions given up (never answered OK)", str(result.gave_up)),
        ("delivered (fetched by the receiver)", str(len(result.delivered & set(result.ok)))),
        ("lost", str(len(result.lost))),
        ("duplicated (fetched again after an OK ack)", str(len(result.duplicated))),
        ("5xx other than 503", str(len(result.server_errors))),
        ("503 answers (all with Retry-After)" if not result.without_retry_after else "503 answers",
         str(result.unavailable)),
        ("503 without Retry-After", str(result.without_retry_after)),
        ("unexpected 4xx", str(len(result.refused))),
        ("unclear answers (connection dropped), retried", str(result.unclear)),
        ("hangs (no answer in %.0f s)" % CLIENT_TIMEOUT, str(result.hangs)),
        ("longest outage (s without an OK)", f"{result.longest_outage:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title, "", f"| {'':{width}} | value |", f"| {'-' * width} | ----- |"]
    lines += [f"| {name:{width}} | {value:>5} |" for name, value in rows]
    return "\n".join(lines)


# -- the chain stub ------------------------------------------------------------------------------


async def start_chain_stub(users: list[BenchUser]) -> web.AppRunner:
    table = {u.name: {"address": u.address, "profile": u.profile} for u in users}

    async def name(request: web.Request) -> web.Response:
        entry = table.get(request.match_info["name"])
        if entry is None:
            return web.json_response({"error": "not_found"}, status=404)
        return web.json_response(entry)

    async def block(request: web.Request) -> web.Response:
        return web.json_response({"number": 1})

    app = web.Application()
    app.router.add_get("/name/{name}", name)
    app.router.add_get("/block", block)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def runner_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


# -- the deployment ------------------------------------------------------------------------------


@dataclass
class Deployment:
    """Redis, the chain stub and its proxy, two delivery processes, their Redis links, the front."""

    workdir: Path
    users: list[BenchUser]
    appendfsync: str = "everysec"
    cluster: bool = False
    wait_replicas: int = 0
    redis: RedisServer | None = None
    nodes: list[RedisServer] = field(default_factory=list)
    chain_runner: web.AppRunner | None = None
    chain_proxy: TcpProxy | None = None
    links: list[TcpProxy] = field(default_factory=list)
    services: list[ServiceProcess] = field(default_factory=list)
    front: TcpProxy | None = None
    spec: ServiceSpec | None = None
    prefix: str = "faults:"

    @property
    def base(self) -> str:
        assert self.front is not None
        return f"http://127.0.0.1:{self.front.port}"

    async def start(self) -> None:
        if self.cluster:
            self.nodes = await asyncio.to_thread(start_cluster, self.workdir / "cluster", appendfsync=self.appendfsync)
            redis_urls = [self.nodes[0].url, self.nodes[1].url]
        else:
            self.redis = await asyncio.to_thread(
                RedisServer(self.workdir / "redis", appendfsync=self.appendfsync).start
            )
            for _ in range(2):
                self.links.append(await TcpProxy([("127.0.0.1", self.redis.port)]).start())
            redis_urls = [f"redis://127.0.0.1:{link.port}/0" for link in self.links]
        self.chain_runner = await start_chain_stub(self.users)
        self.chain_proxy = await TcpProxy([("127.0.0.1", runner_port(self.chain_runner))]).start()
        self.spec = ServiceSpec.create(redis_urls[0], self.prefix, self.users)
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            spec_path = self.workdir / f"spec-{i}.json"
            dataclasses.replace(self.spec, redis_url=redis_urls[i]).save(spec_path)
            argv = [sys.executable, "-m", "tests.faults.service", str(spec_path), str(port),
                    f"http://127.0.0.1:{self.chain_proxy.port}"]
            if self.cluster:
                argv.append("--cluster")
            if self.wait_replicas:
                argv += ["--wait-replicas", str(self.wait_replicas)]
            self.services.append(ServiceProcess(f"delivery-{i}", argv, port, self.workdir / f"delivery-{i}.log",
                                                ready_path="/hello"))
        await asyncio.gather(*(s.start() for s in self.services))
        self.front = await TcpProxy([("127.0.0.1", p) for p in ports]).start()

    async def stop(self) -> None:
        for proxy in [self.front, self.chain_proxy, *self.links]:
            if proxy is not None:
                await proxy.close()
        await asyncio.gather(*(s.stop() for s in self.services), return_exceptions=True)
        if self.chain_runner is not None:
            await self.chain_runner.cleanup()
        for server in [self.redis, *self.nodes]:
            if server is not None:
                server.stop()


# -- traffic -------------------------------------------------------------------------------------


def _message_id(item: dict[str, Any]) -> str:
    metadata = item.get("metadata", {})
    return str(metadata.get("encryptedMessageHash") or metadata.get("messageHash"))


class Traffic:
    """Senders at a steady rate and receivers fetching and acknowledging, into a :class:`RunResult`."""

    def __init__(self, deployment: Deployment, result: RunResult, *, rate: float, senders: int, seed: int) -> None:
        self.d = deployment
        self.result = result
        self.rate = rate
        self.senders = senders
        self.rng = random.Random(seed)
        self.sending = True
        self.receiving = True
        self.tokens: dict[int, str] = {}
        self._count = 0

    def _envelope(self) -> tuple[str, int, bytes]:
        users = self.d.users
        receiver = self.rng.randrange(len(users))
        sender = (receiver + 1 + self.rng.randrange(len(users) - 1)) % len(users)
        self._count += 1
        s, r = users[sender], users[receiver]
        assert self.d.spec is not None
        message = create_message(r.name, s.name, f"fault run message {self._count}", s.signing_secret_key,
                                 timestamp=int(time.time() * 1000) * 1000 + self._count % 1000)
        env = build_envelope(message, s.signing_secret_key, r.encryption_public_key, self.d.spec.encryption_public_key)
        body = {"jsonrpc": "2.0", "id": self._count, "method": "dm3_submitMessage",
                "params": [json.dumps(env.to_json())]}
        return envelope_id(env), receiver, json.dumps(body).encode()

    async def _request(self, http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
                       ) -> tuple[int, dict[str, str], bytes] | None:
        """One request: its answer, or ``None`` when none came (counted as unclear or hang)."""
        try:
            async with http.request(method, url, timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT),
                                    **kwargs) as response:
                return response.status, dict(response.headers), await response.read()
        except asyncio.TimeoutError:
            self.result.hangs += 1
            return None
        except aiohttp.ClientError:
            self.result.unclear += 1
            return None

    def _judge(self, what: str, status: int, headers: dict[str, str], body: bytes) -> float | None:
        """Count a non-2xx answer; the seconds to wait before retrying, ``None`` not to retry."""
        if status == 503:
            self.result.unavailable += 1
            if "Retry-After" not in headers:
                self.result.without_retry_after += 1
            return min(float(headers.get("Retry-After", "1")), 1.0) * self.rng.uniform(0.3, 1.0)
        if status >= 500:
            self.result.server_errors.append(f"{what}: {status} {body[:200]!r}")
            return 0.5
        return None

    async def send_loop(self, http: aiohttp.ClientSession) -> None:
        interval = self.senders / self.rate
        next_at = time.monotonic() + self.rng.uniform(0, interval)
        while self.sending:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            message_id, receiver, body = self._envelope()
            tries = 0
            give_up = time.monotonic() + GIVE_UP
            while True:
                tries += 1
                if time.monotonic() > give_up:
                    self.result.gave_up += 1  # never answered OK: the sender knows it was not sent
                    break
                answer = await self._request(http, "POST", f"{self.d.base}/rpc", data=body,
                                             headers={"Content-Type": "application/json"})
                if answer is None:
                    # An unclear answer: the message may be stored. Clients retry after a while
                    # (a user presses "send" again), by then it may be fetched and acknowledged.
                    await asyncio.sleep(self.rng.uniform(0.1, 3.0))
                    continue
                status, headers, raw = answer
                if status == 200:
                    self.result.saw_ok(message_id, receiver)
                    if tries > 1:
                        self.result.resubmitted_ok += 1
                    break
                wait = self._judge("submit", status, headers, raw)
                if wait is None:
                    self.result.refused.append(f"submit: {status} {raw[:200]!r}")
                    break
                await asyncio.sleep(wait)
            if time.monotonic() - next_at > 5:
                next_at = time.monotonic()  # fell behind during an outage: do not burst

    async def _login(self, http: aiohttp.ClientSession, index: int) -> None:
        """dm3's login (challenge, signed with the profile key), repeated until it succeeds."""
        user = self.d.users[index]
        url = f"{self.d.base}/auth/{user.name}"
        while index not in self.tokens:
            answer = await self._request(http, "GET", url)
            if answer is not None and answer[0] == 200:
                challenge = json.loads(answer[2])
                body = {"challenge": challenge, "signature": sign(user.signing_secret_key, challenge)}
                answer = await self._request(http, "POST", url, json=body)
                if answer is not None and answer[0] == 200:
                    self.tokens[index] = json.loads(answer[2])
                    return
            if answer is not None and answer[0] != 200 and self._judge("login", *answer) is None:
                self.result.refused.append(f"login: {answer[0]} {answer[2][:200]!r}")
            await asyncio.sleep(0.5)

    async def receive_loop(self, http: aiohttp.ClientSession, index: int) -> None:
        user = self.d.users[index]
        while self.receiving:
            await self._login(http, index)
            headers = {"Authorization": f"Bearer {self.tokens[index]}"}
            answer = await self._request(http, "GET", f"{self.d.base}/delivery/messages/incoming/{user.name}?limit=100",
                                         headers=headers)
            if answer is None:
                await asyncio.sleep(0.2)
                continue
            status, resp_headers, raw = answer
            if status == 401:
                self.tokens.pop(index, None)
                continue
            if status != 200:
                wait = self._judge("fetch", status, resp_headers, raw)
                if wait is None:
                    self.result.refused.append(f"fetch: {status} {raw[:200]!r}")
                    wait = 1.0
                await asyncio.sleep(wait)
                continue
            items = json.loads(raw)
            if not items:
                await asyncio.sleep(POLL_IDLE)
                continue
            ids = []
            for item in items:
                message_id = _message_id(item)
                if message_id in self.result.acked:
                    self.result.duplicated.append(message_id)
                elif "postmark" not in item:
                    self.result.refused.append(f"fetch: message {message_id} without a postmark")
                self.result.delivered.add(message_id)
                ids.append((item["metadata"]["deliveryInformation"]["from"], message_id))
            acks = {"acknowledgements": [{"contactAddress": c, "messageHash": m} for c, m in ids]}
            ack_url = f"{self.d.base}/delivery/messages/{user.name}/syncAcknowledgements/"
            answer = await self._request(http, "POST", ack_url, json=acks, headers=headers)
            if answer is not None and answer[0] == 200:
                self.result.acked.update(m for _, m in ids)
            elif answer is not None:
                if answer[0] == 401:
                    self.tokens.pop(index, None)
                elif (wait := self._judge("ack", *answer)) is not None:
                    await asyncio.sleep(wait)


# -- faults --------------------------------------------------------------------------------------


class Injector:
    """Injects faults one after another until told to stop; each is healed before the next."""

    KINDS = ("redis SIGKILL + restart on AOF", "delivery process SIGKILL + restart", "Redis link reset",
             "Redis link stalled", "chain slow", "chain down", "Redis replies lost (one-way partition)")

    def __init__(self, deployment: Deployment, result: RunResult, seed: int, pause: float) -> None:
        self.d = deployment
        self.result = result
        self.rng = random.Random(seed)
        self.pause = pause
        self.running = True
        self._restarting: asyncio.Task[None] | None = None

    async def loop(self, target: int) -> None:
        while self.running and sum(self.result.faults.values()) < target:
            await asyncio.sleep(self.rng.uniform(0.2, self.pause))
            if self.d.cluster:
                await self.kill_primary()
            else:
                await self.one_fault()
        if self._restarting is not None:
            await self._restarting

    async def one_fault(self) -> None:
        kind = self.rng.choices(["redis", "delivery", "link", "chain"], weights=[4, 1, 4, 2])[0]
        if kind == "delivery" and self._restarting is not None and not self._restarting.done():
            kind = "redis"
        if kind == "redis":
            await self.kill_redis()
        elif kind == "delivery":
            await self.kill_delivery()
        elif kind == "link":
            await self.cut_link()
        else:
            await self.chain_slow_then_down()

    async def kill_redis(self) -> None:
        assert self.d.redis is not None
        self.d.redis.kill()
        self.result.faults[self.KINDS[0]] += 1
        await asyncio.sleep(self.rng.uniform(0.0, 0.5))
        await asyncio.to_thread(self.d.redis.start)

    async def kill_delivery(self) -> None:
        service = self.rng.choice(self.d.services)
        service.signal(signal.SIGKILL)
        assert service.process is not None
        await asyncio.to_thread(service.process.wait)
        self.result.faults[self.KINDS[1]] += 1

        async def restart() -> None:
            await service.stop()
            await service.start()

        # The other process serves meanwhile; other faults go on while this one starts.
        self._restarting = asyncio.ensure_future(restart())

    async def cut_link(self) -> None:
        link = self.rng.choice(self.d.links)
        mode = self.rng.choice(["reset", "blackhole", "replies"])
        link.cut(mode)
        self.result.faults[self.KINDS[{"reset": 2, "blackhole": 3, "replies": 6}[mode]]] += 1
        await asyncio.sleep(self.rng.uniform(0.3, 2.0))
        link.restore()

    async def chain_slow_then_down(self) -> None:
        assert self.d.chain_proxy is not None
        self.d.chain_proxy.delay = self.rng.uniform(0.5, 2.0)
        self.result.faults[self.KINDS[4]] += 1
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        self.d.chain_proxy.cut("reset")
        self.result.faults[self.KINDS[5]] += 1
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        self.d.chain_proxy.delay = 0.0
        self.d.chain_proxy.restore()

    async def kill_primary(self) -> None:
        """SIGKILL a primary, wait for its replica's promotion, restart it (it rejoins as a replica)."""
        primaries = [n for n in self.d.nodes if await asyncio.to_thread(role, n) == "master"]
        victim = self.rng.choice(primaries)
        victim.kill()
        self.result.faults["cluster primary SIGKILL, replica promoted"] += 1
        await asyncio.to_thread(wait_cluster_ok, self.d.nodes)
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(wait_cluster_ok, self.d.nodes)
        # Until the old primary has synced as a replica, WAIT 1 cannot be met there.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and await asyncio.to_thread(role, victim) != "slave":
            await asyncio.sleep(0.2)


# -- a run ---------------------------------------------------------------------------------------


async def run(
    *,
    faults: int,
    minutes: float,
    users: int = 8,
    rate: float = 15.0,
    senders: int = 6,
    appendfsync: str = "everysec",
    cluster: bool = False,
    wait_replicas: int = 0,
    pause: float = 1.0,
    seed: int = 1,
    workdir: Path | None = None,
    progress: bool = False,
) -> RunResult:
    """Start everything, send and receive while injecting ``faults`` faults (or until ``minutes``
    have passed), heal, drain, stop everything, and return what was seen."""
    result = RunResult()
    with tempfile.TemporaryDirectory(prefix="ensign-faults-") as tmp:
        root = workdir or Path(tmp)
        people = await asyncio.to_thread(make_users, users, 2)
        deployment = Deployment(root, people, appendfsync=appendfsync, cluster=cluster, wait_replicas=wait_replicas)
        try:
            await deployment.start()
            connector = aiohttp.TCPConnector(limit=0, force_close=True)
            async with aiohttp.ClientSession(connector=connector) as http:
                for user in people:
                    await signup(http, deployment.base, user.name, user.profile)
                traffic = Traffic(deployment, result, rate=rate, senders=senders, seed=seed)
                injector = Injector(deployment, result, seed, pause)
                started = time.monotonic()
                tasks = [asyncio.ensure_future(traffic.send_loop(http)) for _ in range(senders)]
                tasks += [asyncio.ensure_future(traffic.receive_loop(http, i)) for i in range(len(people))]
                inject = asyncio.ensure_future(injector.loop(faults))
                reporter = asyncio.ensure_future(_report(result, started)) if progress else None
                deadline = started + minutes * 60
                while not inject.done() and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                injector.running = False
                await inject
                # Healed: stop sending (each sender finishes its envelope), then drain the queues.
                traffic.sending = False
                await asyncio.gather(*tasks[:senders])
                drain_deadline = time.monotonic() + DRAIN_TIMEOUT
                while result.lost and time.monotonic() < drain_deadline:
                    await asyncio.sleep(0.5)
                await asyncio.sleep(2 * POLL_IDLE)  # one more round of fetches: nothing may come back
                traffic.receiving = False
                await asyncio.gather(*tasks[senders:])
                if reporter is not None:
                    reporter.cancel()
                result.seconds = time.monotonic() - started
                if result.lost:
                    result.diagnosis = await _diagnose(deployment, result)
        finally:
            await deployment.stop()
    return result


async def _diagnose(deployment: Deployment, result: RunResult) -> list[str]:
    """Where each lost message is in Redis: still queued, remembered as acknowledged, or nowhere."""
    from delivery.queue import queue_keys
    from ensign.config import RedisSettings
    from ensign.redis_client import open_redis

    url = deployment.nodes[0].url if deployment.cluster else deployment.redis.url if deployment.redis else None
    client = await open_redis(RedisSettings(url=url, cluster=deployment.cluster), attempts=1)
    lines = []
    try:
        for message_id in sorted(result.lost):
            user = deployment.users[result.ok[message_id]]
            keys = queue_keys(deployment.prefix, user.address)
            queued = await client.zscore(keys.queue, message_id)
            acked = await client.zscore(keys.acked, message_id)
            lines.append(f"{message_id} for user {result.ok[message_id]}: queued={queued} acked={acked}")
    finally:
        await client.aclose()
    for server in [deployment.redis, *deployment.nodes]:
        if server is not None:
            log = (server.data_dir / "redis.log").read_text(errors="replace")
            slow = log.count("fsync is taking too long")
            lines.append(f"redis {server.port}: {slow} times 'Asynchronous AOF fsync is taking too long' "
                         "(a write postponed while clients got their answers)")
    return lines


async def _report(result: RunResult, started: float) -> None:
    while True:
        await asyncio.sleep(30)
        print(f"[{time.monotonic() - started:6.0f} s] faults {sum(result.faults.values())}, OK {len(result.ok)}, "
              f"lost so far {len(result.lost)}, duplicated {len(result.duplicated)}, 5xx {len(result.server_errors)}",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description="Ensign's fault-injection run.")
    parser.add_argument("--faults", type=int, default=1000, help="faults to inject (default 1000)")
    parser.add_argument("--minutes", type=float, default=40.0, help="stop injecting after this long (default 40)")
    parser.add_argument("--rate", type=float, default=15.0, help="submissions per second offered (default 15)")
    parser.add_argument("--appendfsync", choices=["always", "everysec"], default="everysec")
    parser.add_argument("--cluster", action="store_true", help="Redis Cluster with replicas; kill primaries")
    parser.add_argument("--wait-replicas", type=int, default=0, help="REDIS_WAIT_REPLICAS of the delivery processes")
    parser.add_argument("--pause", type=float, default=1.0, help="most seconds between two faults (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(run(faults=args.faults, minutes=args.minutes, rate=args.rate, appendfsync=args.appendfsync,
                             cluster=args.cluster, wait_replicas=args.wait_replicas, pause=args.pause, seed=args.seed,
                             progress=True))
    title = (f"Fault run: {'Redis Cluster 3+3' if args.cluster else 'one Redis'}, appendfsync {args.appendfsync}, "
             f"REDIS_WAIT_REPLICAS={args.wait_replicas}, {args.rate:g} submissions/s offered")
    print(format_table(result, title))
    for line in (result.server_errors + result.refused)[:20]:
        print("  ", line)
    for line in result.diagnosis[:20]:
        print("   lost:", line)
    print("PASSED" if result.passed else "FAILED")
    return 0 if result.passed else 1
