# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk import Money
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.rules import load_rules
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.till import Till, TillPolicy
from loyaltysdk.vouchers import IssuerKey, Keyring, RedemptionPolicy

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "points": {"expiry_days": 365},
    "exclude": {"categories": ["gift-card"]},
    "rules": [
        {
            "id": "base",
            "description": "1 point per euro",
            "effect": {"type": "earn", "points": 1, "per": 100},
        },
        {
            "id": "coffee",
            "description": "double on coffee",
            "effect": {"type": "multiply", "factor": "2"},
            "what": {"categories": ["coffee"]},
        },
    ],
}
KEYSTORE = SoftwareKeyStore.generate(b"TEST-CHAIN")
ISSUER = IssuerKey.generate("HQ-1")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: Any) -> None:
        self.now += timedelta(**delta)


def open_till(path: Path, clock: Clock) -> Till:
    return Till.open(
        path,
        store="S1",
        till_id="S1-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        clock=clock,
        purse=Purse(KEYSTORE, clock=lambda: clock().timestamp()),
        keyring=Keyring({"HQ-1": ISSUER.public_key}),
        policy=TillPolicy(vouchers=RedemptionPolicy(offline_max_value=5_000)),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def till(tmp_path: Path, clock: Clock) -> Iterator[Till]:
    till = open_till(tmp_path / "till.db", clock)
    yield till
    till.close()


@pytest.fixture
def card() -> VirtualDesfire:
    return VirtualDesfire(bytes.fromhex("04112233445566"))


@pytest.fixture
def reader(card: VirtualDesfire) -> VirtualReader:
    reader = VirtualReader()
    reader.insert(card)
    return reader


@pytest.fixture
def member(till: Till, card: VirtualDesfire, reader: VirtualReader) -> str:
    till.enrol("M1", card_uid=card.uid, card_kind="purse", pin="1234")
    till.purse.issue(reader.connect(), card.uid)  # type: ignore[union-attr]
    till.top_up("M1", Money(5_000, "EUR"), payment_ref="TOPUP-1")
    till.top_up_card(reader.connect(), card.uid, Money(3_000, "EUR"), payment_ref="TOPUP-2")
    return "M1"
