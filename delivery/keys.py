"""The delivery service's Redis layout: every key and channel it uses is named here, and only here.

``prefix`` is passed in (``RedisSettings.prefix``, by default :data:`ensign.config.DEFAULT_REDIS_PREFIX`;
tests use one per test). Every key of one account carries the hash tag ``{<tag>}``, so on Redis
Cluster an account's keys (its queue *and* its account hash, tombstone and used-message markers)
sit in one slot and each Lua script touches them atomically. ``<tag>`` is the account string (the
delivery service passes a normalised address) with ``%``, ``{`` and ``}`` percent-escaped (``%25``,
``%7B``, ``%7D``): a brace in an account can neither end the tag early nor make two accounts share
keys (:func:`account_tag`).

The queue (:mod:`delivery.queue`)
---------------------------------

``{prefix}queue:{<tag>}``   ZSET, member = message id, score = receive sequence.
    The sequence is the caller's clock in microseconds, raised to one more than the newest queued
    message when that is not later, so it is unique and increasing within a queue. It orders the
    queue (oldest first) and is the paging cursor.
``{prefix}expiry:{<tag>}``  ZSET, member = message id, score = ``expires_at`` in seconds.
    Per-message expiry: fetch and count ignore members with ``expires_at <= now``; the sweeper
    removes them (ZRANGEBYSCORE, O(log n) per message).
``{prefix}msg:{<tag>}``     HASH, field = message id, value = ``b"<received_at>[|<sender>] " + body``.
    ``received_at`` is decimal seconds of Redis's clock (``TIME``; the caller's ``now`` for a
    queue made with ``redis_time=False``). ``<sender>`` is what de-duplication is scoped by (a
    message id another sender already holds is stored as ``<id>:<sender>``): the delivery
    service writes a keyed tag of sender and receiver (32 hex,
    :meth:`delivery.at_rest.AtRest.sender_tag`), never the sender's address. ``body`` is the
    envelope as served (dm3 shape, postmark included) sealed: ``0x01 || 24-byte nonce ||
    XChaCha20-Poly1305 ciphertext`` of the envelope padded to a multiple of 256 bytes
    (:mod:`delivery.at_rest`; 41 bytes more than the padded envelope). A body starting with ``{``
    is an envelope stored in clear by a version before sealing (its head then holds the sender's
    address): still served.
``{prefix}qbytes:{<tag>}``  STRING, the sum of the lengths of the ``msg`` values: the bytes
    queued, checked against the receiver's byte quota; every script that adds or removes a
    message updates it, and it is deleted when it reaches 0.

The three keys always hold the same ids. Only ``enqueue.lua`` writes them; ``fetch.lua`` (a page) and
``get.lua`` (one id) read them, and no other module reads them directly. A message leaves them in
one script: ``ack.lua`` (acknowledged, by every listed device when the account has a device list),
``set_devices.lua`` (a removed device was the last to miss it), ``sweep.lua`` (expired),
``enqueue.lua`` (an expired entry it replaces, or expired entries it purges when the queue is at
``max_queued``), ``delete_account.lua`` (account deleted; ``delete_queue.lua`` for a queue used
without accounts).
Redis deletes a zset or hash when its last member goes, so an empty queue leaves no key behind.

TTL: per message, in seconds (``ttl_seconds``; ``expires_at = now + ttl_seconds``). As a backstop
for a sweeper that never runs, the insert script also sets ``EXPIRE`` on the three keys to
``ttl_seconds + KEY_TTL_GRACE_SECONDS`` of Redis' own clock, never shortening it, so a queue
outlives its longest-lived message.

``{prefix}acked:{<tag>}``   ZSET, member = ``<message id>|<sender>`` of an acknowledged message
    (``<sender>`` as in ``msg``: the keyed tag), score = ``forget_at`` (seconds). Written by ``ack.lua`` for each message it removed, kept
    ``ACK_MEMORY_SECONDS`` and at most ``ACK_MEMORY_MAX`` entries (the newest; :mod:`delivery.queue`),
    the key expiring that long after the last ack. ``enqueue.lua`` treats a remembered message of
    the same sender as already delivered, so a retry after an unclear answer (the first attempt
    stored, the answer lost, the message meanwhile fetched and acknowledged) is not delivered a
    second time. Deleted with the queue.
``{prefix}seen:{<tag>}``    HASH, field = message id, value = ``,<device>,<device>,``: the devices
    of the account's device list (the account hash's ``devices``) that have acknowledged the
    message while another listed device has not. Each device's cursor is thus the queue minus its
    entries here: ``fetch.lua`` skips a device's acknowledged messages, and ``ack.lua`` removes a
    message (and its entry) when the last listed device acknowledges it. ``set_devices.lua`` drops
    a removed device from every entry and removes the messages every remaining device has; the
    scripts that remove messages (``sweep.lua``, ``enqueue.lua``'s purge) remove their entries.
    Empty (no key) for an account without a device list; EXPIRE as the queue's keys. Deleted with
    the queue.

``{prefix}notify:{<tag>}``  pub/sub channel (not a key). ``enqueue.lua`` publishes the message id
    (UTF-8) when it stores a new message, in the same script as the write, so no subscriber hears
    of a message that is not stored and no stored message goes unannounced. A duplicate submission
    publishes nothing. PUBLISH, not SPUBLISH, so Redis 6.2 works. A process SUBSCRIBEs the
    channels of the accounts with sockets on it (:mod:`delivery.push`); a tool that wants every
    account's may PSUBSCRIBE :func:`notify_pattern`. A channel maps back with
    :meth:`delivery.queue.MessageQueue.account_from_channel`.
``{prefix}sweeper:claim``   STRING, a random token, ``SET NX EX`` by the sweeper
    (:mod:`delivery.sweeper`) so one process per interval does the SCAN; removed by its expiry.

The account (:mod:`delivery.accounts`)
--------------------------------------

``{prefix}account:{<tag>}``     HASH, written by create / update, removed by delete:
    ``created``  creation time in ms (the signed message's timestamp, or the clock for a dm3
                 sign-up); also the account's *generation*, checked by the deletion script
    ``origin``   ``signed``, ``profile`` or ``wallet`` (a binding message)
    ``settings`` canonical JSON of :class:`delivery.accounts.AccountSettings` (dm3 field names)
    ``profile``  dm3Hash of the profile the account is bound to (created or last re-bound with)
    ``key``      that profile's public signing key (base64): the only key that logs in, deletes
                 or changes settings, whichever name is used (absent on accounts made before
                 the binding existed; ``profile`` is compared instead)
    ``bound``    time in ms of the binding (creation or last re-binding; absent on older accounts,
                 meaning ``created``); session tokens carry it as their ``gen``, so a
                 re-creation or a re-binding ends every older session
    ``notify:global``, ``notify:EMAIL``, ``notify:PUSH``, ``notify``  the notification switch, the
                 channels (JSON ``{recipientValue, isEnabled, isVerified}``) and their summary
                 (:mod:`delivery.notifications`), so deleting the account deletes them
    ``suspended``  JSON ``{at, by, reason}`` while an operator has suspended the account
                 (:mod:`delivery.admin`)
    ``devices``  the device list, JSON ``{"at": ms, "list": [{"id", "key", "since"}]}``: the
                 wallet-signed document's timestamp and each device's id, Ed25519 public signing
                 key (base64) and the time (ms) its id got that key (:mod:`delivery.devices`);
                 absent when the account has no device list (the profile key is its one device).
                 Written only by ``set_devices.lua``
``{prefix}tombstone:{<tag>}``   STRING, JSON ``{"deletedAt": ms, "profile": dm3Hash, "key": base64}``,
    written by delete, removed by a creation (in the same script that writes the account hash); no
    expiry (a few bytes per deleted account). While it exists, only the owner re-creates the
    account: a ``createAccount`` signed with the key bound at the deletion, or a wallet-signed
    binding message; public data (a profile) never does.
``{prefix}sessions:{<tag>}``   pub/sub channel (not a key). ``delete_account.lua``,
    ``bind_account.lua`` and ``set_devices.lua`` publish on it (payload ``deleted`` / ``bound`` /
    ``devices``) in the same script as the write; every process PSUBSCRIBEs :func:`sessions_pattern` and ends its sockets of the account
    whose session no longer matches it (:mod:`delivery.push`).
``{prefix}signed:{<tag>}:<sha256 of the signature>``  STRING ``"1"``, a used signed account
    message, ``SET NX EX`` until its timestamp leaves the replay window (≤ 601 s).

A queue exists only while its account does. ``enqueue.lua`` checks, in the same script as the
write, that the account hash exists and refuses otherwise
(:class:`delivery.errors.AccountMissingError`), and ``delete_account.lua`` removes the account
hash and the whole queue and writes the tombstone in one script. So a message submitted while its
receiver is being deleted is either stored before the deletion (and deleted with the queue) or
refused after it: nothing is ever queued for a deleted account, whatever the order of the two
scripts and wherever a process dies. (A :class:`delivery.queue.MessageQueue` made with
``require_account=False`` skips the check, for a queue used without accounts: benchmarks, the
queue's own tests.)

Notifications (:mod:`delivery.notifications`, :mod:`delivery.notify_worker`)
----------------------------------------------------------------------------

``{prefix}otp:{<tag>}``          HASH ``code`` (SHA-256 hex of the one-time password), ``recipient``
    (the address it was sent to), ``attempts``; EX ``OTP_TTL``. Deleted when used or when the
    attempts run out (``otp_check.lua``).
``{prefix}otp-wait:{<tag>}``     STRING, present for ``OTP_RESEND_INTERVAL`` seconds after a password
    email; ``{prefix}otp-day:{<tag>}`` STRING, password emails in the current day (EX 86400). Both
    written by ``send_limit.lua``.
``{prefix}notified:{<tag>}:<TYPE>``  STRING, ``SET NX EX NOTIFY_INTERVAL`` per new-message
    notification sent to the channel: at most one per interval.
``{prefix}online:{<tag>}``       ZSET process id -> time (app clock, seconds) until which that
    process has a socket of the account; written on the first socket's connect, refreshed every
    30 s, removed on the last one's disconnect; EXPIRE backstop. The account is online while any
    entry is valid.
``{prefix}notify-due:{jobs}``    ZSET job id -> due time (seconds); ``{prefix}notify-job:{jobs}``
    HASH job id -> JSON ``{account, channel, attempt}``. The notification job queue
    (``notify_jobs.lua``); the two share the tag ``{jobs}``, one slot for the whole queue on a
    cluster (notifications are rare next to messages).

Operators (:mod:`delivery.admin`)
---------------------------------

``{prefix}audit``   STREAM, one entry per ``ensign admin`` action: ``at`` (ms), ``operator``,
    ``action``, ``account``, ``outcome``, ``detail`` (JSON). Never trimmed by Ensign.

Limits (:mod:`delivery.limits`)
-------------------------------

``{prefix}rate:<limit>:{<subject>}``  HASH ``tokens``, ``at`` (ms of Redis ``TIME``): one token
    bucket of the named limit (``sender``, ``pair``, ``address``, ``login``, ``forward``) for one
    subject (an address, ``<sender>><receiver>``, a client IP or /64, the ENS name of a delivery
    service envelopes are forwarded to), named by the subject's keyed tag (32 hex,
    :meth:`delivery.at_rest.AtRest.subject`), never the subject itself. ``PEXPIRE`` = time to
    refill completely, so an idle bucket disappears. The subject is the hash tag: each bucket is
    its own slot.
``{prefix}sockets:<kind>:{<subject>}``  ZSET, member = ``<process>:<sid>``, score = lease expiry
    (ms of Redis ``TIME``): the live sockets of one account (``kind`` = ``account``, the address)
    or client address (``address``, its keyed tag); renewed by the process holding them, so a
    dead process's slots free themselves.

Sessions (:mod:`ensign.sessions`)
---------------------------------

``{prefix}challenge:<uuid>``   STRING ``"1"``, ``SET NX``, expires with the challenge (≤ 900 s):
    a redeemed challenge id; a second redemption finds it and fails. It belongs to no account, so
    it carries no account tag.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from ensign.errors import InvalidRequest

__all__ = [
    "MAX_ACCOUNT_LENGTH",
    "QueueKeys",
    "account_from_sessions_channel",
    "account_from_tag",
    "account_key",
    "account_tag",
    "audit_key",
    "challenge_key",
    "expiry_key_pattern",
    "notified_key",
    "notify_job_keys",
    "notify_pattern",
    "online_key",
    "otp_day_key",
    "otp_key",
    "otp_wait_key",
    "queue_keys",
    "queue_keys_from_expiry_key",
    "rate_key",
    "signed_message_key",
    "sessions_pattern",
    "socket_key",
    "sweeper_claim_key",
    "tombstone_key",
]

MAX_ACCOUNT_LENGTH = 256


def account_tag(account: str) -> str:
    """Return the hash-tag text for ``account``: validated, with ``%``, ``{``, ``}`` escaped."""
    if not isinstance(account, str) or not account:
        raise InvalidRequest("account must be a non-empty string")
    if len(account) > MAX_ACCOUNT_LENGTH:
        raise InvalidRequest(f"account is longer than {MAX_ACCOUNT_LENGTH} characters")
    # '%' first, so the escapes added for braces are not escaped again (keeps it reversible).
    return account.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


_UNESCAPE = {"%25": "%", "%7B": "{", "%7D": "}"}


def account_from_tag(tag: str) -> str:
    """The account string a hash tag was made from (the inverse of :func:`account_tag`)."""
    return re.sub(r"%(?:25|7B|7D)", lambda m: _UNESCAPE[m.group(0)], tag)


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis names of one account: its queue's keys and channel, its account hash,
    tombstone and sessions channel. All share one hash tag."""

    queue: str
    expiry: str
    messages: str
    size: str
    channel: str
    account: str
    tombstone: str
    sessions: str
    acked: str
    seen: str

    @property
    def keys(self) -> list[str]:
        """KEYS[1..4] of every queue script, in that order."""
        return [self.queue, self.expiry, self.messages, self.size]


def account_key(prefix: str, account: str) -> str:
    """``{prefix}account:{<tag>}`` — the account hash (:mod:`delivery.accounts`)."""
    return queue_keys(prefix, account).account


def tombstone_key(prefix: str, account: str) -> str:
    """``{prefix}tombstone:{<tag>}`` — the account's last deletion."""
    return queue_keys(prefix, account).tombstone


def signed_message_key(prefix: str, account: str, signature: str) -> str:
    """``{prefix}signed:{<tag>}:<sha256 of signature>`` — a used signed account message."""
    digest = hashlib.sha256(signature.encode()).hexdigest()
    return f"{prefix}signed:{{{account_tag(account)}}}:{digest}"


def queue_keys(prefix: str, account: str) -> QueueKeys:
    """Build the key and channel names of ``account``'s queue under ``prefix``."""
    if isinstance(account, str):
        return _cached_queue_keys(prefix, account)
    return _keys_for_tag(prefix, account_tag(account))  # refuses it


@functools.lru_cache(maxsize=8192)
def _cached_queue_keys(prefix: str, account: str) -> QueueKeys:
    # Ten names formatted for every message were 1 % of a submission's CPU; the same accounts
    # come again and again. An account refused by account_tag raises and is not remembered.
    return _keys_for_tag(prefix, account_tag(account))


def _keys_for_tag(prefix: str, tag: str) -> QueueKeys:
    return QueueKeys(
        queue=f"{prefix}queue:{{{tag}}}",
        expiry=f"{prefix}expiry:{{{tag}}}",
        messages=f"{prefix}msg:{{{tag}}}",
        size=f"{prefix}qbytes:{{{tag}}}",
        acked=f"{prefix}acked:{{{tag}}}",
        seen=f"{prefix}seen:{{{tag}}}",
        channel=f"{prefix}notify:{{{tag}}}",
        account=f"{prefix}account:{{{tag}}}",
        tombstone=f"{prefix}tombstone:{{{tag}}}",
        sessions=f"{prefix}sessions:{{{tag}}}",
    )


def expiry_key_pattern(prefix: str) -> str:
    """SCAN MATCH pattern for every expiry zset under ``prefix`` (one per non-empty queue)."""
    return f"{_glob_escape(prefix)}expiry:{{*}}"


def queue_keys_from_expiry_key(prefix: str, expiry_key: str) -> QueueKeys:
    """The names of the queue whose expiry zset is ``expiry_key`` (a SCAN result)."""
    return _keys_for_tag(prefix, expiry_key[len(prefix) + len("expiry:{") : -1])


def notify_pattern(prefix: str) -> str:
    """PSUBSCRIBE pattern for every account's notification channel under ``prefix``."""
    return f"{_glob_escape(prefix)}notify:{{*}}"


def sessions_pattern(prefix: str) -> str:
    """PSUBSCRIBE pattern for every account's sessions channel (deletions and re-bindings)."""
    return f"{_glob_escape(prefix)}sessions:{{*}}"


def account_from_sessions_channel(prefix: str, channel: str | bytes) -> str:
    """The account whose sessions channel is ``channel`` (a PSUBSCRIBE message); ValueError when
    it is none under ``prefix``."""
    name = channel.decode() if isinstance(channel, bytes) else channel
    head = f"{prefix}sessions:{{"
    if not name.startswith(head) or not name.endswith("}"):
        raise ValueError(f"not a sessions channel under prefix {prefix!r}")
    return account_from_tag(name[len(head) : -1])


def sweeper_claim_key(prefix: str) -> str:
    """The key a sweeper run claims with ``SET NX EX`` so one process sweeps per interval."""
    return f"{prefix}sweeper:claim"


def _glob_escape(text: str) -> str:
    # SCAN MATCH and PSUBSCRIBE patterns are globs; a prefix is literal text.
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def rate_key(prefix: str, limit: str, subject: str) -> str:
    """``{prefix}rate:<limit>:{<subject>}`` — one token bucket of ``limit`` for ``subject``."""
    return f"{prefix}rate:{limit}:{{{account_tag(subject)}}}"


def socket_key(prefix: str, kind: str, subject: str) -> str:
    """``{prefix}sockets:<kind>:{<subject>}`` — the socket leases of an account or address."""
    return f"{prefix}sockets:{kind}:{{{account_tag(subject)}}}"


def challenge_key(prefix: str, challenge_id: str) -> str:
    """``{prefix}challenge:<uuid>`` — marks a redeemed challenge."""
    return f"{prefix}challenge:{challenge_id}"


def otp_key(prefix: str, account: str) -> str:
    """``{prefix}otp:{<tag>}`` — the pending one-time password of the account's email channel."""
    return f"{prefix}otp:{{{account_tag(account)}}}"


def otp_wait_key(prefix: str, account: str) -> str:
    """``{prefix}otp-wait:{<tag>}`` — present while the account may not be sent another password."""
    return f"{prefix}otp-wait:{{{account_tag(account)}}}"


def otp_day_key(prefix: str, account: str) -> str:
    """``{prefix}otp-day:{<tag>}`` — password emails sent to the account in the current day."""
    return f"{prefix}otp-day:{{{account_tag(account)}}}"


def notified_key(prefix: str, account: str, kind: str) -> str:
    """``{prefix}notified:{<tag>}:<TYPE>`` — a notification went to the channel this interval."""
    return f"{prefix}notified:{{{account_tag(account)}}}:{kind}"


def online_key(prefix: str, account: str) -> str:
    """``{prefix}online:{<tag>}`` — the processes with a socket of the account, and until when."""
    return f"{prefix}online:{{{account_tag(account)}}}"


def notify_job_keys(prefix: str) -> list[str]:
    """KEYS of ``notify_jobs.lua``: the due zset and the payload hash (tag ``{jobs}``)."""
    return [f"{prefix}notify-due:{{jobs}}", f"{prefix}notify-job:{{jobs}}"]


def audit_key(prefix: str) -> str:
    """``{prefix}audit`` — the stream of operator actions."""
    return f"{prefix}audit"
