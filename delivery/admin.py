"""Operator actions on accounts, each written to an audit log; ``ensign admin`` drives them.

They talk to Redis directly with the service's own settings (``REDIS_URL``, ``REDIS_PREFIX``)
and the same scripts the service runs, rather than through routes on an internal address: there
is then no extra listening port whose authentication could be got wrong or exposed by a proxy,
they work while every delivery process is down or being redeployed, and who may act is decided
by who can reach Redis, which an operator controls already.

=============  ===================================================================================
action         effect
=============  ===================================================================================
``suspend``    field ``suspended`` (JSON ``{at, by, reason}``) in the account hash: intake refuses
               messages to the account (:class:`delivery.errors.AccountSuspended`, JSON-RPC -32019, HTTP 403) and
               no notification is sent; login, fetch and acknowledge keep working, so the owner
               can still read what is queued
``unsuspend``  removes the field
``delete``     the account hash and its whole queue, at once (``delete_account.lua``), leaving a
               tombstone, so the public profile alone cannot re-create it (the owner can, with a
               ``createAccount`` signed with the key the account was bound to, or a wallet-signed
               binding message); the account's sockets end on every process
``purge``      the queue only (``delete_queue.lua``); the account stays
``usage``      live and expired messages queued, bytes stored, oldest message, against the limits
=============  ===================================================================================

Audit log: the Redis stream ``{prefix}audit`` (:func:`delivery.keys.audit_key`; XADD, never trimmed by Ensign: operator actions
are rare, and an operator who wants a cap trims it with ``XTRIM``), one entry per action with
``at`` (ms), ``operator`` (``ADMIN_OPERATOR``, default the login name), ``action``, ``account``,
``outcome`` (``ok`` or the error code) and ``detail`` (JSON). A failed action is logged too.
``ensign admin audit`` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ensign.config import AdminSettings, NotificationSettings
from ensign.errors import EnsignError
from ensign.protocol.encoding import checksum_address, is_address, normalize_name
from ensign.redis_client import RedisClient

from .accounts import Account, Accounts
from .errors import AccountChanged, InvalidAccount, NameUnresolved, NoAccount
from .keys import audit_key
from .notifications import NotificationStore
from .ports import Directory, address_or_none, system_clock
from .queue import MessageQueue

T = TypeVar("T")

SUSPENDED_FIELD = "suspended"


@dataclass(frozen=True)
class Usage:
    account: str
    messages: int
    expired: int
    bytes: int
    oldest_received_at: float | None
    limits: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "messages": self.messages,
            "expiredNotSwept": self.expired,
            "bytes": self.bytes,
            "oldestReceivedAt": self.oldest_received_at,
            "limits": self.limits,
        }


async def account_of(directory: Directory | None, name_or_address: str) -> str:
    """The account id for an operator's argument: an address (any case), or an ENS name resolved
    through ``directory`` (``None``: no chain configured, so names cannot be used)."""
    if is_address(name_or_address):
        return checksum_address(name_or_address)
    if directory is None:
        raise InvalidAccount(f"{name_or_address!r} is not an address; set ETH_RPC_URL to name accounts by ENS name")
    try:
        name = normalize_name(name_or_address)
    except EnsignError:
        raise InvalidAccount(f"{name_or_address!r} is neither an address nor an ENS name") from None
    address = await address_or_none(directory, name)
    if address is None:
        raise NameUnresolved(f"{name} does not resolve to an address")
    return address


class Admin:
    """The operator actions of the module docstring.

    :param redis: the service's Redis; :param settings: prefix, limits and the operator's name.
    """

    def __init__(self, redis: RedisClient, settings: AdminSettings, *, clock: Callable[[], float] = system_clock) -> None:
        prefix = settings.redis.prefix
        self._redis = redis
        self._settings = settings
        self._prefix = prefix
        self._clock = clock
        self.queue = MessageQueue(redis, prefix=prefix)
        self.accounts = Accounts(
            redis, self.queue, prefix=prefix, service_url="", size_limit=settings.message_size_limit,
            ttl_limit=settings.message_ttl, clock=clock,
        )
        self._fields = NotificationStore(redis, prefix=prefix, settings=NotificationSettings())

    async def _account(self, address: str) -> Account:
        if not is_address(address):
            raise InvalidAccount("give the account as its 0x address (the name's addr record)")
        account = await self.accounts.get(address)
        if account is None:
            raise NoAccount(f"there is no account {address}")
        return account

    async def _audited(self, action: str, address: str, detail: dict[str, Any], work: Awaitable[T]) -> T:
        outcome = "ok"
        try:
            return await work
        except EnsignError as exc:
            outcome = exc.code
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            await self._redis.xadd(
                audit_key(self._prefix),
                {
                    "at": str(int(self._clock() * 1000)),
                    "operator": self._settings.operator,
                    "action": action,
                    "account": address,
                    "outcome": outcome,
                    "detail": json.dumps(detail, sort_keys=True),
                },
            )

    async def suspend(self, address: str, reason: str = "") -> None:
        async def work() -> None:
            await self._account(address)
            value = json.dumps({"at": int(self._clock() * 1000), "by": self._settings.operator, "reason": reason})
            if not await self._fields.write(address, {SUSPENDED_FIELD: value}):
                raise NoAccount(f"there is no account {address}")

        await self._audited("suspend", address, {"reason": reason}, work())

    async def unsuspend(self, address: str) -> None:
        async def work() -> None:
            await self._account(address)
            await self._fields.write(address, {}, (SUSPENDED_FIELD,))

        await self._audited("unsuspend", address, {}, work())

    async def delete(self, address: str) -> int:
        async def work() -> int:
            account = await self._account(address)
            tomb = json.dumps({
                "deletedAt": int(self._clock() * 1000), "profile": account.profile_hash, "key": account.signing_key,
                "by": "operator",
            })
            dropped = await self.queue.delete_account(address, generation=account.created, tombstone=tomb)
            if dropped is None:
                raise AccountChanged("the account changed meanwhile; run the command again")
            return dropped

        return await self._audited("delete", address, {}, work())

    async def purge(self, address: str) -> int:
        async def work() -> int:
            await self._account(address)
            return await self.queue.delete_queue(address)

        return await self._audited("purge", address, {}, work())

    async def usage(self, address: str) -> Usage:
        async def work() -> Usage:
            account = await self._account(address)
            now = self._clock()
            keys = self.queue.keys(address)
            live = await self.queue.count(address, now)
            total = int(await self._redis.zcard(keys.expiry))
            stored = 0
            # ZSCAN ids in batches and ask only for each value's length: the envelopes stay in Redis.
            batch: list[Any] = []
            async for member, _ in self._redis.zscan_iter(keys.expiry, count=500):
                batch.append(member)
                if len(batch) >= 500:
                    stored += await self._lengths(keys.messages, batch)
                    batch = []
            if batch:
                stored += await self._lengths(keys.messages, batch)
            oldest = await self._redis.zrange(keys.queue, 0, 0, withscores=True)
            settings = account.settings
            limits = {
                "maxMessageSize": settings.max_message_size or self._settings.message_size_limit,
                "messageTTL": settings.message_ttl or self._settings.message_ttl,
                # The receiver's quotas: the service's, or the lower ones the owner set.
                "maxMessages": min(self._settings.max_queued_messages, settings.max_queued_messages or 2**53),
                "maxBytes": min(self._settings.max_queued_bytes, settings.max_queued_bytes or 2**53),
                "suspended": account.suspended,
            }
            oldest_at = float(oldest[0][1]) / 1e6 if oldest else None  # the score is the receive time in µs
            return Usage(address, live, total - live, stored, oldest_at, limits)

        return await self._audited("usage", address, {}, work())

    async def _lengths(self, key: str, ids: list[Any]) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for member in ids:
            pipe.hstrlen(key, member)
        return sum(int(n) for n in await pipe.execute())

    async def audit(self, count: int = 50) -> list[dict[str, str]]:
        """The last ``count`` audit entries, oldest first."""
        entries: list[Any] = await self._redis.xrevrange(audit_key(self._prefix), count=count) or []
        out = []
        for entry_id, fields in reversed(entries):
            item = {_s(k): _s(v) for k, v in (fields or {}).items()}
            item["id"] = _s(entry_id)
            out.append(item)
        return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["SUSPENDED_FIELD", "Admin", "Usage", "account_of"]
