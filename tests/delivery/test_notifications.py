"""Notifications that are sent: dm3's /notifications routes, email to a real SMTP server, web push
to a push service that checks VAPID and decrypts, only for offline receivers, retried, never in
the way of intake (real Redis; the worker is driven round by round with ``run_once``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    DS_NAME,
    bearer,
    chain,
    clock,
    directory,
    ds_settings,
    envelope,
    login,
    make_settings,
    rpc_submit,
    signup,
    users,
)
from tests.delivery.notify_helpers import MailServer, PushService, new_vapid_key
from tests.delivery.test_ds_push import Socket

from delivery.app import create_app
from delivery.keys import account_key, notify_job_keys, otp_key
from delivery.notify_worker import Notifier, notifier_key
from ensign.config import NotificationSettings

SUBJECT = "mailto:ops@ds.test.invalid"


@pytest.fixture
async def mail() -> AsyncIterator[MailServer]:
    server = MailServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def vapid() -> tuple[str, str]:
    return new_vapid_key()


@pytest.fixture
async def push_service(vapid) -> AsyncIterator[PushService]:
    service = PushService(vapid[1], SUBJECT)
    await service.start()
    yield service
    await service.stop()


def notify_settings(mail: MailServer, vapid: tuple[str, str], **overrides: Any) -> NotificationSettings:
    values: dict[str, Any] = dict(
        smtp_host="127.0.0.1", smtp_port=mail.port, smtp_from="ds@ds.test.invalid", smtp_tls="none",
        vapid_private_key=vapid[0], vapid_subject=SUBJECT, allow_private_push=True, retry_delay=10.0,
    )
    values.update(overrides)
    return NotificationSettings(**values)


@pytest.fixture
def settings(ds_settings, mail, vapid):
    return dataclasses.replace(ds_settings, notifications=notify_settings(mail, vapid))


@pytest.fixture
def serve(aiohttp_client, redis, directory, chain, clock):
    """``await serve(settings)``: a client of the production app (worker driven by hand unless ``worker``)."""

    async def start(settings, *, worker: bool = False):
        return await aiohttp_client(create_app(settings, redis=redis, directory=directory, chain=chain, clock=clock,
                                               sweep_interval=None, notify_worker=worker))

    return start


@pytest.fixture
async def client(serve, settings):
    return await serve(settings)


def notifier(client: Any) -> Notifier:
    return client.server.app[notifier_key]


async def post(client, path: str, token: str, body: Any) -> Any:
    return await client.post(path, json=body, headers=bearer(token))


async def turn_on(client, user, token: str) -> None:
    resp = await post(client, f"/notifications/global/{user.name}", token, {"isEnabled": True})
    assert resp.status == 200 and await resp.text() == "OK"


async def add_verified_email(client, user, token: str, mail: MailServer, address: str = "bob@mail.test") -> None:
    await turn_on(client, user, token)
    before = len(mail.messages)
    resp = await post(client, f"/notifications/{user.name}", token,
                      {"recipientValue": address, "notificationChannelType": "EMAIL"})
    assert resp.status == 200, await resp.text()
    assert len(mail.messages) == before + 1
    code = otp_of(mail)
    resp = await post(client, f"/notifications/otp/verify/{user.name}", token,
                      {"otp": code, "notificationChannelType": "EMAIL"})
    assert resp.status == 200, await resp.text()


def otp_of(mail: MailServer) -> str:
    found = re.search(r"\b(\d{5})\b", mail.text())
    assert found, mail.text()
    return found.group(1)


async def with_push_channel(client, users, push_service: PushService, name: str = "bob") -> str:
    """alice and bob signed up; bob's notifications on with a push subscription: bob's token."""
    alice, bob = users[0], users[1]
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    await turn_on(client, bob, token)
    subscription = push_service.subscribe(name)
    resp = await post(client, f"/notifications/{bob.name}", token,
                      {"recipientValue": json.dumps(subscription.to_json()), "notificationChannelType": "PUSH"})
    assert resp.status == 200, await resp.text()
    return token


async def send(client, sender, receiver, settings, text: str) -> None:
    resp = await client.post("/rpc", json=rpc_submit(envelope(sender, receiver, settings, text)))
    assert resp.status == 200, await resp.text()


async def test_an_offline_receiver_gets_an_email_without_the_message(client, users, settings, mail) -> None:
    alice, bob = users[0], users[1]
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    await add_verified_email(client, bob, token, mail)
    resp = await client.get(f"/notifications/{bob.name}", headers=bearer(token))
    assert await resp.json() == {"notificationChannels": [
        {"type": "EMAIL", "config": {"recipientValue": "bob@mail.test", "isEnabled": True, "isVerified": True}}
    ]}

    await send(client, alice, bob, settings, "the secret plan")
    assert await notifier(client).run_once() == 1
    assert len(mail.messages) == 2
    assert mail.recipients[-1] == ["bob@mail.test"]
    body = mail.messages[-1]["Subject"] + mail.text()
    assert DS_NAME in body
    # Nothing of the message: no text, no sender (name or address), no receiver name.
    for leaked in ("secret plan", alice.address, alice.address.lower(), alice.name, "alice", bob.name):
        assert leaked not in body
    # A second message within NOTIFY_INTERVAL sends nothing more.
    await send(client, alice, bob, settings, "again")
    await notifier(client).run_once()
    assert len(mail.messages) == 2


async def test_an_offline_receiver_gets_a_web_push_checked_and_decrypted(
    client, users, settings, push_service
) -> None:
    alice, bob = users[0], users[1]
    token = await with_push_channel(client, users, push_service, "bob-browser")
    channels = (await (await client.get(f"/notifications/{bob.name}", headers=bearer(token))).json())["notificationChannels"]
    assert [(c["type"], c["config"]["isVerified"]) for c in channels] == [("PUSH", True)]

    await send(client, alice, bob, settings, "the secret plan")
    await notifier(client).run_once()
    assert push_service.refused == []
    assert len(push_service.received) == 1
    payload = push_service.received[0]["payload"]
    assert set(payload) == {"title", "body"} and DS_NAME in payload["body"]
    assert "secret" not in json.dumps(payload) and alice.address.lower() not in json.dumps(payload).lower()


async def test_a_receiver_with_a_socket_on_another_process_gets_no_notification(
    serve, client, settings, users, push_service
) -> None:
    alice, bob = users[0], users[1]
    other = await serve(settings)
    token = await with_push_channel(client, users, push_service)
    socket = Socket()
    try:
        await socket.connect(str(other.make_url("/")), bob.name, token)
        assert (await socket.next_event())[0] == "authorized"
        await send(client, alice, bob, settings, "while online")
        assert (await socket.next_event())[0] == "message"
        assert await notifier(client).run_once() == 1
        assert push_service.requests == 0
    finally:
        await socket.close()
    # Offline again (the other process removed its entry on disconnect): the next message notifies.
    for _ in range(50):
        if not await notifier(client).presence.online(bob.address):
            break
        await asyncio.sleep(0.05)
    await send(client, alice, bob, settings, "after leaving")
    await notifier(client).run_once()
    assert len(push_service.received) == 1


async def test_a_failed_push_is_retried_with_backoff_and_then_given_up(
    serve, redis, redis_prefix, ds_settings, mail, vapid, clock, users, push_service
) -> None:
    settings = dataclasses.replace(ds_settings, notifications=notify_settings(mail, vapid, max_attempts=3, notify_interval=0))
    client = await serve(settings)
    alice, bob = users[0], users[1]
    token = await with_push_channel(client, users, push_service)
    push_service.statuses = [503, 500]
    await send(client, alice, bob, settings, "one")
    await notifier(client).run_once()
    assert push_service.requests == 1
    # Not due yet: the first retry waits retry_delay (10 s), the second twice that.
    assert await notifier(client).run_once() == 0
    clock.advance(10)
    await notifier(client).run_once()
    assert push_service.requests == 2
    clock.advance(10)
    assert await notifier(client).run_once() == 0
    clock.advance(10)
    await notifier(client).run_once()
    assert push_service.requests == 3 and len(push_service.received) == 1
    assert await redis.zcard(notify_job_keys(redis_prefix)[0]) == 0

    # Failing every time: dropped after max_attempts (3), nothing left queued.
    push_service.statuses = [500] * 10
    clock.advance(3600)
    await send(client, alice, bob, settings, "two")
    for _ in range(5):
        await notifier(client).run_once()
        clock.advance(3600)
    assert push_service.requests == 6
    assert await redis.zcard(notify_job_keys(redis_prefix)[0]) == 0
    assert await redis.hlen(notify_job_keys(redis_prefix)[1]) == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'ensign_ds_notifications_total{channel="PUSH",outcome="failed"} 1.0' in metrics


async def test_a_gone_subscription_is_not_retried(client, users, settings, push_service, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    token = await with_push_channel(client, users, push_service)
    push_service.statuses = [410]
    await send(client, alice, bob, settings, "one")
    await notifier(client).run_once()
    assert push_service.requests == 1
    assert await redis.zcard(notify_job_keys(redis_prefix)[0]) == 0


async def test_intake_answers_while_the_mail_server_is_down(client, users, settings, mail, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    await add_verified_email(client, bob, token, mail)
    await mail.stop()
    await send(client, alice, bob, settings, "stored anyway")
    # The failed send becomes a retry job; nothing was raised.
    await notifier(client).run_once()
    due = await redis.zrange(notify_job_keys(redis_prefix)[0], 0, -1)
    assert due == [f"new:{bob.address}:EMAIL".encode()]
    resp = await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))
    assert len(await resp.json()) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_auth_is_used_and_its_password_never_logged(serve, ds_settings, vapid, users, caplog) -> None:
    password = "pw-" + "x7" * 8
    server = MailServer(login=("ds", password))
    await server.start()
    try:
        good = notify_settings(server, vapid, smtp_user="ds", smtp_password=password)
        client = await serve(dataclasses.replace(ds_settings, notifications=good))
        bob = users[1]
        await signup(client, bob)
        token = await login(client, bob)
        await add_verified_email(client, bob, token, server)
        # A wrong password: the code email cannot go, 503, and the password appears nowhere.
        bad = notify_settings(server, vapid, smtp_user="ds", smtp_password=password + "-wrong", smtp_timeout=2.0)
        client = await serve(dataclasses.replace(ds_settings, notifications=bad))
        carol = users[2]
        await signup(client, carol)
        token = await login(client, carol)
        await turn_on(client, carol, token)
        caplog.set_level("DEBUG")
        resp = await post(client, f"/notifications/{carol.name}", token,
                          {"recipientValue": "other@mail.test", "notificationChannelType": "EMAIL"})
        assert (resp.status, (await resp.json())["error"]) == (503, "notification_unavailable")
        assert password not in await resp.text()
        assert all(password not in record.getMessage() and password not in str(record.__dict__)
                   for record in caplog.records)
    finally:
        await server.stop()


async def test_otp_wrong_guesses_resend_limit_and_expiry(client, users, mail, redis, redis_prefix, settings) -> None:
    bob = users[1]
    await signup(client, bob)
    token = await login(client, bob)
    resp = await post(client, f"/notifications/{bob.name}", token,
                      {"recipientValue": "bob@mail.test", "notificationChannelType": "EMAIL"})
    assert resp.status == 400 and (await resp.json())["message"] == "Global notifications is off"
    await turn_on(client, bob, token)
    resp = await post(client, f"/notifications/{bob.name}", token,
                      {"recipientValue": "bob@mail.test", "notificationChannelType": "EMAIL"})
    assert resp.status == 200
    code = otp_of(mail)
    ttl = await redis.ttl(otp_key(redis_prefix, bob.address))
    assert 0 < ttl <= settings.notifications.otp_ttl
    # Stored hashed: the code itself is nowhere in Redis.
    assert code.encode() not in json.dumps({k.decode(): v.decode() for k, v in
                                            (await redis.hgetall(otp_key(redis_prefix, bob.address))).items()}).encode()
    # A resend within the interval: 429 with Retry-After.
    resp = await post(client, f"/notifications/otp/{bob.name}", token, {"notificationChannelType": "EMAIL"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"] == "otp_rate_limited"
    wrong = f"{(int(code) + 1) % 100000:05d}"
    errors = []
    for _ in range(settings.notifications.otp_max_attempts):
        resp = await post(client, f"/notifications/otp/verify/{bob.name}", token,
                          {"otp": wrong, "notificationChannelType": "EMAIL"})
        errors.append((resp.status, (await resp.json())["error"]))
    assert errors[:-1] == [(400, "otp_invalid")] * (len(errors) - 1) and errors[-1] == (400, "otp_attempts_exceeded")
    # The right code no longer works: the password is gone.
    resp = await post(client, f"/notifications/otp/verify/{bob.name}", token, {"otp": code, "notificationChannelType": "EMAIL"})
    assert (resp.status, (await resp.json())["error"]) == (400, "otp_missing")
    channels = (await (await client.get(f"/notifications/{bob.name}", headers=bearer(token))).json())["notificationChannels"]
    assert channels[0]["config"]["isVerified"] is False


async def test_notification_routes_need_the_owners_session_and_refuse_bad_input(client, users) -> None:
    alice, bob = users[0], users[1]
    await signup(client, alice)
    await signup(client, bob)
    alice_token = await login(client, alice)
    bob_token = await login(client, bob)
    resp = await client.get(f"/notifications/{bob.name}")
    assert resp.status == 401
    resp = await post(client, f"/notifications/global/{bob.name}", alice_token, {"isEnabled": True})
    assert resp.status == 401
    resp = await post(client, f"/notifications/global/{bob.name}", bob_token, {"isEnabled": "yes"})
    assert (resp.status, (await resp.json())["message"]) == (400, "Invalid value")
    await turn_on(client, bob, bob_token)
    cases = [
        ({"recipientValue": "x", "notificationChannelType": "SMS"}, "invalid_channel_type"),
        ({"recipientValue": "not an address", "notificationChannelType": "EMAIL"}, "invalid_recipient"),
        ({"recipientValue": "{}", "notificationChannelType": "PUSH"}, "invalid_recipient"),
        ({"notificationChannelType": "EMAIL"}, "invalid_recipient"),
    ]
    for body, code in cases:
        resp = await post(client, f"/notifications/{bob.name}", bob_token, body)
        assert (resp.status, (await resp.json())["error"]) == (400, code), body
    resp = await client.delete(f"/notifications/channel/EMAIL/{bob.name}", headers=bearer(bob_token))
    assert (resp.status, (await resp.json())["error"]) == (400, "channel_not_configured")


async def test_push_endpoints_inside_the_network_are_refused(
    serve, ds_settings, mail, vapid, users
) -> None:
    settings = dataclasses.replace(ds_settings, notifications=notify_settings(mail, vapid, allow_private_push=False))
    client = await serve(settings)
    bob = users[1]
    await signup(client, bob)
    token = await login(client, bob)
    await turn_on(client, bob, token)
    keys = {"p256dh": "B" + "A" * 86, "auth": "A" * 22}
    for endpoint in ("http://push.example.com/x", "https://127.0.0.1/x", "https://10.0.0.8/x", "https://[::1]/x"):
        resp = await post(client, f"/notifications/{bob.name}", token, {
            "recipientValue": json.dumps({"endpoint": endpoint, "keys": keys}), "notificationChannelType": "PUSH"})
        assert (resp.status, (await resp.json())["error"]) == (400, "invalid_recipient"), endpoint


async def test_a_channel_type_without_a_sender_is_not_supported(serve, users, ds_settings) -> None:
    plain = await serve(ds_settings)
    bob = users[1]
    await signup(plain, bob)
    token = await login(plain, bob)
    await turn_on(plain, bob, token)
    resp = await post(plain, f"/notifications/{bob.name}", token,
                      {"recipientValue": "bob@mail.test", "notificationChannelType": "EMAIL"})
    assert (resp.status, (await resp.json())["error"]) == (400, "channel_not_supported")


async def test_toggle_and_remove_a_channel(client, users, settings, mail) -> None:
    alice, bob = users[0], users[1]
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    await add_verified_email(client, bob, token, mail)
    resp = await post(client, f"/notifications/channel/{bob.name}", token,
                      {"notificationChannelType": "EMAIL", "isEnabled": False})
    assert resp.status == 200
    await send(client, alice, bob, settings, "while disabled")
    # Intake queued nothing: the account's summary flag is off.
    assert await notifier(client).run_once() == 0
    resp = await client.delete(f"/notifications/channel/EMAIL/{bob.name}", headers=bearer(token))
    assert await resp.json() == {"message": "Notification channel EMAIL has been removed successfully"}
    channels = (await (await client.get(f"/notifications/{bob.name}", headers=bearer(token))).json())["notificationChannels"]
    assert channels == []
    resp = await client.get(f"/notifications/global/{bob.name}", headers=bearer(token))
    assert await resp.json() == {"isEnabled": True}


async def test_the_worker_runs_with_the_app(serve, settings, users, mail) -> None:
    client = await serve(settings, worker=True)
    alice, bob = users[0], users[1]
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    await add_verified_email(client, bob, token, mail)
    mail.arrived.clear()
    await send(client, alice, bob, settings, "hi")
    await asyncio.wait_for(mail.arrived.wait(), 10)
    assert "New message" in mail.messages[-1]["Subject"]


def test_settings_read_from_the_environment() -> None:
    from ensign.config import ConfigError, Env

    private, _ = new_vapid_key()
    env = {"SMTP_HOST": "smtp.example.com", "SMTP_FROM": "ds@example.com", "SMTP_PASSWORD": "hunter2",
           "VAPID_PRIVATE_KEY": private, "VAPID_SUBJECT": "mailto:ops@example.com", "OTP_TTL": "300"}
    settings = NotificationSettings.from_env(Env(env))
    assert settings.email_enabled and settings.push_enabled and settings.otp_ttl == 300
    assert "hunter2" not in repr(settings) and private not in repr(settings)
    with pytest.raises(ConfigError, match="SMTP_FROM"):
        NotificationSettings.from_env(Env({"SMTP_HOST": "smtp.example.com"}))
    with pytest.raises(ConfigError, match="VAPID_PRIVATE_KEY") as info:
        NotificationSettings.from_env(Env({"VAPID_PRIVATE_KEY": "c2VjcmV0", "VAPID_SUBJECT": "mailto:a@b.c"}))
    assert "c2VjcmV0" not in str(info.value)
    assert not NotificationSettings.from_env(Env({})).email_enabled


async def test_notifications_and_admin_on_a_cluster(
    aiohttp_client, cluster_redis, redis_prefix, settings, directory, chain, clock, users, push_service
) -> None:
    from delivery.admin import Admin
    from ensign.config import AdminSettings, RedisSettings

    client = await aiohttp_client(create_app(settings, redis=cluster_redis, directory=directory, chain=chain,
                                             clock=clock, sweep_interval=None, notify_worker=False))
    alice, bob = users[0], users[1]
    await with_push_channel(client, users, push_service)
    await send(client, alice, bob, settings, "on a cluster")
    await notifier(client).run_once()
    assert len(push_service.received) == 1
    admin = Admin(cluster_redis, AdminSettings(redis=RedisSettings(prefix=redis_prefix), operator="ops"), clock=clock)
    assert (await admin.usage(bob.address)).messages == 1
    await admin.suspend(bob.address)
    resp = await client.post("/rpc", json=rpc_submit(envelope(alice, bob, settings, "refused")))
    assert (await resp.json())["error"]["code"] == -32019
    assert await admin.purge(bob.address) == 1
    assert [e["action"] for e in await admin.audit()] == ["usage", "suspend", "purge"]


async def test_a_job_that_cannot_be_handled_is_dropped_not_repeated(client, users, redis, redis_prefix, clock) -> None:
    bob = users[1]
    await signup(client, bob)
    # A corrupt channel record (written behind the service's back) makes the job fail.
    await redis.hset(account_key(redis_prefix, bob.address), mapping={"notify": "1", "notify:global": "1",
                                                                      "notify:EMAIL": "not json"})
    await notifier(client).jobs.add(f"new:{bob.address}", {"account": bob.address, "channel": None, "attempt": 0},
                                    clock())
    assert await notifier(client).run_once() == 1
    clock.advance(3600)
    assert await notifier(client).run_once() == 0
