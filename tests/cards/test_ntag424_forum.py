# SPDX-License-Identifier: Apache-2.0
"""The virtual NTAG 424 DNA as a phone and NXP's tools see it.

A phone finds the SUN URL with the NFC Forum Type 4 Tag procedure: SELECT
the NDEF Tag Application by name, SELECT and READ BINARY the capability
container, SELECT the NDEF file it names, READ BINARY its length (NLEN) and
then the message, in pieces of at most MLe bytes. The procedure and the
NDEF record parsing are written here from the specifications (NFC Forum
Type 4 Tag, NDEF and URI RTD), not with the SDK's reader, so they check the
tag independently; only the SUN is checked with the SDK's verifier.
"""

from __future__ import annotations

import pytest

from loyaltysdk.cards.ntag424 import MemoryCounterStore, SunVerifier
from loyaltysdk.cards.transport import Transport
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.reader import VirtualReader

from ..slots import PcscSlot

META, FILE = b"M" * 16, b"F" * 16
BASE = "https://loyalty.example/t"

# NT4H2421Gx, the capability container as delivered: CCLEN 0017h, mapping
# version 2.0, MLe 0100h, MLc 00FFh; NDEF file control TLV (E104h, 256 bytes,
# read and write access 00h); proprietary file control TLV (E105h, 128 bytes,
# read access key 2, write access key 3).
FACTORY_CC = bytes.fromhex("001720010000FF0406E104010000000506E10500808283")

# NFC Forum URI RTD: the URI identifier codes used here.
URI_PREFIXES = {
    0x00: "",
    0x01: "http://www.",
    0x02: "https://www.",
    0x03: "http://",
    0x04: "https://",
}


def _ok(transport: Transport, apdu: str) -> bytes:
    data, sw = transport.transmit(bytes.fromhex(apdu))
    assert sw == 0x9000, f"{apdu}: status {sw:04X}"
    return data


def forum_read(transport: Transport, select_p2: str, chunk: int) -> tuple[bytes, bytes]:
    """(capability container, NDEF message), the NFC Forum way."""
    _ok(transport, f"00A404{select_p2}07D276000085010100")  # SELECT NDEF Tag Application, Le 00
    _ok(transport, "00A4000C02E103")  # SELECT the capability container file
    head = _ok(transport, "00B000000F")  # READ BINARY 15 bytes: up to the NDEF file control TLV
    cclen = int.from_bytes(head[0:2], "big")
    cc = _ok(transport, f"00B00000{cclen:02X}")  # READ BINARY the whole CC
    assert cc[:15] == head
    mle = int.from_bytes(cc[3:5], "big")
    assert cc[7:9] == b"\x04\x06", "an NDEF file control TLV follows MLc"
    file_id, max_size, read_access = cc[9:11], int.from_bytes(cc[11:13], "big"), cc[13]
    assert read_access == 0x00, "the NDEF file is readable without security"
    _ok(transport, "00A4000C02" + file_id.hex())  # SELECT the NDEF file
    nlen = int.from_bytes(_ok(transport, "00B0000002"), "big")  # READ BINARY NLEN
    assert 0 < nlen <= max_size - 2
    message = b""
    while len(message) < nlen:
        size = min(chunk, mle, nlen - len(message))
        offset = 2 + len(message)
        message += _ok(transport, f"00B0{offset:04X}{size:02X}")  # READ BINARY a piece
    return cc, message


def parse_uri(message: bytes) -> str:
    """The URI of an NDEF message that must be exactly one short URI record."""
    header = message[0]
    assert header & 0x80 and header & 0x40, "MB and ME: one record"
    assert header & 0x10, "SR: a short record, 1-byte payload length"
    assert not header & 0x08, "no ID field"
    assert header & 0x07 == 0x01, "TNF 1: NFC Forum well-known type"
    type_length, payload_length = message[1], message[2]
    assert message[3 : 3 + type_length] == b"U"
    payload = message[3 + type_length :]
    assert len(payload) == payload_length
    return URI_PREFIXES[payload[0]] + payload[1:].decode("utf-8")


@pytest.mark.parametrize(("select_p2", "chunk"), [("0C", 0xFF), ("00", 0x3B)])
def test_a_phone_finds_a_fresh_sun_url(
    slot: VirtualReader | PcscSlot, select_p2: str, chunk: int
) -> None:
    tag = VirtualNtag424(meta_read_key=META, file_read_key=FILE, base_url=BASE)
    verifier = SunVerifier(META, FILE, MemoryCounterStore())
    for tap in (1, 2):
        slot.insert(tag)
        transport = slot.connect()
        cc, message = forum_read(transport, select_p2, chunk)
        assert cc == FACTORY_CC
        url = parse_uri(message)
        assert url.startswith(BASE + "?picc_data=")
        # Read again in the same field: the same message, the counter moved once.
        assert forum_read(transport, select_p2, chunk)[1] == message
        transport.close()
        slot.remove()
        verified = verifier.verify(url)
        assert (verified.uid, verified.counter) == (tag.uid, tap)


def test_get_version_frames(slot: VirtualReader | PcscSlot) -> None:
    tag = VirtualNtag424()
    slot.insert(tag)
    transport = slot.connect()
    # GetVersion, ISO-wrapped: hardware part, then software, then production.
    hardware = transport.transmit(bytes.fromhex("9060000000"))
    software = transport.transmit(bytes.fromhex("90AF000000"))  # additional frame
    production, sw = transport.transmit(bytes.fromhex("90AF000000"))
    # NXP 04, NTAG 04, subtype 02, version 30 00 (hardware) / 01 02 (software),
    # storage size code 11h, protocol 05.
    assert hardware == (bytes.fromhex("04040230001105"), 0x91AF)
    assert software == (bytes.fromhex("04040201021105"), 0x91AF)
    assert sw == 0x9100 and len(production) == 14 and production[:7] == tag.uid
    assert transport.transmit(bytes.fromhex("90AF000000")) == (b"", 0x91CA)  # nothing left


APP = "00A4040C07D2760000850101"  # SELECT NDEF Tag Application
CC = "00A4000C02E103"  # SELECT capability container


@pytest.mark.parametrize(
    ("before", "apdu", "sw"),
    [
        ([], CC, 0x6A82),  # a file before the application is selected
        ([APP], "00A4040C07D2760000850102", 0x6A82),  # SELECT another name
        ([APP], "00A4000C02E106", 0x6A82),  # no file E106
        ([APP], "00A4050C02E103", 0x6A86),  # P1 05
        ([APP], "00A4001002E103", 0x6A86),  # P2 10
        ([APP], "00A4000C03E10300", 0x6A87),  # a 3-byte file identifier
        ([APP], "00A4000C05E103", 0x6700),  # Lc 5 with 2 bytes
        ([APP], "00A4000C", 0x6700),  # SELECT with no data
        ([APP], "00B0000010", 0x6985),  # READ BINARY with no file selected
        ([APP, CC], "00B0000021", 0x6700),  # 33 bytes of a 32-byte file
        ([APP, CC], "00B0002001", 0x6A86),  # offset 32: past the end
        ([APP, CC], "00B00000", 0x6700),  # READ BINARY without Le
        ([APP, CC], "00B0000001AA", 0x6700),  # READ BINARY with data
        ([APP], "00B0840000", 0x6A82),  # short file identifier 4: no such file
        ([APP], "00B0C10000", 0x6A86),  # short file identifier with bit 7 set
        ([APP, "00A4000C02E105"], "00B0000010", 0x6982),  # proprietary file: key 2
        ([APP, "00A4000C02E104"], "00D6000001AA", 0x6982),  # UPDATE BINARY needs a key
        ([], "80A4040C07D2760000850101", 0x6E00),  # class 80
        ([], "00CA000000", 0x6D00),  # GET DATA: not an instruction of the tag
        ([], "90AF000000", 0x91CA),  # an additional frame with nothing to continue
        ([], "9060000001AA00", 0x917E),  # GetVersion with data
        ([], "9060010000", 0x6A86),  # wrapped with P1 01
        ([], "9099000000", 0x911C),  # no native command 99
    ],
)
def test_bad_commands_get_the_datasheet_status(before: list[str], apdu: str, sw: int) -> None:
    reader = VirtualReader()
    reader.insert(VirtualNtag424())
    transport = reader.connect()
    for setup in before:
        _ok(transport, setup)
    assert transport.transmit(bytes.fromhex(apdu))[1] == sw


def test_a_failed_select_keeps_the_selection() -> None:
    reader = VirtualReader()
    reader.insert(VirtualNtag424())
    transport = reader.connect()
    _ok(transport, APP)
    _ok(transport, CC)
    assert transport.transmit(bytes.fromhex("00A4040C07D2760000850102"))[1] == 0x6A82
    assert transport.transmit(bytes.fromhex("00A4000C02E106"))[1] == 0x6A82
    assert _ok(transport, "00B0000002") == b"\x00\x17"  # still the CC


def test_short_file_identifiers_and_the_counter() -> None:
    tag = VirtualNtag424(meta_read_key=META, file_read_key=FILE)
    reader = VirtualReader()
    reader.insert(tag)
    transport = reader.connect()
    _ok(transport, APP)
    assert _ok(transport, "00B0810000")[:23] == FACTORY_CC  # SFI 1, Le 00: the whole CC file
    ndef = _ok(transport, "00B0820000")  # SFI 2, Le 00: all 256 bytes of the NDEF file
    assert len(ndef) == 256
    nlen = int.from_bytes(ndef[:2], "big")
    _ok(transport, "00A4000C02E104")
    assert _ok(transport, f"00B00002{nlen:02X}") == ndef[2 : 2 + nlen]
    assert tag.counter == 1  # one field entry, one count, whichever way it was read
    url = parse_uri(ndef[2 : 2 + nlen])
    assert SunVerifier(META, FILE, MemoryCounterStore()).verify(url).counter == 1


def test_an_iso_command_ends_the_get_version_chain() -> None:
    reader = VirtualReader()
    reader.insert(VirtualNtag424())
    transport = reader.connect()
    assert transport.transmit(bytes.fromhex("9060000000"))[1] == 0x91AF
    _ok(transport, APP)
    assert transport.transmit(bytes.fromhex("90AF000000"))[1] == 0x91CA
