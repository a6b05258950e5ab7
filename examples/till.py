# SPDX-License-Identifier: Apache-2.0
"""A complete terminal till, driven by the simulator: read this to integrate loyaltysdk.

    python examples/till.py            # an interactive till
    python examples/till.py --script   # the same till, fed a scripted shift

Commands: tap | member NUMBER | add SKU QTY PRICE [CATEGORY] | voucher TEXT |
points N | wallet AMOUNT | card AMOUNT | quote | pay REF | cancel |
refund REF LINE QTY | balance | help | quit
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from loyaltysdk import Basket, Line, LoyaltyError, Money, Till, load_rules
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.vouchers import IssuerKey

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "points": {"expiry_days": 365},
    "exclude": {"categories": ["gift-card", "tobacco"]},
    "rules": [
        {
            "id": "base",
            "description": "1 point per euro",
            "effect": {"type": "earn", "points": 1, "per": 100},
        },
        {
            "id": "coffee",
            "description": "double points on coffee",
            "effect": {"type": "multiply", "factor": "2"},
            "what": {"categories": ["coffee"]},
        },
    ],
}

SCRIPT = """\
tap
add COFFEE 2 3.20 coffee
add BREAD 1 2.49 bakery
quote
pay R-1001
tap
add CHEESE 1 7.90 dairy
voucher {voucher}
points 10
card 1.00
pay R-1002
refund R-1001 0 1
balance
"""


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="loyalty-till-"))
    # 1. Set-up a chain would do once: keys, a voucher, the till's file.
    keys = SoftwareKeyStore.generate(b"DEMO-CHAIN")
    issuer = IssuerKey.generate("HQ-1")
    till = Till.open(
        workdir / "till.db",
        store="S001",
        till_id="S001-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        purse=Purse(keys),
    )
    # 2. A member with a stored-value card, in a simulated reader.
    card, reader = VirtualDesfire(), VirtualReader()
    reader.insert(card)
    till.enrol("M-1", card_uid=card.uid, card_kind="purse")
    till.purse.issue(reader.connect(), card.uid)  # type: ignore[union-attr]
    till.top_up_card(reader.connect(), card.uid, Money(2_000, "EUR"), payment_ref="CASH-1")
    # Head office's key signs it; in a chain the hub issues it and tells every till.
    voucher = till.issue_voucher(Money(300, "EUR"), key=issuer, valid_for=timedelta(days=30))

    lines: list[Line] = []
    identity = None
    session = None
    commands = (
        SCRIPT.format(voucher=voucher.payload).splitlines() if "--script" in sys.argv else None
    )
    print(__doc__.split("\n\n")[2])
    while True:
        text = commands.pop(0) if commands else (None if commands is not None else input("till> "))
        if text is None:
            break
        if commands is not None:
            print(f"till> {text}")
        word, *args = text.split() or [""]
        try:
            if word == "quit":
                break
            if word == "tap":  # the card arrives: identify the member by its UID
                identity = till.identify(reader.wait_for_card(5).uid or b"")
                print(f"hello {identity.member.id}")
            elif word == "member":
                identity = till.identify(args[0])
            elif word == "add":
                price = Money.parse(args[2], "EUR")
                lines.append(
                    Line(args[0], int(args[1]), price, category=args[3] if len(args) > 3 else "")
                )
                session = None
            elif word in ("voucher", "points", "wallet", "card", "quote", "pay", "cancel"):
                if session is None:
                    session = till.checkout(Basket("EUR", lines), identity)
                if word == "voucher":
                    use = session.apply_voucher(args[0])
                    print(f"voucher {use.code}: {use.amount}")
                elif word == "points":
                    session.redeem_points(int(args[0]))
                elif word == "wallet":
                    session.pay_wallet(Money.parse(args[0], "EUR"))
                elif word == "card":
                    session.pay_card(card.uid, Money.parse(args[0], "EUR"))
                elif word == "cancel":
                    session.cancel()
                    session, lines, identity = None, [], None
                    continue
                if word == "pay":
                    receipt = session.complete(args[0], card=reader.connect())
                    print("\n".join(receipt.lines()))
                    session, lines, identity = None, [], None
                else:
                    quote = session.quote()
                    print(
                        f"total {quote.total}, due {quote.due}, earns"
                        f" {quote.points_to_earn} pts; can redeem {quote.max_redeemable}"
                    )
            elif word == "refund":
                refund = till.refund(
                    args[0], {int(args[1]): int(args[2])}, refund_ref=f"{args[0]}-F"
                )
                print(
                    f"refunded {refund.amount}: cash {refund.cash_due}, points back"
                    f" {refund.points_reinstated}, points taken {refund.points_clawed_back}"
                )
            elif word == "balance":
                member = identity.member.id if identity else "M-1"
                balance = till.balance(member)
                cards = ", ".join(f"{uid} {value}" for uid, value in balance.cards)
                print(
                    f"{member}: {balance.points_available} points,"
                    f" wallet {balance.wallet_available}, cards: {cards or 'none'}"
                )
            else:
                print(__doc__.split("\n\n")[2])
        except LoyaltyError as error:  # every refusal is typed and says why
            print(f"refused: {type(error).__name__}: {error}")
    till.close()


if __name__ == "__main__":
    main()
