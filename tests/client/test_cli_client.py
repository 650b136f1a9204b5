"""``ensign send`` and ``ensign inbox`` (stack/cli_client.py) as processes against the SDK test stack.

The commands run through a driver that mounts them on a parser the way ``stack.cli`` does
(``add_commands(subparsers)``, ``handler(args)``, ``ensign: <message>`` and status 2 on errors).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any
import pytest

from stack.cli_client import add_commands, client_config
from ensign.config import ConfigError, Env
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key

DRIVER = """
import argparse, sys
from stack.cli_client import add_commands
from ensign.errors import EnsignError
parser = argparse.ArgumentParser(prog="ensign")
add_commands(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args()
try:
    sys.exit(args.handler(args))
except EnsignError as error:
    print(f"ensign: {error.message}", file=sys.stderr)
    sys.exit(2)
except KeyboardInterrupt:
    sys.exit(130)
"""


def cli_env(sdk_stack: SdkStack) -> dict[str, str]:
    # Only what the commands read, so the developer's own settings cannot leak in.
    return {"PATH": os.environ.get("PATH", ""), "ETH_RPC_URL": sdk_stack.rpc.url, "BACKEND_URL": sdk_stack.backend_url}


async def start_cli(sdk_stack: SdkStack, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", DRIVER, *args, "--delivery-service", DS_NAMES[0],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=cli_env(sdk_stack),
    )


async def run_cli(sdk_stack: SdkStack, *args: str, stdin: str) -> tuple[int, str, str]:
    process = await start_cli(sdk_stack, *args)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_send_and_inbox_commands_deliver_verify_and_ack(sdk_stack: SdkStack) -> None:
    alice_key, bob_key = new_private_key(), new_private_key()
    bob = sdk_stack.client(bob_key)
    await bob.setup()

    code, out, err = await run_cli(sdk_stack, "send", "--setup", bob.name, "hello from the command line",
                                   stdin=alice_key + "\n")
    assert code == 0, err
    sent = json.loads(out)
    assert sent["to"] == bob.name and sent["deliveryService"] == DS_NAMES[0]

    # The text may come from standard input, after the key.
    code, out, err = await run_cli(sdk_stack, "send", bob.name, stdin=f"{alice_key}\nfirst line\nsecond line\n")
    assert code == 0, err
    second = json.loads(out)

    code, out, err = await run_cli(sdk_stack, "inbox", "--ack", stdin=bob_key + "\n")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(m["id"], m["text"]) for m in lines] == [
        (sent["id"], "hello from the command line"),
        (second["id"], "first line\nsecond line"),
    ]
    alice_name = f"{_address(alice_key).lower()}.addr.ensign.eth"
    assert {m["from"] for m in lines} == {alice_name}
    assert all(m["deliveryService"] == DS_NAMES[0] and m["type"] == "NEW" for m in lines)
    assert (await bob.fetch()).messages == ()  # --ack removed them


async def test_inbox_follow_prints_pushed_messages_until_interrupted(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    process = await start_cli(sdk_stack, "inbox", "--follow")
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((bob_key + "\n").encode())
        await process.stdin.drain()
        process.stdin.close()
        sent = await alice.send(bob.name, "pushed to the command line")
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert json.loads(line)["id"] == sent.id
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        err = await asyncio.wait_for(process.stderr.read(), 30)
        assert await asyncio.wait_for(process.wait(), 30) == 130, err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert [m.id for m in (await bob.fetch()).messages] == [sent.id]  # without --ack it stays


async def test_commands_without_a_key_on_stdin_stop_with_a_message(sdk_stack: SdkStack) -> None:
    code, out, err = await run_cli(sdk_stack, "inbox", stdin="")
    assert (code, out) == (2, "")
    assert err.strip() == "ensign: expected the wallet private key on standard input, got nothing"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ensign")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_settings_come_from_flags_then_environment_then_the_dev_stack() -> None:
    defaults = client_config(_parse("inbox"), Env({}))
    assert (defaults.rpc_url, defaults.backend_url, defaults.delivery_services, defaults.addr_domain) == (
        "http://127.0.0.1:8545", "http://127.0.0.1:8081", ("ds.ensign.eth",), "addr.ensign.eth"
    )
    environ = {"ETH_RPC_URL": "https://node.example", "BACKEND_URL": "https://backend.example",
               "ADDR_DOMAINS": "addr.example.eth,other.eth", "DELIVERY_NAME": "DS.Example.eth"}
    from_env = client_config(_parse("inbox"), Env(environ))
    assert (from_env.rpc_url, from_env.backend_url, from_env.addr_domain, from_env.delivery_services) == (
        "https://node.example", "https://backend.example", "addr.example.eth", ("ds.example.eth",)
    )
    assert not from_env.local_gateways
    flags = client_config(
        _parse("send", "--rpc-url", "http://127.0.0.1:9545", "--delivery-service", "a.eth", "--delivery-service", "b.eth",
               "bob.eth", "hi"),
        Env(environ),
    )
    assert (flags.rpc_url, flags.delivery_services, flags.backend_url) == (
        "http://127.0.0.1:9545", ("a.eth", "b.eth"), "https://backend.example"
    )
    assert flags.local_gateways


@pytest.mark.parametrize("variable", ["ETH_RPC_URL", "BACKEND_URL"])
def test_malformed_url_in_the_environment_names_the_variable(variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        client_config(_parse("inbox"), Env({variable: "ftp://nope"}))


def _address(key: str) -> str:
    from ensign.protocol.keys import address_of_private_key

    return address_of_private_key(key)



async def test_store_commands_set_get_history_share(sdk_stack: SdkStack) -> None:
    alice_key, bob_key = new_private_key(), new_private_key()
    bob = sdk_stack.client(bob_key)
    await bob.publish_profile()

    code, out, err = await run_cli(sdk_stack, "store", "set", "--setup", "notes", "todo", stdin=f"{alice_key}\nbuy milk\n")
    assert code == 0, err
    first = json.loads(out)["rev"]
    code, out, err = await run_cli(sdk_stack, "store", "set", "notes", "todo", "buy oat milk", "--lastrev", first,
                                   stdin=alice_key + "\n")
    assert code == 0, err
    # A write onto an old head is refused, and says why.
    code, out, err = await run_cli(sdk_stack, "store", "set", "notes", "todo", "stale", "--lastrev", first,
                                   stdin=alice_key + "\n")
    assert code == 2 and "revision_conflict" in err

    code, out, err = await run_cli(sdk_stack, "store", "history", "notes", "todo", stdin=alice_key + "\n")
    assert code == 0, err
    revisions = [json.loads(line) for line in out.splitlines()]
    assert [r["value"] for r in revisions] == ["buy milk", "buy oat milk"] and revisions[1]["lastrev"] == first
    assert "2/2 revisions" in err

    alice_name = f"{_address(alice_key).lower()}.addr.ensign.eth"
    code, out, err = await run_cli(sdk_stack, "store", "share", "notes", bob.name, "--days", "1", stdin=alice_key + "\n")
    assert code == 0, err
    code, out, err = await run_cli(sdk_stack, "store", "get", "notes", "todo", "--owner", alice_name,
                                   stdin=bob_key + "\n")
    assert code == 0, err
    assert json.loads(out)["value"] == "buy oat milk"


async def test_store_upload_and_download_show_progress(sdk_stack: SdkStack, tmp_path: Any) -> None:
    key = new_private_key()
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(600_000))
    code, out, err = await run_cli(sdk_stack, "store", "upload", "--setup", str(source), stdin=key + "\n")
    assert code == 0, err
    uploaded = json.loads(out)
    assert uploaded["status"] == "stored" and uploaded["size"] == 600_000
    assert "sent 600000/600000 bytes (100 %)" in err
    target = tmp_path / "copy.bin"
    code, out, err = await run_cli(sdk_stack, "store", "download", uploaded["hash"], str(target), stdin=key + "\n")
    assert code == 0, err
    assert target.read_bytes() == source.read_bytes() and "received 600000/600000 bytes" in err


async def test_devices_commands_add_list_remove_and_inbox_as_a_device(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()

    code, out, err = await run_cli(sdk_stack, "devices", "keygen", stdin="")
    assert code == 0, err
    laptop = json.loads(out)
    code, out, err = await run_cli(
        sdk_stack, "devices", "add", "laptop", "--public-key", laptop["publicSigningKey"], stdin=bob_key + "\n"
    )
    assert code == 0, err
    assert [d["id"] for d in json.loads(out)["devices"]] == ["profile", "laptop"]

    await alice.send(bob.name, "for every device")
    code, out, err = await run_cli(
        sdk_stack, "inbox", "--device", "laptop", "--ack", stdin=f"{bob_key}\n{laptop['secretKey']}\n"
    )
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["for every device"]
    # Acknowledged by the laptop only: the profile key's device still has it.
    assert [m.text for m in (await bob.fetch()).messages] == ["for every device"]

    code, out, err = await run_cli(sdk_stack, "devices", "remove", "laptop", stdin=bob_key + "\n")
    assert code == 0, err
    assert [d["id"] for d in json.loads(out)["devices"]] == ["profile"]
    code, out, err = await run_cli(sdk_stack, "devices", "list", stdin=bob_key + "\n")
    assert code == 0, err
    assert [d["id"] for d in json.loads(out)["devices"]] == ["profile"]
    code, out, err = await run_cli(
        sdk_stack, "inbox", "--device", "laptop", stdin=f"{bob_key}\n{laptop['secretKey']}\n"
    )
    assert code == 2 and "device list holds no device" in err


async def test_commands_act_as_a_contract_wallet_with_its_owners_key(sdk_stack: SdkStack) -> None:
    owner_key = new_private_key()
    deployed = await sdk_stack.stack.chain.deploy_wallet(_address(owner_key))
    bob = sdk_stack.client()
    await bob.setup()

    code, out, err = await run_cli(sdk_stack, "send", "--setup", "--contract", deployed.address, bob.name,
                                   "from a contract wallet", stdin=owner_key + "\n")
    assert code == 0, err
    [received] = (await bob.fetch()).messages
    assert (received.text, received.sender) == ("from a contract wallet", f"{deployed.address.lower()}.addr.ensign.eth")

    await bob.send(received.sender, "answer to the wallet")
    code, out, err = await run_cli(sdk_stack, "inbox", "--contract", deployed.address, "--name", received.sender,
                                   stdin=owner_key + "\n")
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["answer to the wallet"]
