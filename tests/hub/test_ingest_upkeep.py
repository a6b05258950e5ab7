# SPDX-License-Identifier: Apache-2.0
"""Ingest's bookkeeping as issue 17 left it, on both backends.

Balances are added by one statement that returns the totals it wrote (no
second read), units of moved accounts are checked there, entries and new
lots are appended (COPY on PostgreSQL) rather than inserted with "on
conflict do nothing", and open lots are read only for accounts a batch
debits. Each test pins down a guarantee that change must keep.
"""

from __future__ import annotations

import threading

import pytest

from loyaltysdk import HubError
from loyaltysdk.hub import Hub, PostgresHubStore
from loyaltysdk.sync import BadRecord, InsufficientOnline

from .test_hub import payload, registered, sale, topup


def earn(n: int, points: int, at: int, member: str = "M1") -> str:
    record = payload(
        f"e{n}",
        [
            ["sys:points:issued", "D", points, "PTS", None],
            [f"member:{member}:points", "C", points, "PTS", None],
        ],
    )
    return record.replace('"at": 1,', f'"at": {at},')


def spend(n: int, points: int, at: int, member: str = "M1") -> str:
    record = payload(
        f"s{n}",
        [
            [f"member:{member}:points", "D", points, "PTS", None],
            ["sys:points:spent", "C", points, "PTS", None],
        ],
    )
    return record.replace('"at": 1,', f'"at": {at},')


def test_a_hold_after_ingest_sees_the_balance_ingest_wrote(hub: Hub) -> None:
    registered(hub, "T1")
    hub.push("T1", [(1, topup(1, amount=1_000)), (2, sale(2, amount=300))])
    hub.push("T1", [(3, sale(3, amount=200))])
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 500, 1_000)
    with pytest.raises(InsufficientOnline):
        hub.take_hold("T1", "h1", "member:M1:wallet:EUR", "EUR", 501)
    hub.take_hold("T1", "h1", "member:M1:wallet:EUR", "EUR", 500)
    with pytest.raises(InsufficientOnline):
        hub.take_hold("T1", "h2", "member:M1:wallet:EUR", "EUR", 1)


def test_overdrafts_are_counted_from_the_totals_written(hub: Hub) -> None:
    registered(hub, "A")
    hub.push("A", [(1, topup(1, amount=100))])
    # One batch: the wallet goes to -50, back to +50, then to -30: the deficit
    # at the batch's end is what is new, charged to its last record.
    hub.push(
        "A",
        [(2, sale(2, amount=150)), (3, topup(3, amount=100)), (4, sale(4, amount=80))],
    )
    assert [(e["seq"], e["amount"]) for e in hub.exceptions()] == [(4, 30)]
    hub.push("A", [(5, sale(5, amount=20))])  # deeper: only the new 20
    assert [(e["seq"], e["amount"]) for e in hub.exceptions()] == [(4, 30), (5, 20)]
    hub.push("A", [(6, topup(6, amount=10))])  # a credit owes nothing new
    assert len(hub.exceptions()) == 2
    assert hub.unit_totals() == {"EUR": 0}


def test_a_moved_account_in_another_unit_refuses_the_push_whole(hub: Hub) -> None:
    registered(hub, "T1")
    hub.push("T1", [(1, topup(1))])  # sys:float:EUR is EUR now
    wrong = payload(
        "w", [["sys:float:EUR", "D", 5, "PTS", None], ["member:M1:points", "C", 5, "PTS", None]]
    )
    with pytest.raises(BadRecord, match="sys:float:EUR is in EUR, not PTS"):
        hub.push("T1", [(2, sale(2)), (3, wrong)])
    # A hold moves nothing, so its accounts are checked before anything is written.
    held = payload(
        "h",
        [["sys:float:EUR", "D", 5, "PTS", None], ["member:M1:points", "C", 5, "PTS", None]],
        kind="hold",
    )
    with pytest.raises(BadRecord, match="sys:float:EUR is in EUR, not PTS"):
        hub.push("T1", [(2, held)])
    assert hub.cursor_of("T1") == 1 and hub.entries("T1") == 1
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 0, 1_000)
    assert hub.balance("member:M1:points") is None


def test_an_entry_already_stored_is_refused_not_skipped(hub: Hub) -> None:
    """A row at a seq past the cursor means the store is inconsistent: the push stops.

    Before, the entry was skipped ("on conflict do nothing") and its
    balances added all the same.
    """
    registered(hub, "T1")
    hub.store.execute(
        "INSERT INTO hub_entries (till, seq, key, kind, at, memo, payload)"
        " VALUES ('T1', 1, 'x', 'transfer', 1, NULL, '{}')"
    )
    with pytest.raises(HubError):
        hub.push("T1", [(1, topup(1))])
    assert hub.cursor_of("T1") == 0
    assert hub.balance("member:M1:wallet:EUR") is None


def test_lots_are_consumed_oldest_first_across_and_within_batches(hub: Hub) -> None:
    registered(hub, "T1")
    # Credits only: appended without reading the account's open lots.
    hub.push("T1", [(1, earn(1, 10, at=100)), (2, earn(2, 20, at=200))])
    hub.push("T1", [(3, earn(3, 30, at=300))])
    # A debit reads them, oldest first; a credit in the same batch joins them.
    hub.push("T1", [(4, earn(4, 40, at=400)), (5, spend(5, 15, at=500))])
    lots = hub.snapshot("T1", "M1").lots["member:M1:points"]
    assert lots == ((15, None), (30, None), (40, None))
    hub.push("T1", [(6, spend(6, 80, at=600))])
    assert hub.snapshot("T1", "M1").lots["member:M1:points"] == ((5, None),)
    assert hub.balance("member:M1:points") == ("PTS", 95, 100)


@pytest.mark.postgres
def test_two_hub_processes_overspending_one_wallet_record_it_once(pg_dsn: str) -> None:
    """Tills A and B, each on its own hub process, push a spend of 80 from 100 at once.

    Whichever commits second sees the first's total (the balance rows stay
    locked from the add to the commit), so every race leaves exactly one
    overdraft of 60, whatever the interleaving.
    """
    hubs = [Hub(PostgresHubStore(pg_dsn)) for _ in range(2)]
    for till in ("A", "B", "F"):
        registered(hubs[0], till)
    races = 30
    hubs[0].push("F", [(n, topup(n, f"member:M{n}:wallet:EUR", 100)) for n in range(1, races + 1)])
    start = [threading.Barrier(2) for _ in range(races)]
    errors: list[BaseException] = []

    def till(index: int, till_id: str) -> None:
        try:
            for race in range(races):
                start[race].wait()
                hubs[index].push(
                    till_id, [(race + 1, sale(race + 1, f"member:M{race + 1}:wallet:EUR", 80))]
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=till, args=(i, t)) for i, t in enumerate(("A", "B"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    owed: dict[str, int] = {}
    for exception in hubs[0].exceptions():
        assert exception["kind"] == "overdraft"
        owed[exception["account"]] = owed.get(exception["account"], 0) + exception["amount"]
    assert owed == {f"member:M{n}:wallet:EUR": 60 for n in range(1, races + 1)}
    assert len(hubs[0].exceptions()) == races
    for n in range(1, races + 1):
        assert hubs[1].balance(f"member:M{n}:wallet:EUR") == ("EUR", 160, 100)
    for hub in hubs:
        hub.store.close()


def test_value_landing_on_replaced_cards_follows_their_members(hub: Hub) -> None:
    """Card movements pushed after the replacement move to the member's wallet, card by card."""
    registered(hub, "T1")
    registered(hub, "T2")
    lost = {"M1": "04AA0000000001", "M2": "04AA0000000002"}
    events: list[tuple[int, str, dict[str, str]]] = [
        (1, "enrol", {"member": "M1"}),
        (2, "enrol", {"member": "M2"}),
        (3, "card", {"member": "M1", "uid": lost["M1"], "kind": "purse"}),
        (4, "card", {"member": "M2", "uid": lost["M2"], "kind": "purse"}),
        (
            5,
            "replace",
            {"member": "M1", "lost": lost["M1"], "new": "04BB0000000001", "kind": "purse"},
        ),
        (
            6,
            "replace",
            {"member": "M2", "lost": lost["M2"], "new": "04BB0000000002", "kind": "purse"},
        ),
    ]
    hub.push_events("T1", events)
    live = "04CC0000000003"  # not replaced: its value stays on the card
    loads = [
        payload(
            f"load{n}",
            [
                ["sys:float:EUR", "D", 100 * n, "EUR", None],
                [f"card:{uid}:EUR", "C", 100 * n, "EUR", None],
            ],
        )
        for n, uid in enumerate((lost["M1"], lost["M2"], live), start=1)
    ]
    hub.push("T2", [(n, record) for n, record in enumerate(loads, start=1)])
    assert hub.balance(f"card:{lost['M1']}:EUR") == ("EUR", 100, 100)
    assert hub.balance(f"card:{lost['M2']}:EUR") == ("EUR", 200, 200)
    assert hub.balance(f"card:{live}:EUR") == ("EUR", 0, 300)
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 0, 100)
    assert hub.balance("member:M2:wallet:EUR") == ("EUR", 0, 200)
    assert hub.unit_totals() == {"EUR": 0}


@pytest.mark.postgres
def test_a_deferred_write_that_fails_rolls_the_push_back(pg_dsn: str) -> None:
    """The cursor and contact writes go out with the COMMIT: if one fails, nothing commits."""
    import psycopg  # this test's own need (the module's other tests run on SQLite too)

    hub = Hub(PostgresHubStore(pg_dsn))
    registered(hub, "T1")
    # A rule the cursor write breaks, as a constraint the server checks at that write.
    hub.store.execute("ALTER TABLE hub_tills ADD CONSTRAINT acked_small CHECK (acked < 2)")
    hub.push("T1", [(1, topup(1))])
    with pytest.raises(psycopg.errors.CheckViolation):
        hub.push("T1", [(2, topup(2)), (3, topup(3))])
    assert hub.cursor_of("T1") == 1 and hub.entries("T1") == 1
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 0, 1_000)
    # The connection is usable afterwards, and BEGIN and the lock still come first.
    hub.store.execute("ALTER TABLE hub_tills DROP CONSTRAINT acked_small")
    assert hub.push("T1", [(2, topup(2))]).acked == 2
    hub.store.close()
