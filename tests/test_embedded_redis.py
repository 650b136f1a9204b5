"""The embedded Redis that ``ensign dev`` and the tests use when no ``REDIS_URL`` is set."""

from __future__ import annotations

from pathlib import Path

import redis

from stack.embedded_redis import EmbeddedRedis


def test_embedded_redis_keeps_data_across_restart_with_append_only_file(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, persistent=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("ensign:test:kept", b"value")
        client.close()
    assert (tmp_path / "appendonly.aof").exists() or (tmp_path / "appendonlydir").exists()

    with EmbeddedRedis(tmp_path, persistent=True) as server:
        client = redis.Redis.from_url(server.url)
        assert client.get("ensign:test:kept") == b"value"
        assert client.info("server")["redis_version"].startswith("6.2")
        client.close()


def test_embedded_redis_without_persistence_starts_empty(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, persistent=False) as server:
        redis.Redis.from_url(server.url).set("ensign:test:gone", b"1")
    with EmbeddedRedis(tmp_path, persistent=False) as server:
        assert redis.Redis.from_url(server.url).get("ensign:test:gone") is None


def test_embedded_redis_listens_on_tcp_port_when_asked(tmp_path: Path, unused_tcp_port: int) -> None:
    with EmbeddedRedis(tmp_path, port=unused_tcp_port, persistent=False) as server:
        assert server.url == f"redis://127.0.0.1:{unused_tcp_port}/0"
        assert redis.Redis.from_url(server.url).ping()


def test_long_data_dir_falls_back_to_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep, persistent=False) as server:
        assert len(str(server.socket_path)) <= 107
        assert redis.Redis.from_url(server.url).ping()
