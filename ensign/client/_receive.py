"""Opening what a delivery service hands out (fetched or pushed), with every check a receiver can make.

For a stored envelope (``specs/delivery.md`` §4.1: ``deliveryInformation`` decrypted by the service,
``postmark`` added):

1. the envelope passes the schema and carries a postmark;
2. the sender's profile is read from ENS under the name in ``deliveryInformation.from`` (the lookup
   checks the profile's wallet signature against the name's address);
3. :func:`ensign.protocol.envelope.open_envelope` decrypts the message and checks the envelope hash,
   that ``deliveryInformation`` names the message's sender and receiver, and the message's
   signature with the sender's profile key;
4. ``metadata.to`` names this account (the name itself, or one resolving to its address), so a
   message signed for someone else cannot be replayed into this inbox;
5. the postmark decrypts, is for this envelope's message, and is signed with the public signing key
   of the delivery service's ENS profile, or, during the service's key rotation, one its
   ``eth.ensign.deliveryServiceKeys`` record lists (:mod:`ensign.protocol.ds_keys`);
6. the sender's signing key was not revoked by its wallet at the postmark's time (the delivery
   service's, which the sender cannot choose): a message signed with a revoked key and received
   after the revocation is rejected, one received before stays readable
   (:mod:`ensign.protocol.revocation`).

A copy of a multi-recipient envelope (``metadata.version`` ``ensign-multi-v1``) goes through the
same steps with :func:`ensign.protocol.multi.open_copy` in step 3, which also checks that the
signed message lists the receiver the copy is for.

A failed check rejects the envelope (:class:`RejectedEnvelope`); an unreachable chain or gateway
is raised instead, since the envelope may well be fine: it stays queued and is tried again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ensign.errors import EncodingError, EnsignError, ServiceUnavailable, SignatureError
from ensign.protocol.canonical import parse_json
from ensign.protocol.crypto import EncryptedPayload, EncryptionKeyPair, decrypt_asymmetric, open_with_any
from ensign.protocol.encoding import normalize_name
from ensign.protocol.envelope import envelope_id, open_envelope
from ensign.protocol.keys import ProfileKeys
from ensign.protocol.models import DeliveryInformation, DeliveryServiceProfile, EncryptionEnvelop, Message, Postmark
from ensign.protocol.multi import MultiCopy, is_multi, open_copy
from ensign.protocol.postmark import open_postmark, verify_postmark
from ensign.protocol.revocation import check_not_revoked
from ensign.ens.lookup import NameLookup, ResolvedUserProfile

from ._errors import ClientConnectionError
from ._models import ReceivedMessage, RejectedEnvelope

T = TypeVar("T")


class Receiver:
    """What opening an envelope needs: our keys (current, then ``previous``: a message queued
    before a key rotation was encrypted to the keys of its time), our name and address, and ENS."""

    def __init__(
        self, keys: ProfileKeys, name: str, address: str, lookup: NameLookup, *, previous: Sequence[ProfileKeys] = ()
    ) -> None:
        self.keys = keys
        self.previous = tuple(previous)
        self.name = name
        self.address = address
        self.lookup = lookup

    def _with_any_key(self, attempt: Callable[[EncryptionKeyPair], T]) -> T:
        """``attempt(key pair)`` with the current encryption key, then each previous one, until one
        decrypts; the first key's error when none does."""
        return open_with_any((keys.encryption for keys in (self.keys, *self.previous)), attempt)

    async def open(
        self, raw: Any, delivery_service: str, ds_profile: DeliveryServiceProfile
    ) -> ReceivedMessage | RejectedEnvelope:
        """The verified message, or the envelope with the reason it was rejected."""
        envelope_hash = _id_of(raw)
        try:
            return await self._open(raw, delivery_service, ds_profile)
        except (ServiceUnavailable, ClientConnectionError):
            raise
        except EnsignError as exc:
            return RejectedEnvelope(id=envelope_hash, delivery_service=delivery_service, error=exc, envelope=raw)

    async def _open(self, raw: Any, delivery_service: str, ds_profile: DeliveryServiceProfile) -> ReceivedMessage:
        if is_multi(raw):
            return await self._open_copy(raw, delivery_service, ds_profile)
        envelope = EncryptionEnvelop.from_json(raw)
        if envelope.postmark is None:
            raise SignatureError("the envelope carries no postmark")
        info = envelope.metadata.delivery_information
        sender_name = info.from_ if isinstance(info, DeliveryInformation) else self._peek_sender(envelope)
        sender = await self.lookup.user_profile(sender_name)
        signing_key = sender.signed_profile.profile.public_signing_key
        message = self._with_any_key(lambda key: open_envelope(envelope, key, signing_key))
        if not _same_name(message.metadata.from_, sender_name):
            raise SignatureError("the message names another sender than its envelope")
        return await self._received(
            message, message.metadata.to, envelope, envelope_id(envelope), delivery_service, ds_profile, sender, signing_key
        )

    async def _open_copy(self, raw: Any, delivery_service: str, ds_profile: DeliveryServiceProfile) -> ReceivedMessage:
        """A receiver's copy of a multi-recipient envelope: the same checks, through
        :func:`ensign.protocol.multi.open_copy`; the copy's ``to`` must name this account."""
        copy = MultiCopy.from_json(raw)
        if copy.postmark is None:
            raise SignatureError("the envelope carries no postmark")
        sender = await self.lookup.user_profile(copy.delivery_information.from_)
        signing_key = sender.signed_profile.profile.public_signing_key
        message = self._with_any_key(lambda key: open_copy(copy, key, signing_key))
        receiver = copy.delivery_information.to
        return await self._received(
            message, receiver, copy, copy.encrypted_message_hash, delivery_service, ds_profile, sender, signing_key
        )

    async def _received(
        self,
        message: Message,
        receiver: str,
        envelope: EncryptionEnvelop | MultiCopy,
        message_id: str,
        delivery_service: str,
        ds_profile: DeliveryServiceProfile,
        sender: ResolvedUserProfile,
        signing_key: str,
    ) -> ReceivedMessage:
        """Steps 4 to 6 for an opened message (signed by ``signing_key``, ``sender``'s), then the
        message as handed out."""
        await self._check_receiver(receiver)
        sealed = envelope.postmark
        assert sealed is not None  # both callers refuse an envelope without one first
        postmark = self._with_any_key(lambda key: open_postmark(sealed, key))
        if not await self._postmark_verifies(postmark, envelope.message, delivery_service, ds_profile):
            raise SignatureError(f"the postmark is not signed by {delivery_service} or is for another message")
        check_not_revoked(sender.revoked, signing_key, postmark.incomming_timestamp)
        return ReceivedMessage(
            id=message_id,
            sender=message.metadata.from_,
            receiver=receiver,
            text=message.message,
            type=message.metadata.type,
            timestamp=message.metadata.timestamp,
            received_at=postmark.incomming_timestamp,
            delivery_service=delivery_service,
            message=message,
            envelope=envelope,
            postmark=postmark,
        )

    async def _postmark_verifies(
        self, postmark: Postmark, message: str, delivery_service: str, ds_profile: DeliveryServiceProfile
    ) -> bool:
        """Signed by the profile's key; else (a key rotation) by another key the service lists, read
        from ENS afresh when the cached records do not carry it (the service may have just moved)."""
        if verify_postmark(postmark, message, ds_profile.public_signing_key):
            return True
        for fresh in (False, True):
            if fresh:
                self.lookup.forget(delivery_service)
            keys = await self.lookup.delivery_service_signing_keys(delivery_service)
            if any(verify_postmark(postmark, message, key) for key in keys if key != ds_profile.public_signing_key):
                return True
        return False

    def _peek_sender(self, envelope: EncryptionEnvelop) -> str:
        # A service that kept deliveryInformation encrypted: only the message itself names the sender.
        payload = EncryptedPayload.from_wire(envelope.message, what="envelope message")
        text = self._with_any_key(lambda key: decrypt_asymmetric(key, payload))
        message = Message.from_json(parse_json(text, what="message"))
        return message.metadata.from_

    async def _check_receiver(self, to: str) -> None:
        if _same_name(to, self.name):
            return
        if await self.lookup.address(to) != self.address:
            raise SignatureError(f"the message is addressed to {to}, which is not this account")


def _same_name(a: str, b: str) -> bool:
    try:
        return normalize_name(a) == normalize_name(b)
    except EncodingError:
        return a == b


def _id_of(raw: Any) -> str | None:
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    if not isinstance(metadata, dict):
        return None
    value = metadata.get("encryptedMessageHash", metadata.get("messageHash"))  # a multi-recipient copy's too
    return value if isinstance(value, str) else None
