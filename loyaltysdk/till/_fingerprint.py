# SPDX-License-Identifier: Apache-2.0
"""What a receipt number was completed with: a digest of the basket's lines and the member.

A receipt number completed again with the same basket answers with its
stored receipt; with another, `ReceiptConflict`. The digest is of the
compact JSON text of ``[lines, member]``. Till files written before this
form stored a digest of the standard encoder's text (with spaces), so a
retry of one of their receipts after an upgrade is checked against that
form too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .._json import compact


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Fingerprint:
    """A session's basket lines and member, and their digest (`value`, stored)."""

    __slots__ = ("lines", "member", "value")

    def __init__(self, lines: list[list[Any]], member: str | None) -> None:
        self.lines, self.member = lines, member
        self.value = _digest(compact([lines, member]))

    def matches(self, stored: str) -> bool:
        """Whether `stored` is this basket's digest, in the current form or the earlier one."""
        return stored == self.value or stored == _digest(json.dumps([self.lines, self.member]))


__all__ = ["Fingerprint"]
