"""Helpers for the storage tests: register a wallet, log it in, sign revisions and grants."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.backend.backend_helpers import Wallet

from backend.app import create_app
from ensign.config import BackendSettings, StorageSettings
from ensign.protocol.crypto import sign
from ensign.protocol.grants import Grant, make_grant, wrap_key
from ensign.protocol.revisions import Revision, make_revision


async def register(client: Any, wallet: Wallet) -> None:
    response = await client.post("/profile/address", json=wallet.register_body())
    assert response.status == 200, await response.text()


async def login(client: Any, wallet: Wallet, name: str | None = None) -> dict[str, str]:
    """dm3's login: challenge, sign it with the profile key, redeem; the Authorization header."""
    name = name or wallet.address_name
    challenge = await (await client.get(f"/auth/{name}")).json()
    signature = sign(wallet.keys.signing.secret_key, challenge)
    response = await client.post(f"/auth/{name}", json={"challenge": challenge, "signature": signature})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {await response.json()}"}


def revision(wallet: Wallet, namespace: str, key: str, data: str | None, lastrev: str | None,
             links: tuple[str, ...] = ()) -> Revision:
    return make_revision(
        wallet.keys.signing.secret_key, wallet.keys.signing.public_key, wallet.address.lower(), namespace, key, data,
        lastrev=lastrev, links=links,
    )


def grant(owner: Wallet, reader: Wallet, namespace: str, key: str | None, *, expires: int, secret: bytes) -> Grant:
    return make_grant(
        owner.keys.signing.secret_key, owner.keys.signing.public_key, owner.address.lower(), reader.address.lower(),
        namespace, key, expires=expires, wrapped_key=wrap_key(reader.keys.encryption.public_key, secret),
    )


def doc_url(owner: Wallet, namespace: str, key: str | None = None) -> str:
    base = f"/storage/docs/{owner.address_name}/{namespace}"
    return base if key is None else f"{base}/{key}"


async def limited_client(aiohttp_client: Any, settings: BackendSettings, redis: Any, wallet: Wallet,
                         **limits: Any) -> tuple[Any, dict[str, str]]:
    """A client of the app with other storage limits, and ``wallet`` registered and logged in."""
    client = await aiohttp_client(create_app(replace(settings, storage=StorageSettings(**limits)), redis=redis))
    await register(client, wallet)
    return client, await login(client, wallet)
