# SPDX-License-Identifier: Apache-2.0
"""The ledger's behaviour, one rule at a time."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from loyaltysdk import CurrencyMismatch, IdempotencyConflict, InvalidAmount, Money, Points
from loyaltysdk.ledger import (
    AccountConflict,
    AccountFlags,
    HoldExpired,
    HoldResolved,
    InsufficientFunds,
    InvalidTransaction,
    Kind,
    Ledger,
    LedgerCorrupted,
    LimitExceeded,
    NotReversible,
    PostExceedsHold,
    Posting,
    UnbalancedTransaction,
    UnknownAccount,
    UnknownTransaction,
)

from .conftest import FakeClock, open_chart

EUR = "EUR"


def eur(minor: int) -> Money:
    return Money(minor, EUR)


def earn(ledger: Ledger, key: str, points: int, member: str = "M-1", days: int = 365) -> None:
    expires = ledger._clock() + timedelta(days=days)  # the test clock
    ledger.transfer(
        key,
        [
            Posting.debit("sys:points:issued", Points(points)),
            Posting.credit(f"member:{member}:points", Points(points), expires_at=expires),
        ],
    )


def redeem(points: int, member: str = "M-1") -> list[Posting]:
    return [
        Posting.debit(f"member:{member}:points", Points(points)),
        Posting.credit("sys:points:redeemed", Points(points)),
    ]


def top_up(ledger: Ledger, key: str, minor: int, member: str = "M-1") -> None:
    ledger.transfer(
        key,
        [
            Posting.debit("sys:float:EUR", eur(minor)),
            Posting.credit(f"member:{member}:wallet:EUR", eur(minor)),
        ],
    )


def spend(minor: int, member: str = "M-1") -> list[Posting]:
    return [
        Posting.debit(f"member:{member}:wallet:EUR", eur(minor)),
        Posting.credit("sys:sales:EUR", eur(minor)),
    ]


def snapshot(ledger: Ledger) -> tuple[object, ...]:
    return (tuple(ledger.balances()), ledger.outbox_status(), len(ledger.outbox(limit=10_000)))


# -- transfers and idempotency ---------------------------------------------


def test_a_purchase_that_earns_points_balances_per_unit(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    tx = ledger.transfer(
        "R-1001",
        [
            *spend(1250),
            Posting.debit("sys:points:issued", Points(12)),
            Posting.credit("member:M-1:points", Points(12)),
        ],
        memo="receipt R-1001",
    )
    assert tx.kind is Kind.TRANSFER
    assert len(tx.postings) == 4
    assert ledger.balance("member:M-1:wallet:EUR").available == eur(3750)
    assert ledger.balance("sys:sales:EUR").posted == eur(1250)
    assert ledger.balance("member:M-1:points").posted == Points(12)
    assert ledger.balance("sys:points:issued").posted == Points(-12)


def test_a_retry_returns_the_first_result_and_applies_once(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    first = ledger.transfer("R-1", spend(1000))
    again = ledger.transfer("R-1", spend(1000))
    assert again == first
    assert ledger.balance("member:M-1:wallet:EUR").posted == eur(4000)
    assert ledger.outbox_status().length == 2


def test_the_same_key_with_other_content_is_a_conflict(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.transfer("R-1", spend(1000))
    before = snapshot(ledger)
    with pytest.raises(IdempotencyConflict):
        ledger.transfer("R-1", spend(1001))
    with pytest.raises(IdempotencyConflict):
        ledger.hold("R-1", spend(1000), timeout=timedelta(minutes=1))
    assert snapshot(ledger) == before


def test_a_rejection_is_remembered_even_after_the_balance_rises(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 500)
    with pytest.raises(InsufficientFunds, match=r"short by 5\.00 EUR"):
        ledger.transfer("R-2", spend(1000))
    top_up(ledger, "topup-2", 5000)
    with pytest.raises(InsufficientFunds):
        ledger.transfer("R-2", spend(1000))
    assert ledger.balance("member:M-1:wallet:EUR").posted == eur(5500)
    assert ledger.transaction("R-2") is None


def purchase_earning(minor: int, points: int, member: str = "M-1") -> list[Posting]:
    return [
        *spend(minor, member),
        Posting.debit("sys:points:issued", Points(points)),
        Posting.credit(f"member:{member}:points", Points(points)),
    ]


def test_a_refused_purchase_leaves_nothing_written_and_is_remembered(ledger: Ledger) -> None:
    # The wallet's limit is checked by the balance update itself (no read
    # first): the other accounts' rows, applied before it, are undone.
    top_up(ledger, "topup-1", 500)
    earn(ledger, "earn-1", 10)
    before = snapshot(ledger), ledger.lots("member:M-1:points")
    with pytest.raises(InsufficientFunds, match=r"member:M-1:wallet:EUR is short by 5\.00 EUR"):
        ledger.transfer("R-1", purchase_earning(1000, 10))
    assert (snapshot(ledger), ledger.lots("member:M-1:points")) == before
    with pytest.raises(InsufficientFunds, match=r"short by 5\.00 EUR"):
        ledger.transfer("R-1", purchase_earning(1000, 10))
    assert ledger.transaction("R-1") is None
    tx = ledger.transfer("R-2", purchase_earning(500, 10))
    assert ledger.balance("member:M-1:points").posted == Points(20)
    assert ledger.outbox()[-1].tx_seq == tx.seq


def test_a_refusal_caught_inside_a_group_leaves_the_rest_of_it(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 500)
    with ledger.atomic():
        ledger.transfer("R-1", purchase_earning(200, 5))
        with pytest.raises(InsufficientFunds, match=r"short by 7\.00 EUR"):
            ledger.transfer("R-2", purchase_earning(1000, 10))
        ledger.transfer("R-3", purchase_earning(100, 1))
    assert ledger.balance("member:M-1:wallet:EUR").posted == eur(200)
    assert ledger.balance("member:M-1:points").posted == Points(6)
    assert ledger.balance("sys:points:issued").posted == Points(-6)
    assert ledger.transaction("R-2") is None
    assert [json.loads(r.payload)["key"] for r in ledger.outbox()] == ["topup-1", "R-1", "R-3"]


def test_two_limited_accounts_are_checked_before_writing(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 500)
    earn(ledger, "earn-1", 100)
    before = snapshot(ledger)
    with pytest.raises(InsufficientFunds, match=r"member:M-1:points is short by 50 PTS"):
        ledger.transfer("R-1", [*redeem(150), *spend(100)])
    assert snapshot(ledger) == before
    with pytest.raises(InsufficientFunds):
        ledger.transfer("R-1", [*redeem(150), *spend(100)])


def test_a_refused_hold_reserves_nothing(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 500)
    before = snapshot(ledger)
    with pytest.raises(InsufficientFunds):
        ledger.hold("H-1", spend(600), timeout=timedelta(minutes=5))
    assert snapshot(ledger) == before
    assert ledger.open_holds() == []


def test_a_retry_naming_an_unknown_account_is_a_conflict(ledger: Ledger) -> None:
    # The key is not read before the checks, so a retry with other content
    # must still be told it conflicts, not that an account is missing.
    top_up(ledger, "topup-1", 5000)
    ledger.transfer("R-1", spend(1000))
    wrong_unit = [
        Posting.debit("sys:float:EUR", Points(1)),
        Posting.credit("member:M-1:points", Points(1)),
    ]
    with pytest.raises(IdempotencyConflict):
        ledger.transfer("R-1", spend(1000, member="M-9"))
    with pytest.raises(IdempotencyConflict):
        ledger.transfer("R-1", wrong_unit)
    with pytest.raises(CurrencyMismatch):
        ledger.transfer("R-3", wrong_unit)
    with pytest.raises(UnknownAccount):
        ledger.transfer("R-2", spend(1000, member="M-9"))
    assert ledger.transaction("R-2") is None


def test_fingerprints_are_stored_as_blobs(ledger: Ledger) -> None:
    # Written as a bytearray (see SQLiteStore._insert_row): still a BLOB, the
    # same bytes a retry compares with, as files written before hold them.
    top_up(ledger, "topup-1", 5000)
    with pytest.raises(InsufficientFunds):
        ledger.transfer("R-1", spend(9000))
    conn = ledger.store.connection  # type: ignore[attr-defined]
    kinds = {t for (t,) in conn.execute("SELECT DISTINCT typeof(fingerprint) FROM transactions")}
    assert kinds == {"blob"}
    assert ledger.transfer("topup-1", top_up_postings(5000)).key == "topup-1"


def top_up_postings(minor: int, member: str = "M-1") -> list[Posting]:
    return [
        Posting.debit("sys:float:EUR", eur(minor)),
        Posting.credit(f"member:{member}:wallet:EUR", eur(minor)),
    ]


def test_flags_limit_both_directions(ledger: Ledger) -> None:
    # sys:cash may never be credited beyond what was debited to it.
    with pytest.raises(LimitExceeded):
        ledger.transfer(
            "cash-out",
            [Posting.debit("sys:float:EUR", eur(100)), Posting.credit("sys:cash:EUR", eur(100))],
        )
    ledger.transfer(
        "cash-in",
        [Posting.debit("sys:cash:EUR", eur(300)), Posting.credit("sys:float:EUR", eur(300))],
    )
    assert ledger.balance("sys:cash:EUR").posted == eur(300)  # shown on its debit side
    assert ledger.balance("sys:cash:EUR").available == eur(300)


# -- bad input: typed error, ledger unchanged --------------------------------


BAD_POSTINGS = [
    pytest.param(
        lambda: [Posting.debit("sys:float:EUR", eur(-5))], InvalidTransaction, id="negative"
    ),
    pytest.param(lambda: [Posting.debit("sys:float:EUR", eur(0))], InvalidTransaction, id="zero"),
    pytest.param(lambda: [Posting.debit("sys:float:EUR", 12.5)], InvalidTransaction, id="float"),  # type: ignore[arg-type]
    pytest.param(
        lambda: [Posting.debit("sys:float:EUR", Money(2**63, EUR))], InvalidAmount, id="oversized"
    ),
    pytest.param(
        lambda: [Posting.debit("sys:float:EUR", Money(12.5, EUR))],  # type: ignore[arg-type]
        InvalidAmount,
        id="float-money",
    ),
    pytest.param(
        lambda: [
            Posting.debit("sys:float:EUR", eur(5)),
            Posting.credit("member:M-1:points", eur(5)),
        ],
        CurrencyMismatch,
        id="mixed-currency",
    ),
    pytest.param(
        lambda: [Posting.debit("sys:float:EUR", eur(5)), Posting.credit("nobody", eur(5))],
        UnknownAccount,
        id="unknown-account",
    ),
    pytest.param(
        lambda: [Posting.debit("sys:float:EUR", eur(5)), Posting.credit("sys:sales:EUR", eur(4))],
        UnbalancedTransaction,
        id="unbalanced",
    ),
    pytest.param(
        lambda: [
            Posting.debit("sys:float:EUR", eur(5)),
            Posting.credit("sys:sales:EUR", Money(5, "USD")),
        ],
        UnbalancedTransaction,
        id="balanced-only-across-units",
    ),
    pytest.param(lambda: [], InvalidTransaction, id="empty"),
    pytest.param(lambda: ["not a posting"], InvalidTransaction, id="not-a-posting"),
]


@pytest.mark.parametrize(("make", "error"), BAD_POSTINGS)
def test_bad_input_is_a_typed_error_and_changes_nothing(
    ledger: Ledger, make: object, error: type
) -> None:
    top_up(ledger, "topup-1", 1000)
    before = snapshot(ledger)
    with pytest.raises(error):
        ledger.transfer("bad", make())  # type: ignore[operator]
    assert snapshot(ledger) == before
    # Bad input is not remembered: the key stays free for a corrected call.
    ledger.transfer("bad", spend(10))


@pytest.mark.parametrize(
    "key", ["", "x" * 201, None, 7, "tab\there", "expiry:mine", "breakage:mine"]
)
def test_bad_keys_are_refused(ledger: Ledger, key: object) -> None:
    with pytest.raises(InvalidTransaction):
        ledger.transfer(key, spend(1))  # type: ignore[arg-type]


def test_account_descriptions_are_checked(ledger: Ledger) -> None:
    with pytest.raises(AccountConflict):
        ledger.open_account("sys:sales:EUR", "USD")
    assert ledger.open_account("sys:sales:EUR", EUR).unit == EUR  # idempotent
    with pytest.raises(InvalidTransaction):
        ledger.open_account(
            "lots-without-limit", "PTS", lots=True, breakage_account="sys:points:breakage"
        )
    with pytest.raises(CurrencyMismatch):
        ledger.open_account(
            "eur-lots",
            EUR,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            lots=True,
            breakage_account="sys:points:breakage",
        )
    with pytest.raises(UnknownAccount):
        ledger.balance("nobody")


# -- holds -----------------------------------------------------------------


def test_a_hold_reserves_then_posts_less_and_releases_the_rest(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.hold("h-1", spend(3000), timeout=timedelta(minutes=10))
    balance = ledger.balance("member:M-1:wallet:EUR")
    assert (balance.posted, balance.pending, balance.available) == (
        eur(5000),
        eur(-3000),
        eur(2000),
    )
    with pytest.raises(InsufficientFunds):
        ledger.transfer("R-3", spend(2001))
    post = ledger.post("p-1", "h-1", amount=eur(2500))
    assert post.kind is Kind.POST and post.ref == "h-1"
    balance = ledger.balance("member:M-1:wallet:EUR")
    assert (balance.posted, balance.pending, balance.available) == (eur(2500), eur(0), eur(2500))
    with pytest.raises(HoldResolved):
        ledger.void("v-1", "h-1")
    with pytest.raises(HoldResolved):
        ledger.post("p-2", "h-1")
    assert ledger.post("p-1", "h-1", amount=eur(2500)) == post  # retry


def test_post_more_than_held_is_refused(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.hold("h-1", spend(1000), timeout=timedelta(minutes=10))
    with pytest.raises(PostExceedsHold):
        ledger.post("p-1", "h-1", amount=eur(1001))
    with pytest.raises(PostExceedsHold):
        ledger.post("p-2", "h-1", [*spend(500, member="M-2")])
    ledger.post("p-3", "h-1", spend(400))
    assert ledger.balance("sys:sales:EUR").posted == eur(400)


def test_a_void_releases_everything(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.hold("h-1", spend(5000), timeout=timedelta(minutes=10))
    ledger.void("v-1", "h-1")
    assert ledger.balance("member:M-1:wallet:EUR").available == eur(5000)
    with pytest.raises(UnknownTransaction):
        ledger.void("v-2", "no-such-hold")
    with pytest.raises(UnknownTransaction):
        ledger.void("v-3", "topup-1")  # not a hold


def test_an_abandoned_hold_expires_and_frees_the_balance(ledger: Ledger, clock: FakeClock) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.hold("h-1", spend(5000), timeout=timedelta(minutes=2))
    clock.advance(minutes=2)
    # Any write releases timed-out holds first, so this one succeeds.
    ledger.transfer("R-4", spend(1000))
    assert ledger.balance("member:M-1:wallet:EUR").available == eur(4000)
    with pytest.raises(HoldExpired):
        ledger.post("p-1", "h-1")
    expiry = ledger.transaction("expiry:h-1")
    assert expiry is not None and expiry.kind is Kind.EXPIRY


def test_expire_runs_on_its_own(ledger: Ledger, clock: FakeClock) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.hold("h-1", spend(100), timeout=timedelta(seconds=30))
    ledger.hold("h-2", spend(100), timeout=timedelta(hours=1))
    clock.advance(minutes=1)
    made = ledger.expire()
    assert [tx.ref for tx in made] == ["h-1"]
    assert ledger.balance("member:M-1:wallet:EUR").available == eur(4900)


def test_a_hold_needs_a_positive_timeout(ledger: Ledger) -> None:
    with pytest.raises(InvalidTransaction):
        ledger.hold("h-1", spend(1), timeout=timedelta(0))


# -- reversals ---------------------------------------------------------------


def test_a_reversal_names_what_it_reverses_and_happens_once(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 5000)
    ledger.transfer("R-5", spend(1200))
    reversal = ledger.reverse("refund-R-5", "R-5")
    assert reversal.ref == "R-5" and reversal.kind is Kind.REVERSAL
    assert ledger.balance("member:M-1:wallet:EUR").posted == eur(5000)
    with pytest.raises(NotReversible):
        ledger.reverse("refund-R-5-again", "R-5")
    with pytest.raises(NotReversible):
        ledger.reverse("undo-refund", "refund-R-5")
    with pytest.raises(UnknownTransaction):
        ledger.reverse("refund-nothing", "R-404")


def test_a_reversal_cannot_overdraw(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 1000)
    ledger.transfer("R-6", spend(1000))
    ledger.transfer(
        "top-up-reversed-later",
        [Posting.debit("sys:float:EUR", eur(10)), Posting.credit("member:M-2:wallet:EUR", eur(10))],
    )
    with pytest.raises(InsufficientFunds):
        ledger.reverse("undo-topup", "topup-1")  # the money was spent


# -- points lots -------------------------------------------------------------


def test_redemption_spends_the_oldest_lots_first(ledger: Ledger, clock: FakeClock) -> None:
    earn(ledger, "earn-1", 100)
    clock.advance(days=1)
    earn(ledger, "earn-2", 50)
    ledger.transfer("redeem-1", redeem(120))
    assert [lot.remaining for lot in ledger.lots("member:M-1:points")] == [0, 30]


def test_expired_points_go_to_breakage(ledger: Ledger, clock: FakeClock) -> None:
    earn(ledger, "earn-1", 100, days=30)
    clock.advance(days=10)
    earn(ledger, "earn-2", 50, days=30)
    ledger.transfer("redeem-1", redeem(30))
    clock.advance(days=21)
    made = ledger.expire()
    assert [tx.kind for tx in made] == [Kind.BREAKAGE]
    assert ledger.balance("sys:points:breakage").posted == Points(70)
    assert ledger.balance("member:M-1:points").posted == Points(50)


def test_expired_points_cannot_be_spent_before_the_expiry_run(
    ledger: Ledger, clock: FakeClock
) -> None:
    earn(ledger, "earn-1", 100, days=30)
    clock.advance(days=31)
    with pytest.raises(InsufficientFunds):
        ledger.transfer("redeem-1", redeem(1))
    assert ledger.balance("sys:points:breakage").posted == Points(100)


def test_points_held_before_expiry_stay_with_their_hold(ledger: Ledger, clock: FakeClock) -> None:
    earn(ledger, "earn-1", 100, days=30)
    clock.advance(days=29)
    ledger.hold("h-1", redeem(60), timeout=timedelta(days=2))
    clock.advance(days=1)
    ledger.expire()
    assert ledger.balance("sys:points:breakage").posted == Points(40)
    ledger.post("p-1", "h-1")
    assert ledger.balance("member:M-1:points").posted == Points(0)


def test_reversing_a_redemption_restores_the_same_lots(ledger: Ledger, clock: FakeClock) -> None:
    earn(ledger, "earn-1", 100, days=30)
    clock.advance(days=1)
    earn(ledger, "earn-2", 100, days=300)
    ledger.transfer("redeem-1", redeem(150))
    ledger.reverse("undo-redeem-1", "redeem-1")
    lots = ledger.lots("member:M-1:points")
    assert [lot.remaining for lot in lots] == [100, 100]


def test_reversing_an_earning_takes_back_its_own_lot(ledger: Ledger, clock: FakeClock) -> None:
    earn(ledger, "earn-1", 100, days=30)
    clock.advance(days=1)
    earn(ledger, "earn-2", 100, days=300)
    ledger.reverse("undo-earn-2", "earn-2")
    assert [lot.remaining for lot in ledger.lots("member:M-1:points")] == [100, 0]


# -- batches -----------------------------------------------------------------


def test_atomic_groups_commit_all_or_nothing(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 1000)
    earn(ledger, "earn-1", 100)
    before = snapshot(ledger)
    with pytest.raises(InsufficientFunds), ledger.atomic():
        ledger.transfer("R-7-points", redeem(50))
        ledger.transfer("R-7-wallet", spend(5000))
    assert snapshot(ledger) == before
    # the rejected part is remembered; the other part is not recorded
    with pytest.raises(InsufficientFunds):
        ledger.transfer("R-7-wallet", spend(5000))
    assert ledger.transaction("R-7-points") is None
    with ledger.atomic():
        ledger.transfer("R-8-points", redeem(50))
        ledger.transfer("R-8-wallet", spend(500))
    assert ledger.balance("member:M-1:points").posted == Points(50)


# -- history, outbox, check ----------------------------------------------------


def test_history_pages_newest_first(ledger: Ledger) -> None:
    for n in range(5):
        top_up(ledger, f"topup-{n}", 100 + n)
    page = ledger.history("member:M-1:wallet:EUR", limit=3)
    assert [entry.key for entry in page] == ["topup-4", "topup-3", "topup-2"]
    rest = ledger.history("member:M-1:wallet:EUR", limit=3, before_seq=page[-1].seq)
    assert [entry.amount for entry in rest] == [eur(101), eur(100)]


def test_every_committed_entry_enters_the_outbox_in_order(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 1000)
    with pytest.raises(InsufficientFunds):
        ledger.transfer("R-9", spend(5000))  # rejections move nothing: not shipped
    ledger.hold("h-1", spend(100), timeout=timedelta(minutes=1))
    ledger.void("v-1", "h-1")
    records = ledger.outbox()
    assert [json.loads(r.payload)["key"] for r in records] == ["topup-1", "h-1", "v-1"]
    assert [r.seq for r in records] == [1, 2, 3]
    assert {json.loads(r.payload)["origin"] for r in records} == {"S001-T1"}
    ledger.ack_outbox(2)
    status = ledger.outbox_status()
    assert (status.length, status.last_seq, status.acked_seq) == (1, 3, 2)
    ledger.ack_outbox(3)
    ledger.ack_outbox(1)  # an old acknowledgement arriving late moves nothing back
    assert ledger.outbox_status().acked_seq == 3
    top_up(ledger, "topup-2", 1)
    assert [r.seq for r in ledger.outbox()] == [4]  # sequence numbers are never reused


def test_check_finds_a_tampered_balance(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 1000)
    conn: sqlite3.Connection = ledger.store.connection  # type: ignore[attr-defined]
    conn.execute(
        "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'member:M-2:wallet:EUR'"
    )
    with pytest.raises(LedgerCorrupted, match="journal folds to"):
        ledger.check()
    conn.execute(
        "UPDATE accounts SET credits_posted = credits_posted - 1 WHERE id = 'member:M-2:wallet:EUR'"
    )


def test_the_database_refuses_a_second_resolution(ledger: Ledger) -> None:
    top_up(ledger, "topup-1", 1000)
    hold = ledger.hold("h-1", spend(100), timeout=timedelta(minutes=1))
    ledger.void("v-1", "h-1")
    conn: sqlite3.Connection = ledger.store.connection  # type: ignore[attr-defined]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO resolutions (hold_seq, tx_seq) VALUES (?, 999)", (hold.seq,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "UPDATE accounts SET debits_posted = 1000000000 WHERE id = 'member:M-1:wallet:EUR'"
        )


def test_a_file_ledger_survives_reopening(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "till.db"
    with Ledger.open(path, origin="S001-T1", clock=clock) as first:
        open_chart(first)
        first_topup = first.transfer(
            "topup-1",
            [
                Posting.debit("sys:float:EUR", eur(1000)),
                Posting.credit("member:M-1:wallet:EUR", eur(1000)),
            ],
        )
    with Ledger.open(path, origin="S001-T1", clock=clock) as again:
        assert again.balance("member:M-1:wallet:EUR").posted == eur(1000)
        retried = again.transfer(
            "topup-1",
            [
                Posting.debit("sys:float:EUR", eur(1000)),
                Posting.credit("member:M-1:wallet:EUR", eur(1000)),
            ],
        )
        assert retried == first_topup
        assert again.balance("member:M-1:wallet:EUR").posted == eur(1000)
        again.check()


def test_bulk_enrolment_is_one_commit_and_repeatable(ledger: Ledger) -> None:
    from loyaltysdk.ledger import Account

    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    accounts = [
        Account(f"member:B-{n}:points", "PTS", limited, True, "sys:points:breakage")
        for n in range(1200)
    ]
    assert ledger.open_accounts(accounts) == 1200
    assert ledger.open_accounts(accounts) == 0  # a repeat creates nothing
    assert ledger.balance("member:B-1199:points").available == Points(0)
    before = len(ledger.balances())
    clash = [
        Account("member:B-new:points", "PTS", limited, True, "sys:points:breakage"),
        Account("sys:sales:EUR", "USD", AccountFlags.NONE),
    ]
    with pytest.raises(AccountConflict):
        ledger.open_accounts(clash)
    assert len(ledger.balances()) == before  # nothing of a failed call is created
    with pytest.raises(UnknownAccount):
        ledger.open_accounts([Account("member:X:points", "PTS", limited, True, "sys:nowhere")])
