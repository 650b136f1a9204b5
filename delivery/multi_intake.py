"""Multi-recipient intake: one ``ensign-multi-v1`` envelope, verified once, stored for each receiver.

JSON-RPC ``ensign_submitMultiMessage`` (``specs/delivery.md`` §4.6). The envelope as a whole goes
through (each step refuses all of it, before anything is written):

1. size — canonical size ≤ ``MESSAGE_SIZE_LIMIT`` + ``MAX_RECIPIENTS`` × :data:`RECIPIENT_BYTES`;
2. schema (:class:`ensign.protocol.multi.MultiEnvelope`);
3. delivery information — decrypted with this service's X25519 key; it pairs each receiver with a
   wrapped key; at most ``MAX_RECIPIENTS`` receivers;
4. sender — the ``from`` profile's key verifies the signature over the whole metadata (every
   wrapped key and the encrypted receiver list) once (:meth:`Intake._signed_by_sender`);
5. rate — the sender's bucket pays one token per receiver, as that many single sends would (more
   receivers than the bucket holds is :class:`TooManyRecipients`, since it could never pass).

Then each receiver on its own, concurrently, each atomic (one queue insert) and each with its own
outcome — ``stored``, ``duplicate`` (already queued: a resubmission), ``forwarded`` or ``refused``
with the error code a single submission would get:

6. the name resolves (``receiver_unknown`` otherwise); without an account here, a receiver whose
   profile names another delivery service goes to the ``forward`` hook (:class:`Forward`: the
   app's is :class:`delivery.multi_forwarding.ForwardMulti` while forwarding is on, else
   :func:`refuse_elsewhere`, ``receiver_elsewhere``), any other is ``receiver_without_account``;
7. the receiver's copy (:func:`ensign.protocol.multi.copy_for`: the shared message, its own wrapped
   key, ``{to, from}``) is checked against the service's size limit and the account's, then
   :meth:`Intake._deliver` runs steps 6–9 of :mod:`delivery.intake`: the account and its spam
   rules, the postmark, the sender→receiver pair bucket taken with the queue insert. One postmark
   signature serves every receiver (same message, same receive time); it is sealed to each.

A forwarded envelope (JSON-RPC ``ensign_forwardMultiMessage``, with a note naming its receivers:
:mod:`ensign.protocol.forwarding`) opens its receiver list with the note's key; the note is
checked once (for this service, one hop, signed by the forwarder, its ``recipients`` in the list,
else ``forwarding_refused`` for all of it), and steps 5–7 run for the named receivers only, each
also refused with ``forwarding_refused`` when its profile does not list the forwarder before this
service (:meth:`delivery.forwarder.Forwarder.check_listed`), and never forwarded again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ensign.errors import EnsignError
from ensign.logs import add_request_fields
from ensign.protocol.canonical import canonical_size, stringify_bytes
from ensign.protocol.encoding import normalize_name
from ensign.protocol.forwarding import Forwarding, open_forwarded_multi_delivery_information
from ensign.protocol.multi import (
    MultiDeliveryInformation,
    MultiEnvelope,
    copy_for,
    open_multi_delivery_information,
    pick_recipients,
    verify_multi_envelope,
)
from ensign.protocol.postmark import postmark_plaintext, seal_postmark

from .errors import (
    DeliveryInformationUnreadable,
    ForwardingRefused,
    InvalidEnvelope,
    MessageTooLarge,
    ReceiverElsewhere,
    ReceiverUnknown,
    ReceiverWithoutAccount,
    TooManyRecipients,
)
from .intake import Intake
from .limits import pair_subject
from .ports import ResolvedProfile

log = logging.getLogger(__name__)

__all__ = ["RECIPIENT_BYTES", "Forward", "ForwardRecipient", "MultiIntake", "MultiSubmitted", "RecipientOutcome", "refuse_elsewhere"]

#: Bytes a multi-recipient envelope may grow per allowed receiver beyond the message size limit
#: (a wrapped key is about 230 bytes, a name in the encrypted receiver list at most 255).
RECIPIENT_BYTES = 1024
#: Receivers handled at once (ENS lookups and queue inserts in flight for one envelope).
CONCURRENCY = 16

STORED, DUPLICATE, FORWARDED, REFUSED = "stored", "duplicate", "forwarded", "refused"


@dataclass(frozen=True)
class RecipientOutcome:
    """What became of one receiver: ``status`` is ``stored``, ``duplicate``, ``forwarded`` (then
    ``delivery_service`` names the service that took it) or ``refused`` (then ``error`` says why)."""

    to: str
    status: str
    error: EnsignError | None = None
    delivery_service: str | None = None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"to": self.to, "status": self.status}
        if self.delivery_service is not None:
            obj["deliveryService"] = self.delivery_service
        if self.error is not None:
            obj["error"] = {"code": self.error.code, "message": self.error.message}
            if self.error.details is not None:
                obj["error"]["details"] = self.error.details
        return obj


@dataclass(frozen=True)
class MultiSubmitted:
    """The envelope's id (``encryptedMessageHash``) and each receiver's outcome, in its order."""

    message_id: str
    recipients: tuple[RecipientOutcome, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.message_id, "recipients": [outcome.to_json() for outcome in self.recipients]}


@dataclass(frozen=True)
class ForwardRecipient:
    """A receiver to forward: its place in the envelope (``keys[index]`` is its wrapped key), the
    name the sender wrote, and its profile (which lists the delivery services to try)."""

    index: int
    name: str
    profile: ResolvedProfile


class Forward(Protocol):
    """Hands receivers hosted elsewhere to their delivery services; one outcome per receiver, in
    the order given. Must not raise for one receiver's failure: that receiver is ``refused``."""

    async def __call__(
        self,
        envelope: MultiEnvelope,
        info: MultiDeliveryInformation,
        sender: ResolvedProfile,
        recipients: Sequence[ForwardRecipient],
    ) -> Sequence[RecipientOutcome]: ...


async def refuse_elsewhere(
    envelope: MultiEnvelope,
    info: MultiDeliveryInformation,
    sender: ResolvedProfile,
    recipients: Sequence[ForwardRecipient],
) -> Sequence[RecipientOutcome]:
    """The default :class:`Forward`: this service forwards nothing."""
    return [
        RecipientOutcome(
            r.name,
            REFUSED,
            ReceiverElsewhere(
                "the receiver's profile names other delivery services "
                f"({', '.join(r.profile.signed_profile.profile.delivery_services)}); submit to one of them"
            ),
        )
        for r in recipients
    ]


class MultiIntake:
    """Runs the pipeline of the module docstring on the steps of an :class:`Intake`: its
    underscore methods are the steps both intakes share, called from here on purpose, so that a
    change to a step (a check, the postmark, the insert) reaches multi-recipient envelopes too.

    :param intake: the service's single-envelope intake (settings, stores, clients, metrics)
    :param forward: what to do with receivers hosted elsewhere (default :func:`refuse_elsewhere`)
    """

    def __init__(self, intake: Intake, *, forward: Forward = refuse_elsewhere) -> None:
        self._intake = intake
        self._settings = intake._settings
        self._metrics = intake._metrics
        self._forward = forward
        try:
            self._own_name: str | None = normalize_name(self._settings.name)
        except EnsignError:
            self._own_name = None

    async def submit(self, raw: object, forwarding: object = None) -> MultiSubmitted:
        """Accept one multi-recipient envelope (the parsed JSON object), with the forwarding note
        (parsed JSON) when another delivery service hands it on; counts rejections of the whole
        envelope and of each receiver by error code."""
        try:
            result = await self._submit(raw, forwarding)
        except EnsignError as exc:
            self._metrics.rejections.labels(reason=exc.code).inc()
            if not add_request_fields(reason=exc.code):
                log.info("multi-recipient submission refused: %s", exc.code, extra={"reason": exc.code})
            raise
        counts: dict[str, int] = {}
        for outcome in result.recipients:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            if outcome.error is not None:
                self._metrics.rejections.labels(reason=outcome.error.code).inc()
        self._metrics.messages.inc(counts.get(STORED, 0))
        if forwarding is not None:
            self._metrics.forwarded_in.inc(counts.get(STORED, 0))
        self._metrics.duplicates.inc(counts.get(DUPLICATE, 0))
        fields: dict[str, str | int] = {"message_id": result.message_id, **{f"recipients_{k}": v for k, v in counts.items()}}
        if not add_request_fields(**fields):
            log.info("multi-recipient message %s", result.message_id, extra=fields)
        return result

    async def _submit(self, raw: object, forwarding: object) -> MultiSubmitted:
        if not isinstance(raw, dict):
            raise InvalidEnvelope("the envelope must be a JSON object")
        limits = self._settings.limits
        size = canonical_size(raw)
        limit = self._settings.message_size_limit + limits.max_recipients * RECIPIENT_BYTES
        if size > limit:
            raise MessageTooLarge(f"the envelope is {size} bytes; this service accepts at most {limit} for {limits.max_recipients} receivers")
        envelope = MultiEnvelope.from_json(raw)
        if len(envelope.keys) > limits.max_recipients:
            raise TooManyRecipients(f"the envelope has {len(envelope.keys)} receivers; this service accepts at most {limits.max_recipients}")
        note = self._note(forwarding)
        try:
            if note is None:
                info = self._intake._with_ds_keys(lambda keys: open_multi_delivery_information(envelope, keys))
            else:
                info = self._intake._with_ds_keys(lambda keys: open_forwarded_multi_delivery_information(envelope, note, keys))
        except EnsignError as exc:
            raise DeliveryInformationUnreadable(
                f"the delivery information does not open with this service's key, or does not pair with the keys: {exc.message}"
            ) from None
        indices: Sequence[int] = range(len(info.to))
        if note is not None:
            assert note.recipients is not None and self._intake._forwarder is not None  # checked by _note
            try:
                indices = pick_recipients(info, note.recipients)
            except EnsignError as exc:
                raise ForwardingRefused(f"the forwarding note's recipients do not fit the envelope: {exc.message}") from None
            await self._intake._forwarder.check_signature(note, envelope)
        sender = await self._intake._signed_by_sender(info.from_, lambda key: verify_multi_envelope(envelope, key))
        count = len(indices)
        if limits.sender is not None and count > limits.sender.capacity:
            raise TooManyRecipients(
                f"the envelope has {count} receivers; the sender's rate limit allows at most {limits.sender.capacity} at once"
            )
        await self._intake._limiter.take("sender", limits.sender, sender.address, cost=count)

        postmarks: dict[int, str] = {}  # receive time (ms) → the signed postmark, sealed per receiver

        def postmark_for(now_ms: int) -> str:
            if now_ms not in postmarks:
                postmarks[now_ms] = postmark_plaintext(envelope.message, self._settings.keys.signing_private_key, now_ms)
            return postmarks[now_ms]

        gate = asyncio.Semaphore(CONCURRENCY)
        elsewhere: list[ForwardRecipient] = []

        async def one(index: int) -> RecipientOutcome | None:
            async with gate:
                try:
                    return await self._deliver_one(envelope, info, index, sender, postmark_for, elsewhere, note)
                except EnsignError as exc:
                    return RecipientOutcome(info.to[index], REFUSED, exc)

        outcomes = dict(zip(indices, await asyncio.gather(*(one(i) for i in indices)), strict=True))
        if elsewhere:
            elsewhere.sort(key=lambda r: r.index)
            try:
                forwarded = await self._forward(envelope, info, sender, elsewhere)
            except EnsignError as exc:  # the others are stored already: their outcomes stand
                forwarded = [RecipientOutcome(r.name, REFUSED, exc) for r in elsewhere]
            for recipient, outcome in zip(elsewhere, forwarded, strict=True):
                outcomes[recipient.index] = outcome
        done = tuple(outcomes[i] for i in indices)
        assert all(outcome is not None for outcome in done)
        return MultiSubmitted(envelope.encrypted_message_hash, tuple(o for o in done if o is not None))

    def _note(self, forwarding: object) -> Forwarding | None:
        """The forwarding note of a forwarded envelope (``None``: submitted directly), for this
        service, one hop, naming its receivers (:class:`ForwardingRefused` otherwise)."""
        if forwarding is None:
            return None
        forwarder = self._intake._forwarder
        if forwarder is None:
            raise ForwardingRefused("this delivery service does not take forwarded envelopes")
        try:
            note = Forwarding.from_json(forwarding)
        except EnsignError as exc:
            raise ForwardingRefused(f"the forwarding note is malformed: {exc.message}") from None
        if note.recipients is None:
            raise ForwardingRefused("the forwarding note of a multi-recipient envelope must name its recipients")
        forwarder.check_path(note)
        return note

    async def _deliver_one(
        self,
        envelope: MultiEnvelope,
        info: MultiDeliveryInformation,
        index: int,
        sender: ResolvedProfile,
        postmark_for: Callable[[int], str],
        elsewhere: list[ForwardRecipient],
        note: Forwarding | None,
    ) -> RecipientOutcome | None:
        """One receiver's steps 6–7; ``None`` when it was put on ``elsewhere`` to forward. A
        forwarded envelope's receiver must list the forwarder before this service, and is never
        forwarded again."""
        name = info.to[index]
        profile, address = await self._intake._resolve_receiver(name)
        if address is None:
            raise ReceiverUnknown("the receiver's name does not resolve to an address")
        if note is not None:
            assert self._intake._forwarder is not None  # checked with the note
            if profile is None:
                raise ReceiverUnknown("the receiver's name has no valid profile in ENS to check the forwarder against")
            self._intake._forwarder.check_listed(note, profile)
        unstamped = copy_for(envelope, info, index, None)
        size = canonical_size(unstamped.to_json())
        if size > self._settings.message_size_limit:
            raise MessageTooLarge(
                f"the receiver's copy is {size} bytes; this service accepts at most {self._settings.message_size_limit}"
            )
        try:
            await self._intake._receiver_account(address, lambda account: self._intake._receiver_limits(account, size))
        except ReceiverWithoutAccount:
            if note is None and profile is not None and self._hosted_elsewhere(profile):
                elsewhere.append(ForwardRecipient(index, name, profile))
                return None
            raise

        def stored(receiver: ResolvedProfile, now_ms: int) -> bytes:
            sealed = seal_postmark(postmark_for(now_ms), receiver.signed_profile.profile.public_encryption_key)
            return stringify_bytes(copy_for(envelope, info, index, sealed).to_json())

        limits = self._settings.limits
        submitted = await self._intake._deliver(
            address, profile, sender.address, envelope.encrypted_message_hash, size, stored,
            buckets=[("pair", limits.pair, pair_subject(sender.address, address))],
        )
        if submitted.stored:
            self._metrics.message_bytes.inc(submitted.size)
        return RecipientOutcome(name, STORED if submitted.stored else DUPLICATE)

    def _hosted_elsewhere(self, profile: ResolvedProfile) -> bool:
        """Whether the profile names a delivery service other than this one."""
        for service in profile.signed_profile.profile.delivery_services:
            try:
                if normalize_name(service) != self._own_name:
                    return True
            except EnsignError:
                continue
        return False
