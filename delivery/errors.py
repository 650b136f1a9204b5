"""Every error the delivery service answers with, built on :mod:`ensign.errors`.

    class (base in ensign.errors)           HTTP  code                              JSON-RPC
    InvalidRequest                           400  invalid_request                   -32600
    ├── InvalidJson                          400  invalid_json                      -32700
    ├── InvalidParams                        400  invalid_params                    -32602
    ├── InvalidEnvelope                      400  invalid_envelope                  -32602
    ├── InvalidSettings                      400  invalid_settings                  -32602
    ├── InvalidMessage                       400  invalid_message                   -32602
    ├── InvalidLimit                         400  invalid_limit                     -32602
    ├── ProfileNotPublished                  400  profile_not_published             -32602
    ├── InvalidAccount                       400  invalid_account                   -32602  (ensign admin's argument)
    ├── InvalidValue                         400  invalid_value                     -32602  (notifications, below)
    ├── InvalidChannelType                   400  invalid_channel_type              -32602
    ├── InvalidRecipient                     400  invalid_recipient                 -32602
    ├── NotificationsOff                     400  notifications_off                 -32602
    ├── ChannelNotSupported                  400  channel_not_supported             -32602
    ├── ChannelNotConfigured                 400  channel_not_configured            -32602
    ├── ChannelNotEnabled                    400  channel_not_enabled               -32602
    ├── ChannelAlreadyVerified               400  channel_already_verified          -32602
    ├── OtpMissing                           400  otp_missing                       -32602
    ├── OtpInvalid                           400  otp_invalid                       -32602
    ├── OtpAttemptsExceeded                  400  otp_attempts_exceeded             -32602
    ├── SpamRejected                         400  spam                              -32010
    ├── DeliveryInformationUnreadable        400  delivery_information_unreadable   -32012
    ├── SenderUnknown                        400  sender_unknown                    -32015
    └── SignatureError                       400  invalid_signature                 -32602
        └── SenderNotVerified                400  sender_not_verified               -32016
    Unauthorized                             401
    ├── Session* / Challenge*                401  session_… / challenge_…    (drawn in ensign.sessions, shared with the backend)
    └── NoProfileToVerify                    401  no_profile
    Forbidden                                403
    ├── WrongDeliveryService                 403  wrong_delivery_service
    ├── WrongAccount                         403  wrong_account
    ├── MessageOutsideWindow                 403  stale_message
    ├── AccountDeleted                       403  account_deleted
    ├── AccountSuspended                     403  account_suspended                 -32019
    ├── ForwardingRefused                    403  forwarding_refused                -32030
    ├── KeyNotBound                          403  key_not_bound
    └── DeviceNotListed                      403  device_not_listed
    NotFound                                 404
    ├── NoAccount                            404  no_account
    ├── NoProfile                            404  no_profile
    ├── NameUnresolved                       404  name_unresolved
    ├── ReceiverUnknown                      404  receiver_unknown                  -32013
    ├── ReceiverWithoutAccount               404  receiver_without_account          -32014
    │   └── AccountMissingError              404  receiver_without_account          -32014  (the queue's view)
    └── UnknownUser                          404  unknown_user                      -32018
    EnsignError
    └── MethodNotFound                       405  method_not_found                  -32601
    Conflict                                 409
    ├── AccountExists                        409  account_exists
    ├── AccountChanged                       409  account_changed
    ├── StaleMessage                         409  stale_message
    └── ReplayedMessage                      409  replayed_message
    PayloadTooLarge                          413
    └── MessageTooLarge                      413  message_too_large                 -32011
    TooManyRequests                          429
    ├── QueueFullError                       429  queue_full                        -32017
    ├── RateLimited                          429  rate_limited                      -32020
    ├── TooManySockets                       429  too_many_sockets                  -32021
    └── OtpRateLimited                       429  otp_rate_limited
    ServiceUnavailable                       503  unavailable                       -32000
    ├── NotificationUnavailable              503  notification_unavailable          -32000
    └── NotReplicatedError                   503  not_replicated                    -32022

Every 429 of the limits (:mod:`delivery.limits`) carries ``retry_after`` (seconds, the
``Retry-After`` header) and ``details.limit`` naming the limit (``queued_messages``,
``queued_bytes``, ``sender``, ``pair``, ``address``, ``login``, ``sockets_per_account``,
``sockets_per_address``); :mod:`ensign.answers` sends both.

A JSON-RPC code not shown is the base's (-32600 for a 4xx, -32602 for bad input, -32603 for
anything else, answered 500 ``internal``). ``specs/delivery.md`` §5 shows the JSON-RPC table;
tests/delivery/test_ds_errors.py checks it, and the OpenAPI enum, against these classes. The
translation to HTTP, JSON-RPC and socket.io answers is :mod:`ensign.answers`.
"""

from __future__ import annotations

from ensign.errors import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Conflict,
    EnsignError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    SignatureError,
    TooManyRequests,
    Unauthorized,
)
from ensign.sessions import (
    ChallengeExpired,
    ChallengeInvalid,
    ChallengeMissing,
    ChallengeReplayed,
    ChallengeSignatureInvalid,
    ChallengeStale,
    ChallengeWrongAccount,
    SessionExpired,
    SessionInvalid,
    SessionMissing,
    SessionStale,
    SessionWrongAccount,
    token_error,
)

__all__ = [
    "AccountChanged",
    "AccountDeleted",
    "AccountExists",
    "AccountMissingError",
    "AccountSuspended",
    "ChallengeExpired",
    "ChallengeInvalid",
    "ChallengeMissing",
    "ChallengeReplayed",
    "ChallengeSignatureInvalid",
    "ChallengeStale",
    "ChallengeWrongAccount",
    "ChannelAlreadyVerified",
    "ChannelNotConfigured",
    "ChannelNotEnabled",
    "ChannelNotSupported",
    "DeliveryInformationUnreadable",
    "DeviceNotListed",
    "ForwardingRefused",
    "InvalidAccount",
    "InvalidChannelType",
    "InvalidEnvelope",
    "InvalidLimit",
    "InvalidMessage",
    "InvalidParams",
    "InvalidRecipient",
    "InvalidSettings",
    "InvalidValue",
    "KeyNotBound",
    "MessageOutsideWindow",
    "MessageTooLarge",
    "MethodNotFound",
    "NameUnresolved",
    "NoAccount",
    "NoProfile",
    "NoProfileToVerify",
    "NotReplicatedError",
    "NotificationUnavailable",
    "NotificationsOff",
    "OtpAttemptsExceeded",
    "OtpInvalid",
    "OtpMissing",
    "OtpRateLimited",
    "ProfileNotPublished",
    "QueueFullError",
    "RateLimited",
    "ReceiverUnknown",
    "ReceiverWithoutAccount",
    "ReplayedMessage",
    "SenderNotVerified",
    "SenderUnknown",
    "SessionExpired",
    "SessionInvalid",
    "SessionMissing",
    "SessionStale",
    "SessionWrongAccount",
    "SpamRejected",
    "StaleMessage",
    "TooManySockets",
    "UnknownUser",
    "WrongAccount",
    "WrongDeliveryService",
    "token_error",
]

# -- 400: bad input ---------------------------------------------------------------------------


class InvalidParams(InvalidRequest):
    """JSON-RPC params of the wrong shape."""

    code = "invalid_params"
    jsonrpc_code = INVALID_PARAMS


class InvalidEnvelope(InvalidRequest):
    """A submitted envelope that is not a JSON object."""

    code = "invalid_envelope"


class InvalidSettings(InvalidRequest):
    """Account settings with an unknown field or a value out of range (the message names it)."""

    code = "invalid_settings"


class InvalidMessage(InvalidRequest):
    """A signed account message (create, update, delete) of the wrong shape."""

    code = "invalid_message"


class InvalidLimit(InvalidRequest):
    """A fetch ``limit`` that is not a whole number in range."""

    code = "invalid_limit"


class ProfileNotPublished(InvalidRequest):
    """The profile sent is not the one ENS publishes for the name."""

    code = "profile_not_published"


class SpamRejected(InvalidRequest):
    """The message fails one of the receiver's spam rules (``details.rule`` names it)."""

    code = "spam"
    jsonrpc_code = -32010


class DeliveryInformationUnreadable(InvalidRequest):
    """The delivery information is not encrypted to this service."""

    code = "delivery_information_unreadable"
    jsonrpc_code = -32012


class SenderUnknown(InvalidRequest):
    """The sender's name has no valid profile in ENS."""

    code = "sender_unknown"
    jsonrpc_code = -32015


class SenderNotVerified(SignatureError):
    """The metadata signature or hash does not verify with the sender's key."""

    code = "sender_not_verified"
    jsonrpc_code = -32016


# -- 401: sessions and challenges (defined with the login both services share, ensign.sessions) ----


class NoProfileToVerify(Unauthorized):
    """No valid profile in ENS to check a challenge's signature with."""

    code = "no_profile"


# -- 403 -------------------------------------------------------------------------------------------


class WrongDeliveryService(Forbidden):
    code = "wrong_delivery_service"


class WrongAccount(Forbidden):
    code = "wrong_account"


class MessageOutsideWindow(Forbidden):
    """A signed account message whose timestamp is too far from this service's clock."""

    code = "stale_message"


class AccountDeleted(Forbidden):
    code = "account_deleted"


class ForwardingRefused(Forbidden):
    """A forwarded envelope whose note this service does not accept: not for this service, a loop,
    a path too long, a forwarder the receiver does not list before this service, or a signature
    that is not the forwarder's (``specs/delivery.md`` §4.5)."""

    code = "forwarding_refused"
    jsonrpc_code = -32030


class KeyNotBound(Forbidden):
    """The profile presented (the one ENS publishes for the name used) carries another signing key
    than the one the account is bound to (:mod:`delivery.accounts`, "Binding")."""

    code = "key_not_bound"


class DeviceNotListed(Forbidden):
    """A login as a device the account's device list does not hold (or, without a device id, with
    a profile key no listed device carries: :mod:`delivery.devices`)."""

    code = "device_not_listed"


# -- 404 -------------------------------------------------------------------------------------------


class NoAccount(NotFound):
    code = "no_account"


class NoProfile(NotFound):
    code = "no_profile"


class NameUnresolved(NotFound):
    code = "name_unresolved"


class ReceiverUnknown(NotFound):
    """The receiver's name does not resolve or has no profile."""

    code = "receiver_unknown"
    jsonrpc_code = -32013


class ReceiverWithoutAccount(NotFound):
    """The receiver has no account on this service."""

    code = "receiver_without_account"
    jsonrpc_code = -32014


class AccountMissingError(ReceiverWithoutAccount):
    """The queue's view: the recipient has no account hash (never created, or deleted); nothing was stored."""


class UnknownUser(NotFound):
    """``dm3_getProfileExtension`` for a name without an account here."""

    code = "unknown_user"
    jsonrpc_code = -32018


# -- 405, 409, 413, 429 ----------------------------------------------------------------------------


class MethodNotFound(EnsignError):
    """An unknown JSON-RPC method (HTTP 405, as dm3)."""

    status = 405
    code = "method_not_found"
    jsonrpc_code = METHOD_NOT_FOUND


class AccountExists(Conflict):
    code = "account_exists"


class AccountChanged(Conflict):
    code = "account_changed"


class StaleMessage(Conflict):
    """A signed account message older than the account's creation or deletion."""

    code = "stale_message"


class ReplayedMessage(Conflict):
    code = "replayed_message"


class MessageTooLarge(PayloadTooLarge):
    """Canonical envelope size (or the request body) above the limit."""

    code = "message_too_large"
    jsonrpc_code = -32011


class QueueFullError(TooManyRequests):
    """The recipient's queue is at its message or byte quota (``details.limit`` says which);
    nothing was stored. Retry after the receiver has fetched and acknowledged."""

    code = "queue_full"
    jsonrpc_code = -32017
    retry_after = 60


class RateLimited(TooManyRequests):
    """A token bucket is empty (``details.limit`` names it); ``retry_after`` seconds until the
    request would pass."""

    code = "rate_limited"
    jsonrpc_code = -32020


class TooManySockets(TooManyRequests):
    """The account or the client address holds as many sockets as it may (``details.limit``)."""

    code = "too_many_sockets"
    jsonrpc_code = -32021
    retry_after = 60


# -- operator actions (delivery.admin) -------------------------------------------------------------


class InvalidAccount(InvalidRequest):
    """``ensign admin`` was given neither an address nor (with ``ETH_RPC_URL``) an ENS name."""

    code = "invalid_account"


class AccountSuspended(Forbidden):
    """The receiver's account is suspended by the operator (``ensign admin suspend``)."""

    code = "account_suspended"
    jsonrpc_code = -32019


# -- notifications (delivery.notifications, dm3's /notifications routes) ---------------------------
# dm3 answers every refusal of these routes with 400 {error: <text>}; so do these (with dm3's text
# as the message where dm3 has one), except the sending limit (429) and a mail server that cannot
# be reached (503).


class InvalidValue(InvalidRequest):
    """``isEnabled`` is not a boolean (dm3: ``Invalid value``)."""

    code = "invalid_value"


class InvalidChannelType(InvalidRequest):
    """The channel type is missing or not ``EMAIL`` / ``PUSH``."""

    code = "invalid_channel_type"


class InvalidRecipient(InvalidRequest):
    """Not an email address, not a web-push subscription, or a push endpoint that is not public."""

    code = "invalid_recipient"


class NotificationsOff(InvalidRequest):
    """The account's global switch is off (dm3: ``Global notifications is off``)."""

    code = "notifications_off"


class ChannelNotSupported(InvalidRequest):
    """This service has no sender for the type (no SMTP server / no VAPID key configured)."""

    code = "channel_not_supported"


class ChannelNotConfigured(InvalidRequest):
    code = "channel_not_configured"


class ChannelNotEnabled(InvalidRequest):
    code = "channel_not_enabled"


class ChannelAlreadyVerified(InvalidRequest):
    code = "channel_already_verified"


class OtpMissing(InvalidRequest):
    """No password is pending (never sent, expired, used, or its attempts used up), or none was sent."""

    code = "otp_missing"


class OtpInvalid(InvalidRequest):
    code = "otp_invalid"


class OtpAttemptsExceeded(InvalidRequest):
    code = "otp_attempts_exceeded"


class OtpRateLimited(TooManyRequests):
    """A password email was sent too recently, or too many today (``details.retryAfter``)."""

    code = "otp_rate_limited"


class NotificationUnavailable(ServiceUnavailable):
    """The mail server could not take the password email."""

    code = "notification_unavailable"


class NotReplicatedError(ServiceUnavailable):
    """Stored (or acknowledged) on the primary, but fewer replicas than ``REDIS_WAIT_REPLICAS``
    confirmed it within ``REDIS_WAIT_TIMEOUT_MS`` (Redis ``WAIT``). Repeating the request is safe: a
    resubmission is de-duplicated, an ack is idempotent, and the repeat waits for the replicas again."""

    code = "not_replicated"
    jsonrpc_code = -32022
