# SPDX-License-Identifier: Apache-2.0
"""Redeeming vouchers against the ledger, online or offline.

A value voucher is a liability account, ``voucher:<code>``, funded when the
till learns the voucher (from the registry it receives by sync:
``sys:vouchers:issued:<CUR>``) or, for a signed voucher it has never heard
of, when it accepts it offline within policy (``sys:vouchers:offline:<CUR>``,
flagged for settlement at sync). A redemption debits it and credits
``sys:vouchers:tender:<CUR>``, what the voucher paid at the till. A
single-use voucher forfeits what the basket did not use to
``sys:vouchers:breakage:<CUR>`` in the same transaction. A percent voucher
has no balance: its discount moves from ``sys:vouchers:discount:<CUR>``.

Idempotency: a single-use voucher's redemption has the key
``voucher:<code>`` (so a second receipt cannot use it again, and the same
receipt retried gets the same answer); a partial voucher's has
``voucher:<code>:<receipt>``. Every check runs before anything is written,
so a refusal leaves the ledger unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import attrs

from .._errors import IdempotencyConflict
from .._money import Amount, Money
from ..ledger import (
    AccountFlags,
    InsufficientFunds,
    Ledger,
    Posting,
    Transaction,
    UnknownAccount,
)
from ..rules import Basket
from ._code import parse_code
from ._errors import (
    BelowMinimumSpend,
    NothingEligible,
    OfflineAcceptanceRefused,
    VoucherExhausted,
    VoucherExpired,
    VoucherNotFound,
    VoucherNotYetValid,
    VoucherRevoked,
    VoucherUsed,
    VoucherWrongCurrency,
    VoucherWrongStore,
)
from ._issue import VoucherRegistry
from ._keys import Keyring
from ._terms import PREFIX, VoucherTerms, read_payload


@attrs.frozen
class RedemptionPolicy:
    """How far a till trusts vouchers it has not heard of from the hub.

    Attributes:
        offline_max_value: the most (minor units) a signed but unknown voucher
            may be worth, or discount, to be accepted; 0 accepts none.
    """

    offline_max_value: int = 0


@attrs.frozen
class Redemption:
    """What a redemption did.

    Attributes:
        code: the voucher.
        receipt: the POS receipt reference.
        amount: what the voucher paid (minor units).
        remaining: what is left on a partial voucher (0 for single-use).
        forfeited: what a single-use voucher gave up.
        offline: accepted without the hub knowing it yet (settled at sync).
        transaction: the ledger entry.
    """

    code: str
    receipt: str
    amount: int
    remaining: int
    forfeited: int
    offline: bool
    transaction: Transaction
    partial: bool = False


def _account(code: str) -> str:
    return f"voucher:{code}"


def _minor(amount: Amount) -> int:
    return amount.minor if isinstance(amount, Money) else amount.value


class VoucherBook:
    """Checks and redeems vouchers on a till's ledger.

    Args:
        ledger: the till's ledger.
        keyring: the issuers' public keys.
        registry: vouchers received from the hub (for human codes), if any.
        revoked: the revocation list the till received.
        policy: offline acceptance policy.
        clock: the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        ledger: Ledger,
        keyring: Keyring,
        *,
        registry: VoucherRegistry | None = None,
        revoked: Iterable[str] = (),
        policy: RedemptionPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.keyring = keyring
        self.registry = registry
        self.revoked = frozenset(revoked)
        self.policy = policy or RedemptionPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._opened: set[str] = set()
        self._local_revoked: frozenset[str] = frozenset()
        #: At a till in a chain the issuer funds each voucher once, at the hub:
        #: what this till knows of a voucher's value is a mirror of that, not
        #: a funding of its own.
        self.mirror_funding = False

    def set_revocations(self, codes: Iterable[str]) -> None:
        """Replace the revocation list (as received by sync), keeping local ones."""
        self.revoked = frozenset(codes) | self._local_revoked

    def add_revocations(self, codes: Iterable[str]) -> None:
        """Revoke vouchers at this till (a gift card refunded here), in addition to the list."""
        added = frozenset(codes)
        self._local_revoked |= added
        self.revoked |= added

    # -- reading a scan --------------------------------------------------------------

    def terms_of(self, scanned: str) -> tuple[VoucherTerms, bool]:
        """The terms of a scanned QR payload or typed code, and whether the hub sent it.

        Raises:
            VoucherMalformed, UnknownIssuerKey, VoucherForged: a bad QR payload.
            VoucherCodeInvalid: a typo in a typed code.
            VoucherNotFound: a typed code this till has no record of.
        """
        if isinstance(scanned, str) and scanned.startswith(PREFIX):
            terms = read_payload(scanned, self.keyring.keys)
            return terms, self._known(terms.code)
        code = parse_code(scanned)
        if self.registry is None:
            raise VoucherNotFound(f"no voucher {code} here (scan its QR code instead)")
        return self.registry.get(code).terms, True

    def _known(self, code: str) -> bool:
        if self.registry is not None:
            try:
                self.registry.get(code)
                return True
            except VoucherNotFound:
                pass
        try:
            self.ledger.account(_account(code))
            return True
        except UnknownAccount:
            return False

    # -- checks ------------------------------------------------------------------------

    def check(self, terms: VoucherTerms, basket: Basket, *, store: str) -> int:
        """Whether the voucher may be used on this basket; returns the eligible amount.

        Raises:
            VoucherRevoked, VoucherNotYetValid, VoucherExpired, VoucherWrongStore,
            VoucherWrongCurrency, NothingEligible, BelowMinimumSpend.
        """
        now = self._clock()
        if terms.code in self.revoked:
            raise VoucherRevoked(f"voucher {terms.code} was revoked")
        if now < terms.valid_from:
            raise VoucherNotYetValid(f"voucher {terms.code} is valid from {terms.valid_from}")
        if now >= terms.valid_until:
            raise VoucherExpired(f"voucher {terms.code} expired at {terms.valid_until}")
        if terms.stores and store not in terms.stores:
            raise VoucherWrongStore(f"voucher {terms.code} is not valid in store {store}")
        if terms.currency != basket.currency:
            raise VoucherWrongCurrency(
                f"voucher {terms.code} is in {terms.currency}, the basket in {basket.currency}"
            )
        eligible = sum(
            line.net
            for line in basket.lines
            if not terms.categories or line.category in terms.categories
        )
        if eligible == 0:
            raise NothingEligible(f"no line of the basket is eligible for voucher {terms.code}")
        if eligible < terms.min_spend:
            raise BelowMinimumSpend(
                f"voucher {terms.code} needs {terms.min_spend} of eligible spend, basket has"
                f" {eligible}"
            )
        return eligible

    def holds(self, code: str) -> bool:
        """Whether this till's ledger has the value voucher's account."""
        try:
            self.ledger.account(_account(code))
        except UnknownAccount:
            return False
        return True

    def remaining(self, code: str) -> int:
        """What is left on a value voucher this till holds (0 if unknown)."""
        try:
            return _minor(self.ledger.balance(_account(code)).available)
        except UnknownAccount:
            return 0

    # -- redeeming ---------------------------------------------------------------------

    def redeem(
        self,
        scanned: str,
        basket: Basket,
        *,
        receipt: str,
        store: str,
        amount: int | None = None,
        hub_holds: tuple[str, ...] = (),
    ) -> Redemption:
        """Redeem a voucher on a basket, once per receipt.

        Args:
            scanned: the QR payload or the typed code.
            basket: the receipt's basket (for eligibility and minimum spend).
            receipt: the POS receipt reference (part of the idempotency key).
            store: the store redeeming.
            amount: for a value voucher, how much to take (default: as much
                as the eligible lines and the balance allow).
            hub_holds: online holds at the hub this redemption settles (they
                travel in its record's memo).

        Raises:
            Any error of `terms_of` and `check`; VoucherUsed (a single-use
            voucher already redeemed on another receipt); VoucherExhausted
            (nothing left); OfflineAcceptanceRefused (unknown voucher beyond
            the offline policy); ValueError for a bad amount.
        """
        terms, known = self.terms_of(scanned)
        eligible = self.check(terms, basket, store=store)
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
        ):
            raise ValueError(f"a voucher amount is a positive integer, not {amount!r}")
        code, currency = terms.code, terms.currency
        single = terms.mode == "single"
        key = f"voucher:{code}" if single else f"voucher:{code}:{receipt}"
        memo_data: dict[str, object] = {"voucher": code, "receipt": receipt, "store": store}
        if hub_holds:
            memo_data["hub_holds"] = list(hub_holds)
        done = self.ledger.transaction(key)
        if done is not None:
            return self._repeat(done, terms, receipt)
        if terms.kind == "percent":
            discount = eligible * terms.amount // 10_000
            if amount is not None:
                discount = min(discount, amount)
            offline = not known
            if offline:
                self.allow_offline(terms, discount)
                memo_data["offline"] = True
            postings = [
                Posting.debit(self._system("discount", currency), Money(discount, currency)),
                Posting.credit(self._system("tender", currency), Money(discount, currency)),
            ]
            tx = self._transfer(key, postings, memo_data, code)
            return Redemption(code, receipt, discount, 0, 0, offline, tx)

        account = _account(code)
        offline = False
        with self.ledger.atomic():
            try:
                balance = _minor(self.ledger.balance(account).available)
            except UnknownAccount:
                offline = not known
                if offline:
                    self.allow_offline(terms, terms.amount)
                balance = self._fund(terms, offline=offline)
            if balance <= 0:
                raise VoucherExhausted(f"voucher {code} has nothing left")
            take = min(eligible, balance) if amount is None else amount
            if take > balance:
                raise VoucherExhausted(f"voucher {code} has {balance} left, not {take}")
            take = min(take, eligible)
            forfeited = balance - take if single else 0
            postings = [
                Posting.debit(account, Money(take, currency)),
                Posting.credit(self._system("tender", currency), Money(take, currency)),
            ]
            if forfeited:
                postings += [
                    Posting.debit(account, Money(forfeited, currency)),
                    Posting.credit(self._system("breakage", currency), Money(forfeited, currency)),
                ]
            if offline:
                memo_data["offline"] = True
            tx = self._transfer(key, postings, memo_data, code)
        remaining = balance - take - forfeited
        return Redemption(code, receipt, take, remaining, forfeited, offline, tx, not single)

    def _repeat(self, done: Transaction, terms: VoucherTerms, receipt: str) -> Redemption:
        memo = json.loads(done.memo or "{}")
        if memo.get("receipt") != receipt:
            raise VoucherUsed(f"voucher {terms.code} was used on receipt {memo.get('receipt')}")
        tender = self._system("tender", terms.currency)
        amount = sum(_minor(p.amount) for p in done.postings if p.account == tender)
        breakage = self._system("breakage", terms.currency)
        forfeited = sum(_minor(p.amount) for p in done.postings if p.account == breakage)
        remaining = 0 if terms.kind == "percent" else self.remaining(terms.code)
        return Redemption(
            terms.code,
            receipt,
            amount,
            remaining,
            forfeited,
            bool(memo.get("offline")),
            done,
            terms.mode == "partial",
        )

    def allow_offline(self, terms: VoucherTerms, worth: int) -> None:
        """Refuse a voucher this till does not know when it is worth more than policy allows.

        Raises:
            OfflineAcceptanceRefused: beyond `RedemptionPolicy.offline_max_value`.
        """
        if worth > self.policy.offline_max_value:
            raise OfflineAcceptanceRefused(
                f"voucher {terms.code} ({worth}) is unknown here and above the offline limit"
                f" {self.policy.offline_max_value}"
            )

    def _system(self, purpose: str, currency: str) -> str:
        account = f"sys:vouchers:{purpose}:{currency}"
        if account not in self._opened:
            self.ledger.open_account(account, currency)
            self._opened.add(account)
        return account

    def open_account(self, terms: VoucherTerms) -> str:
        """The value voucher's liability account, opened if new (nothing funded)."""
        account = _account(terms.code)
        self.ledger.open_account(
            account, terms.currency, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        )
        return account

    def _fund(self, terms: VoucherTerms, *, offline: bool) -> int:
        """Open and fund a value voucher's account; returns its balance."""
        account = self.open_account(terms)
        currency = terms.currency
        memo = json.dumps({"voucher": terms.code, "offline": offline, "campaign": terms.campaign})
        postings = [
            Posting.debit(
                self._system(
                    "mirror" if self.mirror_funding else "offline" if offline else "issued",
                    currency,
                ),
                Money(terms.amount, currency),
            ),
            Posting.credit(account, Money(terms.amount, currency)),
        ]
        if self.mirror_funding:
            if self.ledger.transaction(f"voucher-fund:{terms.code}") is None:
                self.ledger.mirror(f"voucher-fund:{terms.code}", postings, memo=memo)
        else:
            self.ledger.transfer(f"voucher-fund:{terms.code}", postings, memo=memo)
        return terms.amount

    def register(self, terms: VoucherTerms) -> None:
        """Fund a value voucher the hub told this till about (idempotent)."""
        if terms.kind == "value":
            self._fund(terms, offline=False)

    def _transfer(
        self, key: str, postings: list[Posting], memo: dict[str, object], code: str
    ) -> Transaction:
        try:
            return self.ledger.transfer(key, postings, memo=json.dumps(memo, sort_keys=True))
        except IdempotencyConflict:
            raise VoucherUsed(f"voucher {code} was already redeemed") from None
        except InsufficientFunds:
            raise VoucherExhausted(f"voucher {code} has not enough left") from None
