# SPDX-License-Identifier: Apache-2.0
"""One way for tests to put a virtual card in a reader: in process or through PC/SC.

`PcscSlot` offers the in-process `VirtualReader`'s insert / remove /
connect / card, but the card sits behind vpcd and every APDU goes pyscard
→ pcscd → vpcd → bridge → card, so the same tests run through both.
"""

from __future__ import annotations

import time

from loyaltysdk._errors import ReaderTimeout
from loyaltysdk.cards.transport import Transport
from loyaltysdk.drivers.pcsc import PcscReader
from loyaltysdk.simulators.card import VirtualCard
from loyaltysdk.simulators.pcscd import PcscdProcess
from loyaltysdk.simulators.vpcd import VpcdBridge

_EVENT_TIMEOUT = 60.0  # a bound against a hang; events decide


class PcscSlot:
    """A virtual card behind vpcd, seen through a `PcscReader`."""

    def __init__(self, pcscd: PcscdProcess) -> None:
        self._pcscd = pcscd
        self.reader = PcscReader(pcscd.reader_name)
        self._bridge: VpcdBridge | None = None
        self._drain()

    @property
    def card(self) -> VirtualCard | None:
        bridge = self._bridge
        return bridge.card if bridge is not None and bridge.inserted else None

    def _drain(self) -> None:
        while self.reader.next_event(0) is not None:
            pass

    def _await(self, kind: str) -> None:
        while True:
            event = self.reader.next_event(_EVENT_TIMEOUT)
            if event is None:
                raise ReaderTimeout(f"no {kind} event from {self.reader.name}")
            if event.kind == kind:
                return

    def insert(self, card: VirtualCard) -> None:
        if self._bridge is not None:
            self.remove()
        self._drain()
        self._bridge = VpcdBridge(card, port=self._pcscd.port)
        self._bridge.insert()
        self._await("inserted")

    def remove(self) -> None:
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            bridge.remove()
        # A torn card closed the connection itself; either way the reader
        # must report the removal before the card can come back.
        deadline = time.monotonic() + _EVENT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.reader.wait_for_card(0)
            except ReaderTimeout:
                self._drain()
                return
            time.sleep(0.01)
        raise ReaderTimeout("the reader did not notice the card leaving")

    def connect(self) -> Transport:
        return self.reader.connect()

    def close(self) -> None:
        self.remove()
        self.reader.close()
