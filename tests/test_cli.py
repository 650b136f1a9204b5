"""The ``ensign`` command line, run as a user runs it: a subprocess with a controlled environment.

Production commands get only the variables each test sets (plus ``PATH``), so a developer's own
``REDIS_URL`` or keys never leak in. Services are started on port 0 and the test reads the bound
port from the "listening on" log line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from delivery.at_rest import AtRest
from ensign.config import DeliverySettings
from ensign.errors import DecryptionError
from ensign.protocol.crypto import EncryptionKeyPair, SigningKeyPair
from ensign.protocol.keys import (
    address_of_private_key,
    personal_sign,
    profile_keys_from_wallet,
    storage_key_creation_message,
)
from ensign.protocol.models import DeliveryServiceProfile
from ensign.protocol.profile import ParsedProfile, parse_profile_record

REPO = Path(__file__).resolve().parents[1]
WALLET_KEY = "0xac58f2f021d6f148fd621b355edbd0ebadcf9682019015ef1219cf9c0c2ddc8b"
ENCRYPTION_PUBLIC = "Cz5WfEEhkmzP52L7OJzd4sf9xQUYc9nRAbnevjTbL28="
SIGNING_PUBLIC = "vwAsCu4TAL3KeeCfkKsi+ACTRjfeHtbKJh4yUs9fL5A="
GATEWAY_KEY = "0x" + "11" * 32
LISTENING = re.compile(r"listening on (http://[0-9.]+:[0-9]+)")
START_TIMEOUT = 60.0  # seconds: imports plus start-up on a busy 2-core machine
STOP_TIMEOUT = 5.0


def ensign(*args: str, env: Mapping[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``ensign ARGS`` with exactly ``env`` (plus PATH) and ``stdin``."""
    return subprocess.run(
        [sys.executable, "-m", "stack.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        cwd=REPO,
        timeout=120,
    )


# -- help and keys ------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = ensign("--help")
    assert result.returncode == 0
    for command in ("dev", "backend", "resolver", "delivery", "keys"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command
    keys_help = ensign("keys", "--help")
    assert "derive" in keys_help.stdout and "new" in keys_help.stdout


def test_keys_derive_prints_the_profile_public_keys() -> None:
    result = ensign("keys", "derive", stdin=WALLET_KEY + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"publicEncryptionKey": ENCRYPTION_PUBLIC, "publicSigningKey": SIGNING_PUBLIC}


def test_keys_derive_secret_prints_matching_key_pairs() -> None:
    result = ensign("keys", "derive", "--secret", stdin=WALLET_KEY + "\n")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    encryption = EncryptionKeyPair(output["encryptionKeyPair"]["publicKey"], output["encryptionKeyPair"]["privateKey"])
    signing = SigningKeyPair(output["signingKeyPair"]["publicKey"], output["signingKeyPair"]["privateKey"])
    assert (encryption.public_key, signing.public_key) == (ENCRYPTION_PUBLIC, SIGNING_PUBLIC)
    assert output["storageEncryptionKey"] == profile_keys_from_wallet(WALLET_KEY).storage_key


def test_keys_derive_from_signature_gives_the_same_keys() -> None:
    signature = personal_sign(WALLET_KEY, storage_key_creation_message(address_of_private_key(WALLET_KEY)))
    result = ensign("keys", "derive", "--from-signature", stdin=signature + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"publicEncryptionKey": ENCRYPTION_PUBLIC, "publicSigningKey": SIGNING_PUBLIC}


@pytest.mark.parametrize("flags", [(), ("--from-signature",)])
def test_keys_derive_with_empty_stdin_exits_2_with_a_message(flags: tuple[str, ...]) -> None:
    result = ensign("keys", "derive", *flags, stdin="")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("ensign: expected the ")
    assert "standard input" in result.stderr


def parse_keys_new(stdout: str) -> tuple[dict[str, str], str]:
    """The ``NAME=value`` lines and the record line (the comment after the record's label)."""
    lines = stdout.splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    label = next(i for i, line in enumerate(lines) if "network.dm3.deliveryService" in line)
    record = lines[label + 1].removeprefix("# ")
    return env, record


def test_keys_new_prints_valid_key_pairs_and_the_ds_record() -> None:
    result = ensign("keys", "new", "--url", "https://ds.example.com", "--name", "DS.Example.eth")
    assert result.returncode == 0, result.stderr
    env, record = parse_keys_new(result.stdout)

    EncryptionKeyPair(env["ENCRYPTION_PUBLIC_KEY"], env["ENCRYPTION_PRIVATE_KEY"])  # raises unless a pair
    SigningKeyPair(env["SIGNING_PUBLIC_KEY"], env["SIGNING_PRIVATE_KEY"])
    assert len(env["JWT_SECRET"].encode()) >= 32
    assert (env["DELIVERY_URL"], env["DELIVERY_NAME"]) == ("https://ds.example.com", "ds.example.eth")

    parsed = parse_profile_record(record)
    assert isinstance(parsed, ParsedProfile)
    assert DeliveryServiceProfile.from_json(parsed.value) == DeliveryServiceProfile(
        public_encryption_key=env["ENCRYPTION_PUBLIC_KEY"],
        public_signing_key=env["SIGNING_PUBLIC_KEY"],
        url="https://ds.example.com",
    )
    # The lines are exactly what `ensign delivery` reads.
    settings = DeliverySettings.from_env(env)
    assert settings.keys.signing_private_key == env["SIGNING_PRIVATE_KEY"]
    assert settings.url == "https://ds.example.com"


def test_keys_new_marks_the_secrets_and_makes_fresh_keys_each_time() -> None:
    first = ensign("keys", "new", "--url", "https://ds.example.com").stdout
    second = ensign("keys", "new", "--url", "https://ds.example.com").stdout
    lines = first.splitlines()
    secrets_from = next(i for i, line in enumerate(lines) if line.startswith("# SECRETS"))
    for name in ("SIGNING_PRIVATE_KEY", "ENCRYPTION_PRIVATE_KEY", "JWT_SECRET"):
        assert any(line.startswith(name + "=") for line in lines[secrets_from:]), name
    assert not any(line.startswith(("SIGNING_PRIVATE_KEY", "JWT_SECRET")) for line in lines[:secrets_from])
    assert "DELIVERY_NAME" not in first
    first_env, _ = parse_keys_new(first)
    second_env, _ = parse_keys_new(second)
    for name in ("SIGNING_PRIVATE_KEY", "ENCRYPTION_PRIVATE_KEY", "JWT_SECRET"):
        assert first_env[name] != second_env[name]


def test_keys_new_next_prints_the_next_set_the_delivery_service_reads_beside_the_current_one() -> None:
    current, _ = parse_keys_new(ensign("keys", "new", "--url", "https://ds.example.com").stdout)
    result = ensign("keys", "new", "--url", "https://ds.example.com", "--next")
    assert result.returncode == 0, result.stderr
    following, record = parse_keys_new(result.stdout)
    assert set(following) == {
        "NEXT_SIGNING_PUBLIC_KEY", "NEXT_SIGNING_PRIVATE_KEY", "NEXT_ENCRYPTION_PUBLIC_KEY", "NEXT_ENCRYPTION_PRIVATE_KEY"
    }
    settings = DeliverySettings.from_env({**current, **following})
    assert settings.next_keys is not None
    assert settings.next_keys.signing_public_key == following["NEXT_SIGNING_PUBLIC_KEY"]
    parsed = parse_profile_record(record)
    assert isinstance(parsed, ParsedProfile) and parsed.value["publicSigningKey"] == following["NEXT_SIGNING_PUBLIC_KEY"]
    keys_line = next(line for line in result.stdout.splitlines() if '"publicSigningKeys"' in line)
    assert following["NEXT_SIGNING_PUBLIC_KEY"] in keys_line


def test_keys_at_rest_pins_the_key_a_service_without_one_seals_with() -> None:
    """Before a rotation the operator sets AT_REST_KEY to what `ensign keys at-rest` prints: what the
    service sealed before (no AT_REST_KEY, a key derived from ENCRYPTION_PRIVATE_KEY) opens after,
    whatever the encryption key then is."""
    current, _ = parse_keys_new(ensign("keys", "new", "--url", "https://ds.example.com").stdout)
    assert len(base64.b64decode(current["AT_REST_KEY"])) == 32  # new services get their own from the start
    without = {k: v for k, v in current.items() if k != "AT_REST_KEY"}
    result = ensign("keys", "at-rest", stdin=without["ENCRYPTION_PRIVATE_KEY"] + "\n")
    assert result.returncode == 0, result.stderr
    assert without["ENCRYPTION_PRIVATE_KEY"] not in result.stdout
    pinned = dict(line.split("=", 1) for line in result.stdout.splitlines() if not line.startswith("#"))
    before = AtRest.from_settings(DeliverySettings.from_env(without))
    sealed = before.seal(b'{"queued": "before the rotation"}', "0xbob")
    following, _ = parse_keys_new(ensign("keys", "new", "--url", "https://ds.example.com").stdout)
    rotated = {**following, "AT_REST_KEY": pinned["AT_REST_KEY"]}  # another encryption key, the same seal
    after = AtRest.from_settings(DeliverySettings.from_env(rotated))
    assert after.open(sealed, "0xbob") == b'{"queued": "before the rotation"}'
    assert after.sender_tag("0xalice", "0xbob") == before.sender_tag("0xalice", "0xbob")  # de-duplication holds
    with pytest.raises(DecryptionError):  # without the pin the new key could not open it
        AtRest.from_settings(DeliverySettings.from_env(following)).open(sealed, "0xbob")


@pytest.mark.parametrize("url", ["ds.example.com", "ftp://ds.example.com", "https://"])
def test_keys_new_rejects_a_url_that_is_not_http(url: str) -> None:
    result = ensign("keys", "new", "--url", url)
    assert result.returncode == 2
    assert result.stderr.startswith("ensign: --url must be")
    assert result.stdout == ""


# -- production commands: settings --------------------------------------------------------------


def delivery_env(**overrides: str) -> dict[str, str]:
    env = {
        "SIGNING_PUBLIC_KEY": base64.b64encode(b"\x01" * 32).decode(),
        "SIGNING_PRIVATE_KEY": base64.b64encode(b"\x02" * 64).decode(),
        "ENCRYPTION_PUBLIC_KEY": base64.b64encode(b"\x03" * 32).decode(),
        "ENCRYPTION_PRIVATE_KEY": base64.b64encode(b"\x04" * 32).decode(),
        "JWT_SECRET": "s" * 32,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "ETH_RPC_URL": "http://127.0.0.1:1",
    }
    env.update(overrides)
    return {name: value for name, value in env.items() if value != "-"}


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        ("backend", {}, "REDIS_URL is required for `ensign backend`"),
        ("backend", {"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL must be a URL starting with redis://"),
        ("backend", {"REDIS_URL": "redis://127.0.0.1:1", "BACKEND_PORT": "eighty"}, "BACKEND_PORT must be a whole number"),
        ("backend", {"REDIS_URL": "redis://127.0.0.1:1", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
        ("resolver", {}, "GATEWAY_SIGNER_KEY is required"),
        ("resolver", {"GATEWAY_SIGNER_KEY": "0xdeadbeef"}, "GATEWAY_SIGNER_KEY is malformed"),
        ("resolver", {"GATEWAY_SIGNER_KEY": GATEWAY_KEY, "GATEWAY_FORMAT": "x"}, "GATEWAY_FORMAT must be one of"),
        ("resolver", {"GATEWAY_SIGNER_KEY": GATEWAY_KEY, "BACKEND_URL": "backend:8081"}, "BACKEND_URL must be a URL"),
        ("delivery", delivery_env(REDIS_URL="-"), "REDIS_URL is required for `ensign delivery`"),
        ("delivery", delivery_env(ETH_RPC_URL="-"), "ETH_RPC_URL is required for `ensign delivery`"),
        ("delivery", delivery_env(ETH_RPC_URL="127.0.0.1:8545"), "ETH_RPC_URL must be a URL"),
        ("delivery", delivery_env(JWT_SECRET="-"), "JWT_SECRET is required"),
        ("delivery", delivery_env(JWT_SECRET="short"), "JWT_SECRET must be at least 32 bytes"),
        ("delivery", delivery_env(SIGNING_PRIVATE_KEY="bm90IGEga2V5"), "SIGNING_PRIVATE_KEY is malformed"),
        ("delivery", delivery_env(MESSAGE_TTL="soon"), "MESSAGE_TTL must be a whole number"),
    ],
)
def test_production_command_with_a_bad_setting_exits_2_naming_it(command: str, env: dict[str, str], expected: str) -> None:
    result = ensign(command, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"ensign: {expected}")
    assert "deadbeef" not in result.stderr and "bm90IGEga2V5" not in result.stderr  # secrets are not echoed


# -- production commands: serving ---------------------------------------------------------------


@dataclass
class RunningService:
    process: asyncio.subprocess.Process
    url: str
    log: list[str] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    async def stop(self, signum: signal.Signals = signal.SIGTERM) -> float:
        """Send ``signum``; the seconds until the process exited."""
        started = time.monotonic()
        self.process.send_signal(signum)
        await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        if self._drain is not None:
            await self._drain
        return time.monotonic() - started


async def _read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


@asynccontextmanager
async def running(command: str, env: Mapping[str, str], *args: str) -> AsyncIterator[RunningService]:
    """``ensign COMMAND ARGS`` until its "listening on" line; killed afterwards if a test left it running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stack.cli", command, *args,
        env={"PATH": os.environ.get("PATH", ""), **env},
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []
    try:
        url = await asyncio.wait_for(_await_listening(process.stderr, log), START_TIMEOUT)
        assert url is not None, f"ensign {command} exited before listening:\n{''.join(log)}"
        service = RunningService(process, url, log)
        service._drain = asyncio.create_task(_read_lines(process.stderr, log))
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _await_listening(stream: asyncio.StreamReader, log: list[str]) -> str | None:
    while line := await stream.readline():
        text = line.decode(errors="replace")
        log.append(text)
        if match := LISTENING.search(text):
            return match.group(1)
    return None


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_backend_serves_health_and_stops_on_sigterm(redis_url: str, redis_prefix: str, redis: object) -> None:
    # ``redis`` deletes whatever the service wrote under ``redis_prefix``.
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "BACKEND_PORT": "0"}
    async with running("backend", env) as backend:
        assert await get_json(f"{backend.url}/health") == (200, {"status": "ok", "redis": "ok"})
        elapsed = await backend.stop(signal.SIGTERM)
    assert backend.process.returncode == 0, "".join(backend.log)
    assert elapsed < STOP_TIMEOUT
    assert "backend stopped" in "".join(backend.log)


async def test_resolver_serves_health_with_its_signer_and_stops_on_sigint() -> None:
    env = {"GATEWAY_SIGNER_KEY": GATEWAY_KEY, "GATEWAY_PORT": "0", "GATEWAY_FORMAT": "dm3"}
    async with running("resolver", env) as resolver:
        status, body = await get_json(f"{resolver.url}/health")
        assert status == 200
        assert body["signer"] == address_of_private_key(GATEWAY_KEY)
        assert body["format"] == "dm3"
        await resolver.stop(signal.SIGINT)
    assert resolver.process.returncode == 0
    assert "resolver stopped" in "".join(resolver.log)


def test_a_port_in_use_exits_2_naming_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ensign("resolver", env={"GATEWAY_SIGNER_KEY": GATEWAY_KEY, "GATEWAY_PORT": str(port)})
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "set GATEWAY_PORT to a free port" in result.stderr


async def test_sigterm_during_startup_stops_at_once() -> None:
    # Nothing listens on port 1: the backend keeps retrying Redis for several seconds.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stack.cli", "backend",
        env={"PATH": os.environ.get("PATH", ""), "REDIS_URL": "redis://127.0.0.1:1/0", "BACKEND_PORT": "0"},
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        first_retry = await asyncio.wait_for(process.stderr.readline(), START_TIMEOUT)
        assert b"Redis not reachable (attempt 1 of" in first_retry
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        rest = (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, rest
    assert time.monotonic() - started < 2.0
    assert "backend stopped during start-up" in rest
    assert "listening" not in rest


async def test_delivery_serves_health_with_redis_and_chain_and_stops_on_sigterm(
    redis_url: str, redis_prefix: str, redis: object
) -> None:
    from stack.devchain import DevChain
    from stack.devchain_rpc import DevChainRpcServer

    keys, _ = parse_keys_new(ensign("keys", "new", "--url", "http://127.0.0.1:8083").stdout)
    async with DevChain() as chain, DevChainRpcServer(chain, port=0) as rpc:
        env = {**keys, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "ETH_RPC_URL": rpc.url, "DELIVERY_PORT": "0"}
        async with running("delivery", env) as delivery:
            assert await get_json(f"{delivery.url}/health") == (200, {"status": "ok", "redis": "ok", "chain": "ok"})
            elapsed = await delivery.stop(signal.SIGTERM)
    assert delivery.process.returncode == 0, "".join(delivery.log)
    assert elapsed < STOP_TIMEOUT
    lines = [json.loads(line) for line in delivery.log]  # the delivery service logs JSON lines
    assert any(entry["msg"] == "delivery stopped" for entry in lines)


async def test_delivery_workers_share_the_port_and_metrics_count_every_worker(
    redis_url: str, redis_prefix: str, redis: object
) -> None:
    from stack.devchain import DevChain
    from stack.devchain_rpc import DevChainRpcServer

    keys, _ = parse_keys_new(ensign("keys", "new", "--url", "http://127.0.0.1:8083").stdout)
    requests = 24
    async with DevChain() as chain, DevChainRpcServer(chain, port=0) as rpc:
        env = {**keys, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "ETH_RPC_URL": rpc.url, "DELIVERY_PORT": "0"}
        async with running("delivery", env, "--workers", "2") as delivery:
            deadline = time.monotonic() + START_TIMEOUT
            while sum("listening on" in line for line in delivery.log) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            listening = {LISTENING.search(line).group(1) for line in delivery.log if LISTENING.search(line)}  # type: ignore[union-attr]
            assert listening == {delivery.url}, "".join(delivery.log)  # both workers, one port
            # A new connection per request: the kernel spreads them over both workers.
            for _ in range(requests):
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                    async with http.get(f"{delivery.url}/hello") as response:
                        assert response.status == 200
            # Whichever worker answers, /metrics counts the requests of both.
            pattern = re.compile(r'ensign_ds_request_seconds_count\{method="GET",route="/hello",status="200"\} (\S+)')
            for _ in range(4):
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                    async with http.get(f"{delivery.url}/metrics") as response:
                        text = await response.text()
                match = pattern.search(text)
                assert match is not None, text
                assert float(match.group(1)) == requests
            await delivery.stop(signal.SIGTERM)
    assert delivery.process.returncode == 0, "".join(delivery.log)
    messages = [json.loads(line)["msg"] for line in delivery.log]
    assert messages.count("delivery stopped") == 2
    assert any(message.startswith("2 worker processes on port") for message in messages)


async def test_delivery_without_a_reachable_node_exits_2_naming_eth_rpc_url(redis_url: str, redis_prefix: str) -> None:
    keys, _ = parse_keys_new(ensign("keys", "new", "--url", "http://127.0.0.1:8083").stdout)
    env = {**keys, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "ETH_RPC_URL": "http://127.0.0.1:1/secret-api-key"}
    result = await asyncio.to_thread(ensign, "delivery", "--workers", "2", env=env)
    assert result.returncode == 2
    # Each worker says why it stopped; the parent stops the other and exits with the same status.
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("ensign: the Ethereum node (ETH_RPC_URL) cannot be reached") for line in lines)
    assert "secret-api-key" not in result.stderr
