# SPDX-License-Identifier: Apache-2.0
"""The stored-value application: issue, APDU counts, tearing recovery, keys per card."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk._errors import CardAuthenticationFailed, CardRemoved
from loyaltysdk.cards.desfire import DuplicateError
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import (
    CardIntent,
    CardLimitExceeded,
    CardLogCorrupt,
    InsufficientCardBalance,
    IntentUndecidable,
    Kind,
    LogRecord,
    Outcome,
    Purse,
    PurseError,
    PurseLayout,
)
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.pcscd import PcscdProcess
from loyaltysdk.simulators.reader import VirtualReader

from ..slots import PcscSlot
from .conftest import UID


def _intent(kind: Kind, amount: int, n: int = 1, at: int = 1_800_000_000) -> CardIntent:
    return CardIntent.new(kind, amount, receipt=f"R-{n}", till="S1-T1", now=at)


def test_issue_personalises_with_diversified_keys(
    purse: Purse, keystore: SoftwareKeyStore, issued: VirtualDesfire
) -> None:
    app = issued.apps[purse.layout.aid]
    aid = purse.layout.aid.to_bytes(3, "little")
    keys = [key for key, _ in app.keys]
    assert len(set(keys)) == 4 and bytes(16) not in keys
    from loyaltysdk.cards.keystore import KeyRole

    assert keys[1] == keystore.card_key(KeyRole.DEBIT, UID, aid)
    assert issued.value_of(purse.layout.aid, 1) == 1000
    (record,) = issued.records_of(purse.layout.aid, 2)
    assert LogRecord.decode(record).kind is Kind.ISSUE


def test_issue_twice_is_refused(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    with pytest.raises(DuplicateError):
        purse.issue(reader.connect(), issued.uid)


def test_apdu_counts(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    transport = reader.connect()
    counts = {}
    for name, call in [
        ("debit", lambda: purse.debit(transport, UID, _intent(Kind.DEBIT, 100))),
        ("credit", lambda: purse.credit(transport, UID, _intent(Kind.CREDIT, 100))),
        ("refund", lambda: purse.credit(transport, UID, _intent(Kind.LIMITED_CREDIT, 10))),
        ("balance", lambda: purse.read(transport, UID)),
    ]:
        before = transport.apdu_count
        call()
        counts[name] = transport.apdu_count - before
    # Select 1 + authenticate 2 + GetValue + Debit/Credit + WriteRecord + Commit.
    assert counts["debit"] == counts["credit"] == counts["refund"] == 7
    # Select 1 + authenticate 2 + ReadRecords (the 72-byte answer takes two frames).
    assert counts["balance"] == 5
    assert purse.read(transport, UID).balance == issued.value_of(purse.layout.aid, 1) == 1010


def test_limits_refuse_before_touching_value(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    transport = reader.connect()
    with pytest.raises(InsufficientCardBalance):
        purse.debit(transport, UID, _intent(Kind.DEBIT, 1001))
    with pytest.raises(CardLimitExceeded):
        purse.credit(transport, UID, _intent(Kind.CREDIT, purse.layout.upper_limit))
    assert issued.value_of(purse.layout.aid, 1) == 1000
    assert len(issued.records_of(purse.layout.aid, 2)) == 1


def test_other_chain_keys_cannot_touch_the_card(
    reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    stranger = Purse(SoftwareKeyStore.generate(b"OTHER"))
    with pytest.raises(CardAuthenticationFailed):
        stranger.debit(reader.connect(), UID, _intent(Kind.DEBIT, 1))


def test_equal_balance_is_not_mistaken_for_a_done_intent(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    transport = reader.connect()
    torn = _intent(Kind.DEBIT, 100, 1)
    issued.faults.tear_before = issued.apdu_count + 5  # before Debit
    with pytest.raises(CardRemoved):
        purse.debit(transport, UID, torn)
    reader.insert(issued)
    transport = reader.connect()
    # Elsewhere, the same amount goes out and comes back: the balance is as
    # if the torn debit happened, but the log says it did not.
    purse.debit(transport, UID, _intent(Kind.DEBIT, 100, 2))
    assert purse.resolve(transport, UID, torn) is Outcome.NOT_APPLIED


def test_undecidable_when_the_log_has_cycled(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    transport = reader.connect()
    old = _intent(Kind.DEBIT, 5, 0, at=1_700_000_000)
    for n in range(purse.layout.log_records):
        purse.credit(transport, UID, _intent(Kind.CREDIT, 1, n + 1))
    with pytest.raises(IntentUndecidable):
        purse.resolve(transport, UID, old)


def test_tampered_log_is_reported(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire
) -> None:
    transport = reader.connect()
    intent = _intent(Kind.DEBIT, 10)
    purse.debit(transport, UID, intent)
    forged = CardIntent(intent.id, Kind.DEBIT, 11, intent.receipt, intent.till, intent.created_at)
    with pytest.raises(CardLogCorrupt):
        purse.resolve(transport, UID, forged)


operation = st.tuples(
    st.sampled_from([Kind.DEBIT, Kind.CREDIT, Kind.LIMITED_CREDIT]),
    st.integers(min_value=1, max_value=800),
    st.one_of(st.none(), st.integers(min_value=0, max_value=8), st.just("after-commit")),
)


def _tear_and_resolve(
    keystore: SoftwareKeyStore,
    reader: VirtualReader | PcscSlot,
    ops: list[tuple[Kind, int, object]],
    resolve_tear: int,
) -> None:
    ticks = itertools.count(1_800_000_000)
    purse = Purse(keystore, PurseLayout(upper_limit=5_000), clock=lambda: next(ticks))
    card = VirtualDesfire(UID)
    reader.insert(card)
    purse.issue(reader.connect(), UID, initial=1_000)
    expected = 1_000
    outcomes: dict[bytes, Outcome] = {}
    intents = []
    for n, (kind, amount, tear) in enumerate(ops):
        intent = CardIntent.new(kind, amount, receipt=f"R-{n}", till="S1-T1", now=next(ticks))
        intents.append(intent)  # the till persists the intent first
        if tear == "after-commit":
            card.faults.tear_after_commit = True
        elif isinstance(tear, int):
            card.faults.tear_before = card.apdu_count + tear
        move = purse.debit if kind is Kind.DEBIT else purse.credit
        try:
            move(reader.connect(), UID, intent)
        except CardRemoved:
            pass  # pending: resolved at the next tap, below
        except PurseError:
            pass  # refused before or by the card (balance, limit, limited credit): nothing moved
        card.faults.tear_after_commit = False
        card.faults.tear_before = None
        if reader.card is None:
            reader.insert(card)
        # The next tap resolves the intent; a tear during resolution only
        # means tapping again.
        card.faults.tear_before = card.apdu_count + resolve_tear
        while True:
            try:
                outcome = purse.resolve(reader.connect(), UID, intent)
                break
            except CardRemoved:
                reader.insert(card)
        card.faults.tear_before = None
        outcomes[intent.id] = outcome
        if outcome is Outcome.APPLIED:
            expected += -amount if kind is Kind.DEBIT else amount
    assert card.value_of(purse.layout.aid, 1) == expected
    log = [LogRecord.decode(r) for r in card.records_of(purse.layout.aid, 2)]
    assert log[-1].balance_after == expected
    applied = {i.id for i in intents if outcomes[i.id] is Outcome.APPLIED}
    logged = [r.intent_id for r in log if r.kind is not Kind.ISSUE]
    assert sorted(logged) == sorted(applied)
    # Resolving again gives the same answers: exactly once, not at least once.
    for intent in intents:
        assert purse.resolve(reader.connect(), UID, intent) is outcomes[intent.id]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(operation, min_size=1, max_size=12), st.integers(0, 6))
def test_tearing_anywhere_resolves_every_intent_exactly_once(
    keystore: SoftwareKeyStore, ops: list[tuple[Kind, int, object]], resolve_tear: int
) -> None:
    _tear_and_resolve(keystore, VirtualReader(), ops, resolve_tear)


@pytest.mark.pcsc
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(operation, min_size=1, max_size=4), st.integers(0, 6))
def test_tearing_through_the_real_pcsc_stack(
    keystore: SoftwareKeyStore,
    pcscd: PcscdProcess,
    ops: list[tuple[Kind, int, object]],
    resolve_tear: int,
) -> None:
    slot = PcscSlot(pcscd)
    try:
        _tear_and_resolve(keystore, slot, ops, resolve_tear)
    finally:
        slot.close()


def test_an_autosaved_card_survives_a_till_restart(
    purse: Purse, reader: VirtualReader | PcscSlot, issued: VirtualDesfire, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    issued.save(tmp_path / "card.json")
    card = VirtualDesfire.load(tmp_path / "card.json", autosave=True)
    reader.insert(card)
    purse.debit(reader.connect(), UID, _intent(Kind.DEBIT, 300))
    # A new process loads the file: the debit is there.
    again = VirtualDesfire.load(tmp_path / "card.json")
    assert again.value_of(purse.layout.aid, 1) == 700
    reader.insert(again)
    assert purse.read(reader.connect(), UID).balance == 700
