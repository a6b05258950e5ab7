# SPDX-License-Identifier: Apache-2.0
"""Errors of the checkout API, one per refusal, all `CheckoutError`."""

from __future__ import annotations

from .._errors import LoyaltyError
from .._ids import is_id
from .._money import Money


class CheckoutError(LoyaltyError):
    """The till refused a checkout, refund or member operation."""


class EmptyBasket(CheckoutError, ValueError):
    """A checkout needs at least one line."""


class UnknownMember(CheckoutError, LookupError):
    """No member with this number, card or code."""


class UnknownCard(CheckoutError, LookupError):
    """The card is not registered to any member."""


class CardBlocked(CheckoutError):
    """The card is on the hotlist (lost, stolen or replaced)."""


class NoMember(CheckoutError):
    """The operation needs an identified member."""


class PresenceRequired(CheckoutError):
    """Redeeming points needs the member present: a card tap, a PIN or an OTP."""


class NotEnoughPoints(CheckoutError):
    """The member holds fewer available points than asked."""


class OverPayment(CheckoutError, ValueError):
    """The tenders would exceed what the basket costs."""


class WrongCurrency(CheckoutError, ValueError):
    """An amount is not in the till's currency."""


class WalletShort(CheckoutError):
    """The member's wallet holds less than asked; `available` is what it holds."""

    def __init__(self, message: str, *, available: Money) -> None:
        super().__init__(message)
        self.available = available


class SessionClosed(CheckoutError):
    """The checkout was completed or cancelled already."""


class ReceiptConflict(CheckoutError):
    """The receipt reference was completed with another basket."""


class ReceiptNotFound(CheckoutError, LookupError):
    """No completed receipt with this reference on this till."""


class VoidRefused(CheckoutError):
    """A receipt can only be voided on the day and till it was sold, once."""


class RefundRefused(CheckoutError):
    """The refund asks for lines or quantities that are not (or no longer) refundable."""


class PaymentInterrupted(CheckoutError):
    """The card left mid-payment; the payment is pending until the card is tapped again."""

    should_retry = True


class CardInUse(CheckoutError):
    """The card is registered to another member already."""


class UnknownTier(CheckoutError, ValueError):
    """The rules define no tier of this name."""


class InvalidName(CheckoutError, ValueError):
    """A member id is not 1 to 64 letters, digits, ``-`` or ``_`` (a letter or digit first)."""


class InvalidReference(CheckoutError, ValueError):
    """A receipt, refund or payment reference is not 1 to 100 printable characters."""


def reference(value: object, what: str) -> str:
    """A POS reference (receipt number, refund or payment reference), checked.

    Raises:
        InvalidReference: not a string of 1 to 100 printable characters.
    """
    if not is_id(value, 100):
        raise InvalidReference(f"a {what} is 1 to 100 printable characters, not {value!r}")
    return value
