"""Message intake: from a submitted envelope to a postmarked envelope in the receiver's queue.

The same pipeline serves JSON-RPC ``dm3_submitMessage`` and the socket.io ``submitMessage`` event.
Order (each step refuses with its own error, listed in ``specs/delivery.md``, before anything is
written):

1. size — canonical size of the submitted envelope (dm3 ``getSize``) ≤ the service limit;
2. schema — the envelope, in either form (npm ``encryptedMessageHash`` or source ``messageHash``);
3. delivery information — decrypted with this service's X25519 key (during a key rotation, with
   either of its sets: ``DeliverySettings.next_keys``; a forwarded envelope: with the key its
   forwarding note carries, :mod:`ensign.protocol.forwarding`);
4. receiver — the ``to`` name resolves to an address that has an account here, not suspended by
   the operator; then the size again against the account's own (lower) limit. A forwarded
   envelope's note is checked first (:meth:`delivery.forwarder.Forwarder.accept`). Without an
   account here, an envelope submitted directly is handed on to the receiver's next delivery
   services once step 5 passes and its sender's buckets (step 8) are taken
   (:meth:`delivery.forwarder.Forwarder.forward`): the answer is then theirs, and nothing is
   stored or postmarked here;
5. sender — the ``from`` name has a valid profile in ENS, and the envelope's metadata signature
   and encrypted-message hash verify with its signing key (dm3 skips this, so its senders can be
   spoofed); that key is not on the address's revocation list as of now, the time this service
   receives the envelope (the sender's own timestamp is theirs to forge;
   :mod:`ensign.protocol.revocation`);
6. spam rules of the receiver, read from the chain for the sender's address;
7. postmark — signed with this service's Ed25519 key, encrypted to the receiver's profile key;
8. rate — the sender's and the sender→receiver pair's token buckets (:mod:`delivery.limits`),
   taken in the store's own script call, before it inserts (one round trip instead of two; on a
   Redis Cluster, where their keys hash to other slots than the queue's, in a call of their own
   just before it). After the signature, so nobody can spend another sender's tokens; a message
   refused here has cost its verification and postmark, which the client address's bucket
   bounds: taken before the request's body is read, or, when this process can lend the address
   a token (:meth:`delivery.limits.RateLimiter.defer`), first in this same call;
9. store — ``MessageQueue.enqueue`` keyed by the envelope's hash and scoped by the sender, so a
   resubmission is stored once (the first postmark stays) and no sender shadows another's
   message; within the receiver's message and byte quotas (the service's, or the lower ones of
   the account's settings), and only while the receiver's account exists as steps 4 and 6
   checked it (intake reuses an account read for a while; a change since makes it read the account
   again and check anew). The queue's script publishes the id, which :mod:`delivery.push`
   turns into socket.io pushes on every process. When the account wants notifications, the
   notifier is told (it queues a job in the background; :mod:`delivery.notify_worker`).

:mod:`delivery.multi_intake` runs steps 4–9 through the same methods
(``_resolve_receiver``, ``_signed_by_sender``, ``_deliver``), step 5 and the sender's bucket once
per envelope, the others for each of its receivers.

The stored envelope has dm3's shape: ``metadata.deliveryInformation`` is the decrypted object and
``postmark`` the encrypted postmark string, so dm3 clients read it unchanged. Redis never holds it
in clear: the queue seals it and scopes it by the sender's keyed tag, and rate buckets are named by
keyed tags too (:mod:`delivery.at_rest`); log lines name the receiver by a keyed reference.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ensign.config import DeliverySettings, RateLimit
from ensign.errors import EnsignError, ServiceUnavailable, SignatureError
from ensign.logs import add_request_fields
from ensign.protocol.canonical import canonical_size, stringify_bytes
from ensign.protocol.crypto import EncryptionKeyPair, open_with_any
from ensign.protocol.envelope import envelope_id, open_delivery_information, verify_envelope
from ensign.protocol.forwarding import Forwarding, open_forwarded_delivery_information
from ensign.protocol.models import DeliveryInformation, EncryptionEnvelop
from ensign.protocol.postmark import create_postmark
from ensign.protocol.revocation import KeyRevokedError, check_not_revoked

from .accounts import Account, Accounts
from .errors import (
    AccountMissingError,
    AccountSuspended,
    DeliveryInformationUnreadable,
    ForwardingRefused,
    InvalidEnvelope,
    MessageTooLarge,
    ReceiverUnknown,
    ReceiverWithoutAccount,
    SenderNotVerified,
    SenderUnknown,
    SpamRejected,
)
from .forwarder import Forwarder
from .limits import DeferredTake, RateLimiter, pair_subject
from .metrics import DeliveryMetrics
from .ports import Chain, Clock, Directory, ResolvedProfile, address_or_none, profile_or_none
from .queue import MessageQueue, AccountStateChangedError
from .spam import check_spam_rules

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Insert attempts when the receiver's settings change between the read and the insert.
SETTINGS_ATTEMPTS = 3

__all__ = ["Intake", "Submitted", "stored_envelope"]


@dataclass(frozen=True)
class Submitted:
    """Outcome of a submission: the message id, the receiver's account, whether newly stored here,
    and the delivery service it was handed on to instead (:mod:`delivery.forwarder`)."""

    message_id: str
    account: str
    stored: bool
    size: int
    forwarded_to: str | None = None


class Intake:
    """Runs the pipeline of the module docstring.

    :param settings: limits, the service's keys.
    :param accounts: account store (receiver's account and settings).
    :param queue: message queues.
    :param directory: ENS lookups.
    :param chain: chain reads for the spam filters.
    :param metrics: counters to update.
    :param clock: seconds since the epoch (postmark time; queue time when the queue does not
        use Redis's clock).
    :param on_notify: told the receiver's address when a new message needs a notification.
    :param limiter: the rate limits' buckets.
    :param forwarder: hands envelopes for receivers without an account here on, and checks those
        handed here; without one, neither happens (a forwarded envelope is refused).
    :param log_ref: what log lines name the receiver by instead of its address
        (:meth:`delivery.at_rest.AtRest.log_ref`).
    """

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        accounts: Accounts,
        queue: MessageQueue,
        directory: Directory,
        chain: Chain,
        metrics: DeliveryMetrics,
        clock: Clock,
        on_notify: Callable[[str], None] | None = None,
        limiter: RateLimiter,
        forwarder: Forwarder | None = None,
        log_ref: Callable[[str], str],
    ) -> None:
        self._settings = settings
        # Called (must not block or raise) with the receiver's address after a new message is
        # stored for an account that wants notifications: delivery.notify_worker.Notifier.
        self._on_notify = on_notify
        self._accounts = accounts
        self._queue = queue
        self._directory = directory
        self._chain = chain
        self._metrics = metrics
        self._clock = clock
        self._limiter = limiter
        self._forwarder = forwarder
        self._log_ref = log_ref
        self._ds_keys = tuple(
            EncryptionKeyPair(public_key=keys.encryption_public_key, secret_key=keys.encryption_private_key)
            for keys in (settings.keys, settings.next_keys)
            if keys is not None
        )

    async def submit(self, raw: object, forwarding: object = None, *, deferred: DeferredTake | None = None) -> Submitted:
        """Accept one envelope (the parsed JSON object), with the forwarding note (parsed JSON)
        when another delivery service hands it on. Counts rejections by error code.

        :param deferred: a token lent to the request (the client address's): taken with the sender's
            buckets, in the insert's call; left unclaimed when the submission ends before that.
        """
        try:
            result = await self._submit(raw, forwarding, deferred)
        except EnsignError as exc:
            self._metrics.rejections.labels(reason=exc.code).inc()
            # On the request's own log line when there is one (JSON-RPC), else a line of its own.
            if not add_request_fields(reason=exc.code):
                log.info("submission refused: %s", exc.code, extra={"reason": exc.code})
            raise
        if result.forwarded_to is not None:
            outcome = f"forwarded to {result.forwarded_to}"
        elif result.stored:
            self._metrics.messages.inc()
            self._metrics.message_bytes.inc(result.size)
            if forwarding is not None:
                self._metrics.forwarded_in.inc()
            outcome = "stored"
        else:
            self._metrics.duplicates.inc()
            outcome = "already queued"
        fields: dict[str, str | int] = {
            "account_ref": self._log_ref(result.account), "message_id": result.message_id, "bytes": result.size
        }
        if not add_request_fields(outcome=outcome, **fields):
            log.info("message %s", outcome, extra=fields)
        return result

    async def _submit(self, raw: object, forwarding: object, deferred: DeferredTake | None) -> Submitted:
        if not isinstance(raw, dict):
            raise InvalidEnvelope("the envelope must be a JSON object")
        size = canonical_size(raw)
        limit = self._settings.message_size_limit
        if size > limit:
            raise MessageTooLarge(f"the envelope is {size} bytes; this service accepts at most {limit}")
        envelope = EncryptionEnvelop.from_json(raw)
        note = None
        if forwarding is not None:
            if self._forwarder is None:
                raise ForwardingRefused("this delivery service does not take forwarded envelopes")
            try:
                note = Forwarding.from_json(forwarding)
            except EnsignError as exc:
                raise ForwardingRefused(f"the forwarding note is malformed: {exc.message}") from None
            if note.recipients is not None:
                raise ForwardingRefused("a note naming recipients is for a multi-recipient envelope (ensign_forwardMultiMessage)")
        info = self._open_delivery_information(envelope, note)

        receiver_profile, receiver = await self._resolve_receiver(info.to)
        if receiver is None:
            raise ReceiverUnknown("the receiver's name does not resolve to an address")
        if note is not None:
            assert self._forwarder is not None  # checked with the note
            if receiver_profile is None:
                raise ReceiverUnknown("the receiver's name has no valid profile in ENS to check the forwarder against")
            await self._forwarder.accept(note, envelope, receiver_profile)
        try:
            await self._receiver_account(receiver, lambda account: self._receiver_limits(account, size))
        except ReceiverWithoutAccount:
            if note is not None or self._forwarder is None or receiver_profile is None:
                raise
            return await self._forward(envelope, info, receiver, receiver_profile, size, deferred)

        sender = await self._signed_by_sender(info.from_, lambda key: verify_envelope(envelope, key))

        def stored(receiver_profile: ResolvedProfile, now_ms: int) -> bytes:
            postmark = create_postmark(
                envelope.message,
                self._settings.keys.signing_private_key,
                receiver_profile.signed_profile.profile.public_encryption_key,
                now_ms,
            )
            return stringify_bytes(stored_envelope(envelope.to_json(), info.to_json(), postmark))

        return await self._deliver(
            receiver, receiver_profile, sender.address, envelope_id(envelope), size, stored,
            buckets=self._sender_buckets(sender.address, receiver), deferred=deferred,
        )

    async def _resolve_receiver(self, name: str) -> tuple[ResolvedProfile | None, str | None]:
        """The receiver's profile (``None`` without a valid one) and address (``None`` if unresolved)."""
        # One lookup per name: the profile comes with its address. A receiver without a valid
        # profile is still told apart from one that does not resolve (and from one without an
        # account here), so only then is its address asked for alone.
        receiver_profile = await profile_or_none(self._directory, name)
        if receiver_profile is not None:
            return receiver_profile, receiver_profile.address
        return None, await address_or_none(self._directory, name)

    async def _signed_by_sender(self, name: str, verify: Callable[[str], None]) -> ResolvedProfile:
        """Step 5: the sender's profile, once ``verify(its public signing key)`` passed and the key is not
        revoked at this receive time."""
        sender = await profile_or_none(self._directory, name)
        if sender is None:
            raise SenderUnknown("the sender's name has no valid profile in ENS")
        try:
            verify(sender.signed_profile.profile.public_signing_key)
        except SignatureError as exc:
            raise SenderNotVerified(f"the envelope was not signed by the sender's profile key: {exc.message}") from None
        _refuse_revoked_key(sender, int(self._clock() * 1000))
        return sender

    async def _deliver(
        self,
        receiver: str,
        receiver_profile: ResolvedProfile | None,
        sender_address: str,
        message_id: str,
        size: int,
        stored: Callable[[ResolvedProfile, int], bytes],
        *,
        buckets: Sequence[tuple[str, RateLimit | None, str]] = (),
        deferred: DeferredTake | None = None,
    ) -> Submitted:
        """Steps 6 to 9 for one receiver: ``stored(receiver profile, now in ms)`` makes the
        postmarked record to enqueue; ``buckets`` (``(name, limit, subject)``), after ``deferred``'s
        lent ones, are taken with the insert, in its call on one Redis server."""
        limits = self._settings.limits

        async def receiver_checks(account: Account) -> None:
            self._receiver_limits(account, size)
            await check_spam_rules(self._chain, account.settings.spam_filter_rules, sender_address)

        account, checked = await self._receiver_account(receiver, receiver_checks)
        if receiver_profile is None:
            raise ReceiverUnknown("the receiver's name has no valid profile in ENS to encrypt the postmark to")

        now = self._clock()
        record = stored(receiver_profile, int(now * 1000))
        takes = await self._limiter.takes_for_write(buckets, deferred=deferred)
        for attempt in range(1, SETTINGS_ATTEMPTS + 1):
            ttl = account.settings.message_ttl or self._settings.message_ttl
            try:
                # The insert script stores only while the account hash exists in the state
                # checked above, and deletion removes the account and its queue in one script: no
                # queue outlives its account, and the checks hold for what is stored.
                new = await self._queue.enqueue(
                    receiver,
                    message_id,
                    record,
                    now=now,
                    ttl_seconds=ttl,
                    sender=sender_address,
                    max_queued=_lower(limits.max_queued_messages, account.settings.max_queued_messages),
                    max_bytes=_lower(limits.max_queued_bytes, account.settings.max_queued_bytes),
                    account_state=checked,
                    # Taken by the first call, whatever the insert answered.
                    takes=takes if attempt == 1 else None,
                )
                break
            except AccountMissingError:
                self._accounts.forget_recent(receiver)
                raise ReceiverWithoutAccount("the receiver has no account on this delivery service") from None
            except AccountStateChangedError:
                # Changed since it was read (settings, suspension or notifications, maybe through
                # another process): read it again and check this message against it.
                self._accounts.forget_recent(receiver)
                if attempt == SETTINGS_ATTEMPTS:
                    raise ServiceUnavailable("the receiver's settings keep changing; try again") from None
                account, checked = await self._receiver_account(receiver, receiver_checks)
        if new and account.notify and self._on_notify is not None:
            self._on_notify(receiver)
        return Submitted(message_id=message_id, account=receiver, stored=new, size=size)

    def _open_delivery_information(self, envelope: EncryptionEnvelop, note: Forwarding | None) -> DeliveryInformation:
        """The delivery information, opened with the current key set, else the next one (a
        forwarded envelope: through its note)."""
        try:
            if note is None:
                return self._with_ds_keys(lambda keys: open_delivery_information(envelope, keys))
            return self._with_ds_keys(lambda keys: open_forwarded_delivery_information(envelope, note, keys))
        except EnsignError as exc:
            raise DeliveryInformationUnreadable(
                f"the delivery information cannot be opened with this service's key ({exc.code})"
            ) from None

    def _with_ds_keys(self, open_: Callable[[EncryptionKeyPair], T]) -> T:
        """``open_(key pair)`` with the current key set, else the next one (during a key rotation);
        the first set's error when neither opens."""
        return open_with_any(self._ds_keys, open_, (EnsignError,))

    def _sender_buckets(self, sender: str, receiver: str) -> list[tuple[str, RateLimit | None, str]]:
        """Step 8's buckets: the sender's and the sender→receiver pair's."""
        limits = self._settings.limits
        return [("sender", limits.sender, sender), ("pair", limits.pair, pair_subject(sender, receiver))]

    async def _forward(
        self,
        envelope: EncryptionEnvelop,
        info: DeliveryInformation,
        receiver: str,
        receiver_profile: ResolvedProfile,
        size: int,
        deferred: DeferredTake | None,
    ) -> Submitted:
        """No account here: hand the envelope on to the receiver's next services, once its sender
        is verified (its buckets taken, after ``deferred``'s); refuse as before when none takes
        it, saying what each answered."""
        assert self._forwarder is not None
        if not self._forwarder.next_services(receiver_profile):
            raise ReceiverWithoutAccount("the receiver has no account on this delivery service")
        sender = await self._signed_by_sender(info.from_, lambda key: verify_envelope(envelope, key))
        await self._limiter.take_all(self._sender_buckets(sender.address, receiver), deferred=deferred)
        outcome = await self._forwarder.forward(envelope, receiver_profile)
        if outcome.delivered_to is None:
            tried = "; ".join(f"{a.service}: {a.outcome} ({a.detail})" for a in outcome.attempts)
            raise ReceiverWithoutAccount(
                f"the receiver has no account on this delivery service, and no other took the envelope ({tried})",
                details={"forwarding": [attempt.to_json() for attempt in outcome.attempts]},
            )
        return Submitted(
            message_id=envelope_id(envelope), account=receiver, stored=False, size=size, forwarded_to=outcome.delivered_to
        )

    async def _receiver_account(
        self, receiver: str, check: Callable[[Account], Awaitable[None] | None]
    ) -> tuple[Account, str]:
        """The receiver's account and its state as stored, after ``check`` (which raises to refuse).

        The account may come from a read made a while ago (:meth:`Accounts.get_recent`): a refusal
        is only given on a fresh read, and what passes is confirmed by the insert script.
        """
        read = await self._accounts.get_recent(receiver)
        if read is None:
            raise ReceiverWithoutAccount("the receiver has no account on this delivery service")
        try:
            outcome = check(read[0])
            if outcome is not None:
                await outcome
        except (AccountSuspended, MessageTooLarge, SpamRejected):
            self._accounts.forget_recent(receiver)
            read = await self._accounts.get_recent(receiver)
            if read is None:
                raise ReceiverWithoutAccount("the receiver has no account on this delivery service") from None
            outcome = check(read[0])
            if outcome is not None:
                await outcome
        return read

    @staticmethod
    def _receiver_limits(account: Account, size: int) -> None:
        if account.suspended:
            raise AccountSuspended("the receiver's account is suspended on this delivery service")
        own_limit = account.settings.max_message_size
        if own_limit is not None and size > own_limit:
            raise MessageTooLarge(f"the envelope is {size} bytes; the receiver accepts at most {own_limit}")


def _refuse_revoked_key(sender: ResolvedProfile, at_ms: int) -> None:
    """Refuse a sender whose profile key its wallet revoked at or before ``at_ms`` (receive time)."""
    try:
        check_not_revoked(sender.revoked, sender.signed_profile.profile.public_signing_key, at_ms)
    except KeyRevokedError as exc:
        raise SenderNotVerified(f"the envelope is signed with a revoked key: {exc.message}") from None


def _lower(service: int, own: int | None) -> int:
    return service if own is None else min(service, own)


def stored_envelope(envelope: dict[str, Any], delivery_information: dict[str, Any], postmark: str) -> dict[str, Any]:
    """dm3's stored form: plaintext delivery information in the metadata, the postmark string added."""
    metadata = dict(envelope["metadata"])
    metadata["deliveryInformation"] = delivery_information
    return {**envelope, "metadata": metadata, "postmark": postmark}
