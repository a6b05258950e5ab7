# SPDX-License-Identifier: Apache-2.0
"""What an identifier or a stored text may hold: one rule for ledger, till, sync and hub.

Everything a till writes ends up in the hub's database and on the wire, so
the rule is what both accept: PostgreSQL text holds no NUL, UTF-8 holds no
lone surrogate, JSON and logs are safer without control characters, and a
name that becomes part of an account id (``member:<id>:points``) or a
credential (``<till>.<secret>``) must not carry the separators ``:`` or
``.``. The checks return the value, so a caller writes ``x = check_id(x, ...)``.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

#: Members, tills and stores: letters, digits, ``-`` and ``_``, starting with a letter or digit.
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
#: Names no till may take: ``admin`` credentials are head office's.
RESERVED_NAMES: Final = frozenset({"admin"})
#: A basket line's SKU (1 to this many), category and brand (up to it): what a
#: receipt record may carry to the hub (sync's check), so a till takes no line
#: that its sync could not deliver.
MAX_LINE_TEXT: Final = 100


def is_name(value: object) -> TypeGuard[str]:
    """Whether `value` is a member, till or store name."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def is_id(value: object, max_length: int = 200) -> TypeGuard[str]:
    """Whether `value` is an identifier: 1 to `max_length` printable characters.

    Printable excludes NUL and every other control character, lone
    surrogates and line or paragraph separators; a plain space is allowed.
    """
    return isinstance(value, str) and 0 < len(value) <= max_length and value.isprintable()


def is_text(value: object, max_length: int) -> TypeGuard[str]:
    """Whether `value` is storable text: at most `max_length` characters, no NUL, valid UTF-8."""
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


__all__ = ["MAX_LINE_TEXT", "NAME_PATTERN", "RESERVED_NAMES", "is_id", "is_name", "is_text"]
