# SPDX-License-Identifier: Apache-2.0
"""Short human voucher codes: grouped, case-insensitive, with a check character.

The alphabet has 31 symbols (digits 2-9 and letters without I, O and U), so
0/O, 1/I/L-style confusions cannot happen between valid symbols. The check
character is the weighted sum ``sum((i + 1) * value_i) mod 31`` over the
code's symbols: 31 is prime and every weight is non-zero below it, so every
single-symbol substitution changes the sum, and an adjacent swap changes it
by ``(a - b)``, never 0 mod 31 for a != b. Both are tested exhaustively.
"""

from __future__ import annotations

import secrets

from ._errors import VoucherCodeInvalid

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTVWXYZ"
_VALUE = {symbol: index for index, symbol in enumerate(ALPHABET)}
#: Symbols of payload; with the check character a code is 16 symbols, four groups of four.
BODY_LENGTH = 15
_GROUP = 4
_SEPARATORS = str.maketrans("", "", " -_")


def check_symbol(body: str) -> str:
    """The check character for `body` (already normalised)."""
    total = sum((index + 1) * _VALUE[symbol] for index, symbol in enumerate(body))
    return ALPHABET[total % len(ALPHABET)]


def new_code() -> str:
    """A fresh random code (about 74 bits), normalised, without separators."""
    # 160 random bits read as base-31 digits: the bias of the top digit is
    # below 2**-85, and one urandom call is much cheaper than fifteen.
    value = int.from_bytes(secrets.token_bytes(20), "big")
    symbols = []
    for _ in range(BODY_LENGTH):
        value, digit = divmod(value, 31)
        symbols.append(ALPHABET[digit])
    body = "".join(symbols)
    return body + check_symbol(body)


def format_code(code: str) -> str:
    """Grouped for people: ``ABCD-EFGH-JKLM-NPQ7``."""
    return "-".join(code[i : i + _GROUP] for i in range(0, len(code), _GROUP))


def parse_code(text: str) -> str:
    """Normalise typed text to a code, checking its check character.

    Case, spaces, dashes and underscores do not matter.

    Raises:
        VoucherCodeInvalid: not a code: wrong length, a symbol outside the
            alphabet, or a check character that does not match (a typo).
    """
    if not isinstance(text, str):
        raise VoucherCodeInvalid(f"a voucher code is text, not {type(text).__name__}")
    code = text.translate(_SEPARATORS).upper()
    if len(code) != BODY_LENGTH + 1:
        raise VoucherCodeInvalid(f"a voucher code has {BODY_LENGTH + 1} characters")
    bad = sorted({symbol for symbol in code if symbol not in _VALUE})
    if bad:
        raise VoucherCodeInvalid(f"not a voucher code: {''.join(bad)!r} cannot appear in one")
    if check_symbol(code[:-1]) != code[-1]:
        raise VoucherCodeInvalid("the code has a typo (its check character does not match)")
    return code
