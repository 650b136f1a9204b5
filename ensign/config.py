"""Typed settings for every Ensign service; the only module that reads ``os.environ``.

Each service gets a frozen dataclass built once at start-up by ``from_env()`` and passed into its
app factory. Everything else takes settings as arguments, so a test overrides one value with
``dataclasses.replace(settings, ...)`` instead of patching the environment.

A missing or malformed variable raises :class:`ConfigError` naming the variable and what was
expected; the CLI prints it and exits with status 2. Secrets are never echoed back: an error about
a key says which variable is wrong, not what it holds.

The environment variables, their defaults and which command needs which are listed in one table in
README.md ("Configuration"); a test checks that table against what this module reads.
"""

from __future__ import annotations

import base64
import getpass
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qs, urlparse

from ensign.errors import EnsignError

T = TypeVar("T")

ENS_REGISTRY_ADDRESS = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
DEFAULT_REDIS_PREFIX = "ensign:"
DEFAULT_ADDR_DOMAINS = ("addr.ensign.eth",)
DEFAULT_USER_DOMAINS = ("user.ensign.eth",)
DEFAULT_DELIVERY_NAME = "ds.ensign.eth"
#: The ``make dev`` chain's JSON-RPC server.
DEV_RPC_URL = "http://127.0.0.1:8545"
#: The ``make dev`` profile backend.
DEV_BACKEND_URL = "http://127.0.0.1:8081"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE = ("yes", "true", "1")
_FALSE = ("no", "false", "0")


class ConfigError(EnsignError):
    """A setting is missing or malformed. The message names the variable."""

    code = "config"


class Env:
    """Typed reads from an environment mapping, each failure naming the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str | None = None) -> str:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise ConfigError(f"{name} is required but not set")
            return default
        return value

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be at most {maximum}, got {value}")
        return value

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, minimum=0, maximum=65535)

    def url(self, name: str, default: str | None = None, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
        value = self.text(name, default)
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
            raise ConfigError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    def optional_url(self, name: str, *, schemes: tuple[str, ...]) -> str | None:
        if self._raw(name) is None:
            return None
        return self.url(name, schemes=schemes)

    def flag(self, name: str, default: bool) -> bool:
        """``yes``/``true``/``1`` or ``no``/``false``/``0`` (any case); unset means ``default``."""
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"{name} must be yes or no (also true/false, 1/0), got {raw!r}")

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return default
        items = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
        if not items:
            raise ConfigError(f"{name} must be a comma-separated list with at least one entry")
        return items

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def rate(self, name: str, default: RateLimit | None) -> RateLimit | None:
        """A :class:`RateLimit` written ``<capacity>/<seconds>``, or ``off`` (``None``)."""
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() == "off":
            return None
        capacity, slash, period = raw.partition("/")
        if not slash or not capacity.strip().isdigit() or not period.strip().isdigit():
            raise ConfigError(f"{name} must be <capacity>/<seconds> (e.g. 60/60) or off, got {raw!r}")
        if int(capacity) < 1 or int(period) < 1:
            raise ConfigError(f"{name} needs a capacity and a period of at least 1, got {raw!r}")
        return RateLimit(int(capacity), int(period))

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or networks (``10.0.0.0/8``); unset means none."""
        raw = self._raw(name)
        if raw is None:
            return ()
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(f"{name} must be comma-separated IP addresses or networks, got {item!r}") from None
        return items

    def secret(self, name: str, check: Callable[[str], object] | None = None, what: str = "") -> str:
        """A required secret; ``check`` raises on a malformed value. The value never enters a message."""
        value = self.text(name)
        if check is not None:
            try:
                check(value)
            except Exception:
                raise ConfigError(f"{name} is malformed: expected {what}") from None
        return value


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is, whether it is a Redis Cluster, and which key prefix Ensign owns.

    ``url=None`` means the embedded Redis, a single server. With ``cluster=True`` the URL names any
    node of the cluster (``redis://`` or ``rediss://``, database 0); the client finds the others.
    :func:`ensign.redis_client.open_redis` opens the client these settings describe.

    :raises ConfigError: at construction, when the prefix holds a brace (it would move the hash
        tags that keep each atomic operation's keys in one cluster slot) or when ``cluster`` is
        on with no URL, a ``unix://`` URL or a database other than 0.
    """

    url: str | None = None
    prefix: str = DEFAULT_REDIS_PREFIX
    cluster: bool = False

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigError("REDIS_PREFIX must not contain '{' or '}': Ensign's keys carry their own hash tags")
        if self.cluster:
            _check_cluster_url(self.url)

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        return cls(
            url=env.optional_url("REDIS_URL", schemes=("redis", "rediss", "unix")),
            prefix=env.text("REDIS_PREFIX", DEFAULT_REDIS_PREFIX),
            cluster=env.flag("REDIS_CLUSTER", False),
        )


def _check_cluster_url(url: str | None) -> None:
    """Refuse what a Redis Cluster client cannot use; the URL may hold a password, so it is not echoed."""
    if url is None:
        raise ConfigError(
            "REDIS_CLUSTER is on but REDIS_URL is not set: name any node of the cluster "
            "(the embedded Redis is a single server)"
        )
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        raise ConfigError(
            "REDIS_CLUSTER is on but REDIS_URL is a unix:// socket: a cluster client reaches its nodes "
            "over TCP, so use redis:// or rediss:// with any node's host and port"
        )
    database = parse_qs(parsed.query).get("db", [parsed.path.strip("/")])[-1]
    if database not in ("", "0"):
        raise ConfigError("REDIS_CLUSTER is on but REDIS_URL selects a database other than 0; a cluster has only database 0")


@dataclass(frozen=True)
class HttpSettings:
    """How long a client may hold a connection of any service (seconds).

    ``keepalive_timeout`` closes a connection that sends nothing for that long: idle between two
    requests, or still sending the headers of one (aiohttp's default is an hour). ``request_timeout``
    is each request's deadline, reading its body included: past it the client gets 408 when its
    body had not fully arrived, else 503. socket.io's long-lived connections are exempt.
    """

    keepalive_timeout: int = 15
    request_timeout: int = 30
    #: Serve ``/metrics`` only on this port of ``metrics_host`` (an internal address) instead of
    #: on the public port; ``None`` keeps it on the public port, as before.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Env) -> HttpSettings:
        return cls(
            keepalive_timeout=env.integer("HTTP_KEEPALIVE_TIMEOUT", 15, minimum=1, maximum=3600),
            request_timeout=env.integer("HTTP_REQUEST_TIMEOUT", 30, minimum=1, maximum=3600),
            metrics_port=env.port("METRICS_PORT", 0) if env.optional("METRICS_PORT") is not None else None,
            metrics_host=env.text("METRICS_HOST", "127.0.0.1"),
        )


@dataclass(frozen=True)
class ChainSettings:
    """The Ethereum node. ``rpc_url=None`` means the embedded chain (development and tests only)."""

    rpc_url: str | None = None
    ens_registry: str = ENS_REGISTRY_ADDRESS
    #: Seconds one call to the node may take before the lookup gives up (503).
    rpc_timeout: int = 10

    @classmethod
    def from_env(cls, env: Env) -> ChainSettings:
        return cls(
            rpc_url=env.optional_url("ETH_RPC_URL", schemes=("http", "https", "ws", "wss")),
            ens_registry=env.text("ENS_REGISTRY", ENS_REGISTRY_ADDRESS),
            rpc_timeout=env.integer("ETH_RPC_TIMEOUT", 10, minimum=1, maximum=300),
        )


@dataclass(frozen=True)
class StorageSettings:
    """A user's own storage in the backend: session login and the limits on what one account keeps.

    ``jwt_secret`` signs the backend's session tokens (its own, never the delivery service's);
    ``None`` draws a random one per process, which is fine for one process and ``ensign dev`` but
    logs everyone out on restart and does not work behind a load balancer.
    """

    jwt_secret: str | None = field(default=None, repr=False)
    #: Bytes one account may keep: documents with their whole history, conversations and messages.
    quota_bytes: int = 50 * 1024 * 1024
    #: Largest ``data`` of one document revision, in characters.
    max_document: int = 64 * 1024
    #: Largest single message container (dm3 ``encryptedEnvelopContainer``), in characters.
    max_message: int = 100_000
    #: Largest request body of the storage routes, bytes (a dm3 message batch).
    max_request: int = 4 * 1024 * 1024
    #: Most documents one namespace may hold (removed ones count until written again).
    max_documents: int = 10_000
    #: Largest blob, bytes.
    max_blob: int = 16 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Env) -> StorageSettings:
        secret = env.optional("BACKEND_JWT_SECRET")
        if secret is not None and len(secret.encode()) < 32:
            raise ConfigError("BACKEND_JWT_SECRET must be at least 32 bytes long")
        return cls(
            jwt_secret=secret,
            quota_bytes=env.integer("STORAGE_QUOTA_BYTES", 50 * 1024 * 1024, minimum=64 * 1024),
            max_document=env.integer("STORAGE_MAX_DOCUMENT", 64 * 1024, minimum=1024),
            max_message=env.integer("STORAGE_MAX_MESSAGE", 100_000, minimum=1024),
            max_request=env.integer("STORAGE_MAX_REQUEST", 4 * 1024 * 1024, minimum=64 * 1024),
            max_documents=env.integer("STORAGE_MAX_DOCUMENTS", 10_000, minimum=1),
            max_blob=env.integer("STORAGE_MAX_BLOB", 16 * 1024 * 1024, minimum=1024, maximum=256 * 1024 * 1024),
        )


@dataclass(frozen=True)
class BackendSettings:
    """The profile backend: accepts signed profiles and registers names under its domains."""

    host: str = "127.0.0.1"
    port: int = 8081
    addr_domains: tuple[str, ...] = DEFAULT_ADDR_DOMAINS
    user_domains: tuple[str, ...] = DEFAULT_USER_DOMAINS
    redis: RedisSettings = field(default_factory=RedisSettings)
    chain: ChainSettings = field(default_factory=ChainSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    log_level: str = "INFO"
    http: HttpSettings = field(default_factory=HttpSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackendSettings:
        env = Env(environ)
        return cls(
            host=env.text("BACKEND_HOST", "127.0.0.1"),
            port=env.port("BACKEND_PORT", 8081),
            addr_domains=env.names("ADDR_DOMAINS", DEFAULT_ADDR_DOMAINS),
            user_domains=env.names("USER_DOMAINS", DEFAULT_USER_DOMAINS),
            redis=RedisSettings.from_env(env),
            chain=ChainSettings.from_env(env),
            storage=StorageSettings.from_env(env),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            http=HttpSettings.from_env(env),
        )


def _check_private_key_hex(value: str) -> None:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("not 32 bytes")


@dataclass(frozen=True)
class GatewaySettings:
    """The EIP-3668 gateway that signs answers for the OffchainResolver contract."""

    signer_key: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8082
    #: A second key the resolver contract already lists (``GATEWAY_NEXT_SIGNER_KEY``), for a
    #: rotation without failed lookups; it signs instead of ``signer_key`` when ``sign_with_next``.
    next_signer_key: str | None = field(default=None, repr=False)
    sign_with_next: bool = False
    signature_ttl: int = 300
    answer_format: str = "ensdomains"
    backend_url: str = "http://127.0.0.1:8081"
    log_level: str = "INFO"
    #: Seconds a signed answer is sent again to the same request (0: never), at most half of
    #: ``signature_ttl``; a changed record is answered within this time.
    answer_reuse: int = 5
    http: HttpSettings = field(default_factory=HttpSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(environ)
        next_signer_key = None
        if env.optional("GATEWAY_NEXT_SIGNER_KEY") is not None:
            next_signer_key = env.secret("GATEWAY_NEXT_SIGNER_KEY", _check_private_key_hex, "a 32-byte hex secp256k1 key")
        sign_with_next = env.flag("GATEWAY_SIGN_WITH_NEXT", False)
        if sign_with_next and next_signer_key is None:
            raise ConfigError("GATEWAY_SIGN_WITH_NEXT needs GATEWAY_NEXT_SIGNER_KEY")
        return cls(
            signer_key=env.secret("GATEWAY_SIGNER_KEY", _check_private_key_hex, "a 32-byte hex secp256k1 key"),
            next_signer_key=next_signer_key,
            sign_with_next=sign_with_next,
            host=env.text("GATEWAY_HOST", "127.0.0.1"),
            port=env.port("GATEWAY_PORT", 8082),
            signature_ttl=env.integer("GATEWAY_SIGNATURE_TTL", 300, minimum=1, maximum=86400),
            answer_format=env.choice("GATEWAY_FORMAT", "ensdomains", ("ensdomains", "dm3")),
            backend_url=env.url("BACKEND_URL", "http://127.0.0.1:8081"),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            answer_reuse=env.integer("GATEWAY_ANSWER_REUSE", 5, minimum=0, maximum=3600),
            http=HttpSettings.from_env(env),
        )


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``capacity`` requests at once (the burst), refilled evenly over ``period``
    seconds. Written ``<capacity>/<period>`` (``60/60`` = a burst of 60, then one per second);
    ``off`` (``None`` in the settings) turns the limit off."""

    capacity: int
    period: int

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.period < 1:
            raise ConfigError("a rate limit needs a capacity and a period of at least 1")

    @property
    def per_second(self) -> float:
        return self.capacity / self.period

    def __str__(self) -> str:
        return f"{self.capacity}/{self.period}"


#: Per-limit defaults a small operator can live with (README, "Limits and abuse").
DEFAULT_RATE_SENDER = RateLimit(60, 60)
DEFAULT_RATE_PAIR = RateLimit(30, 60)
DEFAULT_RATE_ADDRESS = RateLimit(300, 60)
DEFAULT_RATE_LOGIN = RateLimit(30, 300)
DEFAULT_RATE_FORWARD = RateLimit(600, 60)


@dataclass(frozen=True)
class DeliveryLimits:
    """Quotas and rate limits of the delivery service (README, "Limits and abuse").

    ``max_queued_messages`` / ``max_queued_bytes``: what one receiver may have queued (an owner may
    set lower values in the account settings); ``page_bytes``: most bytes of one inbox page; the
    rate limits (``None`` = off): submissions per sender and per sender→receiver pair, requests
    without a session per client address, login attempts per client address;
    ``sockets_per_account`` / ``sockets_per_address``: socket.io connections at once;
    ``trusted_proxies``: addresses or networks whose ``X-Forwarded-For`` is believed (empty: the
    peer address is the client address); ``max_recipients``: most receivers of one
    multi-recipient envelope (``ensign_submitMultiMessage``; each also spends a sender token).
    """

    max_queued_messages: int = 5_000
    max_queued_bytes: int = 25_000_000
    page_bytes: int = 4_000_000
    sender: RateLimit | None = DEFAULT_RATE_SENDER
    pair: RateLimit | None = DEFAULT_RATE_PAIR
    address: RateLimit | None = DEFAULT_RATE_ADDRESS
    login: RateLimit | None = DEFAULT_RATE_LOGIN
    sockets_per_account: int = 10
    sockets_per_address: int = 50
    trusted_proxies: tuple[str, ...] = ()
    max_recipients: int = 100

    @classmethod
    def from_env(cls, env: Env) -> DeliveryLimits:
        return cls(
            max_queued_messages=env.integer("MAX_QUEUED_MESSAGES", 5_000, minimum=1),
            max_queued_bytes=env.integer("MAX_QUEUED_BYTES", 25_000_000, minimum=1024),
            page_bytes=env.integer("INBOX_PAGE_BYTES", 4_000_000, minimum=1024),
            sender=env.rate("RATE_SENDER", DEFAULT_RATE_SENDER),
            pair=env.rate("RATE_PAIR", DEFAULT_RATE_PAIR),
            address=env.rate("RATE_ADDRESS", DEFAULT_RATE_ADDRESS),
            login=env.rate("RATE_LOGIN", DEFAULT_RATE_LOGIN),
            sockets_per_account=env.integer("MAX_SOCKETS_PER_ACCOUNT", 10, minimum=1),
            sockets_per_address=env.integer("MAX_SOCKETS_PER_ADDRESS", 50, minimum=1),
            trusted_proxies=env.networks("TRUSTED_PROXIES"),
            max_recipients=env.integer("MAX_RECIPIENTS", 100, minimum=1, maximum=1000),
        )


@dataclass(frozen=True)
class DeliveryKeys:
    """The delivery service's own key pairs, base64 as dm3 publishes them."""

    signing_public_key: str
    signing_private_key: str = field(repr=False)
    encryption_public_key: str
    encryption_private_key: str = field(repr=False)


_DELIVERY_KEY_PARTS = ("SIGNING_PUBLIC_KEY", "SIGNING_PRIVATE_KEY", "ENCRYPTION_PUBLIC_KEY", "ENCRYPTION_PRIVATE_KEY")

SMTP_TLS_MODES = ("starttls", "tls", "none")


def _check_vapid_key(value: str) -> None:
    """A VAPID private key: the raw 32-byte P-256 scalar, base64url (as ``vapid --gen`` and
    web-push tools print it), padding optional."""
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if len(raw) != 32 or not 0 < int.from_bytes(raw, "big"):
        raise ValueError("not a 32-byte P-256 scalar")


@dataclass(frozen=True)
class NotificationSettings:
    """Notifications the delivery service sends (dm3's ``/notifications`` routes).

    Email is on when ``smtp_host`` is set, web push when ``vapid_private_key`` is set; a channel
    type that is off is refused when a user adds it (as dm3 does for a type the service lacks).
    Neither carries message content: only that a message arrived, and at which service.
    """

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = ""
    smtp_tls: str = "starttls"
    smtp_timeout: float = 10.0
    vapid_private_key: str | None = field(default=None, repr=False)
    vapid_subject: str = ""
    #: Seconds an email one-time password stays valid, and wrong guesses allowed per password.
    otp_ttl: int = 600
    otp_max_attempts: int = 5
    #: Seconds between two one-time-password emails to an account, and most such emails a day.
    otp_resend_interval: int = 60
    otp_daily_limit: int = 10
    #: Seconds between two new-message notifications to one channel of an account.
    notify_interval: int = 300
    #: Sending attempts per notification, and the first retry's delay (doubling, at most an hour).
    max_attempts: int = 5
    retry_delay: float = 10.0
    #: Web-push endpoints on loopback or private addresses (development and tests only).
    allow_private_push: bool = False

    @property
    def email_enabled(self) -> bool:
        return self.smtp_host is not None

    @property
    def push_enabled(self) -> bool:
        return self.vapid_private_key is not None

    @classmethod
    def from_env(cls, env: Env) -> NotificationSettings:
        host = env.optional("SMTP_HOST")
        vapid = env.optional("VAPID_PRIVATE_KEY")
        smtp_from = env.text("SMTP_FROM", "")
        if host is not None and not smtp_from:
            raise ConfigError("SMTP_FROM is required when SMTP_HOST is set (the notifications' sender address)")
        subject = env.text("VAPID_SUBJECT", "")
        if vapid is not None:
            env.secret("VAPID_PRIVATE_KEY", _check_vapid_key, "base64url of a 32-byte P-256 private key")
            if not subject.startswith(("mailto:", "https://")):
                raise ConfigError("VAPID_SUBJECT must be a mailto: or https:// contact when VAPID_PRIVATE_KEY is set")
        return cls(
            smtp_host=host,
            smtp_port=env.port("SMTP_PORT", 587),
            smtp_user=env.optional("SMTP_USER"),
            smtp_password=env.optional("SMTP_PASSWORD"),
            smtp_from=smtp_from,
            smtp_tls=env.choice("SMTP_TLS", "starttls", SMTP_TLS_MODES),
            vapid_private_key=vapid,
            vapid_subject=subject,
            otp_ttl=env.integer("OTP_TTL", 600, minimum=60, maximum=86400),
            otp_max_attempts=env.integer("OTP_MAX_ATTEMPTS", 5, minimum=1, maximum=100),
            otp_resend_interval=env.integer("OTP_RESEND_INTERVAL", 60, minimum=1, maximum=86400),
            otp_daily_limit=env.integer("OTP_DAILY_LIMIT", 10, minimum=1, maximum=1000),
            notify_interval=env.integer("NOTIFY_INTERVAL", 300, minimum=0, maximum=86400),
            max_attempts=env.integer("NOTIFY_MAX_ATTEMPTS", 5, minimum=1, maximum=50),
            allow_private_push=env.flag("PUSH_ALLOW_PRIVATE", False),
        )


@dataclass(frozen=True)
class ForwardingSettings:
    """Forwarding to the receiver's next delivery services (``specs/delivery.md`` §4.5).

    When a receiver has no account here, the service hands the envelope on to the services the
    receiver's profile lists after this one, at most ``max_services`` of them, each call given
    ``timeout`` seconds (its ENS lookup apart), and at most ``rate`` calls to any one service
    (a token bucket per service name; ``None`` = off). Each call is an outbound request an
    outsider can cause, so all are bounded; ``enabled=False`` answers ``receiver_without_account``
    as before. Envelopes forwarded here by another service are accepted either way.

    ================  ==========================  =========
    setting           environment                 default
    ================  ==========================  =========
    ``enabled``       ``FORWARDING``              ``yes``
    ``timeout``       ``FORWARD_TIMEOUT``         ``5`` s
    ``max_services``  ``FORWARD_MAX_SERVICES``    ``2``
    ``rate``          ``RATE_FORWARD``            ``600/60``
    ================  ==========================  =========
    """

    enabled: bool = True
    timeout: int = 5
    max_services: int = 2
    rate: RateLimit | None = DEFAULT_RATE_FORWARD

    @classmethod
    def from_env(cls, env: Env) -> ForwardingSettings:
        return cls(
            enabled=env.flag("FORWARDING", True),
            timeout=env.integer("FORWARD_TIMEOUT", 5, minimum=1, maximum=30),
            max_services=env.integer("FORWARD_MAX_SERVICES", 2, minimum=1, maximum=8),
            rate=env.rate("RATE_FORWARD", DEFAULT_RATE_FORWARD),
        )


@dataclass(frozen=True)
class DeliverySettings:
    """A delivery-service process. Several processes share one Redis and the same settings."""

    keys: DeliveryKeys
    jwt_secret: str = field(repr=False)
    #: The other key set during a key rotation (``NEXT_*``): delivery information encrypted to
    #: either set is read; postmarks are signed with ``keys`` only (README "Rotating keys").
    next_keys: DeliveryKeys | None = None
    #: The key that seals queued messages and tags senders in Redis (``AT_REST_KEY``, base64 of 32
    #: bytes; :mod:`delivery.at_rest`). Unset, it is derived from ``keys.encryption_private_key``,
    #: which is why a key rotation (``next_keys``) needs it set: the sealed messages must outlive
    #: the key set that was current when they were stored.
    at_rest_key: str | None = field(default=None, repr=False)
    #: Parents of the address names whose revocation lists apply to every name of an address
    #: (``ADDR_DOMAINS``, the backend's setting; :mod:`ensign.protocol.revocation`).
    revocation_domains: tuple[str, ...] = DEFAULT_ADDR_DOMAINS
    host: str = "127.0.0.1"
    port: int = 8083
    url: str = "http://127.0.0.1:8083"
    name: str = DEFAULT_DELIVERY_NAME
    message_size_limit: int = 100_000
    message_ttl: int = 30 * 24 * 3600
    redis: RedisSettings = field(default_factory=RedisSettings)
    chain: ChainSettings = field(default_factory=ChainSettings)
    log_level: str = "INFO"
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    limits: DeliveryLimits = field(default_factory=DeliveryLimits)
    http: HttpSettings = field(default_factory=HttpSettings)
    #: Replicas that must confirm a stored message (and an acknowledgement) before the answer
    #: (Redis ``WAIT``); 0 answers once the primary has it. See README "Faults and durability".
    redis_wait_replicas: int = 0
    #: Milliseconds ``WAIT`` may take; fewer confirmations by then answer 503 ``not_replicated``.
    redis_wait_timeout_ms: int = 1000
    forwarding: ForwardingSettings = field(default_factory=ForwardingSettings)

    def __post_init__(self) -> None:
        if self.next_keys is not None and self.at_rest_key is None:
            raise ConfigError(
                "a key rotation (NEXT_* keys) needs AT_REST_KEY: without it the queued messages are sealed with a "
                "key derived from ENCRYPTION_PRIVATE_KEY and become unreadable when that changes; "
                "`ensign keys at-rest` prints the key derived from the current one (README, Rotating keys)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeliverySettings:
        env = Env(environ)

        def key_of(length: int) -> Callable[[str], object]:
            def check(value: str) -> None:
                if len(base64.b64decode(value, validate=True)) != length:
                    raise ValueError("wrong length")

            return check

        next_keys = None
        # The next set is all four NEXT_* variables or none: one set alone is an error naming it.
        if any(env.optional(f"NEXT_{part}") is not None for part in _DELIVERY_KEY_PARTS):
            next_keys = DeliveryKeys(
                signing_public_key=env.secret("NEXT_SIGNING_PUBLIC_KEY", key_of(32), "base64 of 32 bytes"),
                signing_private_key=env.secret("NEXT_SIGNING_PRIVATE_KEY", key_of(64), "base64 of 64 bytes"),
                encryption_public_key=env.secret("NEXT_ENCRYPTION_PUBLIC_KEY", key_of(32), "base64 of 32 bytes"),
                encryption_private_key=env.secret("NEXT_ENCRYPTION_PRIVATE_KEY", key_of(32), "base64 of 32 bytes"),
            )
        jwt_secret = env.secret("JWT_SECRET")
        if len(jwt_secret.encode()) < 32:
            raise ConfigError("JWT_SECRET must be at least 32 bytes long")
        return cls(
            keys=DeliveryKeys(
                signing_public_key=env.secret("SIGNING_PUBLIC_KEY", key_of(32), "base64 of 32 bytes"),
                signing_private_key=env.secret("SIGNING_PRIVATE_KEY", key_of(64), "base64 of 64 bytes"),
                encryption_public_key=env.secret("ENCRYPTION_PUBLIC_KEY", key_of(32), "base64 of 32 bytes"),
                encryption_private_key=env.secret("ENCRYPTION_PRIVATE_KEY", key_of(32), "base64 of 32 bytes"),
            ),
            jwt_secret=jwt_secret,
            next_keys=next_keys,
            at_rest_key=(
                env.secret("AT_REST_KEY", key_of(32), "base64 of 32 bytes") if env.optional("AT_REST_KEY") is not None else None
            ),
            revocation_domains=env.names("ADDR_DOMAINS", DEFAULT_ADDR_DOMAINS),
            host=env.text("DELIVERY_HOST", "127.0.0.1"),
            port=env.port("DELIVERY_PORT", 8083),
            url=env.url("DELIVERY_URL", "http://127.0.0.1:8083"),
            name=env.text("DELIVERY_NAME", DEFAULT_DELIVERY_NAME).lower(),
            message_size_limit=env.integer("MESSAGE_SIZE_LIMIT", 100_000, minimum=1024),
            message_ttl=env.integer("MESSAGE_TTL", 30 * 24 * 3600, minimum=60),
            redis=RedisSettings.from_env(env),
            chain=ChainSettings.from_env(env),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            notifications=NotificationSettings.from_env(env),
            limits=DeliveryLimits.from_env(env),
            http=HttpSettings.from_env(env),
            redis_wait_replicas=env.integer("REDIS_WAIT_REPLICAS", 0, minimum=0, maximum=16),
            redis_wait_timeout_ms=env.integer("REDIS_WAIT_TIMEOUT_MS", 1000, minimum=1, maximum=60_000),
            forwarding=ForwardingSettings.from_env(env),
        )


@dataclass(frozen=True)
class AdminSettings:
    """``ensign admin``: the delivery service's Redis and limits, and who is acting (audit log)."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    #: ``ETH_RPC_URL``, optional here: with it, accounts can be named by ENS name.
    chain: ChainSettings = field(default_factory=ChainSettings)
    operator: str = "unknown"
    message_size_limit: int = 100_000
    message_ttl: int = 30 * 24 * 3600
    max_queued_messages: int = DeliveryLimits.max_queued_messages
    max_queued_bytes: int = DeliveryLimits.max_queued_bytes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AdminSettings:
        env = Env(environ)
        try:
            login = getpass.getuser()
        except (KeyError, OSError):
            login = "unknown"
        return cls(
            redis=RedisSettings.from_env(env),
            chain=ChainSettings.from_env(env),
            operator=env.text("ADMIN_OPERATOR", login),
            message_size_limit=env.integer("MESSAGE_SIZE_LIMIT", 100_000, minimum=1024),
            message_ttl=env.integer("MESSAGE_TTL", 30 * 24 * 3600, minimum=60),
            max_queued_messages=env.integer("MAX_QUEUED_MESSAGES", DeliveryLimits.max_queued_messages, minimum=1),
            max_queued_bytes=env.integer("MAX_QUEUED_BYTES", DeliveryLimits.max_queued_bytes, minimum=1024),
        )
