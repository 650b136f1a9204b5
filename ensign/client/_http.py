"""JSON over HTTP for the SDK: every answer parsed, every failure turned into an SDK error.

* any status but 2xx (redirects are not followed) → :class:`ApiError` with the service's code and JSON body;
* no answer (refused, reset, DNS, TLS, timeout) → :class:`ClientConnectionError`, the aiohttp
  error kept as its cause.

Error messages name the service's origin and path, never headers (they carry session tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from ensign.errors import EncodingError
from ensign.protocol.safe_json import parse_json

from ._errors import ApiError, ClientConnectionError


def error_code(status: int, body: Any) -> str:
    """The stable code of an error answer: REST ``error``, JSON-RPC ``error.data.error``, else ``http_<status>``."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            data = error.get("data")
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                return str(data["error"])
            if isinstance(error.get("code"), int):
                return f"rpc_{error['code']}"
    return f"http_{status}"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class JsonHttp:
    """Requests through one ``aiohttp.ClientSession`` with a per-request timeout (seconds)."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """``(parsed JSON body, response headers)`` of a 2xx answer; :class:`ApiError` otherwise."""
        where = _where(url)
        try:
            async with self.session.request(
                method,
                url,
                json=json_body,
                headers=dict(headers or {}),
                params=dict(params or {}),
                timeout=self.timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                response_headers: CIMultiDictProxy[str] = response.headers
        except aiohttp.ClientError as exc:
            raise ClientConnectionError(f"{where} cannot be reached ({type(exc).__name__})") from exc
        except TimeoutError as exc:
            raise ClientConnectionError(f"{where} did not answer within {self.timeout.total} s") from exc
        try:
            body = parse_json(raw, what="the answer") if raw else None
        except EncodingError:
            body = None
            if 200 <= status < 300:
                raise ApiError(status, "invalid_response", None, "the answer is not JSON", url=where) from None
        if not 200 <= status < 300:
            raise ApiError(status, error_code(status, body), body, url=where)
        return body, response_headers
