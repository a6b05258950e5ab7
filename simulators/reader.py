# SPDX-License-Identifier: Apache-2.0
"""A virtual contactless reader: card insert and remove events and a transport.

It implements the same `Reader` and `Transport` interfaces as the PC/SC
driver, so protocol code and tills run unchanged against it. A card "tap"
is `insert(card)`; taking it away is `remove()`. A card that tears itself
away (a fault raising `CardRemoved`) leaves the field here too, with a
removal event, as a real reader would report it.
"""

from __future__ import annotations

import queue
import threading

from loyaltysdk._errors import CardMute, CardRemoved, ConfigurationError, ReaderTimeout
from loyaltysdk.cards.reader import CardEvent, Reader
from loyaltysdk.cards.transport import CardInfo, Transport

from .card import VirtualCard


class VirtualReader(Reader):
    """A reader with at most one virtual card in its field."""

    def __init__(self, name: str = "Virtual Reader 00") -> None:
        self.name = name
        self._card: VirtualCard | None = None
        self._info: CardInfo | None = None
        self._events: queue.Queue[CardEvent] = queue.Queue()
        self._present = threading.Condition()
        self._generation = 0

    @property
    def card(self) -> VirtualCard | None:
        """The card in the field, if any."""
        return self._card

    def insert(self, card: VirtualCard) -> CardInfo:
        """Put `card` in the field (a tap); any card already there leaves first."""
        with self._present:
            if self._card is not None:
                self._leave()
            atr = card.power_on()
            self._card = card
            self._info = CardInfo(self.name, atr, card.uid)
            self._generation += 1
            self._events.put(CardEvent("inserted", self.name, self._info))
            self._present.notify_all()
            return self._info

    def remove(self) -> None:
        """Take the card out of the field (nothing happens when there is none)."""
        with self._present:
            if self._card is not None:
                self._leave()

    def _leave(self) -> None:
        assert self._card is not None
        self._card.power_off()
        self._events.put(CardEvent("removed", self.name, self._info))
        self._card, self._info = None, None
        self._generation += 1

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        with self._present:
            if not self._present.wait_for(lambda: self._info is not None, timeout):
                raise ReaderTimeout(f"no card on {self.name} within {timeout} s")
            assert self._info is not None
            return self._info

    def connect(self) -> Transport:
        with self._present:
            if self._card is None:
                raise CardRemoved(f"no card on {self.name}")
            return _VirtualTransport(self, self._generation)

    def next_event(self, timeout: float | None = None) -> CardEvent | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _exchange(self, generation: int, apdu: bytes) -> bytes:
        with self._present:
            card = self._card
            if card is None or generation != self._generation:
                # A transport is bound to one presence of one card: after a
                # removal, even the same card needs a fresh connect.
                raise CardRemoved(f"the card left {self.name}")
            try:
                return card.process(apdu)
            except CardRemoved:
                self._leave()
                raise
            except CardMute:
                raise


class _VirtualTransport(Transport):
    def __init__(self, reader: VirtualReader, generation: int) -> None:
        super().__init__()
        self._reader = reader
        self._generation = generation

    def _transmit(self, apdu: bytes) -> bytes:
        return self._reader._exchange(self._generation, apdu)


def open_reader(argument: str) -> VirtualReader:
    """Open ``sim:TYPE``: a virtual reader with a fresh card of TYPE (desfire, ntag424) or empty."""
    reader = VirtualReader()
    if argument in ("", "empty"):
        return reader
    if argument == "desfire":
        from .desfire import VirtualDesfire

        reader.insert(VirtualDesfire())
    elif argument == "ntag424":
        from .ntag424 import VirtualNtag424

        reader.insert(VirtualNtag424())
    else:
        raise ConfigurationError(f"unknown simulated card type {argument!r}: desfire or ntag424")
    return reader
