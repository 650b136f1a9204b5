"""What the delivery service keeps at rest: sealed envelopes and keyed tags instead of senders.

A queued message must be served as dm3 clients expect it (``metadata.deliveryInformation`` as the
decrypted ``{to, from}`` object), yet Redis should not hold the sender's name for the life of the
message. Keeping the envelope as submitted would not be enough: its ``metadata.signature`` is the
sender's Ed25519 signature, and anyone can check it against the public signing key of each
profile in ENS until one fits. So the whole stored envelope is sealed:

* **Sealed envelope** — ``0x01 || nonce (24 bytes) || XChaCha20-Poly1305(pad(envelope))``, the
  receiver's account as associated data (a record copied into another queue does not open), the
  envelope padded to a multiple of :data:`SEAL_BLOCK` bytes (ISO/IEC 7816-4, as dm3 pads), so the
  stored length does not tell the length of the names in its delivery information. Serving it is
  one AEAD open (microseconds; no X25519, no JSON), and the bytes served are the bytes sealed.
  The nonce is unique per seal: a process's random 128-bit prefix and a counter (:mod:`ensign.unique`). A
  record that starts with ``{`` is an envelope stored in clear before sealing existed: it is
  served as it is (:meth:`AtRest.open`).
* **Sender tag** — ``BLAKE2b-128(lowercase "<sender>><receiver>", key)``, hex: what de-duplication
  is scoped by (the ``msg`` record's head, the ``acked`` zset, a scoped message id;
  :meth:`AtRest.sender_tag`). Equal for one sender's messages to one receiver, so the scripts
  compare tags as they compared addresses; different in every receiver's queue, so the queues of
  two receivers do not show a common sender.
* **Subject tag** — ``BLAKE2b-128(lowercase subject, another key)``: what rate-limit buckets and
  a client address's socket set are named by (:meth:`AtRest.subject`).

Without the keys nobody can compute a tag, so nobody holding only the Redis data can test a
guessed address against one.
* **Log reference** — a shorter keyed BLAKE2b (48 bits, 12 hex) that INFO lines carry instead of an address
  (:meth:`AtRest.log_ref`), so lines of one account can be followed without naming it. An
  operator computes the reference of an address with the same function.

The keys are derived, with BLAKE2b and one personalisation per use, from one 32-byte master:
``AT_REST_KEY`` when it is set, else a key derived from the service's X25519 private key
(``ENCRYPTION_PRIVATE_KEY``; :func:`derived_master`). That key never reaches Redis and every
process already holds it; a second secret would have to be generated, shared among the processes
and backed up the same way, and would protect nothing more (whoever holds the private key reads
the ``deliveryInformation`` of every envelope submitted anyway). But the encryption key changes in
a key rotation while messages stay queued for up to ``MESSAGE_TTL``: so a rotation needs
``AT_REST_KEY`` set, to the master derived from the current key (``ensign keys at-rest`` prints
it), and the settings refuse ``NEXT_*`` keys without it. Changing the master itself leaves the
sealed messages still queued unreadable — they are skipped (and logged) until they expire, and
de-duplication and rate buckets start afresh.
"""

from __future__ import annotations

import functools
import hashlib

import nacl.bindings as sodium
from nacl.exceptions import CryptoError

from ensign.config import DeliveryKeys, DeliverySettings
from ensign.errors import DecryptionError
from ensign.protocol.crypto import pad, unpad
from ensign.protocol.encoding import b64decode
from ensign.unique import UniqueCounter

__all__ = ["SEAL_BLOCK", "AtRest", "derived_master"]

#: Sealed envelopes are padded to a multiple of this many bytes.
SEAL_BLOCK = 256

_SEALED = b"\x01"
_CLEAR = b"{"
_NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
#: Keyed tags remembered per process (subjects, senders, log references seen lately): hashing
#: the same few addresses again for every message was 2 % of a submission's CPU.
TAG_CACHE_SIZE = 8192


# Unique 24-byte XChaCha20 nonces: 16 random bytes per process and an 8-byte counter
# (ensign.unique). A random nonce per seal cost a getrandom system call (6–7 µs on the benchmark
# host, 1.3 % of a submission); a 128-bit random prefix makes two processes' nonces collide with
# negligible probability, as random 192-bit nonces would.
_nonces = UniqueCounter(16)


def _next_nonce() -> bytes:
    prefix, count = _nonces.next()
    return prefix + count.to_bytes(8, "big")


@functools.lru_cache(maxsize=TAG_CACHE_SIZE)
def _keyed_tag(key: bytes, text: str, digest_size: int) -> str:
    return hashlib.blake2b(text.lower().encode(), key=key, digest_size=digest_size).hexdigest()


def _derive(master: bytes, use: bytes) -> bytes:
    return hashlib.blake2b(b"", key=master, person=use, digest_size=32).digest()


def derived_master(keys: DeliveryKeys) -> bytes:
    """The at-rest master of a service without ``AT_REST_KEY``: derived from its X25519 private key
    (so the master, which ``ensign keys at-rest`` prints, is not the private key itself)."""
    return _derive(b64decode(keys.encryption_private_key, length=32, what="ENCRYPTION_PRIVATE_KEY"), b"ensign/rest-key")


class AtRest:
    """Seals stored envelopes and tags senders with keys derived from ``master`` (32 bytes).

    Build it with :meth:`from_settings` from the service's settings.
    """

    def __init__(self, master: bytes) -> None:
        if len(master) != 32:
            raise ValueError("the at-rest master key must be 32 bytes")
        self._seal_key = _derive(master, b"ensign/rest-seal")
        self._tag_key = _derive(master, b"ensign/rest-tag")
        self._sender_key = _derive(master, b"ensign/rest-from")
        self._log_key = _derive(master, b"ensign/log-ref")

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> AtRest:
        """``AT_REST_KEY``, else the master derived from the current encryption key (module docstring)."""
        if settings.at_rest_key is not None:
            return cls(b64decode(settings.at_rest_key, length=32, what="AT_REST_KEY"))
        return cls(derived_master(settings.keys))

    def __repr__(self) -> str:
        return "AtRest(<keys hidden>)"

    def seal(self, envelope: bytes, account: str) -> bytes:
        """The record body stored for ``envelope`` queued for ``account``."""
        nonce = _next_nonce()
        return _SEALED + nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            pad(envelope, SEAL_BLOCK), account.lower().encode(), nonce, self._seal_key
        )

    def open(self, body: bytes, account: str) -> bytes:
        """The envelope of a stored record body: opened when sealed, as it is when stored in clear.

        :class:`DecryptionError` when it was sealed with another key (``ENCRYPTION_PRIVATE_KEY``
        changed) or for another account, or has been altered.
        """
        if body[:1] == _CLEAR:
            return body
        if body[:1] != _SEALED or len(body) < 1 + _NONCE_BYTES:
            raise DecryptionError("the stored record is neither a sealed nor a plain envelope")
        nonce = body[1 : 1 + _NONCE_BYTES]
        try:
            padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                body[1 + _NONCE_BYTES :], account.lower().encode(), nonce, self._seal_key
            )
        except CryptoError:
            raise DecryptionError("the stored envelope does not open with this service's key") from None
        return unpad(padded, SEAL_BLOCK)

    def sender_tag(self, sender: str, receiver: str) -> str:
        """The keyed tag a message of ``sender`` (an address, any case) is scoped by in
        ``receiver``'s queue: 32 hex."""
        return _keyed_tag(self._sender_key, f"{sender}>{receiver}", 16)

    def subject(self, value: str) -> str:
        """The keyed tag of ``value`` (an address, any case; a client address; a pair): 32 hex."""
        return _keyed_tag(self._tag_key, value, 16)

    def log_ref(self, address: str) -> str:
        """The short keyed reference INFO log lines carry instead of ``address``: 12 hex."""
        return _keyed_tag(self._log_key, address, 6)
