"""``ensign admin``: operator actions on the delivery service's accounts (:mod:`delivery.admin`).

=========================================  ===================================================
command                                    what it does
=========================================  ===================================================
``ensign admin suspend ACCOUNT [--reason]``  refuse messages to the account (JSON-RPC -32019)
``ensign admin unsuspend ACCOUNT``           accept them again
``ensign admin delete ACCOUNT``              delete the account and its queue
``ensign admin purge ACCOUNT``               delete the queued messages, keep the account
``ensign admin usage ACCOUNT``               messages and bytes queued, against the limits (JSON)
``ensign admin audit [--count N]``           the audit log, oldest first (JSON lines)
``ensign admin vapid-key``                   a fresh VAPID key pair for web push
=========================================  ===================================================

They connect to the delivery service's Redis with its own settings (``REDIS_URL``,
``REDIS_PREFIX``, ``REDIS_CLUSTER``; ``MESSAGE_SIZE_LIMIT`` and ``MESSAGE_TTL`` for the limits
``usage`` shows) and record every action, with ``ADMIN_OPERATOR`` (default: the login name) as
who, in the audit stream ``<prefix>audit``. An account is named by its address (the id every
name of it resolves to) or, when ``ETH_RPC_URL`` is set, by any ENS name of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ensign.errors import EnsignError
from ensign.protocol.encoding import is_address

T = TypeVar("T")


def _with_admin(work: Callable[[Any, str], Awaitable[T]], account: str = "") -> T:
    """Run ``work(admin, address)`` with the account argument resolved (an ENS name through
    ``ETH_RPC_URL`` when it is set)."""
    from delivery.admin import Admin, account_of
    from ensign.config import AdminSettings
    from ensign.ens.lookup import open_lookup
    from ensign.redis_client import open_redis

    settings = AdminSettings.from_env()
    if settings.redis.url is None:
        raise EnsignError("REDIS_URL is required: ensign admin works on the delivery service's Redis")

    async def run() -> T:
        address = ""
        if account:
            lookup = None if settings.chain.rpc_url is None or is_address(account) else await open_lookup(settings.chain)
            try:
                address = await account_of(lookup, account)
            finally:
                if lookup is not None:
                    await lookup.close()
        redis = await open_redis(settings.redis)
        try:
            return await work(Admin(redis, settings), address)
        finally:
            await redis.aclose()

    return asyncio.run(run())


async def _then(work: Awaitable[None], address: str) -> str:
    await work
    return address


async def _with(work: Awaitable[T], address: str) -> tuple[str, T]:
    return address, await work


def _print(obj: Any) -> int:
    json.dump(obj, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _suspend(args: argparse.Namespace) -> int:
    address = _with_admin(lambda admin, a: _then(admin.suspend(a, args.reason), a), args.address)
    return _print({"account": address, "suspended": True})


def _unsuspend(args: argparse.Namespace) -> int:
    address = _with_admin(lambda admin, a: _then(admin.unsuspend(a), a), args.address)
    return _print({"account": address, "suspended": False})


def _delete(args: argparse.Namespace) -> int:
    address, dropped = _with_admin(lambda admin, a: _with(admin.delete(a), a), args.address)
    return _print({"deleted": address, "droppedMessages": dropped})


def _purge(args: argparse.Namespace) -> int:
    address, dropped = _with_admin(lambda admin, a: _with(admin.purge(a), a), args.address)
    return _print({"account": address, "droppedMessages": dropped})


def _usage(args: argparse.Namespace) -> int:
    usage = _with_admin(lambda admin, a: admin.usage(a), args.address)
    return _print(usage.to_json())


def _audit(args: argparse.Namespace) -> int:
    for entry in _with_admin(lambda admin, _: admin.audit(args.count)):
        _print(entry)
    return 0


def _vapid_key(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    print("# The browser's applicationServerKey (public): " + b64(public))
    print("# SECRETS")
    print("VAPID_PRIVATE_KEY=" + b64(private))
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``admin`` and its sub-commands to the ``ensign`` parser's sub-commands."""
    admin = subparsers.add_parser(
        "admin",
        help="operator actions on delivery-service accounts (audited)",
        description=(
            "Works on the delivery service's Redis with its settings (REDIS_URL, REDIS_PREFIX, REDIS_CLUSTER); "
            "every action is written to the audit stream <prefix>audit with ADMIN_OPERATOR as who."
        ),
    )
    commands = admin.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND")
    commands.required = True

    def account_command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "address", metavar="ACCOUNT", help="the account's 0x address, or an ENS name of it (needs ETH_RPC_URL)"
        )
        parser.set_defaults(handler=handler)
        return parser

    suspend = account_command(
        "suspend", "refuse messages to the account (JSON-RPC -32019) until unsuspended", _suspend
    )
    suspend.add_argument("--reason", default="", help="why (kept with the suspension and in the audit log)")
    account_command("unsuspend", "accept messages to the account again", _unsuspend)
    account_command("delete", "delete the account and its whole queue", _delete)
    account_command("purge", "delete the account's queued messages, keep the account", _purge)
    account_command("usage", "messages and bytes queued for the account, against its limits (JSON)", _usage)
    audit = commands.add_parser("audit", help="print the audit log, oldest first (JSON lines)")
    audit.add_argument("--count", type=int, default=50, help="how many of the latest entries (default 50)")
    audit.set_defaults(handler=_audit)
    vapid = commands.add_parser(
        "vapid-key",
        help="make a VAPID key pair for web push",
        description="Prints VAPID_PRIVATE_KEY (a secret) and the public key browsers subscribe with.",
    )
    vapid.set_defaults(handler=_vapid_key)
