"""``ensign.client``: an asyncio SDK for dapps and bots on Ensign (and any dm3 stack).

::

    from ensign.client import Client, ClientConfig, Wallet

    async with Client(Wallet.from_private_key(key), ClientConfig()) as client:
        await client.setup()                                  # keys, profile, account
        sent = await client.send("bob.user.ensign.eth", "hello")
        page = await client.fetch()                           # or: async with client.subscribe() as inbox
        await client.ack(*page.messages)

Everything public is importable from here; the ``_`` modules are internal and may move.

=======================  ================================================================
name                     what
=======================  ================================================================
``Client``               one wallet's account: profile, accounts, send, fetch, push, ack
``ClientConfig``         chain, backend and delivery services (default: ``make dev``)
``Wallet``               an address and its ``personal_sign`` (a key or a callback);
                         ``Wallet.contract``: an EIP-1271 contract wallet and its owner
``Signer``               the callback's type: text → signature, sync or async
``derive_keys``          the dm3 keys of a wallet
``sign_profile``         a dm3 profile signed by a wallet
``Subscription``         messages pushed over socket.io, as an async iterator
``SentMessage``          what :meth:`Client.send` returns for one name
``MultiSentMessage``     what it returns for a list of names: a ``RecipientDelivery`` each
``ReceivedMessage``      a verified incoming message
``RejectedEnvelope``     an incoming envelope that failed verification
``InboxPage``            one page of :meth:`Client.fetch`
``DeliveryAccount``      an account at a delivery service
``DeviceKey``            a device's id and own signing key: ``Client(…, device=…)`` logs in as it
``DeviceList``           an account's device list (``ListedDevice``\\ s) at a delivery service
``NameRegistration``     the backend's answer to a profile or alias
``Storage``              ``client.storage``: encrypted documents with signed history, sharing
``StoredDocument``       one decrypted revision of a document
``StorageGrant``         a read grant to another account
``StoredBlob``           an uploaded or downloaded content-addressed blob
``ClientError`` …        errors: ``ApiError``, ``ClientConnectionError``, ``ClientStateError``,
                         ``DeliveryError`` (with ``DeliveryAttempt``\\ s)
=======================  ================================================================
"""

from __future__ import annotations

from ._client import Client
from ._config import DEV_BACKEND_URL, DEV_RPC_URL, ClientConfig
from ._errors import ApiError, ClientConnectionError, ClientError, ClientStateError, DeliveryAttempt, DeliveryError
from ._device import DeviceKey
from ._models import (
    DeliveryAccount,
    DeviceList,
    InboxPage,
    ListedDevice,
    MultiSentMessage,
    NameRegistration,
    ReceivedMessage,
    RecipientDelivery,
    RejectedEnvelope,
    SentMessage,
)
from ._push import Subscription
from ._storage import Storage, StorageGrant, StoredBlob, StoredDocument
from ._wallet import Signer, Wallet, derive_keys, sign_profile

__all__ = [
    "ApiError",
    "Client",
    "ClientConfig",
    "ClientConnectionError",
    "ClientError",
    "ClientStateError",
    "DEV_BACKEND_URL",
    "DEV_RPC_URL",
    "DeliveryAccount",
    "DeliveryAttempt",
    "DeliveryError",
    "DeviceKey",
    "DeviceList",
    "InboxPage",
    "ListedDevice",
    "MultiSentMessage",
    "NameRegistration",
    "ReceivedMessage",
    "RecipientDelivery",
    "RejectedEnvelope",
    "SentMessage",
    "Signer",
    "Storage",
    "StorageGrant",
    "StoredBlob",
    "StoredDocument",
    "Subscription",
    "Wallet",
    "derive_keys",
    "sign_profile",
]
