# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from collections.abc import Iterator

import pytest

from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader

from ..slots import PcscSlot

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


PCSC = pytest.param("pcsc", marks=pytest.mark.pcsc)


@pytest.fixture(params=["memory", PCSC])
def slot(request: pytest.FixtureRequest) -> Iterator[VirtualReader | PcscSlot]:
    """An empty reader: in process, or pyscard -> pcscd -> vpcd -> bridge."""
    if request.param == "memory":
        yield VirtualReader()
        return
    pcscd = request.getfixturevalue("pcscd")
    slot = PcscSlot(pcscd)
    try:
        yield slot
    finally:
        slot.close()


@pytest.fixture
def reader(slot: VirtualReader | PcscSlot, card: VirtualDesfire) -> VirtualReader | PcscSlot:
    slot.insert(card)
    return slot


@pytest.fixture
def purse(keystore: SoftwareKeyStore) -> Purse:
    return Purse(keystore, clock=lambda: 1_800_000_000)


@pytest.fixture
def issued(purse: Purse, reader: VirtualReader | PcscSlot, card: VirtualDesfire) -> VirtualDesfire:
    purse.issue(reader.connect(), card.uid, initial=1000)
    return card
