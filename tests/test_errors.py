"""The error trees: each class's status, code and JSON-RPC code are what the docs and dm3 clients see.

The JSON-RPC codes live on the classes only; ``specs/delivery.md`` §5 and the OpenAPI enum show
them, and these tests fail when either drifts from the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import backend.errors
import delivery.errors
import ensign.ens.errors
import ensign.errors
import resolver.errors
from ensign.answers import jsonrpc_body, socket_refusal
from ensign.errors import EnsignError, InvalidRequest

REPO = Path(__file__).resolve().parent.parent
ERROR_MODULES = (ensign.errors, ensign.ens.errors, delivery.errors, backend.errors, resolver.errors)


def _classes(module: ModuleType) -> list[type[EnsignError]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, EnsignError) and value.__module__ == module.__name__
    ]


def _delivery_classes() -> list[type[EnsignError]]:
    return _classes(ensign.errors) + _classes(delivery.errors)


def _spec_rows() -> list[tuple[int, int, str]]:
    text = (REPO / "specs" / "delivery.md").read_text()
    section = text[text.index("## 5. JSON-RPC") : text.index("## 6.")]
    rows = re.findall(r"^\| (-32\d{3}) \| (\d{3}) \| `(\w+)`", section, re.M)
    assert rows, "the JSON-RPC table of specs/delivery.md §5 was not found"
    return [(int(code), int(status), name) for code, status, name in rows]


@pytest.mark.parametrize("module", ERROR_MODULES, ids=lambda m: m.__name__)
def test_each_error_module_draws_every_class_it_defines(module: ModuleType) -> None:
    for cls in _classes(module):
        assert re.search(rf"\b{cls.__name__}\b", module.__doc__ or ""), f"{cls.__name__} is not drawn"


@pytest.mark.parametrize("module", ERROR_MODULES, ids=lambda m: m.__name__)
def test_the_drawn_status_and_code_are_the_class_s(module: ModuleType) -> None:
    # A drawn line "Name   400  code" must match the class it names.
    for name, status, code in re.findall(r"(?:─ |^    )(?:[\w.]+\.)?(\w+)\s+(\d{3})  (\w+)", module.__doc__ or "", re.M):
        cls = getattr(module, name, None) or getattr(ensign.errors, name)
        assert (cls.status, cls.code) == (int(status), code), name


def test_every_row_of_the_spec_s_json_rpc_table_is_a_class() -> None:
    for rpc_code, status, name in _spec_rows():
        matches = [c for c in _delivery_classes() if c.code == name and c.jsonrpc_code == rpc_code]
        assert matches, f"no error class answers {name} with {rpc_code}"
        assert all(c.status == status for c in matches), name


def test_every_json_rpc_code_of_a_class_is_in_the_spec_and_the_openapi_enum() -> None:
    spec_codes = {code for code, _, _ in _spec_rows()}
    openapi = yaml.safe_load((REPO / "specs" / "openapi.yaml").read_text())
    enum = set(openapi["components"]["schemas"]["RpcError"]["properties"]["error"]["properties"]["code"]["enum"])
    class_codes = {cls.jsonrpc_code for cls in _delivery_classes()}
    assert class_codes == spec_codes == enum


def test_bad_input_is_invalid_params_unless_a_class_says_otherwise() -> None:
    assert InvalidRequest.jsonrpc_code == -32600
    assert ensign.errors.SchemaError.jsonrpc_code == -32602
    assert ensign.errors.InvalidJson.jsonrpc_code == -32700
    assert delivery.errors.SpamRejected.jsonrpc_code == -32010
    assert delivery.errors.InvalidSettings.jsonrpc_code == -32602


def test_one_translation_for_json_rpc_and_sockets() -> None:
    error = delivery.errors.ReceiverWithoutAccount("the receiver has no account on this delivery service")
    assert jsonrpc_body(error, 7) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32014,
            "message": "the receiver has no account on this delivery service",
            "data": {"error": "receiver_without_account"},
        },
    }
    assert socket_refusal(error) == {"error": "the receiver has no account on this delivery service"}
