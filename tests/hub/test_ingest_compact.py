# SPDX-License-Identifier: Apache-2.0
"""Ingest's lean path: a record read by orjson and kept by inlined checks.

The hub reads a record a till's ledger wrote with orjson and one expression
per record and per posting; what orjson refuses or reads differently, and
what breaks a rule, takes the general path (the `json` module, each check
by itself), which names what is wrong. Both must accept exactly the same
records, alike.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyaltysdk.hub import Hub, PostgresHubStore
from loyaltysdk.hub._records import _decode, _lean, parse
from loyaltysdk.sync import BadRecord, InsufficientOnline

from .test_hub import registered, topup

_KINDS = ["transfer", "hold", "post", "reversal", "breakage", "mirror", "void", "expiry", "x"]
_TEXT = st.one_of(
    st.sampled_from(["", "k1", "member:M1:points", "sys:sales:EUR", "a b", "a]b", "x" * 201]),
    st.text(max_size=12),
)
_WHOLE = st.one_of(
    st.sampled_from([0, 1, 10, 2**53 - 1, 2**53, 2**62, 2**62 + 1, 10**19, -1]),
    st.integers(),
)
_ACCOUNT = st.one_of(
    st.sampled_from(
        [
            "member:M1:points",
            "member:M1:wallet:EUR",
            "member:M1:wallet:PTS",
            "sys:points:issued",
            "card:04AABB:EUR",
            "",
        ]
    ),
    _TEXT,
)
_UNIT = st.sampled_from(["PTS", "EUR", "USD", "JPY", "ABC", "eur", "EURO"])


def _compact_json(record: dict[str, Any]) -> str:
    # What `ledger._payload` writes: ASCII-escaped, no spaces, fields in this order.
    return json.dumps(record, separators=(",", ":"))


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(_KINDS))
    amount = draw(st.one_of(st.just(10), _WHOLE))
    unit = draw(_UNIT)
    postings: list[Any] = [
        [draw(_ACCOUNT), "D", amount, unit, None],
        [
            draw(_ACCOUNT),
            draw(st.sampled_from(["C", "D", "X"])),
            amount,
            unit,
            draw(st.one_of(st.none(), _WHOLE)),
        ],
    ]
    if draw(st.booleans()):
        postings.append([draw(_ACCOUNT), "C", draw(_WHOLE), draw(_UNIT), None])
    if draw(st.integers(0, 5)) == 0:
        postings = []
    return {
        "v": draw(st.sampled_from([1, 1, 2])),
        "origin": draw(st.one_of(st.just("S1-T1"), _TEXT)),
        "key": draw(st.one_of(st.just("k1"), _TEXT)),
        "kind": kind,
        "ref": draw(st.one_of(st.none(), st.just("h1"), _TEXT)),
        "at": draw(st.one_of(st.just(1_795_000_000_000_000), _WHOLE)),
        "expires_at": draw(st.one_of(st.none(), _WHOLE)),
        "memo": draw(st.one_of(st.none(), st.just('{"hub_holds":["h1"]}'), _TEXT)),
        "postings": postings,
    }


@settings(max_examples=1500, deadline=None)
@given(record=_records())
def test_the_lean_path_accepts_what_the_general_one_does_alike(record: dict[str, Any]) -> None:
    text = _compact_json(record)
    fast = _lean(text)
    try:
        slow: dict[str, Any] | None = _decode(1, text)
    except BadRecord:
        slow = None
    if fast is not None:
        assert slow == fast
    # Whatever the lean path leaves, `parse` still decides, as the general path.
    if slow is None:
        with pytest.raises(BadRecord):
            parse(1, text)
    else:
        assert parse(1, text) == slow


def test_a_till_s_usual_records_take_the_lean_path() -> None:
    sale = {
        "v": 1,
        "origin": "S012-T3",
        "key": "S012-T3-R1",
        "kind": "transfer",
        "ref": None,
        "at": 1_795_000_000_000_000,
        "expires_at": None,
        "memo": None,
        "postings": [
            ["member:M-1:wallet:EUR", "D", 1_250, "EUR", None],
            ["sys:sales:EUR", "C", 1_250, "EUR", None],
            ["sys:points:issued", "D", 12, "PTS", None],
            ["member:M-1:points", "C", 12, "PTS", 1_826_000_000_000_000],
        ],
    }
    hold = {**sale, "kind": "hold", "key": "h1", "expires_at": 1_795_000_001_000_000}
    post = {**sale, "kind": "post", "key": "p1", "ref": "h1"}
    void = {**sale, "kind": "void", "key": "v1", "ref": "h1", "postings": []}
    for record in (sale, hold, post, void):
        assert _lean(_compact_json(record)) == record
    # Spaces or another field order: still the lean path, the same answer.
    spaced = json.dumps(dict(reversed(sale.items())), indent=1)
    assert _lean(spaced) == sale and parse(1, spaced) == sale
    # What orjson reads differently (an integer beyond 64 bits: a float) or
    # refuses (a lone surrogate) goes to the general path, which decides.
    big = _compact_json({**sale, "at": 2**64})
    assert _lean(big) is None
    with pytest.raises(BadRecord, match="at is a whole number"):
        parse(1, big)
    surrogate = _compact_json({**sale, "memo": "\ud800"})
    assert _lean(surrogate) is None
    with pytest.raises(BadRecord, match="a memo is text"):
        parse(1, surrogate)


def test_a_post_cannot_name_a_hold_that_comes_after_it(hub: Hub) -> None:
    """The batch's entries are written before refs are checked: "earlier" stays earlier."""
    registered(hub, "T1")
    postings = [
        ["member:M1:points", "D", 5, "PTS", None],
        ["sys:points:spent", "C", 5, "PTS", None],
    ]
    base = {"v": 1, "origin": "T1", "at": 1, "memo": None, "postings": postings}
    post = {**base, "key": "p1", "kind": "post", "ref": "h1", "expires_at": None}
    hold = {**base, "key": "h1", "kind": "hold", "ref": None, "expires_at": 10**15}
    with pytest.raises(BadRecord, match="names no earlier record"):
        hub.push("T1", [(1, _compact_json(post)), (2, _compact_json(hold))])
    assert hub.cursor_of("T1") == 0 and hub.entries("T1") == 0
    hub.push("T1", [(1, _compact_json(hold)), (2, _compact_json(post))])
    assert hub.cursor_of("T1") == 2


@pytest.mark.postgres
def test_a_hold_waits_for_an_ingest_moving_its_account_then_sees_it(pg_dsn: str) -> None:
    """Ingest's balance rows stay locked to its commit, also those it does not return.

    Hub process A adds a spend of 80 to a wallet of 100 as ingest does and has
    not committed; a hold on process B for 30 must wait, then see 20 left.
    """
    ingest, holds = Hub(PostgresHubStore(pg_dsn)), Hub(PostgresHubStore(pg_dsn))
    registered(ingest, "T1")
    registered(ingest, "T2")
    ingest.push("T1", [(1, topup(1, amount=100))])
    outcome: list[BaseException | int] = []
    (pid,) = holds.store.execute("SELECT pg_backend_pid()")[0]
    watch = PostgresHubStore(pg_dsn)

    def hold() -> None:
        try:
            outcome.append(holds.take_hold("T2", "h1", "member:M1:wallet:EUR", "EUR", 30))
        except BaseException as error:
            outcome.append(error)

    with ingest.store.transaction():
        # Not overdrawn and in its own unit: a row add_balances does not return.
        assert ingest.store.add_balances([("member:M1:wallet:EUR", "EUR", 80, 0)]) == {}
        thread = threading.Thread(target=hold)
        thread.start()
        # Commit only once B waits for the row lock, so it cannot read before.
        while watch.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?", (pid,)
        ) != [("Lock",)]:
            assert thread.is_alive(), outcome  # it finished without waiting: no lock
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], InsufficientOnline), outcome
    assert holds.take_hold("T2", "h2", "member:M1:wallet:EUR", "EUR", 20) == 0
    for store in (ingest.store, holds.store, watch):
        store.close()


_SALE_POSTINGS = '["member:M1:wallet:EUR","D",100,"EUR",null],["sys:sales:EUR","C",100,"EUR",null]'


@pytest.mark.parametrize(
    "postings",
    [
        '["member:M1:wallet:EUR","D",100,"EUR",null]["sys:sales:EUR","C",100,"EUR",null]',
        '["member:M1:wallet:EUR","D",100,"EUR",null],,["sys:sales:EUR","C",100,"EUR",null]',
        f",{_SALE_POSTINGS}",
        f"{_SALE_POSTINGS},",
        f"{_SALE_POSTINGS}x",
        f'{_SALE_POSTINGS}]}},"extra":[1',
        '["member:M1:wallet:EUR","D",100,"EUR",null],1,["sys:sales:EUR","C",100,"EUR",null]',
    ],
)
def test_postings_that_only_contain_good_ones_are_not_the_lean_form(postings: str) -> None:
    """Postings with anything but a comma between them are not JSON: refused, on both paths."""
    head = (
        '{"v":1,"origin":"T1","key":"k1","kind":"transfer","ref":null,"at":1,'
        '"expires_at":null,"memo":null,"postings":['
    )
    good = json.loads(f"{head}{_SALE_POSTINGS}]}}")
    assert _lean(f"{head}{_SALE_POSTINGS}]}}") == good
    text = f"{head}{postings}]}}"
    assert _lean(text) is None
    with pytest.raises(BadRecord):
        parse(1, text)


@pytest.mark.postgres
def test_copy_text_stores_every_value_as_given(pg_dsn: str) -> None:
    """COPY lines built by the store: escapes where a value needs one, NULL, other types."""
    store = PostgresHubStore(pg_dsn)
    store.execute("CREATE TABLE copied (n BIGINT, a TEXT, b TEXT, f BOOLEAN)")
    odd = ["tab\there", "line\nbreak", "cr\rhere", "back\\slash", "\\N", "", "é ü 😀"]
    plain = [(i, f"k{i}", None, None) for i in range(200)]
    escaped = [(1000 + i, text, text, None) for i, text in enumerate(odd)]
    other = [(2000, "x", None, True), (2001, "y", "z", None)]  # a bool: psycopg formats
    rows = plain + escaped + other
    with store.transaction():
        store.copy_rows("copied", ("n", "a", "b", "f"), rows)
    got = store.execute("SELECT n, a, b, f FROM copied ORDER BY n")
    assert got == sorted(rows)
    store.close()
