"""Structured logs for every Ensign service: one JSON object per line, each request's lines
carrying its request id.

The request id is the client's ``X-Request-Id`` header when it is a short token, otherwise a fresh
one; it is echoed in the response header of the same name. It lives in a context variable, so any
log line written while handling the request (intake, Redis errors) carries it.

What is never logged: tokens, challenges, signatures, keys, envelope contents, message bodies.
Handlers log message ids, sizes, error codes and, for an account, a keyed reference
(``account_ref``: the delivery service's ``AtRest.log_ref``); names and addresses only at DEBUG.
Connection URLs (``REDIS_URL``, ``ETH_RPC_URL``) may carry passwords or API keys and libraries log them (web3 logs
the RPC URL at INFO when it disconnects), so the formatter replaces them in the finished line —
message, extra fields and traceback alike — with a placeholder naming the variable.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ensign.unique import UniqueCounter

REQUEST_ID_HEADER = "X-Request-Id"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ensign_request_id", default=None)
# The fields the current request's one log line will carry besides method, route and status.
request_fields_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "ensign_request_fields", default=None
)

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# 64 random bits per process and a counter: unique, which is all an id that ties log lines together
# needs; a random id per request cost a getrandom system call (5 µs on the benchmark host).
_request_ids = UniqueCounter(8)


def new_request_id(client_value: str | None) -> str:
    """The client's id when it is a plain token of at most 64 characters, else a new one."""
    if client_value and _CLIENT_ID.fullmatch(client_value):
        return client_value
    prefix, count = _request_ids.next()
    return f"{prefix.hex()}{count:016x}"


def add_request_fields(**fields: str | int | float | bool | None) -> bool:
    """Put ``fields`` on the current request's log line (written when the request ends).

    One line per request instead of one more per event: under load each line costs as much as a
    Redis round trip. Returns ``False`` outside a request (a socket.io event, a job): the caller
    then logs its own line.
    """
    target = request_fields_var.get()
    if target is None:
        return False
    target.update(fields)
    return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id"?, …extra, "exc"?}`` per line.

    :param redact: ``{variable name: secret value}``; each value is replaced by ``<NAME>`` wherever
        it appears in the line (``None`` values are ignored).
    """

    def __init__(self, redact: Mapping[str, str | None] | None = None) -> None:
        super().__init__()
        self._redactions: list[tuple[str, str]] = []
        for name, value in (redact or {}).items():
            if value:
                placeholder = f"<{name}>"
                # The raw value and its JSON-escaped form: the line is JSON.
                self._redactions.append((json.dumps(value, ensure_ascii=False)[1:-1], placeholder))
                self._redactions.append((value, placeholder))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _plain(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.line(entry)

    def line(self, entry: dict[str, Any]) -> str:
        """``entry`` as one JSON line, secrets replaced."""
        # orjson: the same JSON as json.dumps(ensure_ascii=False), in a fraction of the time; a
        # line per request is a measurable share of a busy service's CPU.
        line = orjson.dumps(entry).decode("utf-8")
        for secret, placeholder in self._redactions:
            line = line.replace(secret, placeholder)
        return line


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


#: The handler :func:`configure_logging` installed on the root logger (``None`` before it ran).
_configured: logging.StreamHandler | None = None  # type: ignore[type-arg]


def log_request_line(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """Log ``message`` at INFO with ``fields``: the one line each request writes.

    Being on every request, it is the log's hot path. When the handler :func:`configure_logging`
    installed is the only one that would see the line (nothing added to ``logger``, its parents
    or that handler: no other handler, no filter; an operator's or a test's ``caplog`` makes the
    line go the usual way), the line that handler's :class:`JsonFormatter` would write is written
    directly, without a ``LogRecord`` and the handler chain: 11.6 → 4.5 µs per line in a loop, and
    about 6 % of a submission's CPU in the service was its log line. Otherwise, or if that write
    fails, it is logged as any line is.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _configured
    if handler is not None and _only_listener(logger, handler):
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)  # configure_logging's
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3), "level": "INFO", "logger": logger.name, "msg": message,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in fields.items():
            entry[key] = _plain(value)
        line = formatter.line(entry)
        try:
            with handler.lock:  # type: ignore[union-attr]  # made by Handler.__init__
                handler.stream.write(line + handler.terminator)
                handler.flush()
            return
        except Exception:  # noqa: BLE001 - logged the usual way, whose handler reports the failure
            pass
    logger.info(message, extra=dict(fields))


def _only_listener(logger: logging.Logger, handler: logging.Handler) -> bool:
    """Whether ``handler`` on the root logger is all a record of ``logger`` would meet."""
    if handler.filters or handler.level > logging.INFO:
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return False
        if current.parent is None:  # the root
            return len(current.handlers) == 1 and current.handlers[0] is handler
        if current.handlers or not current.propagate:
            return False
        current = current.parent
    return False


_installed = False


def install_request_id_factory() -> None:
    """Stamp every log record made while a request is handled with its ``request_id``.

    A record factory, not a handler filter, so the id is fixed when the line is logged (handlers
    may format it later, after the request ended). Idempotent; process-wide, like logging itself.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        request_id = request_id_var.get()
        if request_id is not None:
            record.request_id = request_id
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def configure_logging(level: str = "INFO", *, redact: Mapping[str, str | None] | None = None) -> None:
    """Send every log record to stderr as JSON lines (each service's entry point calls this once).

    :param redact: secrets to keep out of every line, ``{variable name: value}`` (see :class:`JsonFormatter`)
    """
    # The JSON lines carry no caller, thread or process names: collecting them is about a fifth of
    # every log call (the logging HOWTO's "Optimization" section names these switches; a request's
    # line went from 50 to 41 µs of CPU on this project's bench host).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _configured
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _configured = handler
    root.setLevel(level)
    install_request_id_factory()
