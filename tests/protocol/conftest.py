"""Fixtures for the ensign.protocol tests: dm3's own test vectors and a few ready-made identities.

The vectors live once, in ``specs/vectors/dm3-source.json``; tests read them from there and never
repeat the values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

VECTORS_FILE = Path(__file__).resolve().parents[2] / "specs" / "vectors" / "dm3-source.json"


@pytest.fixture(scope="session")
def dm3_vectors() -> dict[str, Any]:
    vectors: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
    return vectors


@pytest.fixture(scope="session")
def dm3_vector(dm3_vectors: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """``dm3_vector(name)``: one vector; each must name the dm3 file it was copied from."""

    def get(name: str) -> dict[str, Any]:
        entry: dict[str, Any] = dm3_vectors[name]
        assert entry["source"].startswith("packages/"), entry["source"]
        return entry

    return get
