"""Settings from the environment: defaults, and start-up errors that name the bad variable."""

from __future__ import annotations

import base64

import pytest

from ensign.config import BackendSettings, ConfigError, DeliverySettings, GatewaySettings

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


def test_delivery_refuses_a_short_jwt_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET must be at least 32 bytes"):
        DeliverySettings.from_env(delivery_env(JWT_SECRET="short"))
