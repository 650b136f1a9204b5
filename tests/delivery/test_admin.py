"""Operator tooling: suspend, delete, purge, usage, each in the audit log; ``ensign admin`` (real Redis)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    envelope,
    login,
    rpc_submit,
    signup,
    users,
)

from delivery.admin import Admin, account_of
from delivery.keys import account_key, audit_key, tombstone_key
from ensign.errors import EnsignError, NotFound
from ensign.config import AdminSettings, RedisSettings
from stack.cli import main


@pytest.fixture
def admin(redis, redis_prefix, clock) -> Admin:
    return Admin(redis, AdminSettings(redis=RedisSettings(prefix=redis_prefix), operator="carol"), clock=clock)


async def submit(client, sender, receiver, settings, text: str):
    resp = await client.post("/rpc", json=rpc_submit(envelope(sender, receiver, settings, text)))
    return resp.status, await resp.json()


async def test_a_suspended_account_refuses_the_next_submission(ds_client, admin, users, ds_settings) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    assert (await submit(ds_client, alice, bob, ds_settings, "before"))[0] == 200
    await admin.suspend(bob.address, "spam source")
    status, body = await submit(ds_client, alice, bob, ds_settings, "during")
    assert status == 403
    assert body["error"]["code"] == -32019 and body["error"]["data"]["error"] == "account_suspended"
    # The owner can still read what is queued, and sees the suspension.
    token = await login(ds_client, bob)
    assert len(await (await ds_client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json()) == 1
    assert (await (await ds_client.get(f"/account/{bob.name}", headers=bearer(token))).json())["suspended"] is True
    await admin.unsuspend(bob.address)
    assert (await submit(ds_client, alice, bob, ds_settings, "after"))[0] == 200
    log = await admin.audit()
    assert [(e["action"], e["account"], e["operator"], e["outcome"]) for e in log] == [
        ("suspend", bob.address, "carol", "ok"), ("unsuspend", bob.address, "carol", "ok")]
    assert json.loads(log[0]["detail"]) == {"reason": "spam source"} and int(log[0]["at"]) > 0


async def test_usage_purge_and_delete(ds_client, admin, users, ds_settings, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    for text in ("one", "two"):
        assert (await submit(ds_client, alice, bob, ds_settings, text))[0] == 200
    usage = (await admin.usage(bob.address)).to_json()
    stored = sum([await redis.hstrlen(f"{redis_prefix}msg:{{{bob.address}}}", i)
                  for i in await redis.hkeys(f"{redis_prefix}msg:{{{bob.address}}}")])
    assert usage["messages"] == 2 and usage["expiredNotSwept"] == 0 and usage["bytes"] == stored > 0
    assert usage["limits"]["maxMessageSize"] == 100_000 and usage["limits"]["suspended"] is False
    # The receiver's quotas, and the queue's own byte count agrees with the one counted here.
    assert (usage["limits"]["maxMessages"], usage["limits"]["maxBytes"]) == (5_000, 25_000_000)
    assert int(await redis.get(f"{redis_prefix}qbytes:{{{bob.address}}}")) == stored
    assert await admin.purge(bob.address) == 2
    assert (await admin.usage(bob.address)).messages == 0
    assert await redis.exists(account_key(redis_prefix, bob.address))
    assert await admin.delete(bob.address) == 0
    assert not await redis.exists(account_key(redis_prefix, bob.address))
    assert json.loads(await redis.get(tombstone_key(redis_prefix, bob.address)))["by"] == "operator"
    status, body = await submit(ds_client, alice, bob, ds_settings, "gone")
    assert body["error"]["data"]["error"] == "receiver_without_account"
    # A failed action is audited too.
    with pytest.raises(Exception):
        await admin.suspend(bob.address)
    actions = [(e["action"], e["outcome"]) for e in await admin.audit()]
    assert actions == [("usage", "ok"), ("purge", "ok"), ("usage", "ok"), ("delete", "ok"), ("suspend", "no_account")]


async def test_ensign_admin_on_the_command_line(
    ds_client, users, ds_settings, redis, redis_url, redis_prefix, monkeypatch, capsys
) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_PREFIX", redis_prefix)
    monkeypatch.setenv("ADMIN_OPERATOR", "dana")
    monkeypatch.delenv("ETH_RPC_URL", raising=False)
    # main() runs its own event loop: give it a thread. An address in any case names the account.
    assert await asyncio.to_thread(main, ["admin", "suspend", bob.address.lower(), "--reason", "test"]) == 0
    assert json.loads(capsys.readouterr().out) == {"account": bob.address, "suspended": True}
    assert (await submit(ds_client, alice, bob, ds_settings, "x"))[0] == 403
    assert await asyncio.to_thread(main, ["admin", "usage", bob.address]) == 0
    assert json.loads(capsys.readouterr().out)["limits"]["suspended"] is True
    # Not an address, and no ETH_RPC_URL to resolve a name: refused before any action.
    assert await asyncio.to_thread(main, ["admin", "suspend", "bob.user.ensign.eth"]) == 2
    assert "ETH_RPC_URL" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["admin", "audit"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["operator"], e["action"], e["account"], e["outcome"]) for e in lines] == [
        ("dana", "suspend", bob.address, "ok"), ("dana", "usage", bob.address, "ok")]
    assert await redis.xlen(audit_key(redis_prefix)) == 2


async def test_accounts_are_named_by_address_or_ens_name(directory, users) -> None:
    bob = users[1]
    assert await account_of(directory, bob.address.lower()) == bob.address
    assert await account_of(directory, "Bob.User.Ensign.Eth") == bob.address
    with pytest.raises(NotFound):
        await account_of(directory, "nobody.user.ensign.eth")
    with pytest.raises(EnsignError, match="ETH_RPC_URL"):
        await account_of(None, "bob.user.ensign.eth")
