"""What the SDK raises, on top of :mod:`ensign.errors`.

    EnsignError                                  (ensign.errors)
    ├── InvalidRequest, SignatureError, …        bad input, bad bytes (ensign.protocol, ENS lookups)
    ├── ServiceUnavailable                       the chain or a CCIP-Read gateway cannot be reached
    └── ClientError                              everything below comes from ensign.client
        ├── ApiError                             a service answered with an error: status, code, body
        ├── ClientConnectionError                no answer at all (also a builtin ConnectionError)
        ├── ClientStateError                     the client was closed, or opened twice (also a RuntimeError)
        └── DeliveryError                        no delivery service of the receiver took a message

``ApiError`` keeps what the service said: the HTTP ``status``, the stable ``code`` (the ``error`` of
a REST body, the ``data.error`` of a JSON-RPC error) and the parsed JSON ``body``. Transport errors
keep their aiohttp cause as ``__cause__``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ensign.errors import EnsignError

__all__ = ["ClientError", "ApiError", "ClientConnectionError", "ClientStateError", "DeliveryError", "DeliveryAttempt"]


class ClientError(EnsignError):
    """Base of the errors :mod:`ensign.client` raises itself."""

    code = "client_error"


class ApiError(ClientError):
    """A service answered with an error status.

    :param status: the HTTP status of the answer
    :param code: the service's stable error code (``"session_expired"``, ``"spam"``, …), or
        ``"http_<status>"`` when the body carried none
    :param body: the answer's parsed JSON (``None`` when it was not JSON)
    :param message: the service's message; by default the body's ``message``
    :param url: the URL that answered (no query string, so nothing secret)

    For ``/rpc`` answers ``rpc_code`` holds the JSON-RPC error code (``-32010`` for spam, …).
    """

    def __init__(self, status: int, code: str, body: Any, message: str | None = None, *, url: str = "") -> None:
        if message is None:
            message = _message_of(body) or f"HTTP {status}"
        super().__init__(f"{message} ({status} {code}{' from ' + url if url else ''})", code=code)
        self.status = status
        self.body = body
        self.url = url
        self.reason = message
        error = body.get("error") if isinstance(body, dict) else None
        self.rpc_code: int | None = error.get("code") if isinstance(error, dict) else None


def _message_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    if isinstance(message, str):
        return message
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


class ClientConnectionError(ClientError, ConnectionError):
    """A service could not be reached, or did not answer in time. ``__cause__`` is the aiohttp error."""

    status = 503
    code = "connection_failed"


class ClientStateError(ClientError, RuntimeError):
    """The client is used after :meth:`~ensign.client.Client.aclose`, or entered twice."""

    code = "client_state"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One delivery service tried by :meth:`~ensign.client.Client.send` and why it failed."""

    delivery_service: str
    error: EnsignError


class DeliveryError(ClientError):
    """No delivery service of the receiver accepted the message.

    ``attempts`` lists each service tried, in the profile's order, with its error; the last error
    is also ``__cause__``. ``status``/``code`` are those of the last error.
    """

    def __init__(self, receiver: str, attempts: list[DeliveryAttempt]) -> None:
        tried = "; ".join(f"{a.delivery_service}: {a.error.message}" for a in attempts) or "it lists none"
        last = attempts[-1].error if attempts else None
        super().__init__(
            f"no delivery service of {receiver} accepted the message ({tried})",
            code=last.code if last is not None else "no_delivery_service",
        )
        self.receiver = receiver
        self.attempts = attempts
        self.status = last.status if last is not None else 404
