# SPDX-License-Identifier: Apache-2.0
"""The encrypted software keystore."""

from __future__ import annotations

import json

import pytest

from loyaltysdk.cards.keystore import KeyRole, KeyStoreError, SoftwareKeyStore

AID = bytes.fromhex("01594C")


def test_round_trip_and_diversification(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SoftwareKeyStore.generate(b"CHAIN-1")
    path = tmp_path / "keys.json"
    store.save(path, "correct horse", scrypt_n=2**10)
    assert b"CHAIN-1".hex() not in path.read_text()  # nothing in clear
    opened = SoftwareKeyStore.open(path, "correct horse")
    uid = bytes.fromhex("04010203040506")
    for role in KeyRole:
        assert opened.card_key(role, uid, AID) == store.card_key(role, uid, AID)
    assert store.card_key(KeyRole.DEBIT, uid, AID) != store.card_key(KeyRole.DEBIT, uid[::-1], AID)
    assert (path.stat().st_mode & 0o777) == 0o600


def test_wrong_passphrase_and_tampering(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys.json"
    SoftwareKeyStore.generate(b"CHAIN-1").save(path, "secret", scrypt_n=2**10)
    with pytest.raises(KeyStoreError):
        SoftwareKeyStore.open(path, "Secret")
    document = json.loads(path.read_text())
    document["n"] = 2**11  # a changed header is caught too (it is authenticated)
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError):
        SoftwareKeyStore.open(path, "secret")
    path.write_text("not json")
    with pytest.raises(KeyStoreError):
        SoftwareKeyStore.open(path, "secret")
    with pytest.raises(KeyStoreError):
        SoftwareKeyStore.generate(b"X").save(path, "")
