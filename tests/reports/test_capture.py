# SPDX-License-Identifier: Apache-2.0
"""Till → hub → reports: the same figures as the till alone, refunds and voids included.

Two tills of two stores sell to members and to nobody in particular, take
a voucher of a campaign, refund part of a sale and void another; they sync
through the hub (SQLite and PostgreSQL). Every report from the hub equals
the sum of the reports each till makes of its own file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk import Basket, Line, Money, StorageError, Till, load_rules
from loyaltysdk.hub import Hub, PostgresHubStore, SQLiteHubStore
from loyaltysdk.ledger import LedgerCorrupted
from loyaltysdk.reports import (
    campaigns,
    connect,
    liability,
    load_from_hub,
    load_from_till,
    member_stats,
    period,
    revenue,
    stores,
)
from loyaltysdk.sync import DirectLink, Syncer, check_receipt
from loyaltysdk.vouchers import IssuerKey, Keyring, VoucherIssuer, VoucherTemplate

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}
ISSUER = IssuerKey.generate("HQ-1")


def open_till(path: Path, store: str) -> Till:
    return Till.open(
        path,
        store=store,
        till_id=f"{store}-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        keyring=Keyring({"HQ-1": ISSUER.public_key}),
    )


def sell(till: Till, ref: str, member: str | None, *prices: int, voucher: Any = None) -> None:
    lines = [
        Line(f"SKU{n}", 2, price, category="food", brand="B") for n, price in enumerate(prices)
    ]
    sale = till.checkout(Basket("EUR", lines), till.identify(member) if member else None)
    if voucher is not None:
        sale.apply_voucher(voucher.payload)
    sale.complete(ref)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    return str(request.getfixturevalue("pg_dsn"))


def test_the_hub_reports_what_the_tills_report(tmp_path: Path, hub_url: str) -> None:
    store = (
        SQLiteHubStore(hub_url) if not hub_url.startswith("host=") else PostgresHubStore(hub_url)
    )
    hub = Hub(store)
    now = datetime.now(UTC)
    gift = VoucherIssuer(ISSUER).issue(
        VoucherTemplate(
            "value", 500, "EUR", now - timedelta(days=1), now + timedelta(days=30), campaign="XMAS"
        )
    )
    one, two = open_till(tmp_path / "one.db", "S1"), open_till(tmp_path / "two.db", "S2")
    for till in (one, two):
        till.vouchers.register(gift.terms)
    one.enrol("M1")
    one.enrol("M2")
    one.top_up("M1", Money(5_000, "EUR"), payment_ref="P1")
    sell(one, "S1-R1", "M1", 1_000, 250)
    sell(one, "S1-R2", None, 700)
    sell(one, "S1-R3", "M2", 4_000, voucher=gift)
    one.refund("S1-R1", {1: 1}, refund_ref="S1-F1")  # one of the two 2.50 items
    sell(one, "S1-R4", "M1", 3_000)
    one.void("S1-R4")
    for till in (one, two):
        Syncer(
            till, DirectLink(hub, hub.register(till.till_id, hub.create_till(till.till_id)))
        ).run_once()
    sell(two, "S2-R1", "M1", 2_000)  # M1 is known at store 2 through the hub
    sell(two, "S2-R2", None, 900)
    Syncer(two, DirectLink(hub, hub.register("S2-T1", hub.create_till("S2-T1")))).run_once()

    at_hub = connect(hub_url)
    assert load_from_hub(at_hub) == 8  # 6 sales, a refund, a void
    figures_at_hub = _figures(at_hub)
    tills = []
    for till in (one, two):
        path = till.ledger.store.path  # type: ignore[attr-defined]
        till.close()
        db = connect(str(path))
        load_from_till(db)
        tills.append(_figures(db))
        db.close()
    # Each till reports its own store; the hub reports both, and the chain-wide members.
    assert figures_at_hub["revenue"] == sorted(tills[0]["revenue"] + tills[1]["revenue"])
    assert figures_at_hub["liability"] == _add_months(tills[0]["liability"], tills[1]["liability"])
    assert figures_at_hub["campaigns"] == tills[0]["campaigns"]
    # Two of each item: R1 2,500 less 250 refunded, R2 1,400, R3 8,000, R4 6,000 voided.
    s1 = next(r for r in figures_at_hub["revenue"] if r[0] == "S1")
    assert s1 == ("S1", 3, 17_900, -6_250, 11_650)
    members = {m[0]: m for m in figures_at_hub["members"]}
    assert members["M1"][1:3] == (2, 2_250 + 4_000)  # a visit at each store, the void not one
    at_hub.close()
    hub.store.close()


def _figures(db: Any) -> dict[str, Any]:
    first, last = period(db)
    return {
        "revenue": sorted(
            (r.key, r.receipts, r.sales, r.refunds, r.revenue)
            for r in revenue(db, first, last, by="store")
        ),
        "members": sorted(
            (s.member, s.visits, s.revenue, s.cost) for s in member_stats(db, first, last)
        ),
        "stores": sorted((s.store, s.receipts, s.revenue) for s in stores(db, first, last)),
        "liability": [(r.month, r.earned, r.redeemed) for r in liability(db)],
        "campaigns": [(c.campaign, c.redeemed, c.value) for c in campaigns(db, first, last)],
    }


def _add_months(a: list[Any], b: list[Any]) -> list[Any]:
    total: dict[str, list[int]] = {}
    for month, earned, redeemed in a + b:
        entry = total.setdefault(month, [0, 0])
        entry[0] += earned
        entry[1] += redeemed
    return [(m, e, r) for m, (e, r) in sorted(total.items())]


def test_every_record_a_till_writes_is_one_the_hub_accepts(tmp_path: Path) -> None:
    till = open_till(tmp_path / "till.db", "S1")
    till.enrol("M1")
    sell(till, "R1", "M1", 1_000, 300)
    sell(till, "R2", None, 500)
    till.refund("R1", {0: 1}, refund_ref="F1")
    till.void("R2")
    records = [p for _, kind, p in till.unsent_events() if kind == "receipt"]
    assert [r["type"] for r in records] == ["sale", "sale", "refund", "void"]
    for record in records:
        check_receipt(record)
    refund = records[2]
    assert refund["receipt"] == "R1" and refund["total"] == -1_000
    assert refund["lines"] == [
        {
            "sku": "SKU0",
            "category": "food",
            "brand": "B",
            "quantity": -1,
            "unit_price": 1_000,
            "discount": 0,
            "points": -10,
        }
    ]
    till.close()


def test_an_older_till_file_makes_its_receipt_records_once(tmp_path: Path) -> None:
    till = open_till(tmp_path / "till.db", "S1")
    till.enrol("M1")
    sell(till, "R1", "M1", 1_000)
    sell(till, "R2", None, 500)
    till.refund("R1", {0: 1}, refund_ref="F1")
    conn = till.ledger.store.connection  # type: ignore[attr-defined]
    with till.ledger.atomic():  # as a file from before receipt records
        conn.execute("DELETE FROM till_events WHERE kind = 'receipt'")
        conn.execute("DELETE FROM till_settings WHERE name = 'receipts_captured'")
    till.close()
    for _ in range(2):  # opened twice: made once
        till = open_till(tmp_path / "till.db", "S1")
        records = [p for _, kind, p in till.unsent_events() if kind == "receipt"]
        till.close()
        assert sorted(r["ref"] for r in records) == ["F1", "R1", "R2"]
    refund = next(r for r in records if r["ref"] == "F1")
    assert refund["day"] == next(r for r in records if r["ref"] == "R1")["day"]
    assert json.dumps(refund)  # plain JSON


def test_a_sale_stores_its_lines_once_and_sends_its_record_whole(tmp_path: Path) -> None:
    """The commit stores the record's head; the sync and the till's reports get the
    whole record, joined with the receipt row, as a file from before stored it."""
    now = datetime.now(UTC)
    gift = VoucherIssuer(ISSUER).issue(
        VoucherTemplate(
            "value", 300, "EUR", now - timedelta(days=1), now + timedelta(days=30), campaign="XMAS"
        )
    )
    till = open_till(tmp_path / "till.db", "S1")
    till.vouchers.register(gift.terms)
    till.enrol("M1")
    sell(till, "R1", "M1", 1_000, 250, voucher=gift)
    conn = till.ledger.store.connection  # type: ignore[attr-defined]
    (stored,) = conn.execute("SELECT payload FROM till_events WHERE kind = 'receipt'").fetchone()
    assert "lines" not in json.loads(stored) and len(stored) < 400
    [(seq, record)] = [(s, p) for s, kind, p in till.unsent_events() if kind == "receipt"]
    check_receipt(record)
    day = record["day"]
    assert record == {
        "v": 1,
        "type": "sale",
        "ref": "R1",
        "receipt": "R1",
        "store": "S1",
        "till": "S1-T1",
        "at": record["at"],
        "day": day,
        "hour": record["hour"],
        "member": "M1",
        "currency": "EUR",
        "total": 2_500,
        "lines": [
            {
                "sku": f"SKU{n}",
                "category": "food",
                "brand": "B",
                "quantity": 2,
                "unit_price": price,
                "discount": 0,
                "points": points,
            }
            for n, (price, points) in enumerate([(1_000, 20), (250, 5)])
        ],
        "points_earned": 25,
        "points_redeemed": 0,
        "tenders": {
            "points": 0,
            "vouchers": [{"code": gift.terms.code, "campaign": "XMAS", "amount": 300}],
            "wallet": 0,
            "card": 0,
            "cash": 2_200,
        },
    }
    till.void("R1")  # the row's status changes; its record does not
    assert next(p for _, kind, p in till.unsent_events() if kind == "receipt") == record
    with till.ledger.atomic():  # a file from before: the whole record in the event
        conn.execute("UPDATE till_events SET payload = ? WHERE seq = ?", (json.dumps(record), seq))
    assert next(p for _, kind, p in till.unsent_events() if kind == "receipt") == record
    path = till.ledger.store.path  # type: ignore[attr-defined]
    till.close()
    db = connect(str(path))
    assert load_from_till(db) == 2  # the sale and its void, from either form
    db.close()


def test_a_head_without_its_receipt_row_is_a_damaged_file(tmp_path: Path) -> None:
    """A head and its row are one commit: a file without the row was altered, said so."""
    till = open_till(tmp_path / "till.db", "S1")
    sell(till, "R1", None, 1_000)
    conn = till.ledger.store.connection  # type: ignore[attr-defined]
    with till.ledger.atomic():
        conn.execute("DELETE FROM till_receipts WHERE ref = 'R1'")
    with pytest.raises(LedgerCorrupted, match="R1"):
        till.unsent_events()
    path = till.ledger.store.path  # type: ignore[attr-defined]
    till.close()
    db = connect(str(path))
    with pytest.raises(StorageError, match="R1"):
        load_from_till(db)
    db.close()
