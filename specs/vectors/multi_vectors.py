"""Writes specs/vectors/multi.json: a multi-recipient envelope (specs/protocol.md §1.15).

Deliberately written without ``ensign``: only the standard library and PyNaCl, following the prose
of specs/protocol.md, so the vector is a second implementation that ``ensign.protocol.multi`` is
checked against (tests/protocol/test_protocol_multi.py).

    python specs/vectors/multi_vectors.py     # from the repository root, in the project's venv

Every random value comes from ``SHA-256(RANDOM_SEED ‖ counter)`` (counter a 4-byte big-endian
integer from 0, each draw taking whole 32-byte blocks), drawn in this order: the content key (32),
the content nonce (12), the delivery information's ephemeral seed (32) and nonce (12), then each
wrapped key's ephemeral seed (32) and nonce (12).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

OUT = Path(__file__).with_name("multi.json")
RANDOM_SEED = b"ensign multi-recipient vector"
PAD_BLOCK = 2048
KEY_PAD_BLOCK = 64  # grants.WRAP_BLOCK


def canonical(value: Any) -> str:
    # Only ASCII keys, BMP strings and small integers here: sorted compact JSON is dm3's stringify.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Random:
    def __init__(self, seed: bytes) -> None:
        self.seed, self.counter = seed, 0

    def draw(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(4, "big")).digest()
            self.counter += 1
        return out[:n]


def seal(key: bytes, nonce: bytes, text: str, block: int) -> dict[str, str]:
    padded = sodium.sodium_pad(text.encode("utf-8"), block)
    sealed = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(padded, None, nonce, key)
    return {"ciphertext": b64(sealed), "nonce": "0x" + nonce.hex()}


def seal_to(public_key: bytes, seed: bytes, nonce: bytes, text: str, block: int) -> str:
    eph_pk, eph_sk = sodium.crypto_kx_seed_keypair(seed)
    _rx, tx = sodium.crypto_kx_client_session_keys(eph_pk, eph_sk, public_key)
    return canonical({**seal(tx, nonce, text, block), "ephemPublicKey": b64(eph_pk)})


def main() -> None:
    rng = Random(RANDOM_SEED)
    sender_pk, sender_sk = sodium.crypto_sign_seed_keypair(bytes([1]) * 32)
    ds_pk, _ds_sk = sodium.crypto_kx_seed_keypair(bytes([2]) * 32)
    names = ["alice.user.ensign.eth", "bob.user.ensign.eth", "carol.user.ensign.eth"]
    receiver_seeds = [bytes([10 + i]) * 32 for i in range(len(names))]
    receiver_pks = [sodium.crypto_kx_seed_keypair(seed)[0] for seed in receiver_seeds]
    sender_name = "dave.user.ensign.eth"

    unsigned_message = {
        "message": "gm to all three ✓",
        "metadata": {"to": canonical(names), "from": sender_name, "timestamp": 1_700_000_000_000, "type": "NEW"},
    }
    message_signature = b64(sodium.crypto_sign(canonical(unsigned_message).encode("utf-8"), sender_sk)[:64])
    message = {**unsigned_message, "signature": message_signature}

    content_key = rng.draw(32)
    envelope_message = canonical(seal(content_key, rng.draw(12), canonical(message), PAD_BLOCK))
    info = canonical({"from": sender_name, "to": names})
    delivery_information = seal_to(ds_pk, rng.draw(32), rng.draw(12), info, PAD_BLOCK)
    keys = [seal_to(pk, rng.draw(32), rng.draw(12), b64(content_key), KEY_PAD_BLOCK) for pk in receiver_pks]
    unsigned_metadata = {
        "version": "ensign-multi-v1",
        "encryptionScheme": "x25519-chacha20-poly1305",
        "encryptedMessageHash": "0x" + hashlib.sha256(json.dumps(envelope_message).encode()).hexdigest(),
        "deliveryInformation": delivery_information,
        "keys": keys,
    }
    signature_payload = canonical(unsigned_metadata)
    signature = b64(sodium.crypto_sign(signature_payload.encode("utf-8"), sender_sk)[:64])
    envelope = {"message": envelope_message, "metadata": {**unsigned_metadata, "signature": signature}}
    copies = [
        {
            "message": envelope_message,
            "metadata": {
                "version": "ensign-multi-v1",
                "encryptionScheme": "x25519-chacha20-poly1305",
                "encryptedMessageHash": unsigned_metadata["encryptedMessageHash"],
                "deliveryInformation": {"to": name, "from": sender_name},
                "key": key,
            },
        }
        for name, key in zip(names, keys)
    ]
    vector = {
        "description": "ensign-multi-v1 envelope to three receivers (specs/protocol.md §1.15); written by specs/vectors/multi_vectors.py",
        "randomSeed": RANDOM_SEED.decode("ascii"),
        "senderSigningSeed": "0x" + (bytes([1]) * 32).hex(),
        "senderSigningPublicKey": b64(sender_pk),
        "deliveryServiceEncryptionSeed": "0x" + (bytes([2]) * 32).hex(),
        "receivers": [
            {"name": name, "encryptionSeed": "0x" + seed.hex(), "publicEncryptionKey": b64(pk)}
            for name, seed, pk in zip(names, receiver_seeds, receiver_pks)
        ],
        "message": message,
        "contentKey": b64(content_key),
        "deliveryInformation": json.loads(info),
        "signaturePayload": signature_payload,
        "envelope": envelope,
        "copies": copies,
    }
    OUT.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
