# SPDX-License-Identifier: Apache-2.0
"""The chain over real HTTP: `loyalty hub serve` on loopback, two tills of two stores.

On SQLite with one hub process, and on PostgreSQL with two (``--workers 2``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from loyaltysdk import Basket, Line, Money, Till
from loyaltysdk.hub import Hub, open_store
from loyaltysdk.sync import HttpLink, InsufficientOnline, Syncer, UpdateKind, register
from loyaltysdk.till import OnlineRefused
from loyaltysdk.vouchers import VoucherIssuer, VoucherTemplate

from .conftest import ISSUER, Clock, card_reader, open_till

EUR = "EUR"


@attrs.define
class HttpChain:
    hub: Hub
    url: str
    tills: dict[str, Till]
    links: dict[str, HttpLink]
    clock: Clock

    def sync(self) -> None:
        for _ in range(2):
            for name, till in self.tills.items():
                Syncer(till, self.links[name]).run_once()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _url_of(dsn: str) -> str:
    schema = re.search(r"search_path=(\w+)", dsn)
    assert schema is not None
    return f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema.group(1)}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def http_chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpChain]:
    if request.param == "sqlite":
        db, workers = str(tmp_path / "hub.db"), 1
    else:
        db, workers = _url_of(request.getfixturevalue("pg_dsn")), 2
    hub = Hub(open_store(db))  # head office's side, on the same database as the server
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loyaltysdk",
            "hub",
            "serve",
            "--db",
            db,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    give_up = time.monotonic() + 120  # a bound against a hang: the server's answer decides
    while time.monotonic() < give_up:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        time.sleep(0.05)
    clock = Clock()
    tills, links = {}, {}
    for name in ("S1", "S2"):
        registration = register(url, f"{name}-T1", hub.create_till(f"{name}-T1"))
        links[name] = HttpLink(url, registration.credential, timeout=10.0)
        tills[name] = open_till(tmp_path / f"{name}.db", name, clock, links[name])
        tills[name].trust_hub(registration.update_key)
    try:
        yield HttpChain(hub, url, tills, links, clock)
    finally:
        for till in tills.values():
            till.close()
        server.terminate()
        server.wait(timeout=60)


def test_one_account_across_the_chain_over_http(http_chain: HttpChain) -> None:
    one, two = http_chain.tills["S1"], http_chain.tills["S2"]
    uid = bytes.fromhex("04D00D00000001")
    one.enrol("M1")
    one.link_card("M1", uid, kind="purse")
    card, reader = card_reader(uid)
    one.issue_card(reader.connect(), uid, "M1")
    one.top_up_card(reader.connect(), uid, Money(3_000, EUR), payment_ref="L1")
    one.top_up("M1", Money(2_000, EUR), payment_ref="P1")
    one.checkout(Basket(EUR, [Line("TV", 1, 30_000)]), one.identify("M1")).complete("S1-R1")
    http_chain.sync()
    # Points, wallet and card value from store 1, spent at store 2.
    who = two.identify(uid)
    assert who.online
    sale = two.checkout(Basket(EUR, [Line("X", 1, 5_000)]), who)
    sale.redeem_points(300)
    sale.pay_wallet(Money(2_000, EUR))
    sale.pay_card(uid, Money(500, EUR))
    receipt = sale.complete("S2-R1", card=reader.connect())
    assert (receipt.points_redeemed, receipt.wallet_paid, receipt.card_paid) == (
        300,
        Money(2_000, EUR),
        Money(500, EUR),
    )
    assert receipt.mode == "online"
    # A voucher head office issued: the first online till holds it, the second is refused.
    start = http_chain.clock.now
    gift = VoucherIssuer(ISSUER).issue(
        VoucherTemplate("value", 4_000, EUR, start, start + timedelta(days=90), mode="partial")
    )
    http_chain.hub.publish(UpdateKind.VOUCHERS, {"terms": [gift.terms.to_json()]})
    http_chain.sync()
    first = one.checkout(Basket(EUR, [Line("A", 1, 4_000)]))
    first.apply_voucher(gift.payload)
    with pytest.raises(OnlineRefused):  # the hub's 409, as the typed refusal
        two.checkout(Basket(EUR, [Line("B", 1, 4_000)])).apply_voucher(gift.payload)
    first.complete("S1-R2")
    http_chain.sync()
    hub = http_chain.hub
    for account, left in (
        ("member:M1:wallet:EUR", 0),
        ("member:M1:points", 50),
        (f"card:{uid.hex().upper()}:EUR", 2_500),
        (f"voucher:{gift.terms.code}", 0),
    ):
        found = hub.balance(account)
        assert found is not None and found[2] - found[1] == left, (account, found)
    assert card.value_of(one.purse.layout.aid, 1) == 2_500  # type: ignore[union-attr]
    assert not hub.exceptions()
    assert set(hub.unit_totals().values()) == {0}


def test_with_the_hub_unreachable_a_payment_is_offline(
    http_chain: HttpChain, tmp_path: Path
) -> None:
    one = http_chain.tills["S1"]
    one.enrol("M1")
    one.top_up("M1", Money(2_000, EUR), payment_ref="P1")
    http_chain.sync()
    one.identify("M1")
    one.hub = HttpLink(f"http://127.0.0.1:{_free_port()}", "S1-T1.x", timeout=0.5)  # nobody there
    sale = one.checkout(Basket(EUR, [Line("X", 1, 1_000)]), one.identify("M1"))
    sale.pay_wallet(Money(1_000, EUR))
    assert sale.mode == "offline"
    assert sale.complete("S1-R1").mode == "offline"


def test_two_hub_workers_never_hold_one_balance_twice(http_chain: HttpChain) -> None:
    one = http_chain.tills["S1"]
    races = 40
    for n in range(races):
        one.enrol(f"M{n}")
        one.top_up(f"M{n}", Money(1_000, EUR), payment_ref=f"P{n}")
    http_chain.sync()
    links = [
        HttpLink(http_chain.url, http_chain.hub.register(t, http_chain.hub.create_till(t)))
        for t in ("R1", "R2")
    ]
    wins: list[list[int]] = [[] for _ in range(races)]
    barriers = [threading.Barrier(2) for _ in range(races)]
    errors: list[Any] = []

    def race(index: int) -> None:
        try:
            for n in range(races):
                barriers[n].wait()
                try:
                    links[index].take_hold(f"h{n}-{index}", f"member:M{n}:wallet:EUR", EUR, 1_000)
                    wins[n].append(index)
                except InsufficientOnline:
                    pass
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(len(w) == 1 for w in wins), wins
