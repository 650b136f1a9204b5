"""Writes specs/vectors/storage.json: vectors of the storage formats (specs/storage.md).

Deliberately written without ``ensign``: only the standard library and PyNaCl, following the prose
of specs/storage.md, so the vectors are a second implementation that ``ensign.protocol.revisions``
and ``ensign.protocol.grants`` are checked against (tests/protocol/test_protocol_storage.py).

    python specs/vectors/storage_vectors.py     # from the repository root, in the project's venv
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.signing

OUT = Path(__file__).with_name("storage.json")


def canonical(value: Any) -> str:
    # The storage objects hold only ASCII keys, strings, integers, null and lists: sorted compact JSON.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def keys(label: str) -> tuple[nacl.signing.SigningKey, str, str]:
    seed = hashlib.sha256(label.encode()).digest()
    key = nacl.signing.SigningKey(seed)
    public = base64.b64encode(bytes(key.verify_key)).decode()
    secret = base64.b64encode(seed + bytes(key.verify_key)).decode()  # libsodium's 64-byte form
    return key, public, secret


def signed(key: nacl.signing.SigningKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode("utf-8")).signature).decode()


def revision(key: nacl.signing.SigningKey, public: str, owner: str, ns: str, doc: str, data: str | None,
             links: list[str], lastrev: str | None) -> dict[str, Any]:
    content = {"v": 1, "owner": owner, "namespace": ns, "key": doc, "data": data, "links": links, "_lastrev": lastrev}
    text = canonical(content)
    rev = sha256_hex(text)
    return {
        "content": content,
        "canonical": text,
        "signedText": "Ensign storage revision\n" + rev,
        "revision": {"owner": owner, "namespace": ns, "key": doc, "data": data, "links": links, "_lastrev": lastrev,
                     "_rev": rev, "signer": public, "signature": signed(key, "Ensign storage revision\n" + rev)},
    }


def main() -> None:
    owner_key, owner_public, owner_secret = keys("ensign storage vectors: owner signing key")
    notary_key, notary_public, notary_secret = keys("ensign storage vectors: notary signing key")
    owner = "0x" + hashlib.sha256(b"ensign storage vectors: owner address").hexdigest()[:40]
    reader = "0x" + hashlib.sha256(b"ensign storage vectors: reader address").hexdigest()[:40]
    blob = "0x" + hashlib.sha256(b"a blob").hexdigest()
    first = revision(owner_key, owner_public, owner, "notes", "todo", "c2VhbGVkIDE=", [], None)
    second = revision(owner_key, owner_public, owner, "notes", "todo", "c2VhbGVkIDI=", [blob],
                      first["revision"]["_rev"])
    removal = revision(owner_key, owner_public, owner, "notes", "todo", None, [], second["revision"]["_rev"])
    cosig_text = "Ensign storage cosignature\n" + first["revision"]["_rev"]
    grant_content = {"v": 1, "owner": owner, "reader": reader, "namespace": "notes", "key": None,
                     "expires": 1767225600000, "wrappedKey": "{\"ciphertext\":\"…\"}",
                     "nonce": "0x" + "ab" * 16}
    grant_id = sha256_hex(canonical(grant_content))
    grant = {k: v for k, v in grant_content.items() if k != "v"}
    grant.update(id=grant_id, signer=owner_public, signature=signed(owner_key, "Ensign storage grant\n" + grant_id))
    vectors = {
        "description": "Storage formats of specs/storage.md, made by specs/vectors/storage_vectors.py "
                       "(standard library and PyNaCl only).",
        "keys": {
            "owner": {"publicKey": owner_public, "privateKey": owner_secret},
            "notary": {"publicKey": notary_public, "privateKey": notary_secret},
        },
        "revisions": {
            "description": "A chain: a first revision, a next one with a link, a removal.",
            "chain": [first, second, removal],
        },
        "cosignature": {
            "description": "The notary co-signs the first revision.",
            "signedText": cosig_text,
            "cosignature": {"signer": notary_public, "signature": signed(notary_key, cosig_text)},
        },
        "grant": {
            "description": "The owner grants the reader the notes namespace.",
            "content": grant_content,
            "canonical": canonical(grant_content),
            "grant": grant,
        },
    }
    OUT.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
