# SPDX-License-Identifier: Apache-2.0
"""The till: one store's checkout point on its own SQLite file.

The till keeps its member directory, cards, receipts and card intents in
tables of the ledger's own file and writes them on the ledger's connection
inside `Ledger.atomic()`, so a sale's ledger entries and its receipt row are
one durable commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import attrs

from .._errors import CardRemoved, ConfigurationError
from .._money import Money, Points, check_unit
from ..cards.ntag424 import SunVerifier
from ..cards.purse import CardIntent, Kind, Outcome, Purse
from ..cards.transport import Transport
from ..ledger import AccountFlags, Ledger, Posting
from ..ledger._sqlite import SQLiteStore
from ..rules import Basket, Line, Member, RuleSet
from ..vouchers import Keyring, RedemptionPolicy, VoucherBook, VoucherRegistry
from ._errors import (
    CardBlocked,
    PaymentInterrupted,
    ReceiptNotFound,
    UnknownCard,
    UnknownMember,
    VoidRefused,
    WrongCurrency,
)
from ._online import OfflineAllowance, ensure_schema
from ._receipt import MemberBalance, Receipt, Refund

_LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS till_members (
    id TEXT PRIMARY KEY, tier TEXT NOT NULL DEFAULT '', segments TEXT NOT NULL DEFAULT '[]',
    birthday TEXT, pin_hash TEXT, enrolled_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_cards (
    uid TEXT PRIMARY KEY, member TEXT NOT NULL, kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active', replaced_by TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_receipts (
    ref TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, plan TEXT NOT NULL, receipt TEXT NOT NULL,
    status TEXT NOT NULL, local_date TEXT NOT NULL, created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_card_intents (
    id TEXT PRIMARY KEY, uid TEXT NOT NULL, kind INTEGER NOT NULL, amount INTEGER NOT NULL,
    receipt TEXT NOT NULL, till TEXT NOT NULL, created_at INTEGER NOT NULL,
    plan TEXT NOT NULL, status TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS till_card_intents_pending
    ON till_card_intents (uid) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS till_refunds (
    ref TEXT PRIMARY KEY, receipt TEXT NOT NULL, lines TEXT NOT NULL, result TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_revoked (code TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_pending_points (
    receipt TEXT PRIMARY KEY, member TEXT NOT NULL, points INTEGER NOT NULL,
    spendable_on TEXT NOT NULL, expires_at TEXT, status TEXT NOT NULL
) WITHOUT ROWID;
"""


@attrs.frozen
class TillPolicy:
    """How this chain runs its tills.

    Attributes:
        minor_per_point: what one point pays, in minor units (1 = a point is a cent).
        presence_for_redemption: points are redeemed only with the member
            present (a card tap, or a PIN or OTP the POS checked).
        hold_timeout: how long a checkout session's holds live.
        vouchers: offline acceptance of unknown signed vouchers.
        void_same_day: a void is allowed only on the sale's local day.
    """

    minor_per_point: Fraction = Fraction(1)
    presence_for_redemption: bool = True
    hold_timeout: timedelta = timedelta(minutes=30)
    vouchers: RedemptionPolicy = attrs.field(factory=RedemptionPolicy)
    void_same_day: bool = True


@attrs.frozen
class MemberRecord:
    id: str
    tier: str = ""
    segments: frozenset[str] = frozenset()
    birthday: date | None = None


@attrs.frozen
class Identity:
    """Who is at the till and how we know.

    Attributes:
        member: the member.
        card_uid: the tapped card's UID (hex), if a card was used.
        method: "card", "sun", "qr" or "typed".
        present: the member proved presence (a tap); typed numbers do not.
    """

    member: MemberRecord
    card_uid: str | None
    method: Literal["card", "sun", "qr", "typed"]
    present: bool


def _pin_hash(member: str, pin: str) -> str:
    return hashlib.scrypt(pin.encode(), salt=member.encode(), n=2**12, r=8, p=1).hex()


class Till:
    """A till on its SQLite file; open it with `Till.open`."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        store: str,
        till_id: str,
        currency: str,
        timezone: str,
        rules: RuleSet,
        keyring: Keyring | None = None,
        registry: VoucherRegistry | None = None,
        purse: Purse | None = None,
        sun: SunVerifier | None = None,
        policy: TillPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        pin_check: Callable[[str, str], bool] | None = None,
        otp_check: Callable[[str, str], bool] | None = None,
        hub: Any = None,
        allowance: OfflineAllowance | None = None,
    ) -> None:
        if not isinstance(ledger.store, SQLiteStore):
            raise ConfigurationError("a till keeps its tables in the ledger's SQLite file")
        try:
            check_unit(currency)
            self.zone = ZoneInfo(timezone)
        except (ValueError, KeyError) as error:
            raise ConfigurationError(f"bad till setting: {error}") from error
        if not store or not till_id:
            raise ConfigurationError("a till needs a store and a till id")
        if rules.currency != currency:
            raise ConfigurationError(f"the rules are in {rules.currency}, the till in {currency}")
        if purse is not None and purse.layout.currency != currency:
            raise ConfigurationError("the stored-value cards are in another currency")
        self.ledger = ledger
        self.store = store
        self.till_id = till_id
        self.currency = currency
        self.timezone = timezone
        self.rules = rules
        self.purse = purse
        self.sun = sun
        self.policy = policy or TillPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.pin_check = pin_check
        self.otp_check = otp_check
        #: A `loyaltysdk.hub.HubLink` for online holds, or None for a standalone till.
        self.hub = hub
        self.allowance = allowance or OfflineAllowance()
        self.vouchers = VoucherBook(
            ledger,
            keyring or Keyring(),
            registry=registry,
            policy=self.policy.vouchers,
            clock=self._clock,
        )
        self._conn = ledger.store.connection
        with ledger.atomic():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(statement)
            ensure_schema(self)
            self._open_system_accounts()
        # Vouchers this till took back (a refunded gift card) stay refused.
        self.vouchers.add_revocations(
            code for (code,) in self._conn.execute("SELECT code FROM till_revoked")
        )

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        store: str,
        till_id: str,
        currency: str,
        timezone: str,
        rules: RuleSet,
        clock: Callable[[], datetime] | None = None,
        **options: Any,
    ) -> Till:
        """Open (or create) a till's file and check its configuration.

        Raises:
            ConfigurationError: an invalid setting, named.
        """
        ledger = Ledger.open(path, origin=till_id, clock=clock)
        return cls(
            ledger,
            store=store,
            till_id=till_id,
            currency=currency,
            timezone=timezone,
            rules=rules,
            clock=clock,
            **options,
        )

    def close(self) -> None:
        self.ledger.close()

    def now(self) -> datetime:
        return self._clock()

    def local_date(self, moment: datetime | None = None) -> date:
        return (moment or self.now()).astimezone(self.zone).date()

    # -- accounts ------------------------------------------------------------------

    def _open_system_accounts(self) -> None:
        c = self.currency
        for name in ("issued", "redeemed", "breakage"):
            self.ledger.open_account(f"sys:points:{name}", "PTS")
        for name in ("wallet:float", "wallet:tender", "card:float", "card:tender"):
            self.ledger.open_account(f"sys:{name}:{c}", c)

    def points_account(self, member: str) -> str:
        return f"member:{member}:points"

    def pending_account(self, member: str) -> str:
        return f"member:{member}:points-pending"

    def wallet_account(self, member: str) -> str:
        return f"member:{member}:wallet:{self.currency}"

    def card_account(self, uid: str) -> str:
        return f"card:{uid}:{self.currency}"

    def money(self, minor: int) -> Money:
        return Money(minor, self.currency)

    # -- members and cards -------------------------------------------------------------

    def enrol(
        self,
        member_id: str | None = None,
        *,
        card_uid: bytes | None = None,
        card_kind: Literal["identity", "purse"] = "identity",
        tier: str = "",
        segments: frozenset[str] = frozenset(),
        birthday: date | None = None,
        pin: str | None = None,
    ) -> MemberRecord:
        """Enrol a new member (and a card) at the till; idempotent for the same details."""
        member_id = member_id or f"M-{os.urandom(5).hex().upper()}"
        record = MemberRecord(member_id, tier, frozenset(segments), birthday)
        with self.ledger.atomic():
            self._conn.execute(
                "INSERT INTO till_members (id, tier, segments, birthday, pin_hash, enrolled_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    member_id,
                    tier,
                    json.dumps(sorted(segments)),
                    birthday.isoformat() if birthday else None,
                    _pin_hash(member_id, pin) if pin else None,
                    self.now().isoformat(),
                ),
            )
            self.ledger.open_account(
                self.points_account(member_id),
                "PTS",
                flags=_LIMITED,
                lots=True,
                breakage_account="sys:points:breakage",
            )
            self.ledger.open_account(self.pending_account(member_id), "PTS", flags=_LIMITED)
            self.ledger.open_account(self.wallet_account(member_id), self.currency, flags=_LIMITED)
            if card_uid is not None:
                self.link_card(member_id, card_uid, kind=card_kind)
        return record

    def link_card(
        self, member_id: str, card_uid: bytes, *, kind: Literal["identity", "purse"] = "identity"
    ) -> None:
        """Register a card (by UID) to a member."""
        self.member(member_id)
        uid = card_uid.hex().upper()
        with self.ledger.atomic():
            self._conn.execute(
                "INSERT INTO till_cards (uid, member, kind) VALUES (?, ?, ?)"
                " ON CONFLICT (uid) DO NOTHING",
                (uid, member_id, kind),
            )
            if kind == "purse":
                self.ledger.open_account(self.card_account(uid), self.currency, flags=_LIMITED)

    def member(self, member_id: str) -> MemberRecord:
        """The member with this number.

        Raises:
            UnknownMember: no such member.
        """
        row = self._conn.execute(
            "SELECT id, tier, segments, birthday FROM till_members WHERE id = ?", (member_id,)
        ).fetchone()
        if row is None:
            raise UnknownMember(f"no member {member_id!r}")
        birthday = date.fromisoformat(row[3]) if row[3] else None
        return MemberRecord(row[0], row[1], frozenset(json.loads(row[2])), birthday)

    def set_tier(self, member_id: str, tier: str) -> None:
        self.member(member_id)
        with self.ledger.atomic():
            self._conn.execute("UPDATE till_members SET tier = ? WHERE id = ?", (tier, member_id))

    def check_pin(self, member_id: str, pin: str) -> bool:
        row = self._conn.execute(
            "SELECT pin_hash FROM till_members WHERE id = ?", (member_id,)
        ).fetchone()
        if row is None or row[0] is None:
            return self.pin_check(member_id, pin) if self.pin_check else False
        return bool(row[0] == _pin_hash(member_id, pin))

    def _card(self, uid: str) -> tuple[str, str, str]:
        row = self._conn.execute(
            "SELECT member, kind, status FROM till_cards WHERE uid = ?", (uid,)
        ).fetchone()
        if row is None:
            raise UnknownCard(f"card {uid} is not registered")
        if row[2] != "active":
            raise CardBlocked(f"card {uid} is blocked ({row[2]})")
        return row[0], row[1], row[2]

    def identify(self, evidence: bytes | str) -> Identity:
        """Who is buying, from a card UID (bytes), a tapped SUN URL, a member QR or a typed number.

        Member QR codes read ``loyalty:member:<number>``.

        Raises:
            CardBlocked: a hotlisted card.
            UnknownCard / UnknownMember: nobody known by this evidence.
            SunInvalid / SunReplayed: a forged or replayed tap.
        """
        if isinstance(evidence, bytes | bytearray):
            uid = bytes(evidence).hex().upper()
            member_id, _, _ = self._card(uid)
            return Identity(self.member(member_id), uid, "card", True)
        text = evidence.strip()
        if text.startswith(("https://", "http://")) and self.sun is not None:
            tap = self.sun.verify(text)
            uid = tap.uid.hex().upper()
            member_id, _, _ = self._card(uid)
            return Identity(self.member(member_id), uid, "sun", True)
        if text.startswith("loyalty:member:"):
            return Identity(self.member(text.removeprefix("loyalty:member:")), None, "qr", False)
        return Identity(self.member(text), None, "typed", False)

    def block_card(self, card_uid: bytes, *, reason: str = "blocked") -> None:
        """Put a card on the hotlist."""
        uid = card_uid.hex().upper()
        self._card(uid)
        with self.ledger.atomic():
            self._conn.execute("UPDATE till_cards SET status = ? WHERE uid = ?", (reason, uid))

    def hotlist(self) -> frozenset[str]:
        rows = self._conn.execute("SELECT uid FROM till_cards WHERE status != 'active'")
        return frozenset(uid for (uid,) in rows)

    def replace_card(self, lost_uid: bytes, new_uid: bytes) -> int:
        """Block a lost card and give its member a new one; returns the value moved.

        The lost card's stored value can never be spent again (the card is
        hotlisted), so its ledger shadow balance moves to the member's
        wallet, spendable at once; the new card starts empty.
        """
        uid = lost_uid.hex().upper()
        member_id, kind, _ = self._card(uid)
        moved = 0
        with self.ledger.atomic():
            self._conn.execute(
                "UPDATE till_cards SET status = 'replaced', replaced_by = ? WHERE uid = ?",
                (new_uid.hex().upper(), uid),
            )
            self.link_card(member_id, new_uid, kind=kind)  # type: ignore[arg-type]
            if kind == "purse":
                moved = self._minor(self.ledger.balance(self.card_account(uid)).available)
                if moved:
                    self.ledger.transfer(
                        f"replace:{uid}",
                        [
                            Posting.debit(self.card_account(uid), self.money(moved)),
                            Posting.credit(self.wallet_account(member_id), self.money(moved)),
                        ],
                        memo=json.dumps({"replaced": uid, "by": new_uid.hex().upper()}),
                    )
        return moved

    @staticmethod
    def _minor(amount: Money | Points) -> int:
        return amount.minor if isinstance(amount, Money) else amount.value

    # -- balances --------------------------------------------------------------------------

    def balance(self, member_id: str) -> MemberBalance:
        """Posted, pending and available points and wallet, next expiry, card shadows."""
        self.member(member_id)
        points = self.ledger.balance(self.points_account(member_id))
        pending = self.ledger.balance(self.pending_account(member_id))
        wallet = self.ledger.balance(self.wallet_account(member_id))
        now = self.now()
        lots = [
            lot
            for lot in self.ledger.lots(self.points_account(member_id))
            if lot.remaining and lot.expires_at and lot.expires_at > now
        ]
        next_expiry = None
        if lots:
            first = min(lot.expires_at for lot in lots if lot.expires_at)
            expiring = sum(lot.remaining for lot in lots if lot.expires_at == first)
            next_expiry = (expiring, first.astimezone(self.zone).date())
        cards = tuple(
            (uid, self._minor(self.ledger.balance(self.card_account(uid)).posted))
            for (uid,) in self._conn.execute(
                "SELECT uid FROM till_cards WHERE member = ? AND kind = 'purse' AND status ="
                " 'active' ORDER BY uid",
                (member_id,),
            )
        )
        return MemberBalance(
            member_id,
            self._minor(points.posted),
            self._minor(points.pending),
            self._minor(points.available),
            self._minor(pending.posted),
            next_expiry,
            self._minor(wallet.posted),
            self._minor(wallet.available),
            cards,
        )

    def points_available(self, member_id: str) -> int:
        return self._minor(self.ledger.balance(self.points_account(member_id)).available)

    def wallet_available(self, member_id: str) -> int:
        return self._minor(self.ledger.balance(self.wallet_account(member_id)).available)

    # -- stored value ------------------------------------------------------------------------

    def top_up(self, member_id: str, amount: Money, *, payment_ref: str) -> int:
        """Add stored value to a member's wallet, paid by cash or card (`payment_ref`)."""
        minor = self._amount(amount)
        self.member(member_id)
        self.ledger.transfer(
            f"topup:{payment_ref}",
            [
                Posting.debit(f"sys:wallet:float:{self.currency}", amount),
                Posting.credit(self.wallet_account(member_id), amount),
            ],
            memo=json.dumps({"topup": payment_ref, "member": member_id}),
        )
        return minor

    def _amount(self, amount: Money) -> int:
        if not isinstance(amount, Money):
            raise WrongCurrency(f"an amount is Money, not {amount!r}")
        if amount.currency != self.currency:
            raise WrongCurrency(f"the till works in {self.currency}, not {amount.currency}")
        if amount.minor <= 0:
            raise WrongCurrency(f"the amount must be positive, not {amount}")
        return amount.minor

    def _purse(self) -> Purse:
        if self.purse is None:
            raise ConfigurationError("this till has no stored-value card keys (purse)")
        return self.purse

    def issue_card(self, transport: Transport, card_uid: bytes, member_id: str) -> None:
        """Personalise a blank stored-value card and register it to a member."""
        self._purse().issue(transport, card_uid)
        self.link_card(member_id, card_uid, kind="purse")

    def top_up_card(
        self, transport: Transport, card_uid: bytes, amount: Money, *, payment_ref: str
    ) -> int:
        """Load value onto a card: intent, card commit, ledger post.

        Raises:
            PaymentInterrupted: the card left; `resolve_card` at the next tap.
        """
        minor = self._amount(amount)
        uid = card_uid.hex().upper()
        self._card(uid)  # registered and not blocked
        intent = CardIntent.new(
            Kind.CREDIT, minor, receipt=payment_ref, till=self._short_till(), now=self._epoch()
        )
        plan = {"op": "topup", "ref": payment_ref, "uid": uid, "amount": minor}
        done = self._card_step(transport, uid, intent, plan)
        if done:
            self._finish_topup(plan, intent.id.hex())
        return minor

    def _short_till(self) -> str:
        return self.till_id[-8:]

    def _epoch(self) -> int:
        return int(self.now().timestamp())

    def _card_step(
        self, transport: Transport, uid: str, intent: CardIntent, plan: dict[str, Any]
    ) -> bool:
        """Persist the intent, then move value on the card. True when the card took it."""
        existing = self._conn.execute(
            "SELECT id, status FROM till_card_intents WHERE receipt = ? AND uid = ?",
            (plan["ref"], uid),
        ).fetchone()
        if existing is not None:
            # A retry after an interruption: the card decides what happened.
            return self._resolve_one(transport, uid, existing[0])
        with self.ledger.atomic():
            self._conn.execute(
                "INSERT INTO till_card_intents (id, uid, kind, amount, receipt, till, created_at,"
                " plan, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    intent.id.hex(),
                    uid,
                    int(intent.kind),
                    intent.amount,
                    intent.receipt,
                    intent.till,
                    intent.created_at,
                    json.dumps(plan),
                ),
            )
        purse = self._purse()
        try:
            if intent.kind is Kind.DEBIT:
                purse.debit(transport, bytes.fromhex(uid), intent)
            else:
                purse.credit(transport, bytes.fromhex(uid), intent)
        except CardRemoved as error:
            raise PaymentInterrupted(
                f"the card left during the payment; tap it again ({error})"
            ) from error
        return True

    def _intent(self, intent_id: str) -> CardIntent:
        row = self._conn.execute(
            "SELECT id, kind, amount, receipt, till, created_at FROM till_card_intents"
            " WHERE id = ?",
            (intent_id,),
        ).fetchone()
        return CardIntent(bytes.fromhex(row[0]), Kind(row[1]), row[2], row[3], row[4], row[5])

    def _resolve_one(self, transport: Transport, uid: str, intent_id: str) -> bool:
        status = self._conn.execute(
            "SELECT status FROM till_card_intents WHERE id = ?", (intent_id,)
        ).fetchone()[0]
        if status != "pending":
            return bool(status == "done")
        intent = self._intent(intent_id)
        outcome = self._purse().resolve(transport, bytes.fromhex(uid), intent)
        if outcome is Outcome.APPLIED:
            return True
        purse = self._purse()
        try:
            if intent.kind is Kind.DEBIT:
                purse.debit(transport, bytes.fromhex(uid), intent)
            else:
                purse.credit(transport, bytes.fromhex(uid), intent)
        except CardRemoved as error:
            raise PaymentInterrupted(f"the card left again; tap it once more ({error})") from error
        return True

    def _finish_topup(self, plan: dict[str, Any], intent_id: str) -> None:
        amount = self.money(plan["amount"])
        with self.ledger.atomic():
            self.ledger.transfer(
                f"cardtopup:{plan['ref']}",
                [
                    Posting.debit(f"sys:card:float:{self.currency}", amount),
                    Posting.credit(self.card_account(plan["uid"]), amount),
                ],
                memo=json.dumps({"topup": plan["ref"], "card": plan["uid"]}),
            )
            self._conn.execute(
                "UPDATE till_card_intents SET status = 'done' WHERE id = ?", (intent_id,)
            )

    def pending_card_intents(self, card_uid: bytes | None = None) -> list[dict[str, Any]]:
        """Card operations begun but not finished (a tap away from being resolved)."""
        query = (
            "SELECT id, uid, kind, amount, receipt FROM till_card_intents WHERE status = 'pending'"
        )
        args: tuple[Any, ...] = ()
        if card_uid is not None:
            query += " AND uid = ?"
            args = (card_uid.hex().upper(),)
        return [
            {"id": i, "uid": u, "kind": Kind(k).name.lower(), "amount": a, "receipt": r}
            for i, u, k, a, r in self._conn.execute(query, args)
        ]

    def resolve_card(self, transport: Transport, card_uid: bytes) -> list[str]:
        """At a tap: settle every pending intent of this card, exactly once.

        An intent the card shows as done is finished in the ledger (the sale
        completes, the top-up is booked); one it does not show is abandoned
        (the sale's holds are voided, the top-up is not booked).

        Returns:
            What happened, one line per intent.
        """
        report = []
        for pending in self.pending_card_intents(card_uid):
            intent = self._intent(pending["id"])
            outcome = self._purse().resolve(transport, card_uid, intent)
            plan = json.loads(
                self._conn.execute(
                    "SELECT plan FROM till_card_intents WHERE id = ?", (pending["id"],)
                ).fetchone()[0]
            )
            if outcome is Outcome.APPLIED:
                if plan["op"] == "topup":
                    self._finish_topup(plan, pending["id"])
                else:
                    from ._checkout import finish_sale

                    finish_sale(self, plan, pending["id"])
                report.append(f"{plan['op']} {plan['ref']}: completed")
            else:
                with self.ledger.atomic():
                    if plan["op"] == "sale":
                        for key in (plan.get("points_hold"), plan.get("wallet_hold")):
                            if key:
                                self._void_hold(key)
                    self._conn.execute(
                        "UPDATE till_card_intents SET status = 'abandoned' WHERE id = ?",
                        (pending["id"],),
                    )
                report.append(f"{plan['op']} {plan['ref']}: not taken from the card, abandoned")
        return report

    def _void_hold(self, key: str) -> None:
        from ..ledger import HoldExpired, HoldResolved

        # A hold that already timed out or was resolved needs nothing more.
        with contextlib.suppress(HoldExpired, HoldResolved):
            self.ledger.void(f"{key}:void", key)

    # -- points maturity ----------------------------------------------------------------------

    def release_pending_points(self) -> int:
        """Move earned points whose return window has passed into the spendable account."""
        today = self.local_date()
        rows = self._conn.execute(
            "SELECT receipt, member, points, expires_at FROM till_pending_points"
            " WHERE status = 'pending' AND spendable_on <= ?",
            (today.isoformat(),),
        ).fetchall()
        released = 0
        for receipt, member_id, points, expires_at in rows:
            with self.ledger.atomic():
                pending = self._minor(
                    self.ledger.balance(self.pending_account(member_id)).available
                )
                amount = min(points, pending)
                if amount:
                    self.ledger.transfer(
                        f"release:{receipt}",
                        [
                            Posting.debit(self.pending_account(member_id), Points(amount)),
                            Posting.credit(
                                self.points_account(member_id),
                                Points(amount),
                                expires_at=datetime.fromisoformat(expires_at)
                                if expires_at
                                else None,
                            ),
                        ],
                    )
                self._conn.execute(
                    "UPDATE till_pending_points SET status = 'released' WHERE receipt = ?",
                    (receipt,),
                )
            released += amount
        return released

    # -- receipts ---------------------------------------------------------------------------

    def receipt(self, ref: str) -> Receipt:
        row = self._conn.execute(
            "SELECT receipt FROM till_receipts WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            raise ReceiptNotFound(f"no receipt {ref!r} on this till")
        return Receipt.from_json(json.loads(row[0]))

    def _receipt_row(self, ref: str) -> tuple[dict[str, Any], Receipt, str, str]:
        row = self._conn.execute(
            "SELECT plan, receipt, status, local_date FROM till_receipts WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            raise ReceiptNotFound(f"no receipt {ref!r} on this till")
        return json.loads(row[0]), Receipt.from_json(json.loads(row[1])), row[2], row[3]

    def checkout(self, basket: Basket, identity: Identity | None = None) -> Any:
        """Start a checkout session for a basket (see `Checkout`)."""
        from ._checkout import Checkout

        return Checkout(self, basket, identity)

    def member_view(self, record: MemberRecord) -> Member:
        """The member as the rules see them (with points earned this cap period)."""
        return Member(record.id, record.tier, record.segments, record.birthday, 0)

    # -- voids and refunds ----------------------------------------------------------------------

    def void(self, ref: str, *, card: Transport | None = None) -> Refund:
        """Undo a whole receipt on the day it was sold: a refund of every line.

        Raises:
            VoidRefused: another day, or already voided or refunded.
        """
        plan, _, status, local_day = self._receipt_row(ref)
        if status != "completed":
            raise VoidRefused(f"receipt {ref} is {status}")
        if self.policy.void_same_day and local_day != self.local_date().isoformat():
            raise VoidRefused(f"receipt {ref} was sold on {local_day}; refund it instead")
        if self._conn.execute("SELECT 1 FROM till_refunds WHERE receipt = ?", (ref,)).fetchone():
            raise VoidRefused(f"receipt {ref} was partly refunded; refund the rest instead")
        lines = {index: line[1] for index, line in enumerate(plan["lines"])}
        result = self.refund(ref, lines, refund_ref=f"void:{ref}", card=card)
        with self.ledger.atomic():
            self._conn.execute("UPDATE till_receipts SET status = 'voided' WHERE ref = ?", (ref,))
        return result

    def refund(
        self,
        ref: str,
        lines: dict[int, int],
        *,
        refund_ref: str,
        card: Transport | None = None,
    ) -> Refund:
        """Refund some lines (index -> quantity) of a receipt, in proportion.

        Policy: every tender comes back in proportion to the refunded value.
        Earned points are taken back as the refunded lines earned them (what
        the member already spent is reported, not taken below zero); redeemed
        points are reinstated as a new lot; partial vouchers get their share
        back, single-use vouchers do not (the customer is refunded the rest);
        wallet value goes back to the wallet; card value back to the card
        with LimitedCredit when the card is presented, else to the wallet;
        the rest is `cash_due` for the POS. A gift card or stored-value
        top-up the basket sold is taken back first, and only what is left of
        it is refunded (`value_taken_back`, `value_not_refunded`).

        Raises:
            RefundRefused: unknown lines, or more than is left to refund.
        """
        from ._checkout import refund_receipt

        return refund_receipt(self, ref, lines, refund_ref, card)

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self.ledger.atomic():
            yield

    @staticmethod
    def fingerprint(lines: list[list[Any]], member: str | None) -> str:
        return hashlib.sha256(json.dumps([lines, member]).encode()).hexdigest()[:32]


#: Line categories that sell value itself rather than goods.
GIFT_CARD = "gift-card"
STORED_VALUE = "stored-value"


def lines_of(basket: Basket) -> list[list[Any]]:
    return [
        [ln.sku, ln.quantity, ln.unit_price, ln.category, ln.brand, ln.discount, ln.reference]
        for ln in basket.lines
    ]


def basket_of(currency: str, lines: list[list[Any]]) -> Basket:
    # Plans stored before lines had a reference have six fields.
    return Basket(
        currency,
        [
            Line(s, q, u, category=c, brand=b, discount=d, reference=(rest[0] if rest else ""))
            for s, q, u, c, b, d, *rest in lines
        ],
    )


__all__ = ["Identity", "MemberRecord", "Till", "TillPolicy"]
