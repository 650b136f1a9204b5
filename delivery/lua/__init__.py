"""Lua scripts of the delivery service, one per atomic operation (a package so wheels ship them).

Each file's header says what it does and returns, then one line per ``KEYS[i]`` / ``ARGV[i]``.
"""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> str:
    """The text of ``<name>.lua`` in this package (for redis-py ``register_script``)."""
    return (Path(__file__).parent / f"{name}.lua").read_text(encoding="utf-8")
