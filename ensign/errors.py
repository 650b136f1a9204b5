"""Every error Ensign raises on purpose, with the HTTP status and stable code it maps to.

    EnsignError                     500  internal
    ├── InvalidRequest              400  invalid_request
    │   └── ProtocolError           400  protocol_error      (ensign.protocol: bad bytes on the wire)
    │       ├── CanonicalJSONError  400  canonical_json      (floats, lone surrogates, non-JSON types)
    │       ├── SchemaError         400  invalid_schema      (missing, unknown or mistyped fields)
    │       ├── EncodingError       400  invalid_encoding    (base64, hex, key length, data URI)
    │       ├── DecryptionError     400  decryption_failed   (wrong key, tampered ciphertext, padding)
    │       └── SignatureError      400  invalid_signature   (Ed25519 or EIP-191 check failed)
    ├── Unauthorized                401  unauthorized
    ├── Forbidden                   403  forbidden
    ├── NotFound                    404  not_found
    ├── Conflict                    409  conflict
    ├── PayloadTooLarge             413  payload_too_large
    ├── TooManyRequests             429  too_many_requests
    └── ServiceUnavailable          503  unavailable         (Redis or the chain cannot be reached)

Each service maps these to a JSON body ``{"error": code, "message": text}`` in one middleware.
Messages are written for the caller: they name the field or rule that failed and never carry a
secret (keys, tokens, signatures of private material).
"""

from __future__ import annotations

from typing import Any


class EnsignError(Exception):
    """Base of all Ensign errors. ``status`` is the HTTP status, ``code`` a stable machine name."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidRequest(EnsignError):
    status = 400
    code = "invalid_request"


class ProtocolError(InvalidRequest):
    code = "protocol_error"


class CanonicalJSONError(ProtocolError):
    code = "canonical_json"


class SchemaError(ProtocolError):
    code = "invalid_schema"


class EncodingError(ProtocolError):
    code = "invalid_encoding"


class DecryptionError(ProtocolError):
    code = "decryption_failed"


class SignatureError(ProtocolError):
    code = "invalid_signature"


class Unauthorized(EnsignError):
    status = 401
    code = "unauthorized"


class Forbidden(EnsignError):
    status = 403
    code = "forbidden"


class NotFound(EnsignError):
    status = 404
    code = "not_found"


class Conflict(EnsignError):
    status = 409
    code = "conflict"


class PayloadTooLarge(EnsignError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(EnsignError):
    status = 429
    code = "too_many_requests"


class ServiceUnavailable(EnsignError):
    status = 503
    code = "unavailable"
