# SPDX-License-Identifier: Apache-2.0
"""The virtual reader: presence events, transports bound to one presence."""

from __future__ import annotations

import pytest

from loyaltysdk._errors import CardRemoved, ConfigurationError, ReaderTimeout
from loyaltysdk.cards.reader import open_reader
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader


def test_events_in_order_and_stale_transports_refused() -> None:
    reader = VirtualReader()
    with pytest.raises(ReaderTimeout):
        reader.wait_for_card(timeout=0.01)
    card = VirtualDesfire()
    reader.insert(card)
    transport = reader.connect()
    reader.remove()
    reader.insert(card)
    kinds = [reader.next_event(0).kind for _ in range(3)]  # type: ignore[union-attr]
    assert kinds == ["inserted", "removed", "inserted"]
    assert reader.next_event(0) is None
    with pytest.raises(CardRemoved):
        transport.transmit(b"\x90\x60\x00\x00\x00")  # bound to the earlier presence
    assert reader.wait_for_card(0).uid == card.uid
    reader.connect().transmit(b"\x90\x60\x00\x00\x00")


def test_a_tear_removes_the_card() -> None:
    reader = VirtualReader()
    card = VirtualDesfire()
    reader.insert(card)
    card.faults.tear_before = card.apdu_count
    with pytest.raises(CardRemoved):
        reader.connect().transmit(b"\x90\x60\x00\x00\x00")
    assert reader.card is None
    assert [e.kind for e in (reader.next_event(0), reader.next_event(0))] == ["inserted", "removed"]  # type: ignore[union-attr]


def test_open_reader_paths() -> None:
    assert open_reader("sim:desfire").card is not None  # type: ignore[attr-defined]
    assert open_reader("sim:ntag424").card is not None  # type: ignore[attr-defined]
    assert open_reader("sim:").card is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError):
        open_reader("sim:mifare-classic")
