"""The ``ensign`` command line.

Secrets (wallet keys, signatures) are read from standard input, never from arguments, so they do
not end up in shell history or in ``ps`` output. Errors go to standard error with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ensign.errors import EnsignError


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


def _dev(args: argparse.Namespace) -> int:
    import asyncio
    import os
    from pathlib import Path

    from ensign.config import Env, RedisSettings
    from ensign.devstack import DevStackSettings, run

    redis = RedisSettings.from_env(Env(os.environ))
    settings = DevStackSettings(
        host=args.host,
        data_dir=Path(args.data_dir),
        redis_url=redis.url,
        redis_prefix=redis.prefix,
        chain_port=args.chain_port,
        backend_port=args.backend_port,
        gateway_port=args.gateway_port,
    )
    asyncio.run(run(settings, sys.stdout))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensign",
        description="Ensign: ENS-addressed, end-to-end-encrypted messaging that speaks the dm3 protocol.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

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

    dev = commands.add_parser(
        "dev",
        help="run the whole stack on this machine (embedded Redis and chain)",
        description=(
            "Starts Redis (embedded unless REDIS_URL is set; data under --data-dir), the backend, the "
            "CCIP-Read gateway and the embedded chain with its JSON-RPC server, prints their URLs, "
            "and runs until Ctrl-C."
        ),
    )
    dev.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    dev.add_argument("--data-dir", default=".ensign", help="where Redis data and dev secrets live (default ./.ensign)")
    dev.add_argument("--chain-port", type=int, default=8545, help="chain JSON-RPC port (default 8545)")
    dev.add_argument("--backend-port", type=int, default=8081, help="backend port (default 8081)")
    dev.add_argument("--gateway-port", type=int, default=8082, help="CCIP-Read gateway port (default 8082)")
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
