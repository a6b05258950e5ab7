# SPDX-License-Identifier: Apache-2.0
"""The PC/SC driver: error classification, ATR identification, quirks, and a live reader."""

from __future__ import annotations

import threading

import pytest

from loyaltysdk._errors import (
    CardMute,
    CardRemoved,
    NoReader,
    ReaderBusy,
    ReaderError,
    ReaderTimeout,
    ReaderUnplugged,
)
from loyaltysdk.cards.desfire import DesfireClient
from loyaltysdk.cards.reader import open_reader
from loyaltysdk.drivers import pcsc
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.pcscd import PcscdProcess
from loyaltysdk.simulators.vpcd import VpcdBridge


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (0x80100069, CardRemoved),  # SCARD_W_REMOVED_CARD
        (0x80100016, CardRemoved),  # SCARD_E_NOT_TRANSACTED
        (0x8010000C, CardRemoved),  # SCARD_E_NO_SMARTCARD
        (0x80100068, CardRemoved),  # SCARD_W_RESET_CARD
        (0x80100066, CardMute),  # SCARD_W_UNRESPONSIVE_CARD
        (0x8010000B, ReaderBusy),  # SCARD_E_SHARING_VIOLATION
        (0x8010000A, ReaderTimeout),  # SCARD_E_TIMEOUT
        (0x80100017, ReaderUnplugged),  # SCARD_E_READER_UNAVAILABLE
        (0x8010001D, ReaderUnplugged),  # SCARD_E_NO_SERVICE
        (0x80100009, ReaderUnplugged),  # SCARD_E_UNKNOWN_READER
        (0x80100001, ReaderError),  # SCARD_F_INTERNAL_ERROR
    ],
)
def test_result_codes_map_to_typed_errors(code: int, error: type[Exception]) -> None:
    assert type(pcsc.classify(code, "test")) is error
    # pyscard may hand the code over as a negative int
    assert type(pcsc.classify(code - 2**32, "test")) is error


@pytest.mark.parametrize(
    ("atr", "kind"),
    [
        ("3B8180018080", "mifare-desfire"),
        ("3B8F8001804F0CA000000306030001000000006A", "mifare-classic-1k"),
        ("3B8F8001804F0CA0000003060300030000000068", "mifare-ultralight"),
        ("3B8F8001804F0CA000000306030002000000006A", "mifare-classic-4k"),
        ("3B888001000000009181C100", "iso14443-4"),
        ("3BFF1300", "unknown"),
    ],
)
def test_atr_identification(atr: str, kind: str) -> None:
    assert pcsc.identify_atr(bytes.fromhex(atr)) == kind


def test_quirks_table() -> None:
    acr = pcsc.quirks_for("ACS ACR122U PICC Interface 00 00")
    assert acr.name == "ACS ACR122U" and acr.led_buzzer is not None and acr.direct_wrap
    assert acr.led_buzzer(0x0F, 300)[:5] == bytes.fromhex("FF0040 0F04".replace(" ", ""))
    assert acr.direct_wrap(b"\x30\x04") == bytes.fromhex("FF00000004D4423004")
    assert pcsc.quirks_for("Some Vendor CCID Reader 00 00").name == "generic CCID"
    assert pcsc.quirks_for("HID Global OMNIKEY 5022 Smart Card Reader").name == "HID Omnikey 5x22"


@pytest.mark.pcsc
def test_reader_discovery_events_and_recovery(pcscd: PcscdProcess) -> None:
    with pytest.raises(NoReader):
        pcsc.open_reader("no such reader")
    threads_before = threading.active_count()
    reader = open_reader("pcsc:Virtual PCD 00 00")
    assert isinstance(reader, pcsc.PcscReader)
    with pytest.raises(ReaderTimeout):
        reader.wait_for_card(0.3)
    card = VirtualDesfire()
    bridge = VpcdBridge(card, port=pcscd.port)
    bridge.insert()
    info = reader.wait_for_card(5)
    assert pcsc.identify_atr(info.atr) == "mifare-desfire"
    transport = reader.connect()
    assert reader.wait_for_card(0).uid == card.uid  # from GET DATA
    assert DesfireClient(transport).get_version().uid == card.uid
    # Torn mid-exchange: a typed error, then nothing until a fresh insert.
    card.faults.tear_before = card.apdu_count
    with pytest.raises(CardRemoved):
        DesfireClient(transport).get_version()
    with pytest.raises(CardRemoved):
        transport.transmit(b"\x90\x60\x00\x00\x00")
    events = [reader.next_event(5) for _ in range(2)]
    assert [e.kind for e in events if e] == ["inserted", "removed"]
    bridge.insert()
    assert reader.next_event(5).kind == "inserted"  # type: ignore[union-attr]
    assert DesfireClient(reader.connect()).get_version().uid == card.uid
    bridge.remove()
    reader.close()
    assert threading.active_count() <= threads_before + 1  # the bridge's thread may linger briefly


@pytest.mark.pcsc
def test_reader_recovers_when_pcscd_comes_back(pcscd: PcscdProcess) -> None:
    reader = pcsc.PcscReader(pcscd.reader_name)
    card = VirtualDesfire()
    try:
        pcscd.stop()
        with pytest.raises(ReaderUnplugged):
            reader.wait_for_card(1.0)  # unplugged, not a silent timeout
        pcscd.start()
        bridge = VpcdBridge(card, port=pcscd.port)
        bridge.insert()
        reader.wait_for_card(10)
        assert DesfireClient(reader.connect()).get_version().uid == card.uid
        bridge.remove()
    finally:
        reader.close()
