"""examples/sdk_quickstart.py — the README's "Python SDK" example — runs against a real stack.

The stack is the SDK tests' (tests/client/sdk_stack.py: backend, gateway, embedded chain served
over JSON-RPC, delivery service ``ds.ensign.eth`` published in ENS) on random ports; the example
gets their URLs through its ``config`` argument, whose default is the ``make dev`` stack.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from ensign.client import ClientConfig
from ensign.protocol.postmark import verify_postmark
from tests.client.sdk_stack import DS_NAMES, SdkStack, sdk_stack  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sdk_quickstart.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sdk_quickstart", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_quickstart_runs_against_the_stack(sdk_stack: SdkStack, capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    message = await example.main(sdk_stack.config())
    assert message.text == "Hello Bob!"
    assert message.delivery_service == DS_NAMES[0]
    assert verify_postmark(message.postmark, message.envelope.message, sdk_stack.services[DS_NAMES[0]].signing_public_key)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{message.sender} wrote to {message.receiver}: Hello Bob!",
        "1 message(s) waiting at ds.ensign.eth",
    ]


def test_quickstart_defaults_to_the_dev_stack() -> None:
    import inspect

    default = inspect.signature(load_example().main).parameters["config"].default
    assert default == ClientConfig()
    assert (default.rpc_url, default.backend_url, default.delivery_services) == (
        "http://127.0.0.1:8545", "http://127.0.0.1:8081", ("ds.ensign.eth",)
    )


def test_readme_shows_the_example_as_it_is_in_the_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Python SDK\n(.*?)(?=^## |\Z)", readme, re.DOTALL | re.MULTILINE)
    assert section is not None, "README has no '## Python SDK' section"
    # The README indents code blocks by four spaces; take the one holding the example's main().
    blocks: list[list[str]] = [[]]
    for line in section.group(1).splitlines():
        if line.startswith("    ") or (line == "" and blocks[-1]):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    [code] = [text for text in (textwrap.dedent("\n".join(b)).strip("\n") for b in blocks) if "async def main" in text]
    assert "async def main(config: ClientConfig = ClientConfig())" in code
    assert code in EXAMPLE.read_text()
