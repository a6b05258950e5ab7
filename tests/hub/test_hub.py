# SPDX-License-Identifier: Apache-2.0
"""The hub on both backends: exactly-once ingest, gaps, conflicts, updates, auth, holds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loyaltysdk.hub import Hub
from loyaltysdk.sync import AuthError, BadRecord, Forbidden, InsufficientOnline


def payload(
    key: str,
    postings: list[list[Any]],
    kind: str = "transfer",
    memo: Any = None,
    ref: str | None = None,
) -> str:
    return json.dumps(
        {
            "v": 1,
            "origin": "T",
            "key": key,
            "kind": kind,
            "ref": ref,
            "at": 1,
            "expires_at": 10**15 if kind == "hold" else None,
            "memo": memo,
            "postings": postings,
        }
    )


def sale(n: int, account: str = "member:M1:wallet:EUR", amount: int = 100) -> str:
    return payload(
        f"k{n}", [[account, "D", amount, "EUR", None], ["sys:sales:EUR", "C", amount, "EUR", None]]
    )


def topup(n: int, account: str = "member:M1:wallet:EUR", amount: int = 1_000) -> str:
    return payload(
        f"t{n}", [["sys:float:EUR", "D", amount, "EUR", None], [account, "C", amount, "EUR", None]]
    )


def registered(hub: Hub, till: str) -> str:
    return hub.register(till, hub.create_till(till))


def test_exactly_once_with_duplicates_gaps_and_reorder(hub: Hub) -> None:
    registered(hub, "T1")
    first = hub.push("T1", [(1, topup(1)), (2, sale(2))])
    assert (first.acked, first.applied, first.duplicates) == (2, 2, 0)
    again = hub.push("T1", [(2, sale(2)), (1, topup(1))])  # a replayed batch
    assert (again.acked, again.applied, again.duplicates) == (2, 0, 2)
    gap = hub.push("T1", [(5, sale(5)), (4, sale(4))])  # 3 is missing: held
    assert (gap.acked, gap.applied, gap.held) == (2, 0, 2)
    filled = hub.push("T1", [(3, sale(3))])
    assert (filled.acked, filled.applied, filled.held) == (5, 3, 0)
    assert hub.entries("T1") == 5
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 400, 1_000)
    assert hub.unit_totals() == {"EUR": 0}
    assert hub.cursor_of("T1") == 5


def test_holds_and_voids_move_nothing_at_the_hub(hub: Hub) -> None:
    registered(hub, "T1")
    held = payload(
        "h",
        [["member:M1:wallet:EUR", "D", 50, "EUR", None], ["s", "C", 50, "EUR", None]],
        kind="hold",
    )
    hub.push("T1", [(1, topup(1)), (2, held), (3, payload("v", [], kind="void", ref="h"))])
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 0, 1_000)


def test_conflicts_are_applied_and_reported(hub: Hub) -> None:
    registered(hub, "A")
    registered(hub, "B")
    hub.push("A", [(1, topup(1, amount=100))])
    hub.push("A", [(2, sale(2, amount=80))])
    hub.push("B", [(1, sale(1, amount=80))])  # B spent offline what A also spent
    exceptions = hub.exceptions()
    assert [(e["till"], e["kind"], e["amount"]) for e in exceptions] == [("B", "overdraft", 60)]
    memo = json.dumps({"voucher": "CODE"})
    use = payload(
        "voucher:CODE",
        [["voucher:CODE", "D", 5, "EUR", None], ["t", "C", 5, "EUR", None]],
        memo=memo,
    )
    hub.push("A", [(3, use)])
    hub.push("B", [(2, use)])
    kinds = [e["kind"] for e in hub.exceptions()]
    assert kinds.count("double_redemption") == 1
    assert hub.entries() == 5  # nothing dropped


def test_updates_by_cursor(hub: Hub) -> None:
    one = hub.publish("hotlist", {"block": ["04AABBCCDD0011"]})
    two = hub.publish("revocations", {"codes": ["X"]})
    assert [u.cursor for u in hub.pull(0)] == [one, two]
    assert [u.kind for u in hub.pull(one)] == ["revocations"]
    with pytest.raises(BadRecord):
        hub.publish("nonsense", {})


def test_credentials(hub: Hub) -> None:
    token = hub.create_till("T1")
    with pytest.raises(AuthError):
        hub.register("T1", "wrong")
    credential = hub.register("T1", token)
    with pytest.raises(AuthError):
        hub.register("T1", token)  # one-time
    assert hub.authenticate(credential).id == "T1"
    for bad in (None, "", "T1", "T1.wrong", "T2." + credential.split(".", 1)[1], "admin.nope"):
        with pytest.raises(AuthError):
            hub.authenticate(bad)
    admin = hub.add_admin("ops")
    assert hub.authenticate(admin).kind == "admin"
    # Re-registration keeps the cursor: nothing pushed is forgotten.
    hub.push("T1", [(1, topup(1))])
    again = hub.register("T1", hub.create_till("T1"))
    assert hub.cursor_of("T1") == 1
    with pytest.raises(AuthError):
        hub.authenticate(credential)  # the old credential is replaced
    assert hub.authenticate(again).id == "T1"
    with pytest.raises(Forbidden):
        hub.push("NOBODY", [(1, topup(1))])


def test_online_holds(hub: Hub) -> None:
    registered(hub, "T1")
    hub.push("T1", [(1, topup(1, amount=1_000))])
    hub.take_hold("T1", "h1", "member:M1:wallet:EUR", "EUR", 700)
    hub.take_hold("T1", "h1", "member:M1:wallet:EUR", "EUR", 700)  # idempotent
    with pytest.raises(InsufficientOnline):
        hub.take_hold("T1", "h2", "member:M1:wallet:EUR", "EUR", 400)
    with pytest.raises(Forbidden):
        hub.release_hold("T2", "h1")
    hub.release_hold("T1", "h1")
    hub.take_hold("T1", "h2", "member:M1:wallet:EUR", "EUR", 400)


def test_bad_records_change_nothing(hub: Hub) -> None:
    registered(hub, "T1")
    with pytest.raises(BadRecord):
        hub.push("T1", [(1, "not json")])
    with pytest.raises(BadRecord):
        hub.push("T1", [(0, topup(1))])
    assert hub.entries() == 0 and hub.cursor_of("T1") == 0


@pytest.mark.postgres
def test_two_hub_processes_on_one_database_apply_exactly_once(pg_dsn: str) -> None:
    import threading

    from loyaltysdk.hub import PostgresHubStore

    hubs = [Hub(PostgresHubStore(pg_dsn)) for _ in range(2)]
    registered(hubs[0], "T1")
    records = [(n, topup(n, amount=1)) for n in range(1, 401)]
    errors: list[BaseException] = []

    def pusher(hub: Hub, order: int) -> None:
        try:
            batches = [records[i : i + 50] for i in range(0, len(records), 50)]
            for batch in batches[::order]:
                hub.push("T1", batch)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=pusher, args=(hubs[i], 1 if i == 0 else -1)) for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for hub in hubs:  # whatever order they arrived in, retries fill the gaps
        for i in range(0, len(records), 50):
            hub.push("T1", records[i : i + 50])
    assert not errors, errors
    assert hubs[1].entries("T1") == 400 and hubs[1].cursor_of("T1") == 400
    assert hubs[1].balance("member:M1:wallet:EUR") == ("EUR", 0, 400)
    for hub in hubs:
        hub.store.close()


@pytest.mark.postgres
def test_two_hub_processes_never_grant_one_balance_twice(pg_dsn: str) -> None:
    """100 races of two tills, each on its own hub process, for a member's whole wallet."""
    import threading

    from loyaltysdk.hub import PostgresHubStore

    hubs = [Hub(PostgresHubStore(pg_dsn)) for _ in range(2)]
    for till in ("T1", "T2"):
        registered(hubs[0], till)
    races = 100
    hubs[0].push(
        "T1", [(n, topup(n, f"member:M{n}:wallet:EUR", 1_000)) for n in range(1, races + 1)]
    )
    granted: list[list[str]] = [[] for _ in range(races)]
    errors: list[BaseException] = []
    start = [threading.Barrier(2) for _ in range(races)]

    def till(index: int, till_id: str) -> None:
        try:
            for race in range(races):
                start[race].wait()
                try:
                    hubs[index].take_hold(
                        till_id, f"{till_id}:{race}", f"member:M{race + 1}:wallet:EUR", "EUR", 1_000
                    )
                    granted[race].append(till_id)
                except InsufficientOnline:
                    pass
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=till, args=(i, f"T{i + 1}")) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(len(winners) == 1 for winners in granted), granted


def test_a_snapshot_holds_only_its_members_accounts(hub: Hub) -> None:
    registered(hub, "T1")
    hub.push("T1", [(1, topup(1, account="member:MX1:wallet:EUR"))])
    # `_` is a LIKE wildcard: M_1 must not match MX1's accounts.
    assert hub.snapshot("T1", "M_1").accounts == {}
    assert set(hub.snapshot("T1", "MX1").accounts) == {"member:MX1:wallet:EUR"}


def test_a_sun_counter_is_raised_once(hub: Hub) -> None:
    registered(hub, "T1")
    fresh = [hub.snapshot("T1", None, sun=("04AABBCCDDEE01", n)).sun_fresh for n in (5, 5, 4, 6)]
    assert fresh == [True, False, False, True]
