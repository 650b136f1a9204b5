"""The ``ensign`` command line.

=======================  ==========================================================================
command                  what it does
=======================  ==========================================================================
``ensign dev``           the whole stack on one machine, with the embedded Redis and chain
``ensign backend``       the profile backend (production; settings from the environment)
``ensign resolver``      the CCIP-Read gateway (production; settings from the environment)
``ensign delivery``      the delivery service (production; settings from the environment)
``ensign keys derive``   a dm3 profile's keys from a wallet key or signature on standard input
``ensign keys new``      a delivery service's key set, as environment lines and its ENS record
                         (``--next``: the next set of a key rotation, as ``NEXT_*`` lines)
``ensign keys at-rest``  the AT_REST_KEY a delivery service without one uses (before a key rotation)
``ensign admin …``       operator actions on delivery accounts, audited (:mod:`stack.cli_admin`)
=======================  ==========================================================================

Secrets (wallet keys, signatures) are read from standard input, never from arguments, so they do
not end up in shell history or in ``ps`` output. Errors go to standard error as ``ensign: …``
with exit status 2; a production command stopped by SIGTERM or SIGINT exits with 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from stack.cli_admin import add_commands as add_admin_commands
from stack.cli_client import add_commands as add_client_commands
from ensign.errors import EnsignError
from ensign.protocol.records import DELIVERY_SERVICE_RECORD_NAME

if TYPE_CHECKING:
    from ensign.config import DeliverySettings


def _read_secret(stream: TextIO, what: str) -> str:
    if stream.isatty():
        print(f"Paste the {what} and press Enter (it is not echoed to arguments or logs):", file=sys.stderr)
    line = stream.readline().strip()
    if not line:
        raise EnsignError(f"expected the {what} on standard input, got nothing")
    return line


def _keys_derive(args: argparse.Namespace) -> int:
    from ensign.protocol.keys import DEFAULT_NONCE, profile_keys_from_signature, profile_keys_from_wallet

    nonce = args.nonce or DEFAULT_NONCE
    if args.from_signature:
        signature = _read_secret(sys.stdin, "wallet signature of the key-creation message (0x-hex)")
        keys = profile_keys_from_signature(signature, nonce)
    else:
        private_key = _read_secret(sys.stdin, "wallet private key (0x-hex)")
        keys = profile_keys_from_wallet(private_key, nonce)
    output: dict[str, Any] = dict(keys.public_keys())
    if args.secret:
        output = {
            "encryptionKeyPair": {
                "publicKey": keys.encryption.public_key,
                "privateKey": keys.encryption.secret_key,
            },
            "signingKeyPair": {
                "publicKey": keys.signing.public_key,
                "privateKey": keys.signing.secret_key,
            },
            "storageEncryptionKey": keys.storage_key,
            "storageEncryptionNonce": keys.nonce,
        }
    json.dump(output, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _keys_new(args: argparse.Namespace) -> int:
    import secrets
    from urllib.parse import urlsplit

    from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
    from ensign.protocol.ds_keys import DELIVERY_SERVICE_KEYS_RECORD_NAME, delivery_service_keys_record
    from ensign.protocol.models import DeliveryServiceProfile
    from ensign.protocol.profile import profile_json_data_uri

    url = args.url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnsignError("--url must be the delivery service's public URL, starting with https:// (or http://)")
    name = args.name.strip().lower() if args.name else None
    encryption = random_encryption_key_pair()
    signing = random_signing_key_pair()
    # 48 random bytes, URL-safe base64: 64 characters, well above JWT_SECRET's 32-byte minimum.
    jwt_secret = secrets.token_urlsafe(48)
    profile = DeliveryServiceProfile(
        public_encryption_key=encryption.public_key,
        public_signing_key=signing.public_key,
        url=url,
    )
    if args.next:
        # The next set of a key rotation (README "Rotating keys"): added beside the current one.
        lines = [
            "# The next key set of an Ensign delivery service, made by `ensign keys new --next`.",
            f"NEXT_SIGNING_PUBLIC_KEY={signing.public_key}",
            f"NEXT_ENCRYPTION_PUBLIC_KEY={encryption.public_key}",
            "# SECRETS: keep these out of version control, logs and chat.",
            f"NEXT_SIGNING_PRIVATE_KEY={signing.secret_key}",
            f"NEXT_ENCRYPTION_PRIVATE_KEY={encryption.secret_key}",
            "# The service must also have AT_REST_KEY (if it has none: `ensign keys at-rest`, before anything else).",
            f"# Step 1: set the ENS text record {DELIVERY_SERVICE_KEYS_RECORD_NAME} of {name or 'the delivery service name'}"
            " (with the keys the current one lists, if any):",
            f"# {delivery_service_keys_record([signing.public_key])}",
            f"# Step 2: publish as its {DELIVERY_SERVICE_RECORD_NAME} record:",
            f"# {profile_json_data_uri(profile)}",
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    lines = [
        "# Ensign delivery service keys, made by `ensign keys new`.",
        "# Public settings:",
        f"DELIVERY_URL={url}",
        *([f"DELIVERY_NAME={name}"] if name else []),
        f"SIGNING_PUBLIC_KEY={signing.public_key}",
        f"ENCRYPTION_PUBLIC_KEY={encryption.public_key}",
        "# SECRETS: keep these out of version control, logs and chat; whoever holds them can",
        "# impersonate this delivery service and read messages sent to it.",
        f"SIGNING_PRIVATE_KEY={signing.secret_key}",
        f"ENCRYPTION_PRIVATE_KEY={encryption.secret_key}",
        f"JWT_SECRET={jwt_secret}",
        "# Seals queued messages and tags senders in Redis; keep it across key rotations (README, Privacy):",
        f"AT_REST_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}",
        f"# Publish as the ENS text record {DELIVERY_SERVICE_RECORD_NAME} of {name or 'the delivery service name'}:",
        f"# {profile_json_data_uri(profile)}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _keys_at_rest(args: argparse.Namespace) -> int:
    from delivery.at_rest import derived_master
    from ensign.config import DeliveryKeys

    # Only the encryption key is used; the other fields are not read by derived_master.
    private_key = _read_secret(sys.stdin, "delivery service's ENCRYPTION_PRIVATE_KEY (base64)")
    master = derived_master(
        DeliveryKeys(signing_public_key="", signing_private_key="", encryption_public_key="", encryption_private_key=private_key)
    )
    sys.stdout.write(
        "# The at-rest key this delivery service has used so far (derived from ENCRYPTION_PRIVATE_KEY):\n"
        "# set it on every process before a key rotation, so queued messages stay readable.\n"
        f"AT_REST_KEY={base64.b64encode(master).decode()}\n"
    )
    return 0


def _backend(args: argparse.Namespace) -> int:
    from ensign.config import BackendSettings
    from ensign.logs import configure_logging
    from stack.serve import backend_app, run, serve

    settings = BackendSettings.from_env()
    app = backend_app(settings)
    configure_logging(settings.log_level, redact={"REDIS_URL": settings.redis.url})
    run(serve(app, name="backend", host=settings.host, port=settings.port, port_variable="BACKEND_PORT", http=settings.http))
    return 0


def _resolver(args: argparse.Namespace) -> int:
    from ensign.config import GatewaySettings
    from ensign.logs import configure_logging
    from stack.serve import gateway_app, run, serve

    settings = GatewaySettings.from_env()
    app = gateway_app(settings)
    configure_logging(settings.log_level)
    run(serve(app, name="resolver", host=settings.host, port=settings.port, port_variable="GATEWAY_PORT", http=settings.http))
    return 0


def _delivery(args: argparse.Namespace) -> int:
    from ensign.config import DeliverySettings
    from stack.workers import default_workers, run_workers

    from stack.serve import require_chain, require_redis

    # A bad or missing setting fails here, before any worker starts.
    settings = DeliverySettings.from_env()
    require_redis(settings.redis, "delivery")
    require_chain(settings.chain, "delivery")
    workers = default_workers() if args.workers is None else args.workers
    if workers == 1:
        _serve_delivery(settings)
        return 0
    _configure_delivery_logging(settings)
    return run_workers(
        _delivery_worker, count=workers, host=settings.host, port=settings.port, port_variable="DELIVERY_PORT"
    )


def _configure_delivery_logging(settings: DeliverySettings) -> None:
    from ensign.logs import configure_logging

    # JSON lines carrying each request's id; the app's middleware logs every request itself.
    configure_logging(settings.log_level, redact={"REDIS_URL": settings.redis.url, "ETH_RPC_URL": settings.chain.rpc_url})


def _serve_delivery(settings: DeliverySettings, *, metrics_dir: str | None = None, reuse_port: bool = False) -> None:
    from stack.serve import delivery_app, run, serve

    build = delivery_app(settings, metrics_dir=metrics_dir)
    _configure_delivery_logging(settings)
    run(serve(build, name="delivery", host=settings.host, port=settings.port, port_variable="DELIVERY_PORT",
              reuse_port=reuse_port, http=settings.http))


def _delivery_worker(index: int, port: int, metrics_dir: str) -> None:
    """One process of ``ensign delivery --workers N`` (stack.workers), on the port the parent holds."""
    from dataclasses import replace

    from ensign.config import DeliverySettings

    try:
        _serve_delivery(replace(DeliverySettings.from_env(), port=port), metrics_dir=metrics_dir, reuse_port=True)
    except EnsignError as error:
        print(f"ensign: {error.message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _dev(args: argparse.Namespace) -> int:
    import asyncio
    import os
    from pathlib import Path

    from ensign.config import DeliveryLimits, Env, RedisSettings

    try:
        from stack.devstack import DevStackSettings, run
    except ImportError as exc:
        # The embedded chain and Redis are the `dev` extra; production installs do without them.
        raise EnsignError(
            f"ensign dev needs the development extra ({exc.name} is missing): pip install 'ensign[dev]', or run make dev"
        ) from None

    env = Env(os.environ)
    redis = RedisSettings.from_env(env)
    settings = DevStackSettings(
        host=args.host,
        data_dir=Path(args.data_dir),
        redis_url=redis.url,
        redis_prefix=redis.prefix,
        redis_cluster=redis.cluster,
        chain_port=args.chain_port,
        backend_port=args.backend_port,
        gateway_port=args.gateway_port,
        delivery_port=args.delivery_port,
        delivery_limits=DeliveryLimits.from_env(env),
    )
    asyncio.run(run(settings, sys.stdout, demo=args.demo))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensign",
        description="Ensign: ENS-addressed, end-to-end-encrypted messaging that speaks the dm3 protocol.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    add_client_commands(commands)
    add_admin_commands(commands)

    keys = commands.add_parser("keys", help="derive or create dm3 keys")
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND")
    keys_commands.required = True
    derive = keys_commands.add_parser(
        "derive",
        help="derive a profile's public keys from a wallet key read on standard input",
        description=(
            "Reads a wallet private key (0x-hex) from standard input and prints the dm3 profile's "
            "public keys as JSON, derived exactly as dm3 clients derive them."
        ),
    )
    derive.add_argument(
        "--from-signature",
        action="store_true",
        help="read instead the wallet's personal_sign signature of the key-creation message",
    )
    derive.add_argument("--secret", action="store_true", help="also print the secret keys (handle with care)")
    derive.add_argument("--nonce", help="key-creation nonce (default: dm3's DEFAULT_NONCE)")
    derive.set_defaults(handler=_keys_derive)
    new = keys_commands.add_parser(
        "new",
        help="make a delivery service's key set and print its settings and ENS record",
        description=(
            "Makes fresh random X25519 and Ed25519 key pairs and a JWT secret for a delivery service, "
            "and prints them as environment lines for `ensign delivery` (secrets marked), followed by "
            f"the {DELIVERY_SERVICE_RECORD_NAME} text record to publish in ENS. Append the output to your .env file."
        ),
    )
    new.add_argument("--url", required=True, help="the delivery service's public URL, e.g. https://ds.example.com")
    new.add_argument("--name", help="its ENS name, e.g. ds.example.eth (printed as DELIVERY_NAME)")
    new.add_argument(
        "--next",
        action="store_true",
        help="the next set of a key rotation: NEXT_* lines and the records to publish (README, Rotating keys)",
    )
    new.set_defaults(handler=_keys_new)
    at_rest = keys_commands.add_parser(
        "at-rest",
        help="print the AT_REST_KEY a delivery service without one uses, from its ENCRYPTION_PRIVATE_KEY on standard input",
        description=(
            "A delivery service without AT_REST_KEY seals queued messages with a key derived from its "
            "ENCRYPTION_PRIVATE_KEY. Before rotating that key, set AT_REST_KEY to the value printed here "
            "on every process (README, Rotating keys). Reads the private key from standard input."
        ),
    )
    at_rest.set_defaults(handler=_keys_at_rest)

    service_epilog = "Settings come from environment variables; the README's Configuration table lists them."
    backend = commands.add_parser(
        "backend",
        help="run the profile backend (production)",
        description=(
            "Serves the profile backend until SIGTERM or SIGINT. Needs REDIS_URL; reads BACKEND_HOST, "
            "BACKEND_PORT, ADDR_DOMAINS, USER_DOMAINS, REDIS_PREFIX and LOG_LEVEL."
        ),
        epilog=service_epilog,
    )
    backend.set_defaults(handler=_backend)
    resolver = commands.add_parser(
        "resolver",
        help="run the CCIP-Read gateway for the OffchainResolver (production)",
        description=(
            "Serves the EIP-3668 gateway until SIGTERM or SIGINT. Needs GATEWAY_SIGNER_KEY; reads "
            "GATEWAY_HOST, GATEWAY_PORT, GATEWAY_SIGNATURE_TTL, GATEWAY_ANSWER_REUSE, GATEWAY_FORMAT, BACKEND_URL and "
            "LOG_LEVEL."
        ),
        epilog=service_epilog,
    )
    resolver.set_defaults(handler=_resolver)
    delivery = commands.add_parser(
        "delivery",
        help="run the delivery service (production)",
        description=(
            "Serves the dm3 delivery service until SIGTERM or SIGINT. Needs REDIS_URL, ETH_RPC_URL, the "
            "keys and JWT_SECRET (make them with `ensign keys new`); reads DELIVERY_HOST, DELIVERY_PORT, "
            "DELIVERY_URL, DELIVERY_NAME, MESSAGE_SIZE_LIMIT, MESSAGE_TTL, ENS_REGISTRY, REDIS_PREFIX, "
            "LOG_LEVEL and the notification settings (SMTP_*, VAPID_*, OTP_*, NOTIFY_*, PUSH_ALLOW_PRIVATE)."
        ),
        epilog=service_epilog,
    )
    delivery.add_argument(
        "--workers", type=int, metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT), one event loop each; default: the number of cores",
    )
    delivery.set_defaults(handler=_delivery)

    dev = commands.add_parser(
        "dev",
        help="run the whole stack on this machine (embedded Redis and chain)",
        description=(
            "Starts Redis (embedded unless REDIS_URL is set; data under --data-dir), the backend, the "
            "CCIP-Read gateway, the delivery service and the embedded chain with its JSON-RPC server, "
            "prints their URLs, and runs until Ctrl-C."
        ),
    )
    dev.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    dev.add_argument("--data-dir", default=".ensign", help="where Redis data and dev secrets live (default ./.ensign)")
    dev.add_argument("--chain-port", type=int, default=8545, help="chain JSON-RPC port (default 8545)")
    dev.add_argument("--backend-port", type=int, default=8081, help="backend port (default 8081)")
    dev.add_argument("--gateway-port", type=int, default=8082, help="CCIP-Read gateway port (default 8082)")
    dev.add_argument("--delivery-port", type=int, default=8083, help="delivery service port (default 8083)")
    dev.add_argument(
        "--demo", action="store_true", help="once up, create two users and exchange a message, printing each step"
    )
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except EnsignError as error:
        print(f"ensign: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
