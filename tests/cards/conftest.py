# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader

from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse

UID = bytes.fromhex("04A1B2C3D4E5F6")


@pytest.fixture
def keystore() -> SoftwareKeyStore:
    return SoftwareKeyStore(
        {role: bytes([n]) * 16 for n, role in enumerate(SoftwareKeyStore.generate(b"X")._masters)},
        b"LOYALTY-TEST",
    )


@pytest.fixture
def card() -> VirtualDesfire:
    return VirtualDesfire(UID)


@pytest.fixture
def reader(card: VirtualDesfire) -> VirtualReader:
    reader = VirtualReader()
    reader.insert(card)
    return reader


@pytest.fixture
def purse(keystore: SoftwareKeyStore) -> Purse:
    return Purse(keystore, clock=lambda: 1_800_000_000)


@pytest.fixture
def issued(purse: Purse, reader: VirtualReader, card: VirtualDesfire) -> VirtualDesfire:
    purse.issue(reader.connect(), card.uid, initial=1000)
    return card
