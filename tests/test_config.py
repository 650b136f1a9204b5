"""Settings from the environment: defaults, and start-up errors that name the bad variable."""

from __future__ import annotations

import base64

import pytest

from ensign.config import (
    BackendSettings,
    ConfigError,
    DeliveryLimits,
    DeliverySettings,
    GatewaySettings,
    RateLimit,
    RedisSettings,
)

SIGNER = "0x" + "11" * 32


def delivery_env(**overrides: str) -> dict[str, str]:
    env = {
        "SIGNING_PUBLIC_KEY": base64.b64encode(b"\x01" * 32).decode(),
        "SIGNING_PRIVATE_KEY": base64.b64encode(b"\x02" * 64).decode(),
        "ENCRYPTION_PUBLIC_KEY": base64.b64encode(b"\x03" * 32).decode(),
        "ENCRYPTION_PRIVATE_KEY": base64.b64encode(b"\x04" * 32).decode(),
        "JWT_SECRET": "s" * 32,
    }
    env.update(overrides)
    return env


def test_backend_defaults_without_environment() -> None:
    settings = BackendSettings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8081)
    assert settings.addr_domains == ("addr.ensign.eth",)
    assert settings.user_domains == ("user.ensign.eth",)
    assert settings.redis.url is None and settings.redis.prefix == "ensign:"
    assert settings.chain.rpc_url is None


def test_domain_lists_are_comma_separated_and_lowercased() -> None:
    settings = BackendSettings.from_env({"ADDR_DOMAINS": "Addr.Example.eth, addr2.example.eth"})
    assert settings.addr_domains == ("addr.example.eth", "addr2.example.eth")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BACKEND_PORT", "eighty", "BACKEND_PORT must be a whole number"),
        ("BACKEND_PORT", "70000", "BACKEND_PORT must be at most 65535"),
        ("REDIS_URL", "http://x", "REDIS_URL must be a URL starting with redis://"),
        ("ETH_RPC_URL", "localhost:8545", "ETH_RPC_URL must be a URL"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
    ],
)
def test_malformed_backend_setting_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        BackendSettings.from_env({variable: value})


def test_gateway_requires_a_signer_key_and_never_echoes_it() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_SIGNER_KEY is required"):
        GatewaySettings.from_env({})
    with pytest.raises(ConfigError) as error:
        GatewaySettings.from_env({"GATEWAY_SIGNER_KEY": "0xdeadbeefcafe"})
    assert "deadbeef" not in str(error.value)
    settings = GatewaySettings.from_env({"GATEWAY_SIGNER_KEY": SIGNER})
    assert settings.signature_ttl == 300 and settings.answer_format == "ensdomains"
    assert SIGNER not in repr(settings)


def test_delivery_settings_validate_key_lengths_without_leaking_them() -> None:
    settings = DeliverySettings.from_env(delivery_env())
    assert settings.message_size_limit == 100_000
    assert settings.message_ttl == 30 * 24 * 3600
    assert "JWT_SECRET" not in repr(settings) and "s" * 32 not in repr(settings)
    bad_key = base64.b64encode(b"\x05" * 31).decode()
    with pytest.raises(ConfigError, match="SIGNING_PUBLIC_KEY is malformed") as error:
        DeliverySettings.from_env(delivery_env(SIGNING_PUBLIC_KEY=bad_key))
    assert bad_key not in str(error.value)


def test_the_next_delivery_key_set_is_all_four_variables_or_none() -> None:
    assert DeliverySettings.from_env(delivery_env()).next_keys is None
    next_env = {
        "NEXT_SIGNING_PUBLIC_KEY": base64.b64encode(b"\x11" * 32).decode(),
        "NEXT_SIGNING_PRIVATE_KEY": base64.b64encode(b"\x12" * 64).decode(),
        "NEXT_ENCRYPTION_PUBLIC_KEY": base64.b64encode(b"\x13" * 32).decode(),
        "NEXT_ENCRYPTION_PRIVATE_KEY": base64.b64encode(b"\x14" * 32).decode(),
    }
    with pytest.raises(ConfigError, match="AT_REST_KEY"):  # the queued messages would be lost
        DeliverySettings.from_env(delivery_env(**next_env))
    next_env["AT_REST_KEY"] = base64.b64encode(b"\x15" * 32).decode()
    settings = DeliverySettings.from_env(delivery_env(**next_env))
    assert settings.next_keys is not None
    assert next_env["AT_REST_KEY"] not in repr(settings)
    assert settings.next_keys.encryption_public_key == next_env["NEXT_ENCRYPTION_PUBLIC_KEY"]
    assert next_env["NEXT_SIGNING_PRIVATE_KEY"] not in repr(settings)
    with pytest.raises(ConfigError, match="AT_REST_KEY is malformed"):
        DeliverySettings.from_env(delivery_env(**{**next_env, "AT_REST_KEY": "short"}))
    partial = {k: v for k, v in next_env.items() if k != "NEXT_ENCRYPTION_PRIVATE_KEY"}
    with pytest.raises(ConfigError, match="NEXT_ENCRYPTION_PRIVATE_KEY is required"):
        DeliverySettings.from_env(delivery_env(**partial))


def test_wait_for_replicas_is_off_unless_the_operator_asks() -> None:
    assert DeliverySettings.from_env(delivery_env()).redis_wait_replicas == 0

    settings = DeliverySettings.from_env(delivery_env(REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="250"))

    assert (settings.redis_wait_replicas, settings.redis_wait_timeout_ms) == (1, 250)
    with pytest.raises(ConfigError, match="REDIS_WAIT_TIMEOUT_MS"):
        DeliverySettings.from_env(delivery_env(REDIS_WAIT_TIMEOUT_MS="0"))


def test_forwarding_is_on_and_bounded_unless_the_operator_says_otherwise() -> None:
    forwarding = DeliverySettings.from_env(delivery_env()).forwarding
    assert (forwarding.enabled, forwarding.timeout, forwarding.max_services) == (True, 5, 2)
    assert forwarding.rate == RateLimit(600, 60)

    env = delivery_env(FORWARDING="no", FORWARD_TIMEOUT="2", FORWARD_MAX_SERVICES="1", RATE_FORWARD="off")
    forwarding = DeliverySettings.from_env(env).forwarding
    assert (forwarding.enabled, forwarding.timeout, forwarding.max_services, forwarding.rate) == (False, 2, 1, None)
    with pytest.raises(ConfigError, match="FORWARD_TIMEOUT"):
        DeliverySettings.from_env(delivery_env(FORWARD_TIMEOUT="60"))
    with pytest.raises(ConfigError, match="FORWARD_MAX_SERVICES"):
        DeliverySettings.from_env(delivery_env(FORWARD_MAX_SERVICES="0"))


def test_delivery_refuses_a_short_jwt_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET must be at least 32 bytes"):
        DeliverySettings.from_env(delivery_env(JWT_SECRET="short"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("YES", True), ("true", True), ("1", True), ("no", False), ("False", False), ("0", False), ("", False)],
)
def test_redis_cluster_is_a_yes_no_setting(value: str, expected: bool) -> None:
    settings = BackendSettings.from_env({"REDIS_URL": "redis://node-1:6379/0", "REDIS_CLUSTER": value})
    assert settings.redis.cluster is expected


def test_redis_cluster_defaults_to_a_single_server() -> None:
    assert BackendSettings.from_env({}).redis.cluster is False


def test_malformed_redis_cluster_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="REDIS_CLUSTER must be yes or no .* got 'maybe'"):
        BackendSettings.from_env({"REDIS_URL": "redis://node-1:6379/0", "REDIS_CLUSTER": "maybe"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:///run/redis.sock?db=0", "REDIS_URL is a unix:// socket"),
        ("redis://:pw-secret@node-1:6379/2", "REDIS_URL selects a database other than 0"),
        ("redis://:pw-secret@node-1:6379?db=1", "REDIS_URL selects a database other than 0"),
        (None, "REDIS_URL is not set"),
    ],
)
def test_cluster_refuses_what_a_cluster_client_cannot_use(url: str | None, expected: str) -> None:
    environ = {"REDIS_CLUSTER": "yes"} | ({"REDIS_URL": url} if url else {})
    with pytest.raises(ConfigError, match=f"REDIS_CLUSTER is on but {expected}") as error:
        BackendSettings.from_env(environ)
    assert "pw-secret" not in str(error.value)
    # The same check guards settings built in code.
    with pytest.raises(ConfigError, match=expected):
        RedisSettings(url=url, cluster=True)


@pytest.mark.parametrize("url", ["redis://node-1:6379", "redis://node-1:6379/0", "rediss://:pw@node-1:6380/0"])
def test_cluster_accepts_a_tcp_url_of_database_0(url: str) -> None:
    assert RedisSettings(url=url, cluster=True).cluster


def test_redis_prefix_with_a_brace_is_refused() -> None:
    with pytest.raises(ConfigError, match="REDIS_PREFIX must not contain"):
        BackendSettings.from_env({"REDIS_PREFIX": "ensign{x}:"})


def test_storage_settings_from_env() -> None:
    from ensign.config import StorageSettings

    assert BackendSettings.from_env({}).storage == StorageSettings()
    storage = BackendSettings.from_env(
        {"BACKEND_JWT_SECRET": "s" * 32, "STORAGE_QUOTA_BYTES": "100000", "STORAGE_MAX_DOCUMENT": "2048"}
    ).storage
    assert (storage.jwt_secret, storage.quota_bytes, storage.max_document) == ("s" * 32, 100000, 2048)
    assert "s" * 32 not in repr(storage)
    with pytest.raises(ConfigError, match="BACKEND_JWT_SECRET"):
        BackendSettings.from_env({"BACKEND_JWT_SECRET": "short"})
    with pytest.raises(ConfigError, match="STORAGE_QUOTA_BYTES"):
        BackendSettings.from_env({"STORAGE_QUOTA_BYTES": "10"})


def test_delivery_limits_have_defaults_and_read_rates_and_proxies() -> None:
    limits = DeliverySettings.from_env(delivery_env()).limits
    assert limits == DeliveryLimits()
    assert (limits.max_queued_messages, limits.sender, limits.trusted_proxies) == (5_000, RateLimit(60, 60), ())
    limits = DeliverySettings.from_env(delivery_env(
        RATE_SENDER="10/5", RATE_LOGIN="off", MAX_QUEUED_BYTES="2048", TRUSTED_PROXIES="10.0.0.0/8, ::1",
        MAX_RECIPIENTS="20",
    )).limits
    assert limits.sender == RateLimit(10, 5) and limits.sender.per_second == 2
    assert limits.max_recipients == 20
    assert limits.login is None
    assert limits.max_queued_bytes == 2048
    assert limits.trusted_proxies == ("10.0.0.0/8", "::1")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RATE_PAIR", "10", "RATE_PAIR must be <capacity>/<seconds>"),
        ("RATE_PAIR", "0/60", "RATE_PAIR needs a capacity and a period of at least 1"),
        ("RATE_ADDRESS", "ten/60", "RATE_ADDRESS must be <capacity>/<seconds>"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.local", "TRUSTED_PROXIES must be comma-separated IP addresses"),
        ("MAX_SOCKETS_PER_ACCOUNT", "0", "MAX_SOCKETS_PER_ACCOUNT must be at least 1"),
        ("MAX_RECIPIENTS", "1001", "MAX_RECIPIENTS must be at most 1000"),
    ],
)
def test_malformed_limit_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        DeliverySettings.from_env(delivery_env(**{variable: value}))
