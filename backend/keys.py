"""The profile backend's Redis layout: every key it uses is named here, and only here.

``P`` is ``RedisSettings.prefix`` followed by ``{backend}:`` (``ensign:{backend}:``
by default); ``<addr>`` is an address in lowercase hex (``0xab…01``); names are dm3-normalised.
Only :mod:`backend.store` writes these keys.

``P profile:<addr>`` — hash, one per address that registered a profile
    ``profile``     canonical JSON (:func:`ensign.protocol.canonical.stringify`) of the current
                    SignedUserProfile, exactly what the records feed publishes
    ``hash``        content hash: sha256 0x-hex of the canonical JSON of the UserProfile alone
                    (keys and delivery services, without the signature — see ``superseded``)
    ``updated_at``  when this profile was stored, ms since the epoch
    Replaced by a newer profile; never deleted (dm3 has no account deletion).

``P superseded:<addr>`` — set of content hashes of every profile this address has replaced.
    A profile whose content hash is here is refused, so nobody can roll an address back to old keys
    by replaying its old profile, which was public in ENS. The hash leaves out the signature on
    purpose: an ECDSA signature can be re-encoded (high-s, v = 0/1) into another valid one, which
    must not turn a superseded profile into a "new" one. Grows by one per update; never trimmed.

``P domains:<addr>`` — set of addr domains (``addr.ensign.eth``) under which the address name
    ``<addr>.<domain>`` is registered. Never shrinks.

``P aliases:<addr>`` — sorted set: alias → claimed_at (ms). The address's aliases, oldest first;
    the oldest is its primary name (``GET /profile/name/<addr>``). At most ``MAX_ALIASES``.

``P alias:<alias>`` — string: the owner address (lowercase hex). Set on claim, deleted on release.
    Kept in step with ``aliases:<addr>`` by the claim and release scripts. Aliases belong to the
    address, not to a profile: replacing the profile keeps them.

``P claim:<digest>`` — string ``"1"``: a signed alias claim or release that has been used.
    ``digest`` is sha256 hex of ``<public signing key> "\\n" <signed text>`` (independent of the
    signature bytes). Timestamped claims expire when their time window has passed
    (``PX`` = window end − now + 1 s); dm3-form claims, which carry no time, are kept for ever.

``P revocations:<addr>`` — string: canonical JSON of the address's wallet-signed list of revoked
    signing keys (:mod:`ensign.protocol.revocation`), what the records feed publishes as
    ``eth.ensign.revokedKeys`` on every name of the address. Replaced only by a list that keeps
    every entry (``set_revocations.lua``); never deleted.

``P challenge:<uuid>`` — string ``"1"``: a redeemed storage-login challenge (:mod:`ensign.sessions`),
    set once (``NX``) and expiring with the challenge (≤ 900 s).

The user's storage (documents, grants, dm3's conversations, blobs) is not under ``{backend}``: each
account's keys carry its own tag ``{st:<addr>}`` (``specs/storage.md``; builders at the end).

Redis Cluster: every key above carries the one hash tag ``{backend}``, so all of them sit in one slot.
A claim touches an alias key, an address's keys and a claim mark at once — keys that no per-address
or per-alias tag could put together — and one slot keeps each script atomic without a two-phase
protocol. The price is that one primary (and its replicas) holds the whole backend: about 1 KiB
per address with a profile, so a million addresses fit in a few GiB, and the backend's traffic
(registrations, claims, the gateway's reads) is small next to the delivery service's, whose
queues are tagged per account and spread over the cluster. ``RedisSettings`` refuses a prefix
with a brace, which would move the tag.
"""

from __future__ import annotations

__all__ = [
    "StorageKeys",
    "alias_key",
    "aliases_key",
    "challenge_key",
    "claim_key",
    "domains_key",
    "profile_key",
    "revocations_key",
    "storage_key",
    "storage_tag",
    "superseded_key",
    "usage_key",
]

# The hash tag that puts every backend key in one cluster slot (see the module docstring).
_TAG = "{backend}"


def profile_key(prefix: str, address: str) -> str:
    """``P profile:<addr>`` — the address's current profile."""
    return f"{prefix}{_TAG}:profile:{address.lower()}"


def superseded_key(prefix: str, address: str) -> str:
    """``P superseded:<addr>`` — content hashes of the profiles the address has replaced."""
    return f"{prefix}{_TAG}:superseded:{address.lower()}"


def domains_key(prefix: str, address: str) -> str:
    """``P domains:<addr>`` — the addr domains the address name is registered under."""
    return f"{prefix}{_TAG}:domains:{address.lower()}"


def aliases_key(prefix: str, address: str) -> str:
    """``P aliases:<addr>`` — the address's aliases, oldest first."""
    return f"{prefix}{_TAG}:aliases:{address.lower()}"


def alias_key(prefix: str, alias: str) -> str:
    """``P alias:<alias>`` — the alias's owner."""
    return f"{prefix}{_TAG}:alias:{alias}"


def revocations_key(prefix: str, address: str) -> str:
    """``P revocations:<addr>`` — the address's signed list of revoked signing keys."""
    return f"{prefix}{_TAG}:revocations:{address.lower()}"


def claim_key(prefix: str, digest: str) -> str:
    """``P claim:<digest>`` — a used signed alias claim or release."""
    return f"{prefix}{_TAG}:claim:{digest}"


# --- the user's storage and its login ---------------------------------------------------------------
#
# Each account's storage keys carry the account's own tag ``{st:<addr>}`` (one slot per account, so
# each storage script is atomic and accounts spread over a cluster); the rest of each key is named
# in the layout docstrings of backend/docstore.py, backend/convstore.py and backend/blobstore.py.


def storage_tag(prefix: str, address: str) -> str:
    """``<prefix>{st:<addr>}`` — the start of every storage key of one account."""
    return f"{prefix}{{st:{address.lower()}}}"


def storage_key(prefix: str, address: str, rest: str) -> str:
    """``<prefix>{st:<addr>}:<rest>`` — one storage key of the account (``rest`` from a store's layout)."""
    return f"{storage_tag(prefix, address)}:{rest}"


def usage_key(prefix: str, address: str) -> str:
    """``<prefix>{st:<addr>}:usage`` — bytes the account keeps, shared by every kind of storage."""
    return storage_key(prefix, address, "usage")


class StorageKeys:
    """Base of the three storage stores: the prefix they were given (checked once) and their keys.

    :param prefix: ``RedisSettings.prefix``. A brace in it would end the account's hash tag early
        (and on a cluster put an account's keys in different slots), so it is refused.
    """

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("prefix must not contain '{' or '}'")
        self.prefix = prefix

    def _k(self, owner: str, rest: str) -> str:
        return storage_key(self.prefix, owner, rest)

    def _usage(self, owner: str) -> str:
        return usage_key(self.prefix, owner)


def challenge_key(prefix: str, challenge_id: str) -> str:
    """``P challenge:<uuid>`` — a redeemed storage-login challenge (``SET NX``, expires with it)."""
    return f"{prefix}{_TAG}:challenge:{challenge_id}"
