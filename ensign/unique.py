"""Values unique across processes without a system call each: a random prefix per process and a
counter.

Random values drawn per use (``os.urandom``, libsodium's ``randombytes``) cost a ``getrandom``
system call each, 5–7 µs on a virtual host: several per submission. Where uniqueness is what is
needed (a request id, an AEAD nonce under a shared key), a prefix of enough random bits, drawn once
per process, followed by a counter gives it: two processes collide only if their prefixes do. A
forked child draws a new prefix before it runs anything else (``os.register_at_fork``), so a
worker never repeats its parent's values.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["UniqueCounter"]


class UniqueCounter:
    """``(prefix, n)`` pairs unique across processes: ``prefix_bytes`` random bytes per process
    and ``n`` counting from 0 (module docstring)."""

    def __init__(self, prefix_bytes: int) -> None:
        self._bytes = prefix_bytes
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self.prefix = os.urandom(self._bytes)
        self._counter = itertools.count()

    def next(self) -> tuple[bytes, int]:
        """This process's prefix and the next count."""
        return self.prefix, next(self._counter)
