# SPDX-License-Identifier: Apache-2.0
"""Card protocols (DESFire stored value, NTAG 424 tap-to-identify) on one transport.

A POS gets a `Reader` from `open_reader("pcsc:<reader name>")` (or
``"sim:desfire"`` in its tests), waits for a card, and hands the card's
`Transport` to the till (`Checkout.complete(card=...)`, `Till.top_up_card`).
`MockTransport` answers scripted APDUs, for tests of code that talks to a card.
"""

from .reader import CardEvent, Reader, open_reader
from .transport import CardInfo, MockTransport, Transport

__all__ = ["CardEvent", "CardInfo", "MockTransport", "Reader", "Transport", "open_reader"]

from .._public import present

present(__name__, globals())
