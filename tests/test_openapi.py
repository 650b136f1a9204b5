"""``specs/openapi.yaml`` against the three running services.

* The document is valid OpenAPI 3.1 (``openapi-spec-validator``).
* Routes, both ways: each service's app, built with its production ``create_app``, serves exactly
  the (method, path) pairs the document gives that service (``tags``), after normalising
  aiohttp's ``{name}`` patterns and trailing slashes. HEAD routes aiohttp adds for every GET and
  the socket.io transport (described in ``specs/delivery.md`` §6, not as HTTP) are left out.
* Every operation lists exactly its services' servers.
* Every example (parameters, request and response bodies, schema ``examples``) validates against
  its schema (JSON Schema 2020-12, plus ``contentSchema`` of JSON strings and JWT claims).
* The examples are real: every request example is sent to the production apps — backend on the
  real Redis, gateway reading the backend over HTTP, delivery service with the example wallets
  published in a stand-in ENS — in a flow that succeeds step by step; each answer's status is
  documented for the operation and its body validates against the documented schema. A few
  refusals are checked the same way (documented status, error code in the documented enum).

The example wallets and keys are throwaway values derived here from fixed labels (``_seed``), so
the document's signatures, profiles and tokens can be re-made and checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_account import Account as EthAccount
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from backend.app import create_app as create_backend
from delivery.app import create_app as create_delivery
from ensign.config import (
    BackendSettings,
    DeliveryKeys,
    DeliverySettings,
    GatewaySettings,
    NotificationSettings,
    RedisSettings,
    StorageSettings,
)
from ensign.protocol.crypto import (
    encryption_key_pair_from_seed,
    signing_key_pair_from_seed,
)
from ensign.protocol.keys import profile_keys_from_wallet
from ensign.protocol.models import UserProfile
from ensign.protocol.multi import build_multi_envelope, create_multi_message, deterministic_bytes
from ensign.protocol.profile import sign_profile
from ensign.protocol.revocation import RevokedKey, sign_revocations
from resolver.gateway import create_app as create_gateway
from tests.delivery.ds_helpers import Clock, MemoryChain, MemoryDirectory, User

SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "openapi.yaml"
SPEC_URI = "urn:ensign:openapi"
SERVICES = ("backend", "gateway", "delivery")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Served by the delivery app but not an HTTP API: socket.io's Engine.IO transport.
NOT_HTTP_DESCRIBED = ("/socket.io",)

# -- the example wallets and keys ----------------------------------------------------------------

ALIAS = "alice.user.ensign.eth"
BOB_ALIAS = "bob.user.ensign.eth"
#: The delivery service's clock in the examples: 60 s after the createAccount example was signed.
EXAMPLE_CLOCK = 1_767_225_600 + 60
EXAMPLE_DS_URL = "http://127.0.0.1:8083"


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def example_user(name: str) -> User:
    """The example wallet ``name``: private key sha256("ensign openapi example wallet: <name>")."""
    private_key = "0x" + _seed(f"ensign openapi example wallet: {name}").hex()
    keys = profile_keys_from_wallet(private_key)
    profile = sign_profile(
        private_key, UserProfile(keys.encryption.public_key, keys.signing.public_key, ("ds.ensign.eth",))
    )
    return User(private_key, EthAccount.from_key(private_key).address, keys, profile)


EXAMPLE_JWT_SECRET = hashlib.sha256(b"ensign openapi example JWT secret").hexdigest()


def example_backend_settings(prefix: str) -> BackendSettings:
    """The backend the examples were made against: its storage sessions use the example secret
    (the delivery service's, so one signed challenge example redeems on both; in production each
    service has its own)."""
    return BackendSettings(redis=RedisSettings(prefix=prefix), storage=StorageSettings(jwt_secret=EXAMPLE_JWT_SECRET))


def example_delivery_settings(prefix: str) -> DeliverySettings:
    """The delivery service the examples were made against (its keys and JWT secret are examples)."""
    signing = signing_key_pair_from_seed(_seed("ensign openapi example: delivery service signing key"))
    encryption = encryption_key_pair_from_seed(_seed("ensign openapi example: delivery service encryption key"))
    return DeliverySettings(
        keys=DeliveryKeys(signing.public_key, signing.secret_key, encryption.public_key, encryption.secret_key),
        jwt_secret=EXAMPLE_JWT_SECRET,
        url=EXAMPLE_DS_URL,
        redis=RedisSettings(prefix=prefix),
        # Web push is offered (a VAPID key from a fixed label); email is not (no SMTP server).
        notifications=NotificationSettings(
            vapid_private_key=base64.urlsafe_b64encode(_seed("ensign openapi example: VAPID key")).decode().rstrip("="),
            vapid_subject="mailto:ops@example.com",
        ),
    )


# -- reading the document ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return document


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def pointer(*parts: str) -> str:
    """A JSON pointer into the document."""
    return "".join("/" + _escape(p) for p in parts)


def resolve(spec: dict[str, Any], obj: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """Follow a local ``$ref`` (parameters, responses); return the object and its pointer."""
    while "$ref" in obj:
        ref = obj["$ref"]
        assert ref.startswith("#/"), f"{where}: only local references are used, got {ref}"
        where = ref[1:]
        obj = spec
        for part in where.split("/")[1:]:
            obj = obj[part.replace("~1", "/").replace("~0", "~")]
    return obj, where


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    obj: dict[str, Any] = field(hash=False, compare=False)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self.obj.get("tags", ()))

    @property
    def where(self) -> str:
        return pointer("paths", self.path, self.method)


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield Operation(path, method, item[method])


def operation(spec: dict[str, Any], method: str, path: str) -> Operation:
    return Operation(path, method, spec["paths"][path][method])


def parameters(spec: dict[str, Any], op: Operation) -> list[tuple[dict[str, Any], str]]:
    """The operation's parameters (path-item level and its own), resolved, with their pointers."""
    out = []
    item = spec["paths"][op.path]
    for level, base in ((item, pointer("paths", op.path)), (op.obj, op.where)):
        for index, param in enumerate(level.get("parameters", [])):
            out.append(resolve(spec, param, f"{base}/parameters/{index}"))
    return out


# -- JSON Schema validation -------------------------------------------------------------------------


def _content_schema(validator: Any, content_schema: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """``contentSchema`` of a JSON string (a JSON-RPC result, an envelope in ``params``) is checked,
    not only annotated: the string must be JSON and its value valid."""
    if schema.get("contentMediaType") != "application/json" or not isinstance(instance, str):
        return
    try:
        decoded = json.loads(instance)
    except ValueError:
        yield jsonschema.ValidationError(f"{instance[:40]!r}… is not JSON text")
        return
    yield from validator.descend(decoded, content_schema)


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"contentSchema": _content_schema})


class Schemas:
    """Validators for schemas anywhere in the document, by JSON pointer (``$ref``s resolve)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(SPEC_URI, resource)

    def errors(self, schema_pointer: str, instance: Any) -> list[str]:
        validator = _Validator(
            {"$ref": f"{SPEC_URI}#{schema_pointer}"},
            registry=self._registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in validator.iter_errors(instance)]


@pytest.fixture(scope="module")
def schemas(spec: dict[str, Any]) -> Schemas:
    return Schemas(spec)


# -- the apps' routes ---------------------------------------------------------------------------------


def normalise(path: str) -> str:
    """``/a/{x}/b/`` → ``/a/{}/b``: parameter names and trailing slashes do not distinguish routes."""
    path = re.sub(r"\{[^}]*\}", "{}", path)
    return path.rstrip("/") or "/"


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, normalised path) of every route of ``app``, without the HEAD routes aiohttp adds
    for each GET and without the socket.io transport."""
    pairs = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        canonical = resource.canonical
        if canonical.startswith(NOT_HTTP_DESCRIBED):
            continue
        pairs.add((route.method.lower(), normalise(canonical)))
    return {(m, p) for m, p in pairs if not (m == "head" and ("get", p) in pairs)}


def documented_routes(spec: dict[str, Any], service: str) -> set[tuple[str, str]]:
    return {(op.method, normalise(op.path)) for op in operations(spec) if service in op.services}


async def production_apps(redis_url: str) -> tuple[dict[str, list[web.Application]], Callable[[], Any]]:
    """Each service's app from its production factory (the gateway with and without the dev batch
    handler), not started. Returns the apps and a coroutine function closing what they hold."""
    redis = aioredis.from_url(redis_url)
    signer = "0x" + _seed("ensign openapi example gateway signer").hex()
    apps = {
        "backend": [create_backend(BackendSettings(redis=RedisSettings(url=redis_url)))],
        "gateway": [
            create_gateway(GatewaySettings(signer_key=signer)),
            create_gateway(GatewaySettings(signer_key=signer), batch_gateway=True),
        ],
        "delivery": [
            create_delivery(
                example_delivery_settings("openapi:"), redis=redis, directory=MemoryDirectory(), chain=MemoryChain(),
                sweep_interval=None,
            )
        ],
    }
    return apps, redis.aclose


# -- static checks ---------------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate_openapi(spec)


def test_document_names_the_socket_io_interface_it_does_not_describe(spec: dict[str, Any]) -> None:
    description = spec["info"]["description"]
    assert "socket.io" in description and "specs/delivery.md" in description


def test_operation_ids_are_unique_and_every_operation_has_a_known_service(spec: dict[str, Any]) -> None:
    ids = [op.obj["operationId"] for op in operations(spec)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for op in operations(spec):
        assert op.services and set(op.services) <= set(SERVICES), f"{op.where}: tags {op.services}"


async def test_every_route_is_documented_and_every_documented_route_is_served(
    spec: dict[str, Any], redis_url: str
) -> None:
    apps, close = await production_apps(redis_url)
    try:
        for service in SERVICES:
            documented = documented_routes(spec, service)
            for app in apps[service]:
                served = served_routes(app)
                assert served - documented == set(), f"{service}: routes served but not documented"
                assert documented - served == set(), f"{service}: routes documented but not served"
    finally:
        await close()


def test_each_operation_lists_the_servers_of_its_services(spec: dict[str, Any]) -> None:
    # The root servers' descriptions start with the service name ("backend — …").
    by_url = {server["url"]: server["description"].split(" ", 1)[0] for server in spec["servers"]}
    assert sorted(by_url.values()) == sorted(SERVICES)
    for op in operations(spec):
        servers = op.obj.get("servers") or spec["paths"][op.path].get("servers")
        assert servers, f"{op.where}: no servers named"
        assert sorted(by_url[s["url"]] for s in servers) == sorted(op.services), op.where


def test_error_responses_are_the_error_body(spec: dict[str, Any]) -> None:
    """Every 4xx/5xx JSON answer is ``Error`` (``POST /rpc``: a JSON-RPC error object)."""
    for op in operations(spec):
        expected = "#/components/schemas/RpcError" if op.path == "/rpc" else "#/components/schemas/Error"
        for status, response in op.obj["responses"].items():
            if int(status) < 400:
                continue
            response, where = resolve(spec, response, f"{op.where}/responses/{status}")
            schema = response["content"]["application/json"]["schema"]
            refs = json.dumps(schema)
            assert expected in refs, f"{where}: {schema}"


def _examples(spec: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, schema pointer, example) for every example in the document."""
    seen: set[str] = set()

    def media(content: dict[str, Any], base: str) -> Iterator[tuple[str, str, Any]]:
        for media_type, body in content.items():
            where = f"{base}/content/{_escape(media_type)}"
            yield from examples_of(body, where, f"{where}/schema")

    def examples_of(obj: dict[str, Any], where: str, schema_at: str) -> Iterator[tuple[str, str, Any]]:
        if "example" in obj:
            yield f"{where}/example", schema_at, obj["example"]
        for name, example in obj.get("examples", {}).items():
            yield f"{where}/examples/{name}", schema_at, example["value"]

    for op in operations(spec):
        for param, where in parameters(spec, op):
            if where not in seen:
                seen.add(where)
                yield from examples_of(param, where, f"{where}/schema")
        if "requestBody" in op.obj:
            yield from media(op.obj["requestBody"]["content"], f"{op.where}/requestBody")
        for status, response in op.obj["responses"].items():
            response, where = resolve(spec, response, f"{op.where}/responses/{status}")
            if where not in seen:
                seen.add(where)
                yield from media(response.get("content", {}), where)

    def schema_examples(node: Any, where: str) -> Iterator[tuple[str, str, Any]]:
        if isinstance(node, dict):
            if isinstance(node.get("examples"), list):
                for index, example in enumerate(node["examples"]):
                    yield f"{where}/examples/{index}", where, example
            for key, value in node.items():
                yield from schema_examples(value, f"{where}/{_escape(key)}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from schema_examples(value, f"{where}/{index}")

    yield from schema_examples(spec["components"]["schemas"], "/components/schemas")


def test_every_example_validates_against_its_schema(spec: dict[str, Any], schemas: Schemas) -> None:
    checked = 0
    for where, schema_at, example in _examples(spec):
        assert schemas.errors(schema_at, example) == [], where
        checked += 1
    # Every operation with a body has an example, so there are many; a walk that found few is broken.
    assert checked >= 60, checked


def test_every_request_body_and_path_parameter_has_an_example(spec: dict[str, Any]) -> None:
    for op in operations(spec):
        for media_type, body in op.obj.get("requestBody", {}).get("content", {}).items():
            assert body.get("examples") or "example" in body, f"{op.where} {media_type}"
        for param, where in parameters(spec, op):
            if param["in"] == "path":
                assert "example" in param or param.get("examples"), where


def _jwt_claims(token: str) -> Any:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_multi_recipient_example_is_made_from_the_example_keys(spec: dict[str, Any]) -> None:
    """bob's ``ensign_submitMultiMessage`` example, re-made: to alice and to himself, its random
    bytes drawn from a fixed label (as only test vectors may)."""
    alice, bob = example_user("alice"), example_user("bob")
    message = create_multi_message([ALIAS, BOB_ALIAS], BOB_ALIAS, "hello alice, and a note to myself",
                                   bob.keys.signing.secret_key, timestamp=1_767_225_600_000)
    envelope = build_multi_envelope(
        message, bob.keys.signing.secret_key,
        {ALIAS: alice.keys.encryption.public_key, BOB_ALIAS: bob.keys.encryption.public_key},
        example_delivery_settings("").keys.encryption_public_key,
        random_bytes=deterministic_bytes(b"ensign openapi example: multi-recipient envelope"),
    )
    example = spec["paths"]["/rpc"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert example["submitMultiMessage"]["value"]["params"] == [envelope.to_json()]


def test_token_examples_carry_the_documented_claims(spec: dict[str, Any], schemas: Schemas) -> None:
    auth = spec["paths"]["/auth/{ensName}"]
    challenge = auth["get"]["responses"]["200"]["content"]["application/json"]["example"]
    session = auth["post"]["responses"]["200"]["content"]["application/json"]["example"]
    assert schemas.errors("/components/schemas/ChallengeClaims", _jwt_claims(challenge)) == []
    assert schemas.errors("/components/schemas/SessionClaims", _jwt_claims(session)) == []
    assert schemas.errors("/components/schemas/SessionClaims", _jwt_claims(challenge)) != []


def test_schemas_refuse_what_the_services_refuse(schemas: Schemas) -> None:
    """The schemas are not vacuous: a few bodies each service refuses are invalid here too."""
    alice = example_user("alice")
    profile = alice.profile.to_json()
    register = {"signedUserProfile": profile, "address": alice.address, "subdomain": "addr.ensign.eth"}
    assert schemas.errors("/components/schemas/RegisterProfileRequest", register) == []
    assert schemas.errors("/components/schemas/RegisterProfileRequest", {**register, "extra": 1}) != []
    short_key = {**profile, "profile": {**profile["profile"], "publicSigningKey": "AAAA"}}
    assert schemas.errors("/components/schemas/SignedUserProfile", short_key) != []
    assert schemas.errors("/components/schemas/AccountSettings", {"messageTTL": 59}) != []
    assert schemas.errors("/components/schemas/AccountSettings", {"unknown": 1}) != []
    delete = alice.signed("deleteAccount", 1, name=ALIAS, settings={})
    assert schemas.errors("/components/schemas/DeleteAccountRequest", delete) != []
    assert schemas.errors("/components/schemas/RpcCall", {"method": "dm3_getProfileExtension", "params": []}) != []
    assert schemas.errors("/components/schemas/RpcCall", {"method": "dm3_submitMessage", "params": ["{}"]}) != []


# -- the examples against the running apps ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request of the flow.

    A documented example: ``example`` names the request-body example (``None``: no body), the URL
    comes from the parameters' examples. A refusal: ``url`` and ``body`` are given.
    """

    service: str
    method: str
    path: str
    example: str | None = None
    status: int = 200
    url: str | None = None
    body: Any = None
    check: Callable[[Any], bool] | None = None
    #: Sets the backend's clock before the step (seconds). The backend starts 60 s before the
    #: examples' time (alice's profile is registered when her delivery account was created, the
    #: ``gen`` of the challenge example both services redeem).
    backend_clock: float | None = None


SENDER = "0x5404e7Eb5f9279af7D2A305f46E1baBA5DCACAC1"  # the resolver address of the gateway examples

FLOW: tuple[Step, ...] = (
    Step("backend", "get", "/health"),
    Step("backend", "post", "/profile/address", "alice", check=lambda b: b["status"] == "created"),
    Step("backend", "post", "/profile/address", "bob", check=lambda b: b["status"] == "created"),
    Step("backend", "get", "/profile/{addressOrName}"),
    Step("backend", "post", "/profile/name", "dm3", check=lambda b: b["status"] == "claimed"),
    # An hour after the examples were signed, the timestamped claim is outside its window.
    Step("backend", "post", "/profile/name", "timestamped", 400, check=lambda b: b["error"] == "stale_timestamp",
         backend_clock=EXAMPLE_CLOCK + 3600),
    Step("backend", "get", "/profile/name/{address}", check=lambda b: b["name"] == ALIAS),
    Step("backend", "get", "/profile/by-name/{name}"),
    # The user's storage, logged in with alice's alias while she holds it.
    Step("backend", "post", "/profile/{addressOrName}", "alice", backend_clock=EXAMPLE_CLOCK),
    Step("backend", "get", "/auth/{ensName}"),
    Step("backend", "post", "/auth/{ensName}", "signed"),
    Step("backend", "put", "/storage/docs/{ensName}/{namespace}/{key}", "first"),
    Step("backend", "put", "/storage/docs/{ensName}/{namespace}/{key}", "next"),
    Step("backend", "put", "/storage/docs/{ensName}/{namespace}/{key}", "first", 409,
         check=lambda b: b["error"] == "revision_exists"),
    Step("backend", "get", "/storage/docs/{ensName}/{namespace}/{key}"),
    Step("backend", "get", "/storage/docs/{ensName}/{namespace}", check=lambda b: len(b["documents"]) == 1),
    Step("backend", "get", "/storage/docs/{ensName}/{namespace}/{key}/history", check=lambda b: b["total"] == 2),
    Step("backend", "get", "/storage/docs/{ensName}/{namespace}/{key}/revisions/{rev}"),
    Step("backend", "post", "/storage/docs/{ensName}/{namespace}/{key}/revisions/{rev}/cosignatures", "notary",
         check=lambda b: b["status"] == "added"),
    Step("backend", "post", "/storage/grants/{ensName}", "bob", check=lambda b: b["status"] == "added"),
    Step("backend", "get", "/storage/grants/{ensName}/to/{readerName}", check=lambda b: len(b["grants"]) == 1),
    Step("backend", "delete", "/storage/grants/{ensName}/{grantId}"),
    Step("backend", "post", "/storage/grants/{ensName}", "bob", 409, check=lambda b: b["error"] == "grant_revoked"),
    Step("backend", "put", "/storage/blobs/{ensName}/{hash}", check=lambda b: b["status"] == "stored"),
    Step("backend", "get", "/storage/blobs/{ensName}/{hash}", check=lambda b: b == ""),
    Step("backend", "delete", "/storage/blobs/{ensName}/{hash}"),
    Step("backend", "put", "/storage/blobs/{ensName}/{hash}", status=400,
         url=f"/storage/blobs/{ALIAS}/0x{'00' * 32}", body=b"not the named content"),
    Step("backend", "get", "/storage/usage/{ensName}"),
    Step("backend", "post", "/storage/new/{ensName}/addConversation", "dm3", check=lambda b: b["status"] == "created"),
    Step("backend", "post", "/storage/new/{ensName}/addMessage", "dm3"),
    Step("backend", "post", "/storage/new/{ensName}/addMessageBatch", "dm3"),
    Step("backend", "post", "/storage/new/{ensName}/addMessage", "dm3", 400,
         check=lambda b: b["error"] == "duplicate_message"),
    Step("backend", "post", "/storage/new/{ensName}/editMessageBatch", "dm3"),
    Step("backend", "get", "/storage/new/{ensName}/getConversations", check=lambda b: len(b) == 1),
    Step("backend", "get", "/storage/new/{ensName}/getMessages/{encryptedContactName}", check=lambda b: len(b) == 3),
    Step("backend", "get", "/storage/new/{ensName}/getNumberOfMessages/{encryptedContactName}", check=lambda b: b == 3),
    Step("backend", "get", "/storage/new/{ensName}/getNumberOfConversations", check=lambda b: b == 1),
    Step("backend", "get", "/storage/new/{ensName}/getHaltedMessages", check=lambda b: len(b) == 1),
    Step("backend", "post", "/storage/new/{ensName}/clearHaltedMessage", "dm3"),
    Step("backend", "post", "/storage/new/{ensName}/toggleHideConversation", "dm3",
         check=lambda b: b["status"] == "no_conversation"),
    Step("backend", "get", "/storage/new/{ensName}/getConversations", status=400,
         url=f"/storage/new/{ALIAS}/getConversations?pageSize=0"),
    Step("backend", "post", "/revocations/{address}", "alice", check=lambda b: b["status"] == "stored"),
    Step("backend", "get", "/revocations/{address}", check=lambda b: len(b["revoked"]) == 1),
    # A list that leaves out the stored entry (an older one, replayed) is refused.
    Step("backend", "post", "/revocations/{address}", status=409, url=f"/revocations/{example_user('alice').address}",
         body=sign_revocations(example_user("alice").private_key, [RevokedKey("A" * 43 + "=", 1)]).to_json(),
         check=lambda b: b["error"] == "revocation_dropped"),
    Step("backend", "get", "/records/{name}"),
    Step("gateway", "get", "/health"),
    Step("gateway", "get", "/{sender}/{data}"),
    Step("gateway", "post", "/", "text"),
    Step("gateway", "get", "/metrics"),
    Step("backend", "get", "/metrics"),
    Step("backend", "post", "/profile/deleteName", "dm3", check=lambda b: b["status"] == "released"),
    Step("delivery", "get", "/health"),
    Step("delivery", "get", "/hello"),
    Step("delivery", "get", "/metrics"),
    Step("delivery", "post", "/account/{ensName}", "create", 201),
    Step("delivery", "get", "/profile/{addressOrName}"),
    Step("delivery", "post", "/profile/{addressOrName}", "alice"),
    Step("delivery", "get", "/auth/{ensName}"),
    Step("delivery", "post", "/auth/{ensName}", "signed"),
    Step("delivery", "get", "/account/{ensName}"),
    Step("delivery", "put", "/account/{ensName}/settings", "limits"),
    Step("delivery", "post", "/account/{ensName}/settings", "update"),
    Step("delivery", "post", "/rpc", "getDeliveryServiceProperties"),
    Step("delivery", "post", "/rpc", "getProfileExtension"),
    Step("delivery", "post", "/rpc", "submitMessage", check=lambda b: b["result"] == "OK"),
    Step("delivery", "post", "/rpc", "submitMessageObject", check=lambda b: b["result"] == "OK"),
    Step("delivery", "get", "/delivery/messages/incoming/{ensName}", check=lambda b: len(b) == 1),
    Step("delivery", "post", "/delivery/messages/{ensName}/syncAcknowledgements/", "one",
         check=lambda b: b == {"acknowledged": 1}),
    Step("delivery", "post", "/rpc", "submitMultiMessage",
         check=lambda b: [r["status"] for r in b["result"]["recipients"]] == ["stored", "refused"]),
    # Notifications, after the messages: no message arrives while alice has a channel, so the
    # example push endpoint (not reachable from a test) is never called.
    Step("delivery", "post", "/notifications/global/{ensName}", "on", check=lambda b: b == "OK"),
    Step("delivery", "get", "/notifications/global/{ensName}", check=lambda b: b == {"isEnabled": True}),
    Step("delivery", "post", "/notifications/{ensName}", "push", check=lambda b: b == "OK"),
    Step("delivery", "post", "/notifications/{ensName}", "email", 400, check=lambda b: b["error"] == "channel_not_supported"),
    Step("delivery", "get", "/notifications/{ensName}", check=lambda b: b["notificationChannels"][0]["config"]["isVerified"]),
    Step("delivery", "post", "/notifications/channel/{ensName}", "off", check=lambda b: b == "OK"),
    Step("delivery", "post", "/notifications/otp/{ensName}", "email", 400, check=lambda b: b["error"] == "channel_not_configured"),
    Step("delivery", "post", "/notifications/otp/verify/{ensName}", "email", 400,
         check=lambda b: b["error"] == "channel_not_configured"),
    Step("delivery", "delete", "/notifications/channel/{channelType}/{ensName}"),
    # Refusals: documented statuses, codes in the documented enums.
    Step("backend", "get", "/profile/{addressOrName}", status=400, url="/profile/0x123"),
    Step("backend", "post", "/profile/address", status=400, url="/profile/address", body={}),
    Step("backend", "post", "/profile/name", status=404, url="/profile/name",
         body={"signature": "A" * 86 + "==", "addressName": "nobody.user.ensign.eth", "dm3Name": "carol.user.ensign.eth"}),
    Step("backend", "get", "/records/{name}", status=404, url="/records/nobody.user.ensign.eth"),
    Step("gateway", "get", "/{sender}/{data}", status=400, url="/0x12/0x1234.json"),
    Step("gateway", "get", "/{sender}/{data}", status=404, url=f"/{SENDER}/0x12345678.json"),
    Step("gateway", "post", "/", status=400, url="/", body={"sender": SENDER}),
    Step("delivery", "get", "/auth/{ensName}", status=404, url="/auth/nobody.user.ensign.eth"),
    Step("delivery", "get", "/delivery/messages/incoming/{ensName}", status=400, url=f"/delivery/messages/incoming/{ALIAS}/?limit=0"),
    Step("delivery", "post", "/account/{ensName}/settings", "update", 409,
         check=lambda b: b["error"] == "replayed_message"),
    Step("delivery", "post", "/rpc", status=405, url="/rpc", body={"jsonrpc": "2.0", "id": 9, "method": "dm3_nope"}),
    Step("delivery", "post", "/rpc", status=400, url="/rpc", body=b"not json"),
    Step("delivery", "post", "/rpc", status=404, url="/rpc",
         body={"jsonrpc": "2.0", "id": 5, "method": "dm3_getProfileExtension", "params": ["nobody.user.ensign.eth"]}),
    # The device list: read (none yet), then set by the wallet, which ends alice's session made
    # without a device.
    Step("delivery", "get", "/account/{ensName}/devices", check=lambda b: b["devices"] == []),
    Step("delivery", "put", "/account/{ensName}/devices", "laptop", check=lambda b: len(b["devices"]) == 2),
    Step("delivery", "get", "/account/{ensName}/devices", status=401, check=lambda b: b["error"] == "session_stale"),
    # Last: the account goes, and its session token with it; then the wallet re-creates it.
    Step("delivery", "delete", "/account/{ensName}", "delete"),
    Step("delivery", "get", "/account/{ensName}", status=401, check=lambda b: b["error"] == "session_stale"),
    Step("delivery", "post", "/account/{ensName}/binding", "recreate", 201, check=lambda b: b["origin"] == "wallet"),
)


def test_the_flow_sends_every_request_example_and_every_operation(spec: dict[str, Any]) -> None:
    sent = {(s.service, s.method, s.path, s.example) for s in FLOW if s.url is None}
    for op in operations(spec):
        names = list(op.obj.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {}))
        for service in op.services:
            for name in names or [None]:
                assert (service, op.method, op.path, name) in sent, f"{service} {op.method} {op.path} {name}"


def _url(spec: dict[str, Any], op: Operation, service: str) -> str:
    path = op.path
    for param, where in parameters(spec, op):
        if param["in"] != "path":
            continue
        value = param["examples"][service]["value"] if "examples" in param else param["example"]
        path = path.replace("{" + param["name"] + "}", str(value))
    return path


def _body(op: Operation, example: str | None) -> Any:
    if example is None:
        return None
    return op.obj["requestBody"]["content"]["application/json"]["examples"][example]["value"]


def _check_answer(spec: dict[str, Any], schemas: Schemas, op: Operation, step: Step, status: int,
                  content_type: str, text: str) -> Any:
    where = f"{step.service} {step.method.upper()} {step.url or op.path} ({step.example})"
    assert status == step.status, f"{where}: {status} {text[:500]}"
    responses = op.obj["responses"]
    assert str(status) in responses, f"{where}: status {status} is not documented"
    response, at = resolve(spec, responses[str(status)], f"{op.where}/responses/{status}")
    media_type = content_type.split(";")[0].strip()
    assert media_type in response.get("content", {}), f"{where}: {media_type} is not documented for {status}"
    body: Any = json.loads(text) if media_type == "application/json" else text
    assert schemas.errors(f"{at}/content/{_escape(media_type)}/schema", body) == [], where
    if step.check is not None:
        assert step.check(body), f"{where}: {text[:500]}"
    return body


async def test_the_examples_against_the_running_apps(
    spec: dict[str, Any], schemas: Schemas, redis: aioredis.Redis, redis_prefix: str
) -> None:
    alice, bob = example_user("alice"), example_user("bob")
    directory = MemoryDirectory()
    directory.add(alice, ALIAS)
    directory.add(bob, BOB_ALIAS)
    # bob passes the spam rules of alice's updateSettings example.
    chain = MemoryChain(nonces={bob.address: 3}, balances={bob.address: 10**18})
    backend_clock = Clock(EXAMPLE_CLOCK - 60)
    backend = TestServer(
        create_backend(example_backend_settings(redis_prefix + "backend:"), redis=redis, clock=backend_clock),
        host="127.0.0.1",
    )
    await backend.start_server()
    servers = {"backend": backend}
    try:
        signer = "0x" + _seed("ensign openapi example gateway signer").hex()
        servers["gateway"] = TestServer(
            create_gateway(GatewaySettings(signer_key=signer, backend_url=str(backend.make_url("/")))), host="127.0.0.1"
        )
        servers["delivery"] = TestServer(
            create_delivery(
                example_delivery_settings(redis_prefix + "delivery:"), redis=redis, directory=directory, chain=chain,
                clock=Clock(EXAMPLE_CLOCK), sweep_interval=None,
            ),
            host="127.0.0.1",
        )
        await servers["gateway"].start_server()
        await servers["delivery"].start_server()
        tokens: dict[str, str] = {}
        async with aiohttp.ClientSession() as http:
            for step in FLOW:
                if step.backend_clock is not None:
                    backend_clock.now = step.backend_clock
                op = operation(spec, step.method, step.path)
                url = step.url or _url(spec, op, step.service)
                body = step.body if step.url is not None else _body(op, step.example)
                headers = {}
                if op.obj.get("security") and step.service in tokens:
                    headers["Authorization"] = f"Bearer {tokens[step.service]}"
                kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
                if body is None:
                    kwargs = {}
                async with http.request(
                    step.method.upper(), servers[step.service].make_url(url), headers=headers, **kwargs
                ) as response:
                    text = await response.text()
                    answer = _check_answer(spec, schemas, op, step, response.status, response.content_type, text)
                if op.obj["operationId"] == "redeemChallenge" and response.status == 200:
                    tokens[step.service] = answer
        assert set(tokens) == {"backend", "delivery"}
    finally:
        for server in servers.values():
            await server.close()
