"""Signed alias claims and releases: the texts a profile's Ed25519 key signs, and their time rules.

Two forms are accepted on ``POST /profile/name`` (claim) and ``POST /profile/deleteName`` (release):

**dm3 form** (what dm3's libraries send; no time, so replayable by design in dm3)::

    alias: <dm3Name>            claim
    remove: <dm3Name>           release

``<dm3Name>`` is the body's ``dm3Name`` exactly as sent. We make each such signature take effect at
most once: replaying it is harmless while nothing would change (an alias already held is answered
200 ``unchanged``), and refused (409 ``replayed``) once it would change state again. Ed25519
signatures are deterministic, so an owner who releases an alias and later claims the same alias
again needs the timestamped form for the second claim.

**Timestamped form** (body carries ``timestamp``, integer milliseconds since the epoch)::

    Ensign alias claim                      Ensign alias release
    Name: <dm3Name>                         Name: <dm3Name>
    Address name: <addressName>             Timestamp: <timestamp>
    Timestamp: <timestamp>

Lines are joined with a single LF, no trailing newline; names are the body's strings as sent (they
are normalised afterwards for storage). The timestamp must lie within ``WINDOW_MS`` (5 minutes) of
the server's clock, either way, and each signed text is accepted once: it is remembered until its
window has passed. The first line keeps these texts apart from every other thing a dm3 signing key
signs (dm3's ``alias:``/``remove:`` strings, and JSON messages starting with ``{`` or ``"``).

A claim is identified for replay purposes by sha256 of ``<public signing key> LF <signed text>``,
not by the signature bytes, so a second valid signature of the same text is the same claim.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from backend.errors import StaleTimestamp

__all__ = [
    "WINDOW_MS",
    "SignedText",
    "claim_text",
    "release_text",
    "dm3_claim_text",
    "dm3_release_text",
    "timestamped_claim_text",
    "timestamped_release_text",
    "check_timestamp",
    "claim_digest",
]

#: How far a timestamped claim may lie from the server's clock, in either direction (5 minutes).
WINDOW_MS = 5 * 60 * 1000

# Kept a little longer than the window so a claim cannot be reused in the last instant of it.
_REMEMBER_MARGIN_MS = 1000


@dataclass(frozen=True)
class SignedText:
    """What the signature must cover, and how long a used claim is remembered (0 = for ever)."""

    text: str
    remember_ms: int
    timestamped: bool


def dm3_claim_text(dm3_name: str) -> str:
    """dm3's claim text ``alias: <name>``."""
    return "alias: " + dm3_name


def dm3_release_text(dm3_name: str) -> str:
    """dm3's release text ``remove: <name>``."""
    return "remove: " + dm3_name


def timestamped_claim_text(dm3_name: str, address_name: str, timestamp: int) -> str:
    """The timestamped claim text (see the module docstring)."""
    return f"Ensign alias claim\nName: {dm3_name}\nAddress name: {address_name}\nTimestamp: {timestamp}"


def timestamped_release_text(dm3_name: str, timestamp: int) -> str:
    """The timestamped release text (see the module docstring)."""
    return f"Ensign alias release\nName: {dm3_name}\nTimestamp: {timestamp}"


def check_timestamp(timestamp: int, now_ms: int, *, window_ms: int = WINDOW_MS) -> int:
    """Milliseconds the claim must be remembered; :class:`InvalidRequest` if outside the window."""
    if abs(now_ms - timestamp) > window_ms:
        direction = "old" if timestamp < now_ms else "far in the future"
        raise StaleTimestamp(f"timestamp is too {direction}: it must be within {window_ms // 1000} s of the server's "
            f"clock (server time {now_ms} ms)")
    return timestamp + window_ms - now_ms + _REMEMBER_MARGIN_MS


def claim_text(dm3_name: str, address_name: str, timestamp: int | None, now_ms: int) -> SignedText:
    """The text a claim's signature must cover: dm3 form without ``timestamp``, else timestamped."""
    if timestamp is None:
        return SignedText(dm3_claim_text(dm3_name), 0, False)
    remember = check_timestamp(timestamp, now_ms)
    return SignedText(timestamped_claim_text(dm3_name, address_name, timestamp), remember, True)


def release_text(dm3_name: str, timestamp: int | None, now_ms: int) -> SignedText:
    """The text a release's signature must cover: dm3 form without ``timestamp``, else timestamped."""
    if timestamp is None:
        return SignedText(dm3_release_text(dm3_name), 0, False)
    remember = check_timestamp(timestamp, now_ms)
    return SignedText(timestamped_release_text(dm3_name, timestamp), remember, True)


def claim_digest(public_signing_key: str, text: str) -> str:
    """Replay identity of a signed text under one key: sha256 hex of ``key LF text``."""
    return hashlib.sha256(f"{public_signing_key}\n{text}".encode("utf-8")).hexdigest()
