"""Forwarding: handing an envelope on to the receiver's next delivery service, and taking one in.

A receiver's profile lists its delivery services in order. When an envelope arrives for a
receiver without an account here (intake step 4), and after its sender was verified and its rate
limits taken (steps 5 and 8, so nobody makes this service call out with unsigned junk),
:meth:`Forwarder.forward` hands it on to the services the profile lists *after* this one, in
order, at most ``FORWARD_MAX_SERVICES`` of them, until one stores it:

* each service's profile (keys and URL) comes from ENS, as for the SDK
  (``Directory.delivery_service_profile``); its URL must obey the same rule as profile links
  (https and public hosts, except on the embedded dev chain: :func:`ensign.ens.lookup.check_url`);
* the envelope goes unchanged, with a note (:mod:`ensign.protocol.forwarding`) signed by this
  service, over JSON-RPC ``ensign_forwardMessage`` ``[envelope, note]``, given
  ``FORWARD_TIMEOUT`` seconds; redirects are not followed, answers are read up to 64 KiB;
* at most ``RATE_FORWARD`` calls go to any one service (a token bucket per service name in
  :mod:`delivery.limits`): past it the service is skipped — *limited*, next — so nobody can point
  this service at one host through many senders;
* the answer decides: ``result`` — *forwarded*, done; 404 ``receiver_without_account`` —
  *no_account*, next; any other 404, a 5xx, a redirect or a 2xx without ``result`` — *failed*,
  next; no connection or no answer in time
  — *unreachable*, next; the service cannot be found in ENS or its URL is not allowed —
  *unresolved*, next; any other refusal (spam, size, rate, …) — *refused*, stop (the sender
  hears it from that service when it tries it itself, as dm3 clients and the SDK do).

Taking one in (:meth:`Forwarder.accept`, intake step 4 of a forwarded envelope): the note must be
for this service, must not hold this service in its path (a loop), may hold one service only
(:data:`MAX_HOPS`: only envelopes submitted directly are handed on, so the first service walks the
whole list itself), that service must be listed before this one in the receiver's profile, and
the note must verify with the signing key of that service's ENS profile. Only the service that
stores the envelope postmarks it; a forwarder stores and postmarks nothing.

A multi-recipient envelope goes the same way, one call per next service carrying the receivers it
is for (:meth:`Forwarder.attempt_multi`, ``ensign_forwardMultiMessage``, driven by
:mod:`delivery.multi_forwarding`); taking one in, the note's checks are made once
(:meth:`Forwarder.check_path`, :meth:`Forwarder.check_signature`) and the receiver's order per
receiver (:meth:`Forwarder.check_listed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from ensign.config import DeliverySettings
from ensign.ens.fetch import read_capped
from ensign.ens.lookup import LinkPolicy, check_url, is_non_public_host_error, policy_session
from ensign.errors import EncodingError, EnsignError, InvalidRequest, NotFound, ServiceUnavailable, SignatureError
from ensign.protocol.canonical import parse_json
from ensign.protocol.crypto import EncryptionKeyPair
from ensign.protocol.encoding import normalize_name
from ensign.protocol.forwarding import Forwarding, build_forwarding, build_multi_forwarding, verify_forwarding
from ensign.protocol.models import EncryptionEnvelop
from ensign.protocol.multi import MultiEnvelope

from .errors import ForwardingRefused, RateLimited
from .limits import RateLimiter
from .metrics import DeliveryMetrics
from .ports import Directory, ResolvedProfile

__all__ = ["FORWARD_METHOD", "FORWARD_MULTI_METHOD", "MAX_HOPS", "ForwardAttempt", "ForwardOutcome", "Forwarder"]

log = logging.getLogger(__name__)

#: The JSON-RPC method a service hands an envelope on with.
FORWARD_METHOD = "ensign_forwardMessage"
#: The one for a multi-recipient envelope, its note naming the receivers (:mod:`delivery.multi_forwarding`).
FORWARD_MULTI_METHOD = "ensign_forwardMultiMessage"
#: Services a forwarded envelope may have passed through: one, the service it was submitted to.
MAX_HOPS = 1
#: Largest answer read from the next service.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class ForwardAttempt:
    """One service tried: its name, the outcome (module docstring) and what it answered."""

    service: str
    outcome: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"deliveryService": self.service, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class ForwardOutcome:
    """Where the envelope went (``None``: nowhere) and every attempt, in order."""

    delivered_to: str | None
    attempts: tuple[ForwardAttempt, ...]


class Forwarder:
    """Hands envelopes on to the receiver's next delivery services and checks those handed here.

    :param settings: this service's name, keys and ``forwarding`` limits.
    :param directory: ENS lookups (the receiver's services' profiles).
    :param metrics: ``ensign_ds_forwards_total{outcome}`` is counted per attempt.
    :param policy: which service URLs may be called (https and public hosts in production).
    :param session: the HTTP session to call with; without one the forwarder opens its own on first
        use (under ``policy``) and :meth:`aclose` closes it.
    :param limiter: the token buckets of ``RATE_FORWARD`` (per next service); ``None``: no such limit.
    """

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        directory: Directory,
        metrics: DeliveryMetrics,
        policy: LinkPolicy,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._settings = settings.forwarding
        self._name = normalize_name(settings.name)
        self._directory = directory
        self._metrics = metrics
        self._policy = policy
        self._session = session
        self._own_session = session is None
        self._limiter = limiter
        self._keys = EncryptionKeyPair(
            public_key=settings.keys.encryption_public_key, secret_key=settings.keys.encryption_private_key
        )
        self._signing_key = settings.keys.signing_private_key

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def next_services(self, receiver: ResolvedProfile) -> tuple[str, ...]:
        """The services the receiver lists after this one, at most ``FORWARD_MAX_SERVICES``;
        none when it does not list this one, or forwarding is off."""
        if not self._settings.enabled:
            return ()
        listed = _listed(receiver)
        if self._name not in listed:
            return ()
        after = [name for name in listed[listed.index(self._name) + 1 :] if name != self._name]
        return tuple(dict.fromkeys(after))[: self._settings.max_services]

    async def forward(self, envelope: EncryptionEnvelop, receiver: ResolvedProfile) -> ForwardOutcome:
        """Hand ``envelope`` (its delivery information encrypted to this service) on, as the
        module docstring says. Never raises for what the other services answer."""
        attempts: list[ForwardAttempt] = []
        for service in self.next_services(receiver):
            attempt = await self._attempt(envelope, service)
            self._metrics.forwards.labels(outcome=attempt.outcome).inc()
            log.info(
                "forwarding to %s: %s",
                service,
                attempt.outcome,
                extra={"delivery_service": service, "outcome": attempt.outcome, "detail": attempt.detail},
            )
            attempts.append(attempt)
            if attempt.outcome == "forwarded":
                return ForwardOutcome(service, tuple(attempts))
            if attempt.outcome == "refused":
                break
        return ForwardOutcome(None, tuple(attempts))

    async def accept(self, note: Forwarding, envelope: EncryptionEnvelop, receiver: ResolvedProfile) -> None:
        """Refuse (:class:`ForwardingRefused`) a note this service does not take, as the module
        docstring says; ``ServiceUnavailable`` when ENS cannot be reached."""
        self.check_path(note)
        self.check_listed(note, receiver)
        await self.check_signature(note, envelope)

    def check_path(self, note: Forwarding) -> None:
        """The note is for this service, has not passed through it and made one hop at most."""
        if note.to != self._name:
            raise ForwardingRefused(f"the forwarding note is for {note.to}, not this delivery service")
        if self._name in note.path:
            raise ForwardingRefused("the envelope has already passed through this delivery service (a loop)")
        if len(note.path) > MAX_HOPS:
            raise ForwardingRefused(f"a forwarded envelope may pass through at most {MAX_HOPS} delivery service")

    def check_listed(self, note: Forwarding, receiver: ResolvedProfile) -> None:
        """The note's forwarder is listed before this service in ``receiver``'s profile."""
        listed = _listed(receiver)
        forwarder = note.forwarder
        if (
            self._name not in listed
            or forwarder not in listed
            or listed.index(forwarder) > listed.index(self._name)
        ):
            raise ForwardingRefused(
                f"{forwarder} is not listed before this delivery service in the receiver's profile"
            )

    async def check_signature(self, note: Forwarding, envelope: EncryptionEnvelop | MultiEnvelope) -> None:
        """The note is for ``envelope`` and verifies with the forwarder's ENS profile key."""
        forwarder = note.forwarder
        try:
            # The profile's key, and during the forwarder's key rotation its other one.
            keys = await self._directory.delivery_service_signing_keys(forwarder)
        except (NotFound, InvalidRequest):
            raise ForwardingRefused(f"{forwarder} has no valid delivery service profile in ENS") from None
        first: SignatureError | EncodingError | None = None
        for key in keys:
            try:
                verify_forwarding(note, envelope, key)
                return
            except (SignatureError, EncodingError) as exc:
                first = first or exc
        assert first is not None
        raise ForwardingRefused(first.message)

    async def _attempt(self, envelope: EncryptionEnvelop, service: str) -> ForwardAttempt:
        def note(key: str) -> Forwarding:
            return build_forwarding(
                envelope, self._keys, self._signing_key, path=(self._name,), to=service, to_public_encryption_key=key
            )

        attempt, _answer = await self._call(service, FORWARD_METHOD, envelope.to_json(), note)
        return attempt

    async def attempt_multi(
        self, envelope: MultiEnvelope, service: str, recipients: Sequence[str]
    ) -> tuple[ForwardAttempt, list[Any] | None]:
        """One ``ensign_forwardMultiMessage`` call handing ``envelope`` on to ``service`` for
        ``recipients``; the attempt (as :meth:`forward`'s, counted in the metrics) and, when the
        service took the call, its per-receiver outcomes (JSON, one per receiver, in order)."""

        def note(key: str) -> Forwarding:
            return build_multi_forwarding(
                envelope,
                self._keys,
                self._signing_key,
                path=(self._name,),
                to=service,
                to_public_encryption_key=key,
                recipients=recipients,
            )

        attempt, answer = await self._call(service, FORWARD_MULTI_METHOD, envelope.to_json(), note)
        entries = None
        if attempt.outcome == "forwarded":
            result = answer.get("result") if isinstance(answer, dict) else None
            found = result.get("recipients") if isinstance(result, dict) else None
            if isinstance(found, list) and len(found) == len(recipients):
                entries = found
            else:
                attempt = ForwardAttempt(service, "failed", "the answer does not hold one outcome per receiver")
        self._metrics.forwards.labels(outcome=attempt.outcome).inc()
        log.info(
            "forwarding %d receiver(s) to %s: %s",
            len(recipients),
            service,
            attempt.outcome,
            extra={"delivery_service": service, "outcome": attempt.outcome, "detail": attempt.detail},
        )
        return attempt, entries

    async def _call(
        self, service: str, method: str, envelope: dict[str, Any], build_note: Callable[[str], Forwarding]
    ) -> tuple[ForwardAttempt, Any]:
        """Resolve ``service``, take its ``RATE_FORWARD`` token and call ``method`` with
        ``[envelope, build_note(its public encryption key)]``: the judged attempt and the answer."""
        try:
            profile = await self._directory.delivery_service_profile(service)
            check_url(profile.url, self._policy, "a delivery service's URL")
            note = build_note(profile.public_encryption_key)
        except ServiceUnavailable:
            return ForwardAttempt(service, "unresolved", "ENS cannot be reached"), None
        except EnsignError as exc:
            return ForwardAttempt(service, "unresolved", exc.message), None
        if self._limiter is not None:
            try:
                await self._limiter.take("forward", self._settings.rate, service)
            except RateLimited as exc:
                return ForwardAttempt(service, "limited", f"retry after {exc.retry_after} s"), None
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": [envelope, note.to_json()]}
        url = profile.url.rstrip("/") + "/rpc"
        try:
            async with self._http().post(
                url,
                json=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
            ) as response:
                status = response.status
                raw = await read_capped(response.content, MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if is_non_public_host_error(exc):
                return ForwardAttempt(service, "unresolved", "its URL does not point to a public host"), None
            if isinstance(exc, asyncio.TimeoutError):
                return ForwardAttempt(service, "unreachable", f"no answer within {self._settings.timeout} s"), None
            return ForwardAttempt(service, "unreachable", "cannot connect"), None
        return _judge(service, status, raw)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = policy_session(self._policy)
        return self._session


def _listed(receiver: ResolvedProfile) -> list[str]:
    names: list[str] = []
    for name in receiver.signed_profile.profile.delivery_services:
        try:
            names.append(normalize_name(name))
        except EncodingError:
            continue
    return names


def _judge(service: str, status: int, raw: bytes) -> tuple[ForwardAttempt, Any]:
    """The outcome of the next service's answer (module docstring), and the answer."""
    answer: Any = None
    if len(raw) <= MAX_ANSWER_BYTES:
        try:
            answer = parse_json(raw, what="the answer")
        except EnsignError:
            answer = None
    if status == 200 and isinstance(answer, dict) and "result" in answer:
        return ForwardAttempt(service, "forwarded", "stored"), answer
    code = _error_code(answer)
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 404 and code == "receiver_without_account":
        return ForwardAttempt(service, "no_account", detail), answer
    if status < 400 or status == 404 or status >= 500:
        return ForwardAttempt(service, "failed", detail), answer
    return ForwardAttempt(service, "refused", detail), answer


def _error_code(answer: Any) -> str:
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error")
    data = error.get("data") if isinstance(error, dict) else None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) and code.isidentifier() and len(code) <= 64 else ""
