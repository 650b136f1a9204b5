"""``ensign.client.__all__`` is exactly its public surface, and each name is defined in a private module."""

from __future__ import annotations

import types

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
