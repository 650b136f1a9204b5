"""Test wallets: an Ethereum account with the dm3 keys derived from it, and the bodies a dm3
client sends for it. Shared by the backend, profile end-to-end and delivery tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from backend.claims import timestamped_claim_text, timestamped_release_text
from ensign.protocol.crypto import sign
from ensign.protocol.keys import ProfileKeys, profile_keys_from_wallet
from ensign.protocol.models import SignedUserProfile, UserProfile
from ensign.protocol.profile import sign_profile

ADDR_DOMAIN = "addr.ensign.eth"
USER_DOMAIN = "user.ensign.eth"


@dataclass
class Wallet:
    """An Ethereum account with the dm3 keys derived from it, as a dm3 client would have."""

    private_key: str
    address: str
    keys: ProfileKeys

    @classmethod
    def create(cls) -> Wallet:
        account = Account.create()
        private_key = "0x" + bytes(account.key).hex()
        return cls(private_key, account.address, profile_keys_from_wallet(private_key))

    @property
    def address_name(self) -> str:
        return f"{self.address.lower()}.{ADDR_DOMAIN}"

    def profile(self, *delivery_services: str, signing_key: str | None = None) -> SignedUserProfile:
        """A profile with the wallet's derived keys (or another signing key), signed by the wallet."""
        profile = UserProfile(
            public_encryption_key=self.keys.encryption.public_key,
            public_signing_key=signing_key or self.keys.signing.public_key,
            delivery_services=tuple(delivery_services or ("ds.ensign.eth",)),
        )
        return sign_profile(self.private_key, profile)

    def register_body(self, signed: SignedUserProfile | None = None, *, subdomain: str = ADDR_DOMAIN) -> dict[str, Any]:
        """dm3's ``POST /profile/address`` body."""
        signed = signed or self.profile()
        return {"signedUserProfile": signed.to_json(), "address": self.address, "subdomain": subdomain}

    def dm3_claim(self, alias: str, *, secret_key: str | None = None) -> dict[str, Any]:
        """dm3's ``POST /profile/name`` body, signed ``alias: <name>``."""
        key = secret_key or self.keys.signing.secret_key
        return {"signature": sign(key, "alias: " + alias), "addressName": self.address_name, "dm3Name": alias}

    def dm3_release(self, alias: str, *, secret_key: str | None = None) -> dict[str, Any]:
        """dm3's ``POST /profile/deleteName`` body, signed ``remove: <name>``."""
        key = secret_key or self.keys.signing.secret_key
        return {"signature": sign(key, "remove: " + alias), "dm3Name": alias}

    def timed_claim(self, alias: str, *, timestamp: int | None = None, secret_key: str | None = None) -> dict[str, Any]:
        """The timestamped claim body."""
        ts = now_ms() if timestamp is None else timestamp
        text = timestamped_claim_text(alias, self.address_name, ts)
        key = secret_key or self.keys.signing.secret_key
        return {"signature": sign(key, text), "addressName": self.address_name, "dm3Name": alias, "timestamp": ts}

    def timed_release(self, alias: str, *, timestamp: int | None = None, secret_key: str | None = None) -> dict[str, Any]:
        """The timestamped release body."""
        ts = now_ms() if timestamp is None else timestamp
        key = secret_key or self.keys.signing.secret_key
        return {"signature": sign(key, timestamped_release_text(alias, ts)), "dm3Name": alias, "timestamp": ts}


def now_ms() -> int:
    return int(time.time() * 1000)
