"""``ensign.client.__all__`` is exactly its public surface, and each name is defined in a private
module; every other module's ``__all__`` lists every public class and function it defines."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

import ensign.client


def test_all_lists_every_public_member_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(ensign.client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert set(ensign.client.__all__) == public
    assert len(ensign.client.__all__) == len(set(ensign.client.__all__))


def test_public_members_come_from_private_modules() -> None:
    for name in ensign.client.__all__:
        member = getattr(ensign.client, name)
        module = getattr(member, "__module__", None)
        if module is not None and isinstance(member, type | types.FunctionType):
            assert module.startswith("ensign.client._"), f"{name} is defined in {module}"


def _modules_with_all() -> list[str]:
    repo = Path(__file__).resolve().parents[2]
    names = []
    for package in ("ensign", "backend", "resolver", "delivery", "stack"):
        for path in sorted((repo / package).rglob("*.py")):
            if "__all__" not in path.read_text():
                continue
            parts = path.relative_to(repo).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module_name", _modules_with_all())
def test_every_all_lists_exactly_the_module_s_public_members(module_name: str) -> None:
    """Each module's ``__all__`` names every public class and function it defines, and only
    names it has (a re-export is listed on purpose, so it may be there too)."""
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"__all__ lists names the module lacks: {missing}"
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and isinstance(value, type | types.FunctionType)
        and getattr(value, "__module__", None) == module_name
    }
    assert not defined - set(exported), f"public members missing from __all__: {sorted(defined - set(exported))}"
