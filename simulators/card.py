# SPDX-License-Identifier: Apache-2.0
"""What every virtual card offers a virtual reader or the vpcd bridge."""

from __future__ import annotations

from typing import Protocol


class VirtualCard(Protocol):
    """A simulated contactless card: power and APDUs, nothing else.

    The in-process reader and the vpcd bridge drive any card through these
    methods only, so a new card type needs no change to either.
    """

    @property
    def uid(self) -> bytes:
        """The card's UID as the reader's GET DATA would return it."""
        ...

    def power_on(self) -> bytes:
        """Enter the field (or be reset); return the ATR the reader reports."""
        ...

    def power_off(self) -> None:
        """Leave the field: uncommitted state is lost, authentication dropped."""
        ...

    def process(self, apdu: bytes) -> bytes:
        """Answer one command APDU; the response ends with the status word."""
        ...
