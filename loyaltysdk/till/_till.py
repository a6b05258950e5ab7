# SPDX-License-Identifier: Apache-2.0
"""The till: one store's checkout point on its own SQLite file.

The till keeps its member directory, cards, receipts and card intents in
tables of the ledger's own file (`_schema`) and writes them on the
ledger's connection inside `Ledger.atomic()`, so a sale's ledger entries
and its receipt row are one durable commit. One lock guards the file: the
ledger's, which is the store's, so the POS thread and the sync thread
never wait on each other in opposite orders.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import attrs

from .._errors import ConfigurationError, InvalidAmount, WrongType
from .._ids import RESERVED_NAMES, is_id, is_name
from .._json import compact
from .._money import Money, Points, check_unit
from ..cards.ntag424 import SunReplayed, SunTap, SunVerifier
from ..cards.purse import Kind, Purse
from ..cards.transport import Transport
from ..ledger import AccountFlags, Balance, HoldExpired, HoldResolved, Ledger, Posting
from ..ledger import Kind as EntryKind
from ..ledger._boundary import no_storage, storage_boundary
from ..ledger._sqlite import SQLiteStore
from ..rules import Basket, Member, RuleSet
from ..sync import HubLink, Update
from ..vouchers import (
    IssuedVoucher,
    IssuerKey,
    Keyring,
    RedemptionPolicy,
    VoucherBook,
    VoucherIssuer,
    VoucherRegistry,
    VoucherTemplate,
)
from ._capture import backfill, whole_records
from ._cards import CardJournal, Pending
from ._chain import ChainView
from ._checkout import SESSION_HOLD, Checkout
from ._errors import (
    CardBlocked,
    InvalidName,
    PaymentInterrupted,
    ReceiptConflict,
    ReceiptNotFound,
    UnknownCard,
    UnknownMember,
    WrongCurrency,
    reference,
)
from ._fingerprint import Fingerprint
from ._members import Directory, MemberRecord, pin_hash
from ._online import OfflineAllowance, OfflineUse, synced
from ._receipt import MemberBalance, Receipt, Refund
from ._refunds import Refunds
from ._sale import finish_sale
from ._schema import migrate
from ._updates import Updates

_LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


@attrs.frozen
class TillPolicy:
    """How this chain runs its tills.

    Attributes:
        minor_per_point: what one point pays, in minor units (1 = a point is a cent).
        presence_for_redemption: points are redeemed only with the member
            present (a card tap, or a PIN or OTP the POS checked).
        hold_timeout: how long a checkout session's holds live.
        card_intent_timeout: how long what a card operation will post stays
            held while the card is away (after a tear or a crash), waiting
            for its next tap.
        vouchers: offline acceptance of unknown signed vouchers.
        void_same_day: a void is allowed only on the sale's local day.
    """

    minor_per_point: Fraction = Fraction(1)
    presence_for_redemption: bool = True
    hold_timeout: timedelta = timedelta(minutes=30)
    card_intent_timeout: timedelta = timedelta(days=90)
    vouchers: RedemptionPolicy = attrs.field(factory=RedemptionPolicy)
    void_same_day: bool = True


@attrs.frozen
class Identity:
    """Who is at the till and how we know.

    Attributes:
        member: the member.
        card_uid: the tapped card's UID (hex), if a card was used.
        method: "card", "sun", "qr" or "typed".
        present: the member proved presence (a tap); typed numbers do not.
        online: the hub answered with the member's chain-wide figures just
            now (a till in a chain); False offline or without a hub.
    """

    member: MemberRecord
    card_uid: str | None
    method: Literal["card", "sun", "qr", "typed"]
    present: bool
    online: bool = False


@storage_boundary
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
        region: str = "",
        keyring: Keyring | None = None,
        registry: VoucherRegistry | None = None,
        purse: Purse | None = None,
        sun: SunVerifier | None = None,
        policy: TillPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        pin_check: Callable[[str, str], bool] | None = None,
        otp_check: Callable[[str, str], bool] | None = None,
        hub: HubLink | None = None,
        allowance: OfflineAllowance | None = None,
    ) -> None:
        _check_rules(rules)
        if not isinstance(ledger.store, SQLiteStore):
            raise ConfigurationError("a till keeps its tables in the ledger's SQLite file")
        try:
            check_unit(currency)
            self.zone = ZoneInfo(timezone)
        except (ValueError, KeyError) as error:
            raise ConfigurationError(f"bad till setting: {error}") from error
        if not is_name(store) or not is_name(till_id) or till_id in RESERVED_NAMES:
            raise ConfigurationError(
                f"a till needs a store and a till id of letters, digits, - and _:"
                f" {store!r}, {till_id!r}"
            )
        if not isinstance(region, str):
            raise ConfigurationError(f"a region is a name, not {region!r}")
        if rules.currency != currency:
            raise ConfigurationError(f"the rules are in {rules.currency}, the till in {currency}")
        if purse is not None and purse.layout.currency != currency:
            raise ConfigurationError("the stored-value cards are in another currency")
        self.ledger = ledger
        self.store = store
        self.till_id = till_id
        self.currency = currency
        self.timezone = timezone
        self.region = region
        self.rules = rules
        self.purse = purse
        self.sun = sun
        self.policy = policy or TillPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.pin_check = pin_check
        self.otp_check = otp_check
        #: A `loyaltysdk.sync.HubLink` for online holds, or None for a standalone till.
        self.hub = hub
        self.allowance = allowance or OfflineAllowance()
        self._own_issuer: IssuerKey | None = None  # issue_voucher without a key
        self.vouchers = VoucherBook(
            ledger,
            keyring or Keyring(),
            registry=registry,
            policy=self.policy.vouchers,
            clock=self._clock,
        )
        self._conn = ledger.store.connection
        with ledger.lock:
            migrate(self._conn)
        with ledger.atomic():
            self._open_system_accounts()
        self._directory = Directory(self)
        self._journal = CardJournal(self)
        self._refunds = Refunds(self)
        self._updates = Updates(self)
        self._updates.restore()
        self._chain = ChainView(self)
        self._offline = OfflineUse(self)
        #: What open checkout sessions have taken, by (session, tender):
        #: (account, amount, until). In memory: a session dies with its
        #: process, and the sale posts it all in its one commit.
        self._reservations: dict[tuple[str, str], tuple[str, int, datetime]] = {}
        self._quiet = False  # True while an update from the hub is applied
        with ledger.atomic():
            backfill(self)  # a file from before receipt records: its sales, once
        if hub is not None:
            # The hub books the breakage of chain-wide points and funds vouchers
            # once; here both are mirrors of the hub's figures.
            ledger.breakage_kind = EntryKind.MIRROR
            self.vouchers.mirror_funding = True
        self._release_dead_sessions()
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
        create: bool = False,
        **options: Any,
    ) -> Till:
        """Open (or create, or migrate) a till's file and check its configuration.

        Args:
            create: make an existing empty file a new till file (a path that does
                not exist always becomes one). Without it an existing file that is
                not a till's raises `NotATillFile`, so no history is lost silently.
            region: the store's region, for rules that name regions.
            options: the other keyword arguments of `Till` (purse, keyring,
                policy, hub, allowance, ...).

        Raises:
            ConfigurationError: an invalid setting, named.
        """
        _check_rules(rules)  # before the file is made
        ledger = Ledger.open(path, origin=till_id, clock=clock, create=create)
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

    @classmethod
    def in_memory(
        cls,
        *,
        store: str = "S1",
        till_id: str = "S1-T1",
        currency: str = "EUR",
        timezone: str = "UTC",
        rules: RuleSet | None = None,
        clock: Callable[[], datetime] | None = None,
        **options: Any,
    ) -> Till:
        """A throwaway till for a POS's own tests: nothing on disk, one point per unit of
        currency unless `rules` are given. Every other argument is as for `open`."""
        from ..rules import load_rules

        if rules is None:
            rules = load_rules(
                {
                    "schema": 1,
                    "version": 1,
                    "currency": currency,
                    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
                }
            )
        return cls(
            Ledger.in_memory(origin=till_id, clock=clock),
            store=store,
            till_id=till_id,
            currency=currency,
            timezone=timezone,
            rules=rules,
            clock=clock,
            **options,
        )

    def issue_voucher(
        self,
        value: Money | int,
        *,
        key: IssuerKey | None = None,
        valid_for: timedelta = timedelta(days=30),
        min_spend: Money | None = None,
        mode: Literal["single", "partial"] = "single",
        campaign: str = "",
    ) -> IssuedVoucher:
        """A signed e-voucher this till accepts, in one call: `value` as Money (a value
        voucher) or an int (a percent-off voucher), valid from now for `valid_for`.

        `key` is head office's issuer key; without one the till makes a key of its
        own (kept only in memory) and trusts it: vouchers for a POS's tests, or a
        goodwill voucher valid at this till alone. A chain issues its vouchers at
        the hub (`POST /v1/admin/vouchers`), which tells every till.
        Scan `.payload` (the QR form); `.code` is the human form.
        """
        if isinstance(value, Money):
            kind: Literal["value", "percent"] = "value"
            amount = self._amount(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            kind, amount = "percent", value
        else:
            raise WrongType(f"a voucher's value is Money, or an int percent, not {value!r:.40}")
        spend = 0 if min_spend is None else self._amount(min_spend)
        if key is None:
            key = self._own_issuer or IssuerKey.generate(f"{self.till_id}-local")
            self._own_issuer = key
        self.vouchers.keyring.add(key.key_id, key.public_key)
        now = self.now()
        issued = VoucherIssuer(key).issue(
            VoucherTemplate(
                kind,
                amount,
                self.currency,
                now,
                now + valid_for,
                min_spend=spend,
                mode=mode,
                campaign=campaign,
            )
        )
        self.vouchers.register(issued.terms)
        return issued

    def close(self) -> None:
        """Close the till's file; any later call raises `StorageClosed`."""
        self.ledger.close()

    def __enter__(self) -> Till:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @no_storage
    def now(self) -> datetime:
        return self._clock()

    @no_storage
    def local_date(self, moment: datetime | None = None) -> date:
        return (moment or self.now()).astimezone(self.zone).date()

    def _epoch(self) -> int:
        return int(self.now().timestamp())

    # -- accounts ------------------------------------------------------------------

    def _open_system_accounts(self) -> None:
        c = self.currency
        for name in ("issued", "redeemed", "breakage"):
            self.ledger.open_account(f"sys:points:{name}", "PTS")
        for name in ("wallet:float", "wallet:tender", "card:float", "card:tender"):
            self.ledger.open_account(f"sys:{name}:{c}", c)

    @no_storage
    def points_account(self, member: str) -> str:
        return f"member:{member}:points"

    @no_storage
    def pending_account(self, member: str) -> str:
        return f"member:{member}:points-pending"

    @no_storage
    def wallet_account(self, member: str) -> str:
        return f"member:{member}:wallet:{self.currency}"

    @no_storage
    def card_account(self, uid: str) -> str:
        return f"card:{uid}:{self.currency}"

    @no_storage
    def money(self, minor: int) -> Money:
        return Money._checked(minor, self.currency)

    @staticmethod
    def _minor(amount: Money | Points) -> int:
        return amount.minor if isinstance(amount, Money) else amount.value

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
        """Enrol a new member (and a card) at the till; idempotent for the same details.

        Raises:
            CardInUse: the card is registered to another member (nothing is enrolled).
            UnknownTier: the rules define no such tier.
        """
        member_id = member_id or f"M-{os.urandom(5).hex().upper()}"
        if not is_name(member_id):
            raise InvalidName(f"a member id is letters, digits, - and _, not {member_id!r}")
        if not all(is_id(segment, 64) for segment in segments):
            raise InvalidName(f"a segment is 1-64 printable characters: {sorted(segments)!r:.200}")
        record = MemberRecord(member_id, tier, frozenset(segments), birthday)
        with self.ledger.atomic():
            if self._directory.insert(record, pin, self.now().isoformat(), self.local_date()):
                self._event(
                    "enrol",
                    {
                        "member": member_id,
                        "tier": tier,
                        "segments": sorted(segments),
                        "birthday": birthday.isoformat() if birthday else None,
                        "store": self.store,
                        "at": self.now().isoformat(),
                    },
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
        """Register a card (by UID) to a member; repeating it for the same member is harmless.

        Raises:
            UnknownMember: no such member.
            CardInUse: the card belongs to another member.
        """
        uid = _uid(card_uid)
        with self.ledger.atomic():
            self.member(member_id)
            if self._directory.link(member_id, uid, kind):
                self._event("card", {"member": member_id, "uid": uid, "kind": kind})
            if kind == "purse":
                self.ledger.open_account(self.card_account(uid), self.currency, flags=_LIMITED)

    def member(self, member_id: str) -> MemberRecord:
        """The member with this number.

        Raises:
            UnknownMember: no such member.
        """
        return self._directory.get(member_id)

    def set_tier(self, member_id: str, tier: str) -> None:
        """Put a member in a tier by hand (head office's decision).

        Raises:
            UnknownTier: the rules define no such tier.
            UnknownMember: no such member.
        """
        with self.ledger.atomic():
            self._directory.set_tier(member_id, tier)

    def check_pin(self, member_id: str, pin: str) -> bool:
        stored = self._directory.pin_hash(member_id)
        if stored is None:
            return self.pin_check(member_id, pin) if self.pin_check else False
        return bool(stored == pin_hash(member_id, pin))

    def _card(self, uid: str) -> tuple[str, str, str]:
        member, kind, status = self._directory.card(uid)
        if status != "active":
            raise CardBlocked(f"card {uid} is blocked ({status})")
        return member, kind, status

    def identify(self, evidence: bytes | str) -> Identity:
        """Who is buying, from a card UID (bytes), a tapped SUN URL, a member QR or a typed number.

        Member QR codes read ``loyalty:member:<number>``. A till in a chain
        then asks the hub (with the link's short timeout) for the member's
        chain-wide figures and keeps them (`Identity.online`); offline it
        goes on with the last ones it has, plus its own movements since.

        Raises:
            CardBlocked: a hotlisted card.
            UnknownCard / UnknownMember: nobody known by this evidence.
            SunInvalid / SunReplayed: a forged or replayed tap.
        """
        identity, tap = self._who(evidence)
        if self.hub is None:
            return identity
        sun = (tap.uid.hex().upper(), tap.counter) if tap is not None else None
        snapshot = self._chain.refresh(identity.member.id, sun=sun)
        if snapshot is not None and snapshot.sun_fresh is False:
            raise SunReplayed("this tap was read before at another till of the chain")
        if snapshot is None and sun is not None:
            with self.ledger.atomic():  # offline: the hub checks the counter when it hears
                self._event("sun", {"uid": sun[0], "counter": sun[1]})
        return attrs.evolve(identity, online=snapshot is not None)

    def _who(self, evidence: bytes | str) -> tuple[Identity, SunTap | None]:
        if isinstance(evidence, bytes | bytearray):
            uid = _uid(bytes(evidence))
            member, status = self._directory.card_holder(uid)
            if status != "active":
                raise CardBlocked(f"card {uid} is blocked ({status})")
            return Identity(member, uid, "card", True), None
        if not isinstance(evidence, str):
            raise WrongType(
                f"identify takes a card UID (bytes), a URL or a number (str), not {evidence!r:.40}"
            )
        text = evidence.strip()
        if text.startswith(("https://", "http://")) and self.sun is not None:
            tap = self.sun.verify(text)
            uid = tap.uid.hex().upper()
            member_id, _, _ = self._card(uid)
            return Identity(self.member(member_id), uid, "sun", True), tap
        if text.startswith("loyalty:member:"):
            member = self.member(text.removeprefix("loyalty:member:"))
            return Identity(member, None, "qr", False), None
        try:
            return Identity(self.member(text), None, "typed", False), None
        except UnknownMember:
            if _looks_like_uid(text):
                raise UnknownMember(
                    f"no member {text!r}; a card UID goes in as bytes:"
                    f" identify(bytes.fromhex({text!r}))"
                ) from None
            raise

    def block_card(self, card_uid: bytes, *, reason: str = "blocked") -> None:
        """Put a card on the hotlist."""
        uid = _uid(card_uid)
        with self.ledger.atomic():
            self._directory.card(uid)
            self._conn.execute("UPDATE till_cards SET status = ? WHERE uid = ?", (reason, uid))
            self._event("block", {"uid": uid, "reason": reason})

    def _block_cards(self, uids: Iterable[str]) -> None:
        """Hotlist cards head office blocked (inside the update's commit)."""
        self._conn.executemany(
            "UPDATE till_cards SET status = 'blocked' WHERE uid = ? AND status = 'active'",
            [(uid,) for uid in uids],
        )

    def hotlist(self) -> frozenset[str]:
        rows = self._conn.execute("SELECT uid FROM till_cards WHERE status != 'active'")
        return frozenset(uid for (uid,) in rows)

    def replace_card(
        self, lost_uid: bytes, new_uid: bytes, *, transport: Transport | None = None
    ) -> Money:
        """Block a lost card and give its member a new one; returns the value moved.

        The lost card's stored value can never be spent again (the card is
        hotlisted), so its ledger shadow balance moves: onto the new card
        when it is a stored-value card presented on `transport` (through the
        card intent journal), otherwise to the member's wallet, spendable at
        once. Repeating the call answers as the first did.

        Raises:
            CardBlocked: the lost card was replaced by another card already.
            CardInUse: the new card belongs to another member.
            PaymentInterrupted: the new card left while its value was loaded;
                call again with the card presented.
        """
        return self.money(self._replace_card(lost_uid, new_uid, transport))

    def _replace_card(self, lost_uid: bytes, new_uid: bytes, transport: Transport | None) -> int:
        lost, new = _uid(lost_uid), _uid(new_uid)
        ref = f"replace:{lost}"
        with self.ledger.atomic():
            member_id, kind, status = self._directory.card(lost)
            (replaced_by,) = self._conn.execute(
                "SELECT replaced_by FROM till_cards WHERE uid = ?", (lost,)
            ).fetchone()
            if status == "replaced" and replaced_by != new:
                # A blocked card (lost, stolen) is replaced; a replaced one only once.
                raise CardBlocked(f"card {lost} was replaced by another card already")
            done = self.ledger.transaction(ref)
            if done is not None:
                return self._minor(done.postings[0].amount)
            pending = self._journal.find("transfer", ref, new)
            if pending is None and kind == "purse":
                # The lost card was used at other tills too: the hub knows its figure.
                self._chain.refresh(accounts=[self.card_account(lost)])
            if pending is None:
                self._conn.execute(
                    "UPDATE till_cards SET status = 'replaced', replaced_by = ? WHERE uid = ?",
                    (new, lost),
                )
                self.link_card(member_id, new_uid, kind=kind)  # type: ignore[arg-type]
                self._event(
                    "replace", {"member": member_id, "lost": lost, "new": new, "kind": kind}
                )
                moved = 0
                if kind == "purse":
                    moved = self._minor(self.ledger.balance(self.card_account(lost)).available)
                plan = {
                    "op": "transfer",
                    "ref": ref,
                    "from": lost,
                    "uid": new,
                    "member": member_id,
                    "amount": moved,
                }
                if not moved:
                    return 0
                if transport is None or self.purse is None:
                    self._finish_transfer(plan, None)
                    return moved
        if pending is None:
            assert transport is not None
            pending = self._journal.begin(
                "transfer", ref, new, Kind.CREDIT, moved, plan, reserve=self._reserve_transfer
            )
            record = self._journal.touch(transport, pending)
        elif transport is None:
            raise PaymentInterrupted(f"the value of card {lost} is waiting for card {new}: tap it")
        else:
            record = self._journal.settle(transport, pending)
        self._finish_transfer(pending.plan, pending.id, record.balance_after)
        return pending.amount

    def _reserve_transfer(self, plan: dict[str, Any], prefix: str) -> None:
        amount = self.money(plan["amount"])
        key = f"{prefix}transfer"
        self.ledger.hold(
            key,
            [
                Posting.debit(self.card_account(plan["from"]), amount),
                Posting.credit(self.card_account(plan["uid"]), amount),
            ],
            timeout=self.policy.card_intent_timeout,
        )
        plan["hold"] = key

    def _finish_transfer(
        self, plan: dict[str, Any], intent_id: str | None, chip: int | None = None
    ) -> None:
        amount = self.money(plan["amount"])
        memo = json.dumps({"replaced": plan["from"], "by": plan["uid"]})
        with self.ledger.atomic():
            if intent_id is None:
                # No chip to load: the value goes to the member's wallet.
                self.ledger.transfer(
                    plan["ref"],
                    [
                        Posting.debit(self.card_account(plan["from"]), amount),
                        Posting.credit(self.wallet_account(plan["member"]), amount),
                    ],
                    memo=memo,
                )
                return
            if chip is not None:
                self._mirror_card(plan["uid"], chip - plan["amount"], plan["ref"])
            self.ledger.post(plan["ref"], plan["hold"], memo=memo)
            self._journal.mark(intent_id, "done")

    # -- balances --------------------------------------------------------------------------

    def balance(self, member_id: str) -> MemberBalance:
        """Posted, pending and available points and wallet, next expiry, card shadows.

        Points whose lots expired are booked to breakage first (once), so
        what is shown is what can be spent now.
        """
        self.member(member_id)
        account = self.points_account(member_id)
        self.ledger.expire(account=account)
        points = self.ledger.balance(account)
        pending = self.ledger.balance(self.pending_account(member_id))
        wallet = self.ledger.balance(self.wallet_account(member_id))
        first = self.ledger.next_expiry(account)
        next_expiry = None
        if first is not None:
            next_expiry = (first[0], first[1].astimezone(self.zone).date())
        cards = tuple(
            (uid, self.money(self._minor(self.ledger.balance(self.card_account(uid)).posted)))
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
            self._spendable(points),
            self._minor(pending.posted),
            next_expiry,
            self.money(self._minor(wallet.posted)),
            self.money(self._spendable(wallet)),
            cards,
        )

    def points_available(self, member_id: str) -> int:
        """Points the member can spend now (held, taken by an open checkout, expired: not)."""
        return self._spendable(self.ledger.balance(self.points_account(member_id)))

    def wallet_available(self, member_id: str) -> Money:
        """What the member's wallet can pay now (held amounts are not)."""
        return self.money(self._wallet_minor(member_id))

    def _wallet_minor(self, member_id: str) -> int:
        return self._spendable(self.ledger.balance(self.wallet_account(member_id)))

    def _spendable(self, balance: Balance) -> int:
        """An account's available balance less what open sessions have taken from it."""
        return self._minor(balance.available) - self._reserved(balance.account)

    def _reserve(self, session: str, tender: str, account: str, amount: int) -> None:
        until = self.now() + self.policy.hold_timeout
        self._reservations[(session, tender)] = (account, amount, until)

    def _unreserve(self, session: str, tender: str | None = None) -> None:
        """Let go of what a session took (one tender, or all of it)."""
        for key in [k for k in self._reservations if k[0] == session]:
            if tender is None or key[1] == tender:
                del self._reservations[key]

    def _reserved(self, account: str) -> int:
        """What open sessions have taken from `account`; a session left longer than the
        hold timeout no longer keeps anything (its completion checks the balance again)."""
        if not self._reservations:
            return 0
        taken = [
            (amount, until)
            for held, amount, until in self._reservations.values()
            if held == account
        ]
        if not taken:
            return 0  # the clock is read only for an account something holds
        now = self.now()
        return sum(amount for amount, until in taken if until > now)

    def member_view(self, record: MemberRecord, at: datetime | None = None) -> Member:
        """The member as the rules see them: tier, points earned this cap period, rules had."""
        return self._directory.view(record, self.local_date(at))

    # -- stored value ------------------------------------------------------------------------

    def top_up(self, member_id: str, amount: Money, *, payment_ref: str) -> Money:
        """Add stored value to a member's wallet, paid by cash or card (`payment_ref`).

        Returns the amount loaded (the same again for a repeated `payment_ref`).
        """
        payment_ref = reference(payment_ref, "payment reference")
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
        return self.money(minor)

    def _amount(self, amount: Money) -> int:
        if not isinstance(amount, Money):
            raise WrongType(
                f"an amount is Money (e.g. Money.parse('5.00', {self.currency!r})),"
                f" not {amount!r:.40}"
            )
        if amount.currency != self.currency:
            raise WrongCurrency(f"the till works in {self.currency}, not {amount.currency}")
        if amount.minor <= 0:
            raise InvalidAmount(f"an amount must be positive, not {amount}")
        return amount.minor

    def _purse(self) -> Purse:
        if self.purse is None:
            raise ConfigurationError("this till has no stored-value card keys (purse)")
        return self.purse

    def issue_card(
        self,
        transport: Transport,
        card_uid: bytes,
        member_id: str,
        *,
        initial: Money | None = None,
        payment_ref: str | None = None,
    ) -> None:
        """Personalise a blank stored-value card, register it, and load `initial` on it.

        Through the card intent journal: a card torn mid-issue is issued at
        the next call (the half-made application is removed first), once.

        Raises:
            CardInUse: the card is registered to another member.
            PaymentInterrupted: the card left; call again with the card presented.
        """
        value = 0 if initial is None else self._amount(initial)
        uid = _uid(card_uid)
        ref = reference(payment_ref or f"issue:{uid}", "payment reference")
        with self.ledger.atomic():
            self.member(member_id)
            self._directory.check_link(member_id, uid, "purse")
            pending = self._journal.find("issue", ref, uid)
        if pending is None:
            plan = {"op": "issue", "ref": ref, "uid": uid, "member": member_id, "amount": value}
            pending = self._journal.begin("issue", ref, uid, Kind.ISSUE, value, plan)
            self._journal.touch(transport, pending)
        elif pending.status == "pending":
            self._journal.settle(transport, pending)
        else:
            return
        self._finish_issue(pending.plan, pending.id)  # a new card: its chip holds `initial`

    def _finish_issue(self, plan: dict[str, Any], intent_id: str) -> None:
        with self.ledger.atomic():
            self.link_card(plan["member"], bytes.fromhex(plan["uid"]), kind="purse")
            if plan["amount"]:
                self._load_shadow(plan, {"issue": plan["ref"], "card": plan["uid"]})
            self._journal.mark(intent_id, "done")

    def _load_shadow(self, plan: dict[str, Any], memo: dict[str, str]) -> None:
        """Book value loaded onto a card (paid at the till) to the card's ledger shadow."""
        amount = self.money(plan["amount"])
        self.ledger.transfer(
            f"cardtopup:{plan['ref']}",
            [
                Posting.debit(f"sys:card:float:{self.currency}", amount),
                Posting.credit(self.card_account(plan["uid"]), amount),
            ],
            memo=json.dumps(memo),
        )

    def top_up_card(
        self, transport: Transport, card_uid: bytes, amount: Money, *, payment_ref: str
    ) -> Money:
        """Load value onto a card: intent, card commit, ledger post. Repeating it is harmless.

        Returns the amount loaded.

        Raises:
            PaymentInterrupted: the card left; call again with the card presented.
        """
        payment_ref = reference(payment_ref, "payment reference")
        minor = self._amount(amount)
        uid = _uid(card_uid)
        self._card(uid)  # registered and not blocked
        pending = self._journal.find("topup", payment_ref, uid)
        if pending is None:
            plan = {"op": "topup", "ref": payment_ref, "uid": uid, "amount": minor}
            pending = self._journal.begin("topup", payment_ref, uid, Kind.CREDIT, minor, plan)
            record = self._journal.touch(transport, pending)
        elif pending.amount != minor:
            raise ReceiptConflict(f"top-up {payment_ref} was begun for another amount")
        elif pending.status == "pending":
            record = self._journal.settle(transport, pending)
        else:
            return amount
        self._finish_topup(pending.plan, pending.id, record.balance_after)
        return amount

    def _finish_topup(self, plan: dict[str, Any], intent_id: str, chip: int | None) -> None:
        with self.ledger.atomic():
            if chip is not None:
                self._mirror_card(plan["uid"], chip - plan["amount"], f"cardtopup:{plan['ref']}")
            self._load_shadow(plan, {"topup": plan["ref"], "card": plan["uid"]})
            self._journal.mark(intent_id, "done")

    # -- the card intent journal ----------------------------------------------------------------

    def pending_card_intents(self, card_uid: bytes | None = None) -> list[dict[str, Any]]:
        """Card operations begun but not finished (a tap away from being resolved)."""
        uid = None if card_uid is None else _uid(card_uid)
        return [
            {
                "id": p.id,
                "op": p.op,
                "uid": p.uid,
                "kind": p.kind.name.lower(),
                "amount": p.amount,
                "receipt": p.ref,
            }
            for p in self._journal.pending(uid)
        ]

    def resolve_card(self, transport: Transport, card_uid: bytes) -> list[str]:
        """At a tap: settle every pending intent of this card, exactly once.

        An intent the card shows as done is finished in the ledger (the sale
        completes, the refund or top-up is booked); one it does not show is
        abandoned (what it held is released; nothing is booked).

        Returns:
            What happened, one line per intent.
        """
        return [
            self._settle_at_tap(transport, pending)
            for pending in self._journal.pending(_uid(card_uid))
        ]

    def _settle_at_tap(self, transport: Transport, pending: Pending) -> str:
        record = self._journal.locate(transport, pending)
        if record is not None:
            self._finish(pending, record.balance_after)
            return f"{pending.op} {pending.ref}: completed"
        self._abandon(pending)
        return f"{pending.op} {pending.ref}: not taken from the card, abandoned"

    def _finish(self, pending: Pending, chip: int) -> None:
        """Book an intent the card shows as done, by its operation (`chip`: its balance after)."""
        plan, intent_id = pending.plan, pending.id
        if pending.op == "sale":
            finish_sale(self, plan, intent_id, chip=chip)
        elif pending.op == "topup":
            self._finish_topup(plan, intent_id, chip)
        elif pending.op == "refund":
            self._refunds.finish(plan, intent_id, chip=chip)
        elif pending.op == "issue":
            self._finish_issue(plan, intent_id)
        elif pending.op == "transfer":
            self._finish_transfer(plan, intent_id, chip)
        else:
            raise ConfigurationError(
                f"card intent {intent_id} has an unknown operation {pending.op!r}"
            )

    def _mirror_card(self, uid: str, chip: int, key: str) -> None:
        """Bring a card's ledger shadow to what its chip holds, before booking a movement.

        The chip is the card's value (MAC-protected, its own log): a card
        loaded or spent at another till holds value this till's ledger has
        not seen. A standalone till should never find a difference, so it
        keeps each one it finds (`card_differences`) for a person to look at.
        """
        account = self.card_account(uid)
        shadow = self._minor(self.ledger.balance(account).posted)
        difference = chip - shadow
        if not difference:
            return
        source = f"sys:card:mirror:{self.currency}"
        self.ledger.open_account(source, self.currency)
        amount = self.money(abs(difference))
        legs = [Posting.debit(source, amount), Posting.credit(account, amount)]
        if difference < 0:
            legs = [Posting.debit(account, amount), Posting.credit(source, amount)]
        memo = json.dumps({"card": uid, "chip": chip, "shadow": shadow})
        self.ledger.mirror(f"chip:{key}", legs, memo=memo)
        if self.hub is None:
            self._conn.execute(
                "INSERT INTO till_card_differences (uid, chip, shadow, at) VALUES (?, ?, ?, ?)",
                (uid, chip, shadow, self.now().isoformat()),
            )

    def card_differences(self) -> list[dict[str, Any]]:
        """Where a card's chip held other than this till's ledger said (a standalone till)."""
        rows = self._conn.execute("SELECT uid, chip, shadow, at FROM till_card_differences")
        return [{"uid": u, "chip": c, "shadow": s, "at": a} for u, c, s, a in rows]

    def _abandon(self, pending: Pending) -> None:
        """The card did not take it: release what the intent held, book nothing."""
        plan = pending.plan
        with self.ledger.atomic():
            holds: Iterable[str | None] = ()
            if pending.op == "sale":
                holds = (plan.get("points_hold"), plan.get("wallet_hold"))
            elif pending.op == "refund":
                holds = plan.get("holds", {}).values()
            elif pending.op == "transfer":
                holds = (plan.get("hold"),)
            for key in holds:
                if key:
                    self._void_hold(key)
            self._journal.mark(pending.id, "abandoned")

    def _release_dead_sessions(self) -> None:
        """Void the holds of checkout sessions of an earlier process: they died with it.

        Sessions live in the POS's memory, so at open none is alive; their
        holds would otherwise keep balance from the member until they time
        out. Holds a card intent took over stay: only the card can end them.
        """
        with self.ledger.atomic():
            for hold in self.ledger.open_holds():
                if hold.key.startswith(SESSION_HOLD):
                    self._void_hold(hold.key)

    def _void_hold(self, key: str) -> None:
        # A hold that already timed out or was resolved needs nothing more.
        with contextlib.suppress(HoldExpired, HoldResolved):
            self.ledger.void(f"{key}:void", key)

    # -- upkeep ---------------------------------------------------------------------------

    def release_pending_points(self) -> int:
        """Move earned points whose return window has passed into the spendable account."""
        today = self.local_date()
        released = 0
        with self.ledger.atomic():
            rows = self._conn.execute(
                "SELECT receipt, member, points, expires_at FROM till_pending_points"
                " WHERE status = 'pending' AND spendable_on <= ?",
                (today.isoformat(),),
            ).fetchall()
            for receipt, member_id, points, expires_at in rows:
                if points:
                    self.ledger.transfer(
                        f"release:{receipt}",
                        [
                            Posting.debit(self.pending_account(member_id), Points(points)),
                            Posting.credit(
                                self.points_account(member_id),
                                Points(points),
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
                released += points
        return released

    def review_tiers(self) -> list[str]:
        """Apply every tier review date that has passed; returns the members whose tier moved."""
        today = self.local_date()
        moved = []
        with self.ledger.atomic():
            for member_id in self._directory.due_for_review(today):
                if self._directory.review(member_id, today):
                    moved.append(member_id)
        return moved

    def upkeep(self) -> None:
        """The daily round (also safe to run at every start): expiry, pending points, tiers."""
        self.ledger.expire()
        self.release_pending_points()
        self.review_tiers()

    # -- sync (what `loyaltysdk.sync.Syncer` calls) ---------------------------------------

    @property
    def pull_cursor(self) -> int:
        """The cursor of the last update from the hub this till applied."""
        return int(self._get_sync("pull_cursor", "0"))

    @property
    def hub_key(self) -> bytes | None:
        """Head office's update key this till checks every update against (None: none yet)."""
        key = self._get_sync("hub_key", "")
        return bytes.fromhex(key) if key else None

    def trust_hub(self, update_key: bytes) -> None:
        """Keep head office's update key (from registration: `loyaltysdk.sync.register`).

        Raises:
            ConfigurationError: not a 32-byte Ed25519 public key.
        """
        if not isinstance(update_key, bytes) or len(update_key) != 32:
            raise ConfigurationError("an update key is 32 bytes (Ed25519)")
        with self.ledger.atomic():
            self._set_sync("hub_key", update_key.hex())

    def apply_update(self, update: Update) -> None:
        """Apply an update from head office durably, with its cursor, in one commit.

        Raises:
            UnknownUpdate: a kind this till does not know (nothing changed).
            BadRecord: a malformed payload (nothing changed).
        """
        self._updates.apply(update)

    def skip_update(self, update: Update, problem: Exception) -> None:
        """Record an update that could not be applied (`update_problems`), and move past it."""
        self._updates.skip(update, problem)

    def update_problems(self) -> list[dict[str, Any]]:
        """Updates this till could not apply: cursor, kind, why, when."""
        return self._updates.problems()

    def sync_succeeded(self) -> None:
        """A sync round reached the hub: the offline allowance starts again."""
        with self.ledger.atomic():
            self._set_sync("last_ok", self.now().isoformat())
            synced(self)

    def sync_status(self) -> dict[str, Any]:
        """The outbox, the pull cursor, the last good sync and update problems."""
        outbox = self.ledger.outbox_status()
        return {
            "waiting": outbox.length,
            "oldest_at": outbox.oldest_at.isoformat() if outbox.oldest_at else None,
            "last_seq": outbox.last_seq,
            "acked_seq": outbox.acked_seq,
            "pull_cursor": self.pull_cursor,
            "last_ok": self._get_sync("last_ok", "") or None,
            "update_problems": len(self.update_problems()),
        }

    def unsent_events(self, limit: int = 500) -> list[tuple[int, str, Any]]:
        """What this till learned that the hub has not acknowledged: (seq, kind, payload)."""
        acked = int(self._get_sync("events_acked", "0"))
        rows = self._conn.execute(
            "SELECT seq, kind, payload FROM till_events WHERE seq > ? ORDER BY seq LIMIT ?",
            (acked, limit),
        )
        return whole_records(
            self._conn, [(seq, kind, json.loads(payload)) for seq, kind, payload in rows]
        )

    def events_sent(self, upto: int) -> None:
        """The hub has this till's events up to `upto`."""
        with self.ledger.atomic():
            if upto > int(self._get_sync("events_acked", "0")):
                self._set_sync("events_acked", str(upto))

    def _event(self, kind: str, payload: dict[str, Any]) -> None:
        """Keep what this till learned for the hub (inside the commit that learned it).

        What came from the hub (an update being applied) does not go back.
        """
        self._events([(kind, payload)])

    def _events(self, events: list[tuple[str, dict[str, Any]]], at: str | None = None) -> None:
        """Several events in one statement (a sale's, in its commit), made `at` (ISO text;
        default now)."""
        if self._quiet or not events:
            return
        if at is None:
            at = self.now().isoformat()
        rows = [(kind, compact(payload), at) for kind, payload in events]
        values = ", ".join(["(?, ?, ?)"] * len(rows))  # placeholders only
        self._conn.execute(
            f"INSERT INTO till_events (kind, payload, at) VALUES {values}",  # noqa: S608
            [field for row in rows for field in row],
        )

    def _get_sync(self, name: str, default: str) -> str:
        row = self._conn.execute("SELECT value FROM till_sync WHERE name = ?", (name,))
        found = row.fetchone()
        return str(found[0]) if found else default

    def _set_sync(self, name: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO till_sync (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- receipts ---------------------------------------------------------------------------

    def receipt(self, ref: str) -> Receipt:
        row = self._conn.execute(
            "SELECT receipt FROM till_receipts WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            raise ReceiptNotFound(f"no receipt {ref!r} on this till")
        return Receipt.from_json(json.loads(row[0]))

    def _stored_receipt(
        self, ref: str, *, fingerprint: Fingerprint | None = None
    ) -> Receipt | None:
        row = self._conn.execute(
            "SELECT fingerprint, receipt FROM till_receipts WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            return None
        if fingerprint is not None and not fingerprint.matches(row[0]):
            raise ReceiptConflict(f"receipt {ref} was completed with another basket")
        return Receipt.from_json(json.loads(row[1]))

    def _receipt_row(self, ref: str) -> tuple[dict[str, Any], Receipt, str, str]:
        row = self._conn.execute(
            "SELECT plan, receipt, status, local_date FROM till_receipts WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            raise ReceiptNotFound(f"no receipt {ref!r} on this till")
        return json.loads(row[0]), Receipt.from_json(json.loads(row[1])), row[2], row[3]

    def _revoke(self, code: str) -> None:
        self._conn.execute(
            "INSERT INTO till_revoked (code) VALUES (?) ON CONFLICT DO NOTHING", (code,)
        )
        self.vouchers.add_revocations([code])

    def checkout(
        self, basket: Basket, identity: Identity | None = None, *, receipt_ref: str | None = None
    ) -> Checkout:
        """Start a checkout session for a basket (see `Checkout`).

        Args:
            receipt_ref: the POS's receipt number, if known now: a number this
                till completed already makes the session a replay that
                answers with the stored receipt and takes nothing.

        Raises:
            ReceiptConflict: `receipt_ref` was completed with another basket.
        """
        if identity is not None and not isinstance(identity, Identity):
            raise WrongType(
                f"checkout's identity is what identify() returns, not {identity!r:.40}"
                " (call till.identify(...) with the card UID, URL or number)"
            )
        return Checkout(self, basket, identity, receipt_ref)

    # -- voids and refunds ----------------------------------------------------------------------

    def void(self, ref: str, *, card: Transport | None = None) -> Refund:
        """Undo a whole receipt on the day it was sold: every line, and the status, in one commit.

        A retried void answers as the first did.

        Raises:
            VoidRefused: another day, already refunded in part, or not completed.
            PaymentInterrupted: the card left during its credit; call again with it.
        """
        return self._refunds.void(ref, card)

    def refund(
        self,
        ref: str,
        lines: dict[int, int],
        *,
        refund_ref: str,
        card: Transport | None = None,
    ) -> Refund:
        """Refund some lines (index -> quantity) of a receipt; the policy is in `_refunds`.

        Every tender comes back in proportion to what has been refunded so
        far; a refund reference is idempotent.

        Raises:
            RefundRefused: unknown lines, or more than is left to refund.
            PaymentInterrupted: the card left during its credit; call again with it.
        """
        return self._refunds.refund(ref, lines, refund_ref, card)


def sync_status_of(path: str | Path) -> dict[str, Any]:
    """A till file's sync status (outbox, cursors, last good sync), without its configuration."""
    with Ledger.open(path, origin="status") as ledger:
        conn = ledger.store.connection  # type: ignore[attr-defined]
        with ledger.lock:
            migrate(conn)
        outbox = ledger.outbox_status()
        values = dict(conn.execute("SELECT name, value FROM till_sync").fetchall())
        (problems,) = conn.execute("SELECT count(*) FROM till_update_problems").fetchone()
    return {
        "waiting": outbox.length,
        "oldest_at": outbox.oldest_at.isoformat() if outbox.oldest_at else None,
        "last_seq": outbox.last_seq,
        "acked_seq": outbox.acked_seq,
        "pull_cursor": int(values.get("pull_cursor", 0)),
        "last_ok": values.get("last_ok"),
        "update_problems": int(problems),
    }


def _check_rules(rules: object) -> None:
    if not isinstance(rules, RuleSet):
        raise WrongType(
            f"rules are a RuleSet, from loyaltysdk.load_rules(a path or a dict), not {rules!r:.40}"
        )


def _looks_like_uid(text: str) -> bool:
    """7 or 4 bytes of hex, as a reader prints a UID."""
    return len(text) in (8, 14) and all(c in "0123456789abcdefABCDEF" for c in text)


def _uid(card_uid: bytes) -> str:
    if not isinstance(card_uid, bytes | bytearray) or not 4 <= len(card_uid) <= 10:
        raise UnknownCard(f"a card UID is 4 to 10 bytes, not {card_uid!r}")
    return bytes(card_uid).hex().upper()


__all__ = ["Identity", "MemberRecord", "Till", "TillPolicy", "sync_status_of"]
