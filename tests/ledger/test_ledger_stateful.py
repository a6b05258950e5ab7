# SPDX-License-Identifier: Apache-2.0
"""Random sequences of ledger operations keep every invariant.

After every step: per unit all balances sum to zero, no flagged account is
negative, stored balances equal the fold of the journal, lots equal points
balances, and the outbox holds every committed entry (all via
`Ledger.check`). Every call is recorded with its outcome, and a retry with
the same key must return the same outcome and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from loyaltysdk import LoyaltyError, Money, Points
from loyaltysdk.ledger import Ledger, Posting, Rejection

from .conftest import FakeClock, open_chart

MEMBERS = st.sampled_from(["M-1", "M-2"])
AMOUNTS = st.integers(min_value=1, max_value=5_000)


def _wallet(member: str, minor: int, *, spend: bool) -> list[Posting]:
    money = Money(minor, "EUR")
    wallet, system = f"member:{member}:wallet:EUR", ("sys:sales:EUR" if spend else "sys:float:EUR")
    if spend:
        return [Posting.debit(wallet, money), Posting.credit(system, money)]
    return [Posting.debit(system, money), Posting.credit(wallet, money)]


def _points(member: str, value: int, *, redeem: bool, expires: Any = None) -> list[Posting]:
    points = Points(value)
    account = f"member:{member}:points"
    if redeem:
        return [Posting.debit(account, points), Posting.credit("sys:points:redeemed", points)]
    return [
        Posting.debit("sys:points:issued", points),
        Posting.credit(account, points, expires_at=expires),
    ]


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    posted = Bundle("posted")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.ledger = Ledger.in_memory(origin="S001-T1", clock=self.clock)
        open_chart(self.ledger)
        self.counter = 0
        # key -> (the call, its outcome: a Transaction or an exception type)
        self.calls: dict[str, tuple[Callable[[], Any], Any]] = {}

    def _key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def _do(self, key: str, call: Callable[[], Any]) -> Any:
        try:
            outcome: Any = call()
        except Rejection as error:
            outcome = type(error)
        except LoyaltyError as error:  # bad references (unknown hold...) are not remembered
            return type(error)
        self.calls[key] = (call, outcome)
        return outcome

    @rule(target=posted, member=MEMBERS, minor=AMOUNTS)
    def top_up(self, member: str, minor: int) -> str:
        key = self._key("topup")
        self._do(key, lambda: self.ledger.transfer(key, _wallet(member, minor, spend=False)))
        return key

    @rule(target=posted, member=MEMBERS, minor=AMOUNTS)
    def spend(self, member: str, minor: int) -> str:
        key = self._key("spend")
        self._do(key, lambda: self.ledger.transfer(key, _wallet(member, minor, spend=True)))
        return key

    @rule(target=posted, member=MEMBERS, value=AMOUNTS, days=st.integers(1, 60))
    def earn(self, member: str, value: int, days: int) -> str:
        key = self._key("earn")
        expires = self.clock.now + timedelta(days=days)
        self._do(
            key,
            lambda: self.ledger.transfer(
                key, _points(member, value, redeem=False, expires=expires)
            ),
        )
        return key

    @rule(target=posted, member=MEMBERS, value=AMOUNTS)
    def redeem(self, member: str, value: int) -> str:
        key = self._key("redeem")
        self._do(key, lambda: self.ledger.transfer(key, _points(member, value, redeem=True)))
        return key

    @rule(
        target=holds,
        member=MEMBERS,
        minor=AMOUNTS,
        points=st.booleans(),
        minutes=st.integers(1, 30),
    )
    def hold(self, member: str, minor: int, points: bool, minutes: int) -> str:
        key = self._key("hold")
        postings = (
            _points(member, minor, redeem=True) if points else _wallet(member, minor, spend=True)
        )
        self._do(key, lambda: self.ledger.hold(key, postings, timeout=timedelta(minutes=minutes)))
        return key

    @rule(target=posted, hold=consumes(holds), share=st.integers(1, 100))
    def post(self, hold: str, share: int) -> str:
        key = self._key("post")
        found = self.ledger.transaction(hold)
        if found is None:
            self._do(key, lambda: self.ledger.post(key, hold))
            return key
        amount = found.postings[0].amount
        part = type(amount)(
            max(1, amount.minor * share // 100),
            *([amount.unit] if isinstance(amount, Money) else []),
        )
        self._do(key, lambda: self.ledger.post(key, hold, amount=part))
        return key

    @rule(hold=consumes(holds))
    def void(self, hold: str) -> None:
        key = self._key("void")
        self._do(key, lambda: self.ledger.void(key, hold))

    @rule(original=posted)
    def reverse(self, original: str) -> None:
        key = self._key("reverse")
        self._do(key, lambda: self.ledger.reverse(key, original))

    @rule(minutes=st.integers(1, 60 * 24 * 20))
    def advance_clock(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def expire(self) -> None:
        self.ledger.expire()

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        if not self.calls:
            return
        key = data.draw(st.sampled_from(sorted(self.calls)))
        call, outcome = self.calls[key]
        self.ledger.expire()  # settle what the clock released, so only the retry is measured
        before = (self.ledger.balances(), self.ledger.outbox_status())
        try:
            again: Any = call()
        except Rejection as error:
            again = type(error)
        assert again == outcome, f"retry of {key} gave {again!r}, first gave {outcome!r}"
        assert (self.ledger.balances(), self.ledger.outbox_status()) == before

    @invariant()
    def ledger_is_consistent(self) -> None:
        self.ledger.check()

    def teardown(self) -> None:
        self.ledger.close()


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_state_machine = LedgerMachine.TestCase
