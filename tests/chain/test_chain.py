# SPDX-License-Identifier: Apache-2.0
"""One member account across the chain: every bullet of issue 13, played at two stores.

Each test plays what went wrong, through `DirectLink` (HTTP in test_chain_http.py),
and shows the opposite: redeemed, paid, refused where it must be, reported where it must be.
"""

from __future__ import annotations

from loyaltysdk import Basket, Line, Money
from loyaltysdk.sync import UpdateKind

from .conftest import Chain, card_reader

EUR = "EUR"


def eur(minor: int) -> Money:
    return Money(minor, EUR)


UID = bytes.fromhex("04C0FFEE000001")


def enrol_everywhere(
    chain: Chain, member: str, uid: bytes | None = None, kind: str = "purse"
) -> None:
    cards = [{"uid": uid.hex().upper(), "kind": kind}] if uid else []
    chain.hub.publish(UpdateKind.MEMBERS, {"members": [{"id": member, "cards": cards}]})
    chain.sync()


def test_a_card_loaded_at_one_store_pays_at_another(chain: Chain) -> None:
    enrol_everywhere(chain, "M1", UID)
    card, reader = card_reader(UID)
    one, two = chain.s1.till, chain.s2.till
    one.issue_card(reader.connect(), UID, "M1")
    one.top_up_card(reader.connect(), UID, Money(3_000, EUR), payment_ref="LOAD-1")
    sale = two.checkout(Basket(EUR, [Line("X", 1, 500)]), two.identify(UID))
    sale.pay_card(UID, Money(500, EUR))
    receipt = sale.complete("S2-R1", card=reader.connect())
    assert receipt.card_paid == eur(500) and receipt.card_balance == eur(2_500)
    aid = one.purse.layout.aid  # type: ignore[union-attr]
    assert card.value_of(aid, 1) == 2_500
    assert two.pending_card_intents() == []
    chain.sync()
    hub = chain.hub.balance(f"card:{UID.hex().upper()}:{EUR}")
    assert hub is not None and hub[2] - hub[1] == 2_500  # the hub's shadow equals the chip
    assert set(chain.hub.unit_totals().values()) == {0}
    for till in (one, two):
        till.ledger.check()


def test_points_and_wallet_from_one_store_are_spent_at_another(chain: Chain) -> None:
    enrol_everywhere(chain, "M1")
    one, two = chain.s1.till, chain.s2.till
    one.top_up("M1", Money(2_000, EUR), payment_ref="S1-P1")
    one.checkout(Basket(EUR, [Line("TV", 1, 30_000)]), one.identify("M1")).complete("S1-R1")
    chain.s1.sync()
    who = two.identify("M1")  # the hub's figures come with the member
    assert who.online
    sale = two.checkout(Basket(EUR, [Line("X", 1, 2_500)]), who)
    assert sale.quote().points_available == 300
    sale.redeem_points(300)
    sale.pay_wallet(Money(2_000, EUR))
    receipt = sale.complete("S2-R1")
    assert (receipt.points_redeemed, receipt.wallet_paid) == (300, eur(2_000))
    assert receipt.mode == "online"
    chain.sync()
    wallet = chain.hub.balance(f"member:M1:wallet:{EUR}")
    assert wallet is not None and wallet[2] - wallet[1] == 0  # spent once, chain-wide
    points = chain.hub.balance("member:M1:points")
    assert points is not None and points[2] - points[1] == 25  # 300 earned, 300 spent, 25 earned
    assert two.identify("M1").online and two.wallet_available("M1") == eur(0)
    assert one.identify("M1").online and one.wallet_available("M1") == eur(0)  # store 1 knows too
    assert not chain.hub.exceptions()


def test_a_voucher_head_office_issued_is_funded_once_and_spent_once(chain: Chain) -> None:
    from datetime import timedelta

    from loyaltysdk.vouchers import VoucherIssuer, VoucherTemplate

    from .conftest import ISSUER

    start = chain.clock.now
    gift = VoucherIssuer(ISSUER).issue(
        VoucherTemplate("value", 5_000, EUR, start, start + timedelta(days=90), mode="partial")
    )
    chain.hub.publish(UpdateKind.VOUCHERS, {"terms": [gift.terms.to_json()]})
    chain.hub.publish(UpdateKind.VOUCHERS, {"terms": [gift.terms.to_json()]})  # published twice
    chain.sync()
    liability = chain.hub.balance(f"voucher:{gift.terms.code}")
    assert liability is not None and liability[2] - liability[1] == 5_000  # funded once
    one, two = chain.s1.till, chain.s2.till
    first = one.checkout(Basket(EUR, [Line("A", 1, 5_000)]))
    assert first.apply_voucher(gift.payload).amount == eur(5_000)
    second = two.checkout(Basket(EUR, [Line("B", 1, 5_000)]))
    import pytest

    from loyaltysdk.till import OnlineRefused

    with pytest.raises(OnlineRefused):  # the first till holds all of it at the hub
        second.apply_voucher(gift.payload)
    first.complete("S1-R1")
    chain.sync()
    liability = chain.hub.balance(f"voucher:{gift.terms.code}")
    assert liability is not None and liability[2] - liability[1] == 0
    with pytest.raises(Exception, match=r"nothing left|0 available"):
        two.checkout(Basket(EUR, [Line("C", 1, 100)])).apply_voucher(gift.payload)
    assert not chain.hub.exceptions()
    assert set(chain.hub.unit_totals().values()) == {0}


def test_offline_spends_are_counted_across_tenders_and_sessions(chain: Chain) -> None:
    import pytest

    from loyaltysdk.till import OfflineAllowance, OfflineLimitReached

    enrol_everywhere(chain, "M1")
    one, two = chain.s1.till, chain.s2.till
    one.top_up("M1", Money(50_000, EUR), payment_ref="S1-P1")
    one.checkout(Basket(EUR, [Line("TV", 1, 100_000)]), one.identify("M1")).complete("S1-R1")
    chain.sync()
    two.identify("M1")  # store 2 holds the member's figures now
    two.allowance = OfflineAllowance(per_transaction=5_000, per_member_per_day=10_000)
    chain.s2.link.down = True
    who = two.identify("M1")
    assert not who.online
    sale = two.checkout(Basket(EUR, [Line("X", 1, 20_000)]), who)
    assert sale.mode == "offline"
    sale.redeem_points(500)  # 5.00 of value
    with pytest.raises(OfflineLimitReached):  # points and wallet count together
        sale.pay_wallet(Money(4_600, EUR))
    sale.pay_wallet(Money(4_500, EUR))
    assert sale.complete("S2-R1").mode == "offline"
    # Open sessions count too: the member's day (100.00) is spent by sessions not yet completed.
    open_sessions = []
    for _ in range(2):
        other = two.checkout(Basket(EUR, [Line("Y", 1, 5_000)]), two.identify("M1"))
        other.pay_wallet(Money(2_500, EUR))
        open_sessions.append(other)
    last = two.checkout(Basket(EUR, [Line("Z", 1, 5_000)]), two.identify("M1"))
    with pytest.raises(OfflineLimitReached):
        last.pay_wallet(Money(100, EUR))
    for session in open_sessions:
        session.cancel()
    last.pay_wallet(Money(100, EUR))  # what the cancelled sessions held is free again
    last.cancel()
    chain.s2.link.down = False
    chain.sync()
    assert not chain.hub.exceptions()


def test_what_two_offline_tills_overspent_is_an_exception_with_its_amount(chain: Chain) -> None:
    enrol_everywhere(chain, "M1")
    one, two = chain.s1.till, chain.s2.till
    one.top_up("M1", Money(3_000, EUR), payment_ref="S1-P1")
    chain.sync()
    one.identify("M1"), two.identify("M1")
    chain.s1.link.down = chain.s2.link.down = True
    for till, ref in ((one, "S1-R1"), (two, "S2-R1")):
        sale = till.checkout(Basket(EUR, [Line("X", 1, 2_000)]), till.identify("M1"))
        sale.pay_wallet(Money(2_000, EUR))  # each saw 30.00 and took 20.00 of it
        assert sale.complete(ref).mode == "offline"
    chain.s1.link.down = chain.s2.link.down = False
    chain.sync()
    exceptions = chain.hub.exceptions()
    assert [(e["kind"], e["account"], e["amount"]) for e in exceptions] == [
        ("overdraft", f"member:M1:wallet:{EUR}", 1_000)
    ]
    assert exceptions[0]["till"] in ("S1-T1", "S2-T1")
    assert chain.hub.entries("S1-T1") and chain.hub.entries("S2-T1")  # nothing dropped


def test_what_one_till_learns_about_members_and_cards_reaches_the_other(chain: Chain) -> None:
    import pytest

    from loyaltysdk.till import CardBlocked, CardInUse

    one, two = chain.s1.till, chain.s2.till
    identity_card, lost, new = (bytes.fromhex(f"04AA00000000{n:02X}") for n in range(3))
    one.enrol("M9", card_uid=identity_card)
    one.enrol("M8")
    one.link_card("M8", lost, kind="purse")
    chain.sync()
    assert two.identify(identity_card).member.id == "M9"  # enrolled at store 1
    with pytest.raises(CardInUse):
        two.enrol("M7", card_uid=identity_card)  # store 2 knows whose card it is
    one.block_card(identity_card, reason="stolen")
    chain.sync()
    with pytest.raises(CardBlocked):
        two.identify(identity_card)
    two.replace_card(lost, new)  # at store 2 this time
    chain.sync()
    with pytest.raises(CardBlocked):
        one.identify(lost)
    assert one.identify(new).member.id == "M8"  # the replacement is known at store 1
    assert not chain.hub.exceptions()


def test_a_sun_tap_replayed_at_another_till_is_refused(chain: Chain) -> None:
    import pytest

    from loyaltysdk.cards.ntag424 import MemoryCounterStore, SunReplayed, SunVerifier, read_sun_url
    from loyaltysdk.simulators.ntag424 import VirtualNtag424
    from loyaltysdk.simulators.reader import VirtualReader

    meta, file = b"M" * 16, b"F" * 16
    tag = VirtualNtag424(meta_read_key=meta, file_read_key=file)
    reader = VirtualReader()
    reader.insert(tag)
    url = read_sun_url(reader.connect())
    uid = tag.uid
    one, two = chain.s1.till, chain.s2.till
    for till in (one, two):
        till.sun = SunVerifier(meta, file, MemoryCounterStore())
    one.enrol("M1", card_uid=uid)
    chain.sync()
    assert one.identify(url).member.id == "M1"
    with pytest.raises(SunReplayed):
        two.identify(url)  # the same URL, copied to another store
    # Offline, a till cannot ask: it accepts the tap and the hub reports the replay.
    reader.insert(tag)
    fresh = read_sun_url(reader.connect())
    assert two.identify(fresh).member.id == "M1"
    chain.s1.link.down = True
    assert one.identify(fresh).member.id == "M1"  # store 1 has not seen it: accepted offline
    chain.s1.link.down = False
    chain.sync()
    assert [e["kind"] for e in chain.hub.exceptions()] == ["sun_replay"]


def test_an_online_checkout_calls_the_hub_once_to_identify_and_once_per_tender(
    chain: Chain,
) -> None:
    from datetime import timedelta

    from loyaltysdk.vouchers import VoucherIssuer, VoucherTemplate

    from .conftest import ISSUER

    enrol_everywhere(chain, "M1", UID)
    one, two = chain.s1.till, chain.s2.till
    _, reader = card_reader(UID)
    one.issue_card(reader.connect(), UID, "M1")
    one.top_up_card(reader.connect(), UID, Money(1_000, EUR), payment_ref="L1")
    one.top_up("M1", Money(2_000, EUR), payment_ref="P1")
    one.checkout(Basket(EUR, [Line("TV", 1, 30_000)]), one.identify("M1")).complete("S1-R1")
    start = chain.clock.now
    gift = VoucherIssuer(ISSUER).issue(
        VoucherTemplate("value", 500, EUR, start, start + timedelta(days=9), mode="partial")
    )
    chain.hub.publish(UpdateKind.VOUCHERS, {"terms": [gift.terms.to_json()]})
    chain.sync()
    calls: list[str] = []
    link = chain.s2.link
    for name in ("snapshot", "take_hold", "release_hold", "push", "pull", "push_events"):
        original = getattr(link, name)

        def counted(
            *args: object, _name: str = name, _call: object = original, **kw: object
        ) -> object:
            calls.append(_name)
            return _call(*args, **kw)  # type: ignore[operator]

        setattr(link, name, counted)
    sale = two.checkout(Basket(EUR, [Line("X", 1, 5_000)]), two.identify(UID))
    sale.redeem_points(300)
    sale.apply_voucher(gift.payload)
    sale.pay_wallet(Money(2_000, EUR))
    sale.pay_card(UID, Money(500, EUR))
    receipt = sale.complete("S2-R1", card=reader.connect())
    assert receipt.mode == "online" and receipt.card_paid == eur(500)
    # identify; then the points, the voucher and the wallet are each held once (the card's
    # value is on the card); completing settles the holds by the records it pushes later.
    assert calls == ["snapshot", "take_hold", "take_hold", "take_hold"]


def test_tiers_and_the_member_cap_count_every_store(chain: Chain) -> None:
    from loyaltysdk import load_rules

    from .conftest import RULES

    rules = load_rules(
        {
            **RULES,
            "version": 2,
            "caps": {"per_member": {"points": 500, "period": "month"}},
            "tiers": {
                "window_days": 365,
                "review": "year",
                "levels": [
                    {"name": "Silver", "min_spend": 0},
                    {"name": "Gold", "min_spend": 50_000},
                ],
            },
        }
    )
    enrol_everywhere(chain, "M1")
    one, two = chain.s1.till, chain.s2.till
    one.rules = two.rules = rules
    one.checkout(Basket(EUR, [Line("A", 1, 30_000)]), one.identify("M1")).complete("S1-R1")
    chain.sync()
    # 300.00 at store 1 and 300.00 at store 2: Gold, though neither store saw 500.00.
    second = two.checkout(Basket(EUR, [Line("B", 1, 30_000)]), two.identify("M1"))
    assert second.quote().points_to_earn == 200  # the month's cap: 300 were earned at store 1
    assert second.complete("S2-R1").points_earned == 200
    assert two.member("M1").tier == "Gold"
    chain.sync()
    one.identify("M1")  # the snapshot brings store 2's sale to store 1
    assert one.member("M1").tier == "Gold"
    third = one.checkout(Basket(EUR, [Line("C", 1, 1_000)]), one.identify("M1"))
    assert third.quote().points_to_earn == 0  # the cap is reached, chain-wide
