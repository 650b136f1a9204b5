"""The client's lifetime (entered once, never reused) and the errors it raises."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from ensign.client import (
    ApiError,
    Client,
    ClientConfig,
    ClientConnectionError,
    ClientStateError,
    DeliveryError,
    Wallet,
)
from ensign.errors import InvalidRequest
from tests.client.sdk_stack import DS_NAMES, SdkStack, free_port, new_private_key


async def test_client_is_entered_once_and_refuses_use_after_close(sdk_stack: SdkStack) -> None:
    client = sdk_stack.client()
    async with client:
        with pytest.raises(ClientStateError, match="already open"):
            async with client:
                pass
        await client.setup()
    assert client.closed
    with pytest.raises(ClientStateError, match="cannot be reopened"):
        async with client:
            pass
    for call in (client.fetch(), client.login(), client.send(client.name, "x"), client.keys()):
        with pytest.raises(ClientStateError):
            await call
    with pytest.raises(ClientStateError):
        client.subscribe()
    await client.aclose()  # closing again is harmless


async def test_closing_the_client_ends_its_subscriptions(sdk_stack: SdkStack) -> None:
    client = sdk_stack.client()
    await client.setup()
    sigint = signal.getsignal(signal.SIGINT)
    subscription = client.subscribe()
    subscription.start()
    await subscription.wait_connected(10)
    assert signal.getsignal(signal.SIGINT) is sigint  # the socket.io client leaves Ctrl-C to the application
    await client.aclose()
    assert not subscription.connected
    assert [m async for m in subscription] == []


async def test_client_used_without_async_with_opens_on_first_use(sdk_stack: SdkStack) -> None:
    client = sdk_stack.client()
    await client.setup()
    with pytest.raises(ClientStateError, match="already open"):
        await client.__aenter__()
    await client.aclose()
    assert client.closed


async def test_api_error_keeps_status_code_and_the_services_json(sdk_stack: SdkStack) -> None:
    client = sdk_stack.client()
    await client.setup()
    with pytest.raises(ApiError) as caught:
        await client.create_account()
    error = caught.value
    assert (error.status, error.code) == (409, "account_exists")
    assert set(error.body) == {"error", "message"} and error.body["error"] == "account_exists"
    assert error.body["message"] in error.message
    assert error.url.endswith(f"/account/{client.name}")


async def test_api_error_of_a_json_rpc_refusal_carries_its_rpc_code(sdk_stack: SdkStack) -> None:
    alice = sdk_stack.client()
    bob = sdk_stack.client(config=sdk_stack.config(delivery_services=DS_NAMES))
    await alice.setup()
    await bob.setup()
    # At his first service Bob only takes mail from senders with ether; Alice has none.
    account = await bob.update_settings({"spamFilterRules": {"minBalance": "1000"}})
    assert account.settings["spamFilterRules"] == {"minBalance": "1000"}
    with pytest.raises(DeliveryError) as caught:
        await alice.send(bob.name, "spam?")
    [attempt] = caught.value.attempts  # the receiver's own rules refused: the second service is not tried
    assert attempt.delivery_service == DS_NAMES[0]
    assert isinstance(attempt.error, ApiError)
    assert (attempt.error.status, attempt.error.code, attempt.error.rpc_code) == (400, "spam", -32010)
    assert attempt.error.body["jsonrpc"] == "2.0"


async def test_unreachable_service_is_a_connection_error_with_its_cause() -> None:
    config = ClientConfig(backend_url=f"http://127.0.0.1:{free_port()}")
    async with Client(Wallet.from_private_key(new_private_key()), config) as client:
        with pytest.raises(ClientConnectionError) as caught:
            await client.publish_profile()
    error = caught.value
    assert isinstance(error, ConnectionError)
    assert isinstance(error.__cause__, aiohttp.ClientConnectorError)
    assert error.code == "connection_failed" and "/profile/address" in error.message


def test_config_keeps_delivery_services_as_a_tuple_and_refuses_bad_urls() -> None:
    assert ClientConfig(delivery_services=["a.eth", "b.eth"]).delivery_services == ("a.eth", "b.eth")  # type: ignore[arg-type]
    for bad in ({"rpc_url": "ftp://node"}, {"backend_url": "localhost:8081"}, {"delivery_services": ()}):
        with pytest.raises(InvalidRequest):
            ClientConfig(**bad)
    assert ClientConfig().local_gateways
    assert not ClientConfig(rpc_url="https://node.example").local_gateways
    assert not ClientConfig(allow_local_gateways=False).local_gateways


async def test_closing_a_subscription_outlasts_a_swallowed_cancellation() -> None:
    # Python 3.11's asyncio.wait_for (which python-socketio uses) can swallow a cancellation; the
    # subscription's close (Ctrl-C in `ensign inbox --follow`) must still end its task.
    from ensign.client._push import _cancel

    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(_cancel(task), 10)
    assert task.cancelled() and swallowed == 2
