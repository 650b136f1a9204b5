"""Every error the profile backend answers with, built on :mod:`ensign.errors`.

    class (base in ensign.errors)       HTTP  code
    InvalidRequest                       400  invalid_request
    ├── NothingToRemove                  400  nothing_to_remove     (storage: a removal of a document with no revision)
    ├── WrongDocument                    400  wrong_document        (storage: a revision of another document than the path's)
    ├── DuplicateMessage                 400  duplicate_message     (dm3 storage: a message id stored already)
    ├── HashMismatch                     400  hash_mismatch         (a blob upload is not the content its hash names)
    ├── InvalidHash                      400  invalid_hash          (a blob hash in a path)
    ├── InvalidRev                       400  invalid_rev           (a revision hash in a path)
    ├── InvalidGrantId                   400  invalid_grant_id      (a grant id in a path)
    ├── WrongOwner                       400  wrong_owner           (a grant of another account than the path's)
    ├── GrantExpired                     400  grant_expired         (a grant whose expiry has passed)
    ├── ProfileNotRegistered             400  profile_not_registered (dm3 sign-up with another profile)
    ├── MessageTooLarge                  400  message_too_large     (a dm3 container over STORAGE_MAX_MESSAGE)
    ├── NoMessage                        400  no_message            (clearHaltedMessage of an unknown id)
    ├── InvalidJson                      400  invalid_json          (ensign.web.read_json)
    ├── InvalidName                      400  invalid_name          (not one normalised label under the domain)
    ├── InvalidAddress                   400  invalid_address
    ├── UnsupportedDomain                400  unsupported_domain    (a name under a domain this backend does not serve)
    ├── StaleTimestamp                   400  stale_timestamp       (a signed claim outside the time window)
    └── ProtocolError                    400  …                     (SchemaError ``invalid_schema`` for a bad body,
                                                                     EncodingError, SignatureError)
    Forbidden                            403  forbidden
    └── NotGranted                       403  not_granted           (another account's storage without a live grant)
    NotFound                             404  not_found
    ├── NoAccount                        404  no_account            (no profile registered for the path's name)
    └── DocumentRemoved                  404  document_removed      (details.head: the removal to write onto)
    Conflict                             409  conflict
    ├── AliasTaken                       409  alias_taken
    ├── AliasLimit                       409  alias_limit
    ├── Replayed                         409  replayed              (a signed claim or release used twice)
    ├── ProfileSuperseded                409  profile_superseded    (an older profile than the one stored)
    ├── RevocationDropped                409  revocation_dropped    (a revocation list without an entry of the stored one)
    ├── RevisionConflict                 409  revision_conflict     (storage: _lastrev is not the head; details.head)
    ├── RevisionExists                   409  revision_exists       (storage: a revision stored already, a replay)
    ├── GrantRevoked                     409  grant_revoked         (storage: a revoked grant sent again)
    ├── CosignatureLimit                 409  cosignature_limit     (storage: 16 co-signatures on a revision)
    └── GrantLimit                       409  grant_limit           (storage: 1000 live grants)
    PayloadTooLarge                      413  payload_too_large
    ├── QuotaExceeded                    413  quota_exceeded        (the account's STORAGE_QUOTA_BYTES)
    ├── TooManyDocuments                 413  too_many_documents    (a namespace's STORAGE_MAX_DOCUMENTS)
    └── BlobTooLarge                     413  blob_too_large        (over STORAGE_MAX_BLOB)
    ServiceUnavailable                   503  unavailable           (Redis unreachable)

:func:`ensign.web.error_middleware` turns each into ``{"error": code, "message": text}`` with its status.
"""

from __future__ import annotations

from ensign.errors import Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge

__all__ = [
    "AliasLimit",
    "AliasTaken",
    "BlobTooLarge",
    "CosignatureLimit",
    "DocumentRemoved",
    "DuplicateMessage",
    "GrantExpired",
    "GrantLimit",
    "GrantRevoked",
    "HashMismatch",
    "InvalidGrantId",
    "InvalidHash",
    "InvalidRev",
    "MessageTooLarge",
    "NoAccount",
    "NoMessage",
    "NotGranted",
    "NothingToRemove",
    "ProfileNotRegistered",
    "ProfileSuperseded",
    "RevocationDropped",
    "QuotaExceeded",
    "Replayed",
    "RevisionConflict",
    "RevisionExists",
    "StaleTimestamp",
    "TooManyDocuments",
    "UnsupportedDomain",
    "WrongDocument",
    "WrongOwner",
]


class UnsupportedDomain(InvalidRequest):
    code = "unsupported_domain"


class StaleTimestamp(InvalidRequest):
    code = "stale_timestamp"


class AliasTaken(Conflict):
    code = "alias_taken"


class AliasLimit(Conflict):
    code = "alias_limit"


class Replayed(Conflict):
    code = "replayed"


class ProfileSuperseded(Conflict):
    code = "profile_superseded"


class RevocationDropped(Conflict):
    code = "revocation_dropped"


# -- the user's storage -------------------------------------------------------------------------


class NothingToRemove(InvalidRequest):
    code = "nothing_to_remove"


class WrongDocument(InvalidRequest):
    code = "wrong_document"


class DuplicateMessage(InvalidRequest):
    code = "duplicate_message"


class HashMismatch(InvalidRequest):
    code = "hash_mismatch"


class NotGranted(Forbidden):
    code = "not_granted"


class RevisionConflict(Conflict):
    code = "revision_conflict"


class RevisionExists(Conflict):
    code = "revision_exists"


class GrantRevoked(Conflict):
    code = "grant_revoked"


class CosignatureLimit(Conflict):
    code = "cosignature_limit"


class QuotaExceeded(PayloadTooLarge):
    code = "quota_exceeded"


class TooManyDocuments(PayloadTooLarge):
    code = "too_many_documents"


class BlobTooLarge(PayloadTooLarge):
    code = "blob_too_large"


class InvalidHash(InvalidRequest):
    code = "invalid_hash"


class InvalidRev(InvalidRequest):
    code = "invalid_rev"


class InvalidGrantId(InvalidRequest):
    code = "invalid_grant_id"


class WrongOwner(InvalidRequest):
    code = "wrong_owner"


class GrantExpired(InvalidRequest):
    code = "grant_expired"


class ProfileNotRegistered(InvalidRequest):
    code = "profile_not_registered"


class MessageTooLarge(InvalidRequest):
    code = "message_too_large"


class NoMessage(InvalidRequest):
    code = "no_message"


class NoAccount(NotFound):
    code = "no_account"


class DocumentRemoved(NotFound):
    code = "document_removed"


class GrantLimit(Conflict):
    code = "grant_limit"
