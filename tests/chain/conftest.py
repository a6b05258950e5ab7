# SPDX-License-Identifier: Apache-2.0
"""A chain: one hub and two tills of two stores, on SQLite or the machine's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from loyaltysdk import Till, TillPolicy, load_rules
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.hub import Hub, PostgresHubStore, SQLiteHubStore
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.sync import DirectLink, Syncer
from loyaltysdk.vouchers import IssuerKey, Keyring

RULES: dict[str, Any] = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "points": {"expiry_days": 365},
    "rules": [
        {
            "id": "base",
            "description": "1 a euro",
            "effect": {"type": "earn", "points": 1, "per": 100},
        }
    ],
}
KEYSTORE = SoftwareKeyStore.generate(b"CHAIN")
ISSUER = IssuerKey.generate("HQ-1")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: Any) -> None:
        self.now += timedelta(**delta)


class Switch(DirectLink):
    """A direct link whose network can be cut."""

    down = False

    def _check(self) -> None:
        if self.down:
            from loyaltysdk import SyncError

            raise SyncError("no network")

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name in {"push", "pull", "take_hold", "release_hold", "snapshot"} and callable(
            attribute
        ):
            super().__getattribute__("_check")()
        return attribute


@attrs.define
class Store:
    till: Till
    link: Switch
    syncer: Syncer

    def sync(self) -> Any:
        return self.syncer.run_once()


@attrs.define
class Chain:
    hub: Hub
    s1: Store
    s2: Store
    clock: Clock
    path: Path

    def sync(self) -> None:
        """Both tills push and pull, twice: what one pushed reaches the other."""
        for _ in range(2):
            self.s1.sync()
            self.s2.sync()


def open_till(path: Path, store: str, clock: Clock, link: Any) -> Till:
    return Till.open(
        path,
        store=store,
        till_id=f"{store}-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        clock=clock,
        purse=Purse(KEYSTORE, clock=lambda: clock().timestamp()),
        keyring=Keyring({"HQ-1": ISSUER.public_key}),
        hub=link,
        # The POS checks presence for redemptions (a PIN, an OTP) in these tests.
        policy=TillPolicy(presence_for_redemption=False),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    if request.param == "sqlite":
        store = SQLiteHubStore(tmp_path / "hub.db")
    else:
        store = PostgresHubStore(request.getfixturevalue("pg_dsn"))
    clock = Clock()
    hub = Hub(store, clock=lambda: clock().timestamp())
    stores = []
    for name in ("S1", "S2"):
        link = Switch(hub, hub.register(f"{name}-T1", hub.create_till(f"{name}-T1")))
        till = open_till(tmp_path / f"{name}.db", name, clock, link)
        stores.append(Store(till, link, Syncer(till, link)))
    yield Chain(hub, stores[0], stores[1], clock, tmp_path)
    for each in stores:
        each.till.close()
    store.close()


def card_reader(uid: bytes) -> tuple[VirtualDesfire, VirtualReader]:
    card = VirtualDesfire(uid)
    reader = VirtualReader()
    reader.insert(card)
    return card, reader
