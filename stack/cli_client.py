"""``ensign send``, ``ensign inbox``, ``ensign recover``, ``ensign devices`` and ``ensign store``: the Python SDK (:mod:`ensign.client`) on the command line.

:func:`add_commands` adds the commands to the ``ensign`` parser's sub-commands. Each reads the
wallet's private key from the first line of standard input, never from an argument, so it stays
out of shell history and ``ps``::

    echo 0x<key> | ensign send bob.user.ensign.eth "hello"
    printf '0x<key>\\nhello\\nsecond line\\n' | ensign send bob.user.ensign.eth   # text from stdin
    echo 0x<key> | ensign send bob.user.ensign.eth,carol.user.ensign.eth "hi both"   # or --to NAME --to NAME
    echo 0x<key> | ensign inbox --ack                    # print the inbox as JSON lines, then ack
    echo 0x<key> | ensign inbox --follow                 # and keep printing pushed messages
    echo 0x<key> | ensign recover [--revoke]             # new profile keys from the wallet alone
    ensign devices keygen                                # a new device key pair, printed as JSON
    echo 0x<key> | ensign devices add laptop --public-key <base64>   # wallet-signed device list
    echo 0x<key> | ensign devices list                   # or: remove laptop
    printf '0x<key>\n<device secret key>\n' | ensign inbox --device laptop --ack   # as the device
    printf '0x<key>\n["carol"]\n' | ensign store set contacts list   # value from stdin
    echo 0x<key> | ensign store get contacts list [--owner alice.user.ensign.eth]
    echo 0x<key> | ensign store history contacts list    # every revision, chain checked
    echo 0x<key> | ensign store share contacts bob.user.ensign.eth --days 7
    echo 0x<key> | ensign store upload photo.enc          # then: store download <hash> copy.enc

``--setup`` first publishes the wallet's profile and creates its account at its delivery
services (safe to repeat). Settings come from flags, else the environment, else ``make dev``:

=====================  ======================  ====================================
flag                   variable                default
=====================  ======================  ====================================
``--rpc-url``          ``ETH_RPC_URL``         ``http://127.0.0.1:8545`` (dev chain)
``--backend-url``      ``BACKEND_URL``         ``http://127.0.0.1:8081``
``--ens-registry``     ``ENS_REGISTRY``        ENS's canonical registry
``--addr-domain``      ``ADDR_DOMAINS`` (1st)  ``addr.ensign.eth``
``--delivery-service`` ``DELIVERY_NAME``       ``ds.ensign.eth``
=====================  ======================  ====================================

A contract wallet (EIP-1271) is used with ``--contract <its address>`` and its owner's key on
standard input; ``--name`` picks the ENS name to act as (``ensign dev``'s wallet:
``--contract <address> --name wallet.ensign.eth``, owner the dev chain's second account).

``--delivery-service`` may be repeated: a profile published with ``--setup`` lists the services
in that order, and ``inbox`` reads the first. Messages are printed one JSON object per line:
``{"id", "from", "to", "type", "text", "timestamp", "receivedAt", "deliveryService"}``; envelopes
that fail verification are reported on standard error.

``ensign store`` prints one JSON object per document or revision: ``{"namespace", "key", "value",
"rev", "lastrev", "storedAt"}`` (``value`` null for a removal); ``set``/``remove`` print
``{"rev"}``, ``share`` the grant. ``history`` reports its progress on standard error. A write onto a
head that moved is refused (exit 2, ``revision_conflict``): read again and pass ``--lastrev``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ensign.config import (
    DEFAULT_ADDR_DOMAINS,
    DEFAULT_DELIVERY_NAME,
    DEV_BACKEND_URL,
    DEV_RPC_URL,
    ENS_REGISTRY_ADDRESS,
    Env,
)
from ensign.errors import EnsignError

if TYPE_CHECKING:
    # The SDK pulls in web3; it is imported when a command runs, so `ensign --help` stays light.
    from ensign.client import Client, ClientConfig, ReceivedMessage, RejectedEnvelope, StoredDocument
    from ensign.protocol.crypto import SigningKeyPair

__all__ = ["add_commands", "client_config"]


def add_commands(subparsers: Any) -> None:
    """Add ``send`` and ``inbox`` to ``subparsers`` (what ``ArgumentParser.add_subparsers`` returns).

    Each sets ``handler`` to a function of the parsed arguments returning the exit status; errors
    are :class:`~ensign.errors.EnsignError`\\ s for the caller to print.
    """
    send = subparsers.add_parser(
        "send",
        help="send a message to an ENS name (wallet key on standard input)",
        description=(
            "Reads the wallet's private key (0x-hex) from the first line of standard input, signs and "
            "encrypts TEXT for TO and hands it to TO's delivery services, trying them in their profile's "
            "order. Without TEXT the message is the rest of standard input. Prints "
            '{"id", "to", "deliveryService"} as JSON. To several receivers (a,b,c or repeated --to) the '
            "message is encrypted once per delivery service and each receiver gets the key wrapped to it; "
            'prints {"to": [...], "recipients": [{"to", "status", "deliveryService", "id", "error"}]} and '
            "exits with 1 when any receiver was refused."
        ),
    )
    send.add_argument(
        "to",
        metavar="TO",
        nargs="?",
        help="the receiver's ENS name, e.g. bob.user.ensign.eth, or several separated by commas (without --to)",
    )
    send.add_argument("text", metavar="TEXT", nargs="?", help="the message (default: the rest of standard input)")
    send.add_argument(
        "--to",
        dest="receivers",
        metavar="NAME",
        action="append",
        default=[],
        help="a receiver, repeatable (then the only positional argument is TEXT)",
    )
    _add_settings(send)
    send.set_defaults(handler=_send)

    inbox = subparsers.add_parser(
        "inbox",
        help="print the messages waiting at your delivery service (wallet key on standard input)",
        description=(
            "Reads the wallet's private key (0x-hex) from standard input, fetches every page of the inbox "
            "at the delivery service, verifies each message's signature and postmark, and prints them as "
            "JSON lines, oldest first. Messages stay queued unless --ack is given."
        ),
    )
    inbox.add_argument("--ack", action="store_true", help="acknowledge (remove) each message once printed")
    inbox.add_argument(
        "--follow", action="store_true", help="then keep printing messages pushed over socket.io until Ctrl-C"
    )
    inbox.add_argument("--limit", type=int, default=100, help="messages per page, 1 to 1000 (default 100)")
    inbox.add_argument(
        "--device",
        metavar="ID",
        help="log in as this device of your device list; its secret key (base64) is the second line of standard input",
    )
    _add_settings(inbox)
    inbox.set_defaults(handler=_inbox)

    recover = subparsers.add_parser(
        "recover",
        help="new profile keys from the wallet alone, after losing the old ones (wallet key on standard input)",
        description=(
            "Reads the wallet's private key (0x-hex) from standard input, derives new profile keys from it "
            "with a fresh nonce, publishes the profile carrying them and binds your account at each "
            "delivery service to them with a wallet-signed message (re-creating it if it was deleted): "
            "whoever holds the old keys can no longer log in. Prints {\"name\", \"nonce\", "
            "\"deliveryServices\"}; pass that nonce as --nonce to later commands. Messages encrypted to "
            "keys you lost cannot be opened: `ensign inbox` reports them, and --ack removes them."
        ),
    )
    recover.add_argument("--new-nonce", help="the nonce of the new keys (default: a random one)")
    recover.add_argument(
        "--revoke",
        action="store_true",
        help="also revoke the signing key of the profile published until now (a lost or stolen key)",
    )
    _add_settings(recover)
    recover.set_defaults(handler=_recover)
    _add_store(subparsers)
    _add_devices(subparsers)


def _add_devices(subparsers: Any) -> None:
    devices = subparsers.add_parser(
        "devices",
        help="your account's devices at the delivery service: list, add, remove, keygen",
        description=(
            "Each device logs in with its own signing key and acknowledges messages on its own cursor: a "
            "message leaves the queue once every listed device has it, or at its TTL. add and remove send "
            "a device list signed by the wallet (key on standard input); the first add also lists your "
            "profile key as device 'profile', so dm3 clients keep working. A removed device's sessions end "
            "at once. keygen prints a new device key pair: keep secretKey on the device only."
        ),
    )
    commands = devices.add_subparsers(dest="devices_command", required=True)
    commands.add_parser("list", help="print the device list as JSON")
    add = commands.add_parser("add", help="add (or re-key) a device")
    add.add_argument("device_id", metavar="ID", help="1-32 letters, digits, _ or -")
    add.add_argument("--public-key", required=True, help="the device's Ed25519 public key, base64 (see keygen)")
    remove = commands.add_parser("remove", help="remove a device: its sessions end, its cursor goes")
    remove.add_argument("device_id", metavar="ID")
    commands.add_parser("keygen", help="print a new device key pair as JSON (no wallet needed)")
    for parser in commands.choices.values():
        _add_settings(parser)  # keygen ignores them; accepted so every sub-command takes the same flags
        parser.set_defaults(handler=_devices)


def _add_store(subparsers: Any) -> None:
    store = subparsers.add_parser(
        "store",
        help="your encrypted storage at the backend: get, set, history, share (wallet key on standard input)",
        description="Documents encrypted on this machine, kept with their signed history by the backend.",
    )
    commands = store.add_subparsers(dest="store_command", required=True)

    def document(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("namespace", metavar="NAMESPACE", help="application namespace, e.g. contacts")
        if name != "list":
            parser.add_argument("key", metavar="KEY", help="document key")
        return parser

    get = document("get", "print a document's current value")
    get.add_argument("--owner", help="another account's name that shared it with you")
    listing = document("list", "print every document of a namespace")
    listing.add_argument("--owner", help="another account's name that shared it with you")
    history = document("history", "print every revision of a document, oldest first, after checking the chain")
    history.add_argument("--owner", help="another account's name that shared it with you")
    set_ = document("set", "write a document (VALUE, else the rest of standard input)")
    set_.add_argument("value", metavar="VALUE", nargs="?", help="the value (default: the rest of standard input)")
    for parser in (set_, document("remove", "remove a document (a signed removal; history is kept)")):
        parser.add_argument("--lastrev", help="the head this write replaces (default: read it first); 'none' for new")
    share = commands.add_parser("share", help="let another account read a namespace (or one document)")
    share.add_argument("namespace", metavar="NAMESPACE")
    share.add_argument("reader", metavar="READER", help="the reader's ENS name")
    share.add_argument("--key", help="share only this document")
    share.add_argument("--days", type=float, default=30.0, help="days until the grant expires (default 30)")
    revoke = commands.add_parser("revoke", help="revoke a grant by its id")
    revoke.add_argument("grant_id", metavar="GRANT_ID")
    upload = commands.add_parser("upload", help="upload a file as a content-addressed blob (progress on stderr)")
    upload.add_argument("file", metavar="FILE")
    download = commands.add_parser("download", help="download a blob by its hash into FILE, hash checked")
    download.add_argument("hash", metavar="HASH")
    download.add_argument("file", metavar="FILE")
    download.add_argument("--owner", help="another account's name that shared with you")
    for parser in commands.choices.values():
        _add_settings(parser)
        parser.set_defaults(handler=_store)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flags override the environment)")
    group.add_argument("--rpc-url", help=f"Ethereum JSON-RPC URL (ETH_RPC_URL; default {DEV_RPC_URL})")
    group.add_argument("--backend-url", help=f"profile backend URL (BACKEND_URL; default {DEV_BACKEND_URL})")
    group.add_argument("--ens-registry", help="ENS registry address (ENS_REGISTRY)")
    group.add_argument("--addr-domain", help="parent of your address name (first of ADDR_DOMAINS; default addr.ensign.eth)")
    group.add_argument(
        "--delivery-service",
        action="append",
        metavar="NAME",
        help=f"ENS name of your delivery service, repeatable (DELIVERY_NAME; default {DEFAULT_DELIVERY_NAME})",
    )
    group.add_argument(
        "--nonce",
        help="the key-creation nonce your profile keys come from (default dm3's; `ensign recover` prints a new one)",
    )
    group.add_argument(
        "--setup", action="store_true", help="first publish your profile and create your account (safe to repeat)"
    )
    group.add_argument(
        "--contract",
        metavar="ADDRESS",
        help="act as the EIP-1271 contract wallet at ADDRESS; the key on standard input is its owner's",
    )
    group.add_argument(
        "--name", help="your ENS name (default your address name, 0x<address>.<addr-domain>)"
    )


def client_config(args: argparse.Namespace, env: Env | None = None) -> ClientConfig:
    """The SDK settings for a command: its flags, else ``env`` (default: the process environment),
    else the ``make dev`` stack. A malformed variable raises ``ConfigError`` naming it."""
    from ensign.client import ClientConfig

    env = env if env is not None else Env()
    rpc_url = args.rpc_url or env.optional_url("ETH_RPC_URL", schemes=("http", "https", "ws", "wss")) or DEV_RPC_URL
    services = tuple(name.strip().lower() for name in args.delivery_service or () if name.strip())
    return ClientConfig(
        rpc_url=rpc_url,
        backend_url=args.backend_url or env.url("BACKEND_URL", DEV_BACKEND_URL),
        ens_registry=args.ens_registry or env.text("ENS_REGISTRY", ENS_REGISTRY_ADDRESS),
        addr_domain=(args.addr_domain or env.names("ADDR_DOMAINS", DEFAULT_ADDR_DOMAINS)[0]).strip().lower(),
        delivery_services=services or (env.text("DELIVERY_NAME", DEFAULT_DELIVERY_NAME).lower(),),
    )


def _read_key(stream: TextIO) -> str:
    if stream.isatty():
        print("Paste the wallet private key (0x-hex) and press Enter:", file=sys.stderr)
    line = stream.readline().strip()
    if not line:
        raise EnsignError("expected the wallet private key on standard input, got nothing")
    return line


def _client(args: argparse.Namespace) -> Client:
    from ensign.client import Client, DeviceKey, Wallet

    from ensign.protocol.keys import DEFAULT_NONCE

    config = client_config(args)
    nonce = args.nonce or DEFAULT_NONCE
    wallet = Wallet.from_private_key(_read_key(sys.stdin))
    if args.contract:
        wallet = Wallet.contract(args.contract, wallet)
    device = None
    if getattr(args, "device", None):
        device = DeviceKey(args.device, _device_key(sys.stdin.readline().strip()))
    return Client(wallet, config, nonce=nonce, device=device, name=args.name.strip().lower() if args.name else None)


def _device_key(secret_key: str) -> SigningKeyPair:
    """The device's key pair from its secret key (base64 of libsodium's 64 bytes: seed ‖ public key)."""
    from ensign.protocol.crypto import SigningKeyPair
    from ensign.protocol.encoding import b64decode, b64encode

    if not secret_key:
        raise EnsignError("--device needs the device's secret key (base64) on the second line of standard input")
    try:
        return SigningKeyPair(public_key=b64encode(b64decode(secret_key, length=64)[32:]), secret_key=secret_key)
    except EnsignError:
        raise EnsignError("the device's secret key is not base64 of a 64-byte Ed25519 secret key") from None


def _devices(args: argparse.Namespace) -> int:
    if args.devices_command == "keygen":
        from ensign.protocol.keys import random_signing_key_pair

        pair = random_signing_key_pair()
        _print({"publicSigningKey": pair.public_key, "secretKey": pair.secret_key})
        return 0
    return asyncio.run(_devices_async(_client(args), args))


async def _devices_async(client: Client, args: argparse.Namespace) -> int:
    async with client:
        if args.setup:
            await client.setup()
        if args.devices_command == "add":
            listed = await client.add_device(args.device_id, args.public_key)
        elif args.devices_command == "remove":
            listed = await client.remove_device(args.device_id)
        else:
            listed = await client.devices()
    _print({
        "deliveryService": listed.delivery_service,
        "devices": [{"id": d.id, "publicSigningKey": d.public_signing_key, "since": d.since} for d in listed.devices],
        "updatedAt": listed.updated_at,
        **({"releasedMessages": listed.released_messages} if args.devices_command != "list" else {}),
    })
    return 0


def _recover(args: argparse.Namespace) -> int:
    return asyncio.run(_recover_async(_client(args), args))


async def _recover_async(client: Client, args: argparse.Namespace) -> int:
    async with client:
        registration = await client.rotate_keys(nonce=args.new_nonce, revoke=args.revoke)
    _print({"name": registration.name, "nonce": client.nonce, "deliveryServices": list(client.config.delivery_services)})
    return 0


def _send(args: argparse.Namespace) -> int:
    if args.receivers:
        if args.text is not None:
            raise EnsignError("with --to, give only TEXT as an argument")
        receivers: str | list[str] = [name for given in args.receivers for name in given.split(",") if name]
        text = args.to
    else:
        if not args.to:
            raise EnsignError("give the receiver: TO (names separated by commas) or --to NAME")
        names = [name for name in args.to.split(",") if name]
        receivers = names if "," in args.to else args.to
        text = args.text
    client = _client(args)
    text = text if text is not None else sys.stdin.read().rstrip("\n")
    if not text:
        raise EnsignError("the message is empty: give TEXT or write it to standard input after the key")
    return asyncio.run(_send_async(client, args, receivers, text))


async def _send_async(client: Client, args: argparse.Namespace, receivers: str | list[str], text: str) -> int:
    async with client:
        if args.setup:
            await client.setup()
        if isinstance(receivers, str):
            sent = await client.send(receivers, text)
            _print({"id": sent.id, "to": sent.receiver, "deliveryService": sent.delivery_service})
            return 0
        multi = await client.send(receivers, text)
    _print({
        "to": receivers,
        "recipients": [
            {
                "to": r.receiver,
                "status": r.status,
                "deliveryService": r.delivery_service,
                "id": r.id,
                **({"error": r.error.code, "message": r.error.message} if r.error is not None else {}),
            }
            for r in multi.recipients
        ],
    })
    return 1 if multi.refused else 0


def _inbox(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise EnsignError("--limit must be from 1 to 1000")
    return asyncio.run(_inbox_async(_client(args), args))


async def _inbox_async(client: Client, args: argparse.Namespace) -> int:
    async with client:
        if args.setup:
            await client.setup()
        printed: set[str] = set()
        async for page in client.pages(limit=args.limit):
            for rejected in page.rejected:
                _report(rejected)
            for message in page.messages:
                _print(_message_json(message))
                printed.add(message.id)
            if args.ack and page.messages:
                # Acked per page: the next page's cursor stays valid (it is a position, not an offset).
                await client.ack(*page.messages)
        if args.follow:
            async with client.subscribe() as messages:
                async for message in messages:
                    if message.id in printed:
                        continue  # already printed from the fetch (and acked with --ack)
                    _print(_message_json(message))
                    if args.ack:
                        await client.ack(message)
    return 0


def _store(args: argparse.Namespace) -> int:
    client = _client(args)
    value = None
    if args.store_command == "set":
        value = args.value if args.value is not None else sys.stdin.read().rstrip("\n")
    if args.store_command == "share" and not 0 < args.days <= 3650:
        raise EnsignError("--days must be more than 0 and at most 3650")
    return asyncio.run(_store_async(client, args, value))


async def _store_async(client: Client, args: argparse.Namespace, value: str | None) -> int:
    async with client:
        if args.setup:
            await client.setup()
        storage = client.storage
        command = args.store_command
        lastrev: dict[str, Any] = {}
        if getattr(args, "lastrev", None) is not None:
            lastrev["lastrev"] = None if args.lastrev.lower() == "none" else args.lastrev
        if command == "get":
            doc = await storage.get(args.namespace, args.key, owner=args.owner)
            if doc is None:
                raise EnsignError(f"no document {args.namespace}/{args.key}")
            _print(_document_json(doc))
        elif command == "list":
            for doc in await storage.get_all(args.namespace, owner=args.owner):
                _print(_document_json(doc))
        elif command == "history":
            for doc in await storage.history(args.namespace, args.key, owner=args.owner, progress=_progress):
                _print(_document_json(doc))
        elif command == "set":
            assert value is not None
            _print({"rev": await storage.set(args.namespace, args.key, value, **lastrev)})
        elif command == "remove":
            _print({"rev": await storage.remove(args.namespace, args.key, **lastrev)})
        elif command == "share":
            grant = await storage.share(args.namespace, args.reader, key=args.key, expires_in=args.days * 86400)
            _print({"id": grant.id, "reader": grant.reader, "namespace": grant.namespace, "key": grant.key,
                    "expires": grant.expires})
        elif command == "upload":
            blob = await storage.put_blob(args.file, progress=_bytes_progress("sent"))
            _print({"hash": blob.hash, "size": blob.size, "status": blob.status})
        elif command == "download":
            await storage.get_blob(args.hash, owner=args.owner, to=args.file, progress=_bytes_progress("received"))
            _print({"hash": args.hash, "file": args.file})
        else:
            await storage.revoke(args.grant_id)
            _print({"id": args.grant_id, "status": "revoked"})
    return 0


def _bytes_progress(verb: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        share = f" ({100 * done // total} %)" if total else ""
        print(f"ensign: {verb} {done}/{total} bytes{share}", file=sys.stderr)

    return report


def _progress(done: int, total: int) -> None:
    print(f"ensign: {done}/{total} revisions", file=sys.stderr)


def _document_json(doc: StoredDocument) -> dict[str, Any]:
    return {"namespace": doc.namespace, "key": doc.key, "value": doc.value, "rev": doc.rev, "lastrev": doc.lastrev,
            "storedAt": doc.stored_at}


def _message_json(message: ReceivedMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": message.id,
        "from": message.sender,
        "to": message.receiver,
        "type": message.type,
        "text": message.text,
        "timestamp": message.timestamp,
        "receivedAt": message.received_at,
        "deliveryService": message.delivery_service,
    }
    if len(message.recipients) > 1:  # sent to several receivers at once: who else got it
        out["recipients"] = list(message.recipients)
    return out


def _report(rejected: RejectedEnvelope) -> None:
    print(f"ensign: rejected message {rejected.id or '(no id)'}: {rejected.error.message}", file=sys.stderr)


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()
