"""The hostile-input suite's target: ``ensign dev``'s four services in a child process.

One process per test module (starting the stack takes seconds). Each test checks at its end that
the process is still alive: a crash (the segfault of issue 10) fails the test that caused it
instead of killing pytest.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import delete_prefixed

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Services:
    process: subprocess.Popen[str]
    chain: str
    backend: str
    gateway: str
    delivery: str
    resolver: str

    def assert_alive(self) -> None:
        code = self.process.poll()
        assert code is None, f"the dev stack process died with exit status {code} (negative: killed by that signal)"


@pytest.fixture(scope="module")
def services(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    data_dir = tmp_path_factory.mktemp("hostile-dev")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile.devstack_process", str(data_dir), redis_url, prefix],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"the dev stack did not start (exit status {process.poll()})"
        urls = json.loads(line)
        yield Services(process=process, **urls)
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        asyncio.run(_delete(redis_url, prefix))


async def _delete(redis_url: str, prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await delete_prefixed(client, prefix)
    finally:
        await client.aclose()
