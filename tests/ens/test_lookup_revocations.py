"""The lookup's revoked keys: read from the name and from the address's own names, forged lists
ignored, the rest merged (``specs/gateway.md`` §2.2 step 6)."""

from __future__ import annotations

import base64
import secrets

from ensign.protocol.profile import profile_json_data_uri
from ensign.protocol.records import PROFILE_RECORD_NAME, REVOCATION_RECORD_NAME
from ensign.protocol.revocation import RevocationList, RevokedKey, revocation_record, sign_revocations
from tests.stack import Stack
from tests.wallets import Wallet

OTHER_NAME = "alice.elsewhere.eth"


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def test_revoked_keys_come_from_the_name_and_the_address_name_and_forged_lists_are_ignored(stack: Stack) -> None:
    alice = Wallet.create()
    signed = alice.profile()
    assert (await stack.register(alice, signed)).status == 200
    assert (await stack.lookup.user_profile(alice.address_name)).revoked == {}

    lost, stolen, invented = key(), key(), key()
    listed = sign_revocations(alice.private_key, [RevokedKey(lost, 1000)])
    async with stack.http.post(stack.backend.make_url(f"/revocations/{alice.address}"), json=listed.to_json()) as response:
        assert response.status == 200, await response.text()
    stack.lookup.forget(alice.address_name)
    assert (await stack.lookup.user_profile(alice.address_name)).revoked == {lost: 1000}

    # A name made elsewhere for the address, without the list: the address name's list applies.
    await stack.chain.set_addr(OTHER_NAME, alice.address)
    await stack.chain.set_text(OTHER_NAME, PROFILE_RECORD_NAME, profile_json_data_uri(signed))
    assert (await stack.lookup.user_profile(OTHER_NAME)).revoked == {lost: 1000}

    # Its own list is merged when the wallet signed it (earliest time wins) and ignored when not.
    own = sign_revocations(alice.private_key, [RevokedKey(lost, 500), RevokedKey(stolen, 2000)])
    await stack.chain.set_text(OTHER_NAME, REVOCATION_RECORD_NAME, revocation_record(own))
    stack.lookup.forget(OTHER_NAME)
    assert (await stack.lookup.user_profile(OTHER_NAME)).revoked == {lost: 500, stolen: 2000}
    other_wallet = sign_revocations("0x" + secrets.token_hex(32), [RevokedKey(invented, 1)])
    forged = RevocationList(alice.address, other_wallet.revoked, other_wallet.signature)
    await stack.chain.set_text(OTHER_NAME, REVOCATION_RECORD_NAME, revocation_record(forged))
    stack.lookup.forget(OTHER_NAME)
    assert (await stack.lookup.user_profile(OTHER_NAME)).revoked == {lost: 1000}
    await stack.chain.set_text(OTHER_NAME, REVOCATION_RECORD_NAME, "data:application/json,{not json")
    stack.lookup.forget(OTHER_NAME)
    assert (await stack.lookup.user_profile(OTHER_NAME)).revoked == {lost: 1000}
