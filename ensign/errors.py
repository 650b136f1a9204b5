"""The base of every error Ensign raises on purpose: HTTP status, stable code, JSON-RPC code.

    class                           HTTP  code                JSON-RPC
    EnsignError                     500  internal             -32603
    ├── InvalidRequest              400  invalid_request      -32600
    │   ├── InvalidJson             400  invalid_json         -32700  (body is not JSON of the expected type)
    │   ├── InvalidName             400  invalid_name         -32602  (not a valid or normalised ENS name)
    │   ├── InvalidAddress          400  invalid_address      -32602  (not a 20-byte Ethereum address)
    │   └── ProtocolError           400  protocol_error       -32602  (ensign.protocol: bad bytes on the wire)
    │       ├── CanonicalJSONError  400  canonical_json       -32602  (floats, lone surrogates, non-JSON types)
    │       ├── SchemaError         400  invalid_schema       -32602  (missing, unknown or mistyped fields)
    │       ├── EncodingError       400  invalid_encoding     -32602  (base64, hex, key length, data URI, JSON text)
    │       ├── DecryptionError     400  decryption_failed    -32602  (wrong key, tampered ciphertext, padding)
    │       └── SignatureError      400  invalid_signature    -32602  (Ed25519 or EIP-191 check failed)
    ├── Unauthorized                401  unauthorized         -32600
    ├── Forbidden                   403  forbidden            -32600
    ├── NotFound                    404  not_found            -32600
    ├── RequestTimeout              408  request_timeout      -32600  (the body did not arrive within the deadline)
    ├── Conflict                    409  conflict             -32600
    ├── PayloadTooLarge             413  payload_too_large    -32600
    ├── UnsupportedMediaType        415  unsupported_media_type -32600
    ├── TooManyRequests             429  too_many_requests    -32600
    └── ServiceUnavailable          503  unavailable          -32000  (Redis or the chain cannot be reached)

Every subclass of :class:`InvalidRequest` answers JSON-RPC ``-32602`` (invalid params) unless it
names its own code. Each service draws its own errors, built on these, in its ``errors`` module
(:mod:`delivery.errors`, :mod:`backend.errors`, :mod:`resolver.errors`; the ENS client's are in
:mod:`ensign.ens.errors`), and :mod:`ensign.answers` turns any error into the one answer each
transport gives: a JSON body ``{"error": code, "message": text}``, a JSON-RPC error object, a
socket.io refusal. Messages are written for the caller: they name the field or rule that failed
and never carry a secret (keys, tokens, signatures of private material).
"""

from __future__ import annotations

from typing import Any


# The JSON-RPC 2.0 codes every service shares (the delivery service adds its own, -32010 …).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_UNAVAILABLE = -32000


class EnsignError(Exception):
    """Base of all Ensign errors: ``status`` (HTTP), ``code`` (a stable machine name) and
    ``jsonrpc_code`` (the JSON-RPC error code)."""

    status: int = 500
    code: str = "internal"
    jsonrpc_code: int = INTERNAL_ERROR

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
    jsonrpc_code = INVALID_REQUEST

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A named kind of bad input is bad params to JSON-RPC, unless the class says otherwise.
        if "jsonrpc_code" not in vars(cls) and cls.jsonrpc_code == INVALID_REQUEST:
            cls.jsonrpc_code = INVALID_PARAMS


class InvalidJson(InvalidRequest):
    code = "invalid_json"
    jsonrpc_code = PARSE_ERROR


class InvalidName(InvalidRequest):
    code = "invalid_name"


class InvalidAddress(InvalidRequest):
    code = "invalid_address"


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
    jsonrpc_code = INVALID_REQUEST


class Forbidden(EnsignError):
    status = 403
    code = "forbidden"
    jsonrpc_code = INVALID_REQUEST


class NotFound(EnsignError):
    status = 404
    code = "not_found"
    jsonrpc_code = INVALID_REQUEST


class Conflict(EnsignError):
    status = 409
    code = "conflict"
    jsonrpc_code = INVALID_REQUEST


class PayloadTooLarge(EnsignError):
    status = 413
    code = "payload_too_large"
    jsonrpc_code = INVALID_REQUEST


class RequestTimeout(EnsignError):
    status = 408
    code = "request_timeout"


class UnsupportedMediaType(EnsignError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(EnsignError):
    """A limit was reached; ``retry_after`` is the whole seconds to wait (``Retry-After``)."""

    status = 429
    code = "too_many_requests"
    jsonrpc_code = INVALID_REQUEST
    retry_after: int = 1

    def __init__(self, message: str, *, code: str | None = None, details: Any = None, retry_after: int | None = None) -> None:
        super().__init__(message, code=code, details=details)
        if retry_after is not None:
            self.retry_after = max(1, retry_after)


class ServiceUnavailable(EnsignError):
    status = 503
    code = "unavailable"
    jsonrpc_code = SERVER_UNAVAILABLE
