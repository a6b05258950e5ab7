# SPDX-License-Identifier: Apache-2.0
"""Outside clients judge the virtual cards through the real PC/SC stack (issue 18).

Tools nobody here wrote talk to our pcscd + vpcd + bridge as they would to
a reader with a real card: OpenSC's `opensc-tool`, pcsc-tools' `scriptor`
(Debian packages, installed by scripts/setup) and PyPI's `python-desfire`
(test extra) over pyscard. Each expectation is what the datasheet says the
chip answers (MIFARE DESFire EV2 / EV1 command set, NTAG 424 DNA
NT4H2421Gx, NFC Forum Type 4 Tag), not what our simulators happen to do.

PyPI's `desfire` (0.2, 2016) is not used: it cannot authenticate
(`authenticate` raises NotImplementedError), has no GetVersion, and sends
application ids most significant byte first. libfreefare's
`mifare-desfire-info` is not used either: Debian's libnfc 1.8.0 is built
without its PC/SC driver, so it cannot reach a PC/SC reader.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from loyaltysdk.cards.desfire import DesfireClient
from loyaltysdk.cards.keystore import KeyRole, SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.pcscd import PcscdProcess, in_ci
from loyaltysdk.simulators.reader import VirtualReader

from ..slots import PcscSlot

pytestmark = pytest.mark.pcsc

UID = bytes.fromhex("04A1B2C3D4E5F6")
PURSE_AID = bytes.fromhex("01594C")  # 0x4C5901 on the wire, least significant byte first
_TIMEOUT = 60.0  # a bound against a hang; the answers decide


class Reply(NamedTuple):
    """One response APDU: its data and its status word."""

    data: bytes
    sw: int

    @property
    def shape(self) -> tuple[str, int]:
        """The status word in hex and the data's length, as a datasheet gives them."""
        return f"{self.sw:04X}", len(self.data)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/setup installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(argv: list[str], *, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{argv[0]} got no answer within {_TIMEOUT:.0f} s; stderr: {error.stderr!r}")
    assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stderr}"
    return done.stdout


@pytest.fixture
def slot(pcscd: PcscdProcess) -> Iterator[PcscSlot]:
    slot = PcscSlot(pcscd)
    try:
        yield slot
    finally:
        slot.close()


@pytest.fixture
def desfire(slot: PcscSlot) -> VirtualDesfire:
    """A factory-fresh DESFire in the vpcd reader."""
    card = VirtualDesfire(UID)
    slot.insert(card)
    return card


@pytest.fixture
def issued(slot: PcscSlot, keystore: SoftwareKeyStore) -> VirtualDesfire:
    """A DESFire with our purse on it (issued in process), then put in the vpcd reader."""
    card = VirtualDesfire(UID)
    local = VirtualReader()
    local.insert(card)
    Purse(keystore, clock=lambda: 1_800_000_000).issue(local.connect(), UID, initial=1000)
    local.remove()
    slot.insert(card)
    return card


@pytest.fixture
def ntag(slot: PcscSlot) -> VirtualNtag424:
    card = VirtualNtag424(UID)
    slot.insert(card)
    return card


# -- opensc-tool ---------------------------------------------------------------


def _opensc_reader(pcscd: PcscdProcess) -> str:
    """The index opensc-tool gives our reader, read from its --list-readers."""
    out = _run([_tool("opensc-tool"), "--list-readers"])
    for line in out.splitlines():
        match = re.match(r"^(\d+)\s+(Yes|No)\s+.*?(\S.*)$", line)
        if match and match.group(3).strip() == pcscd.reader_name:
            return match.group(1)
    pytest.fail(f"opensc-tool does not list {pcscd.reader_name!r}:\n{out}")


def _hex_dump(lines: list[str]) -> bytes:
    """Bytes back from OpenSC's util_hex_dump_asc: 16 a line, "XX " each, then ASCII.

    Only lines after the first are padded to 16 columns, and the ASCII
    column may hold spaces, so each line's byte count comes from its length.
    """
    data = b""
    for number, line in enumerate(lines):
        count = len(line) // 4 if number == 0 else len(line) - 48
        hex_part = line[: 3 * count]
        assert re.fullmatch(r"(?:[0-9A-F]{2} )+", hex_part), f"not a hex dump line: {line!r}"
        data += bytes.fromhex(hex_part)
    return data


def _opensc_send(pcscd: PcscdProcess, *apdus: str) -> list[Reply]:
    """Send APDUs with one opensc-tool run; its replies in order.

    `-c default` skips OpenSC's card-driver probing (dozens of SELECTs), so
    the card sees exactly these APDUs, one session, in order.
    """
    argv = [_tool("opensc-tool"), "--reader", _opensc_reader(pcscd), "-c", "default"]
    for apdu in apdus:
        argv += ["--send-apdu", apdu]
    lines = _run(argv).splitlines()
    replies: list[Reply] = []
    for index, line in enumerate(lines):
        match = re.match(r"^Received \(SW1=0x([0-9A-F]{2}), SW2=0x([0-9A-F]{2})\)(:?)$", line)
        if not match:
            continue
        dump: list[str] = []
        if match.group(3):
            for following in lines[index + 1 :]:
                if following.startswith(("Sending:", "Received")) or not following:
                    break
                dump.append(following)
        replies.append(Reply(_hex_dump(dump), int(match.group(1) + match.group(2), 16)))
    assert len(replies) == len(apdus), f"{len(apdus)} APDUs sent, replies: {lines}"
    return replies


def test_opensc_lists_our_readers(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    out = _run([_tool("opensc-tool"), "--list-readers"])
    rows = {
        m.group(3).strip(): m.group(2)
        for m in (re.match(r"^(\d+)\s+(Yes|No)\s+.*?(\S.*)$", line) for line in out.splitlines())
        if m
    }
    assert rows == {"Virtual PCD 00 00": "Yes", "Virtual PCD 00 01": "No"}


@pytest.mark.parametrize("kind", ["desfire", "ntag"])
def test_opensc_reads_the_atr_pcsc_part3_gives_a_type_a_card(
    pcscd: PcscdProcess, request: pytest.FixtureRequest, kind: str
) -> None:
    request.getfixturevalue(kind)
    out = _run([_tool("opensc-tool"), "--reader", _opensc_reader(pcscd), "--atr"])
    atr = bytes.fromhex(out.strip().replace(":", ""))
    # PC/SC part 3 (3.1.3.2.3.1): an ISO 14443-4 type A card's ATR is
    # 3B 8n 80 01, the ATS historical bytes, then TCK; both chips' ATS carry
    # the one historical byte 80, as readers report them: 3B 81 80 01 80 80.
    assert atr == bytes.fromhex("3B8180018080")
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    assert tck == 0, "TCK makes T0..TCK XOR to zero"


def test_opensc_probing_leaves_a_card_that_still_answers(
    pcscd: PcscdProcess, desfire: VirtualDesfire
) -> None:
    # Without -c, OpenSC's drivers probe the card with dozens of ISO SELECTs
    # and GET DATAs; a DESFire refuses them all and is "Unsupported card".
    reader = _opensc_reader(pcscd)
    out = _run([_tool("opensc-tool"), "--reader", reader, "--name"])
    assert out.strip() == "Unsupported card"
    # SelectApplication 000000 (the PICC level)
    assert _opensc_send(pcscd, "90:5A:00:00:03:00:00:00:00") == [Reply(b"", 0x9100)]


def test_opensc_select_application_statuses(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    replies = _opensc_send(
        pcscd,
        "90:5A:00:00:03:00:00:00:00",  # SelectApplication 000000: the PICC
        "90:5A:00:00:03:01:02:03:00",  # SelectApplication 030201: not on the card
        "90:5A:00:00:02:01:02:00",  # SelectApplication with a 2-byte AID
    )
    # 91 00 OK, 91 A0 APPLICATION_NOT_FOUND, 91 7E LENGTH_ERROR
    assert [r.shape for r in replies] == [("9100", 0), ("91A0", 0), ("917E", 0)]


def test_opensc_get_version_in_three_frames(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    replies = _opensc_send(
        pcscd,
        "90:60:00:00:00",  # GetVersion: hardware information
        "90:AF:00:00:00",  # AdditionalFrame: software information
        "90:AF:00:00:00",  # AdditionalFrame: UID, batch, production week and year
    )
    # DESFire EV1/EV2 datasheets: 7 bytes + 91 AF, 7 bytes + 91 AF, 14 bytes + 91 00.
    assert [r.shape for r in replies] == [("91AF", 7), ("91AF", 7), ("9100", 14)]
    hardware, software, production = (r.data for r in replies)
    # Vendor 04 (NXP), type 01 (DESFire), subtype 01, major 12 (EV2), protocol 05 (ISO 14443-2 and -3)
    assert hardware[:4] == bytes.fromhex("04010112") and hardware[6] == 0x05
    assert software[:3] == bytes.fromhex("040101")
    assert production[:7] == UID


def test_opensc_factory_picc_answers(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    replies = _opensc_send(
        pcscd,
        "90:6A:00:00:00",  # GetApplicationIDs
        "90:6D:00:00:00",  # GetDFNames
        "90:45:00:00:00",  # GetKeySettings
        "90:64:00:00:01:00:00",  # GetKeyVersion of key 0
        "90:6E:00:00:00",  # GetFreeMemory
    )
    assert [r.shape for r in replies] == [
        ("9100", 0),  # no applications yet
        ("9100", 0),  # no ISO DF names yet
        ("9100", 2),
        ("9100", 1),
        ("9100", 3),  # free bytes, 3 bytes LSB first
    ]
    # A factory card: PICC key settings 0F (all allowed, free create and
    # listing), one DES key (bits 7-6 of the second byte 00), version 00.
    assert replies[2].data == bytes.fromhex("0F01")
    assert replies[3].data == b"\x00"
    free = int.from_bytes(replies[4].data, "little")
    assert 0 < free <= 8192


def test_opensc_length_errors(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    replies = _opensc_send(
        pcscd,
        "90:60:00:00:01:00:00",  # GetVersion with a stray data byte
        "90:6A:00:00:01:00:00",  # GetApplicationIDs with a stray data byte
        "90:45:00:00:01:00:00",  # GetKeySettings with a stray data byte
        "90:64:00:00:00",  # GetKeyVersion without its key number
    )
    assert [r.shape for r in replies] == [("917E", 0)] * 4  # LENGTH_ERROR


def test_opensc_iso_select_of_the_desfire_df_name(
    pcscd: PcscdProcess, desfire: VirtualDesfire
) -> None:
    # ISO SELECT by DF name D2760000850100 (the DESFire PICC's ISO name),
    # then ISO-wrapped GetVersion still works at the PICC level.
    replies = _opensc_send(pcscd, "00:A4:04:00:07:D2:76:00:00:85:01:00:00", "90:60:00:00:00")
    assert [r.shape for r in replies] == [("9000", 0), ("91AF", 7)]


def test_opensc_issued_key_settings(pcscd: PcscdProcess, issued: VirtualDesfire) -> None:
    replies = _opensc_send(
        pcscd,
        "90:5A:00:00:03:01:59:4C:00",  # SelectApplication 4C5901
        "90:45:00:00:00",  # GetKeySettings: free directory listing (bit 1)
    )
    # Key settings 0B, four AES keys (bit 7 of the second byte: AES).
    assert replies == [Reply(b"", 0x9100), Reply(bytes.fromhex("0B84"), 0x9100)]


def test_opensc_issued_directory(
    pcscd: PcscdProcess, issued: VirtualDesfire, keystore: SoftwareKeyStore
) -> None:
    replies = _opensc_send(
        pcscd,
        "90:6A:00:00:00",  # GetApplicationIDs
        "90:5A:00:00:03:01:59:4C:00",  # SelectApplication 4C5901
        "90:6F:00:00:00",  # GetFileIDs (free: key settings bit 1)
        "90:F5:00:00:01:01:00",  # GetFileSettings of the value file
        "90:F5:00:00:01:02:00",  # GetFileSettings of the log
        "90:64:00:00:01:03:00",  # GetKeyVersion of key 3 (read)
    )
    assert [r.shape for r in replies] == [
        ("9100", 3),
        ("9100", 0),
        ("9100", 2),
        ("9100", 17),  # value file: type, comm, rights 2, lower 4, upper 4, limited 4, flag 1
        ("9100", 13),  # record file: type, comm, rights 2, size 3, max 3, current 3
        ("9100", 1),
    ]
    apps, _, files, value, log, version = (r.data for r in replies)
    assert apps == PURSE_AID
    assert sorted(files) == [1, 2]
    # Value file: type 02, full (03); rights RW 2, change 0, read never (F),
    # write 1 as 16 bits F120 LSB first; limits 0 and 50000; limited credit on.
    assert value[:4] == bytes.fromhex("020320F1")
    assert value[4:8] == (0).to_bytes(4, "little")
    assert value[8:12] == (50_000).to_bytes(4, "little")
    assert value[16] & 0x01 == 1
    # Cyclic record file: type 04, full; rights R 3, W 2, RW 1, change 0 (3210
    # as 16 bits, LSB first); 48-byte records, 16 of them, one written.
    assert log == bytes.fromhex("04031032300000100000010000")
    assert version == bytes([keystore.key_version(KeyRole.READ)])


def test_opensc_ntag_reads_the_ndef_message(pcscd: PcscdProcess, ntag: VirtualNtag424) -> None:
    first = _opensc_send(
        pcscd,
        "00:A4:04:00:07:D2:76:00:00:85:01:01:00",  # SELECT the NDEF application by name
        "00:A4:00:0C:02:E1:04",  # SELECT the NDEF file E104
        "00:B0:00:00:02",  # READ BINARY: NLEN
    )
    assert [r.shape for r in first] == [("9000", 0), ("9000", 0), ("9000", 2)]
    length = int.from_bytes(first[2].data, "big")
    (message,) = _opensc_send(
        pcscd,
        "00:A4:04:00:07:D2:76:00:00:85:01:01:00",
        "00:A4:00:0C:02:E1:04",
        f"00:B0:00:02:{length:02X}",  # READ BINARY: the NDEF message after NLEN
    )[2:]
    assert message.shape == ("9000", length)
    assert _sun_url(message.data).startswith("https://loyalty.example/t?picc_data=")


def _sun_url(message: bytes) -> str:
    """The URI of an NDEF message of one short URI record (NFC Forum URI RTD)."""
    # D1: MB, ME, SR, TNF 1 (well known); type length 1; payload length; type "U"
    assert message[0] == 0xD1 and message[1] == 1 and message[3:4] == b"U"
    payload = message[4 : 4 + message[2]]
    assert len(payload) == message[2]
    assert payload[0] == 0x04  # URI prefix code 04: "https://"
    url = "https://" + payload[1:].decode("ascii")
    # NTAG 424 DNA SUN mirror: 16 bytes of encrypted PICC data, an 8-byte SDMMAC.
    assert re.fullmatch(r"https://[^?]+\?picc_data=[0-9A-F]{32}&cmac=[0-9A-F]{16}", url), url
    return url


def test_opensc_ntag_refusals(pcscd: PcscdProcess, ntag: VirtualNtag424) -> None:
    replies = _opensc_send(
        pcscd,
        "00:B0:00:00:02",  # READ BINARY before any file is selected
        "00:A4:04:00:07:D2:76:00:00:85:01:01:00",  # SELECT the NDEF application
        "00:A4:00:0C:02:E1:09",  # SELECT a file the tag does not have
    )
    # NT4H2421Gx ISOReadBinary: 69 85 (conditions of use not satisfied: no
    # file selected), not ISO's generic 69 86; then 90 00; 6A 82 file not found.
    assert [r.shape for r in replies] == [("6985", 0), ("9000", 0), ("6A82", 0)]


def test_opensc_ntag_capability_container(pcscd: PcscdProcess, ntag: VirtualNtag424) -> None:
    replies = _opensc_send(
        pcscd,
        "00:A4:04:00:07:D2:76:00:00:85:01:01:00",  # SELECT the NDEF application
        "00:A4:00:0C:02:E1:03",  # SELECT the capability container E103
        "00:B0:00:00:0F",  # READ BINARY: the 15 bytes every T4T CC starts with
    )
    assert [r.shape for r in replies] == [("9000", 0), ("9000", 0), ("9000", 15)]
    _check_capability_container(replies[2].data)


def _check_capability_container(cc: bytes) -> None:
    """NFC Forum Type 4 Tag 2.0 CC, with NTAG 424 DNA's NDEF file in it."""
    assert int.from_bytes(cc[0:2], "big") >= 0x000F  # CCLEN
    assert cc[2] == 0x20  # mapping version 2.0
    assert int.from_bytes(cc[3:5], "big") >= 0x000F  # MLe
    assert int.from_bytes(cc[5:7], "big") >= 0x0001  # MLc
    # NDEF File Control TLV: T 04, L 06, file id E104, max size, read 00, write
    assert cc[7:11] == bytes.fromhex("0406E104")
    assert 0x0005 <= int.from_bytes(cc[11:13], "big") <= 0xFFFE
    assert cc[13] == 0x00  # read access granted to anyone: the SUN URL is public


def test_opensc_ntag_get_version(pcscd: PcscdProcess, ntag: VirtualNtag424) -> None:
    replies = _opensc_send(
        pcscd,
        "90:60:00:00:00",  # GetVersion: hardware
        "90:AF:00:00:00",  # AdditionalFrame: software
        "90:AF:00:00:00",  # AdditionalFrame: production
    )
    # NT4H2421Gx 10.5.2: 7 + 91 AF, 7 + 91 AF, 14 (or 15 with FabKey ID) + 91 00.
    shapes = [r.shape for r in replies]
    assert shapes[:2] == [("91AF", 7), ("91AF", 7)] and shapes[2] in (("9100", 14), ("9100", 15))
    # Vendor 04 (NXP), type 04 (NTAG), subtype 02, protocol 05
    assert replies[0].data[:3] == bytes.fromhex("040402") and replies[0].data[6] == 0x05
    assert replies[2].data[:7] == UID


# -- scriptor --------------------------------------------------------------------


def _scriptor(pcscd: PcscdProcess, script: list[str]) -> list[Reply]:
    """Run ISO APDU lines through scriptor; its replies as data and status word."""
    return [
        Reply(raw[:-2], int.from_bytes(raw[-2:], "big")) for raw in _scriptor_raw(pcscd, script)
    ]


def _scriptor_raw(pcscd: PcscdProcess, script: list[str]) -> list[bytes]:
    """Run APDU lines (comments after '#') through scriptor's stdin; its raw replies in order."""
    commands = [line.split("#")[0].strip() for line in script]
    # scriptor stops at any line containing "exit" and resets on "reset".
    assert not any(word in line.lower() for line in script for word in ("exit", "reset"))
    out = _run(
        [_tool("scriptor"), "-r", pcscd.reader_name], stdin="\n".join(commands) + "\n"
    ).splitlines()
    replies: list[bytes] = []
    for index, line in enumerate(out):
        if not line.startswith("< "):
            continue
        # "< XX XX ... : meaning", wrapped after 16 bytes onto following lines.
        text = line[2:]
        following = index + 1
        while " : " not in text:
            text += " " + out[following]
            following += 1
        replies.append(bytes.fromhex(text.split(" : ")[0]))
    assert len(replies) == len(commands), f"{len(commands)} APDUs sent, scriptor said: {out}"
    return replies


def test_scriptor_desfire_select_statuses(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    replies = _scriptor(
        pcscd,
        [
            "90 5A 00 00 03 00 00 00 00  # SelectApplication 000000: the PICC",
            "905A00000301020300  # SelectApplication 030201: not on the card",
            "90 5A 00 00 02 01 02 00  # SelectApplication with a 2-byte AID",
        ],
    )
    assert [r.shape for r in replies] == [("9100", 0), ("91A0", 0), ("917E", 0)]


def test_scriptor_desfire_info_script(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    replies = _scriptor(
        pcscd,
        [
            "90 60 00 00 00  # GetVersion",
            "90 AF 00 00 00  # AdditionalFrame",
            "90 AF 00 00 00  # AdditionalFrame",
            "90 6A 00 00 00  # GetApplicationIDs",
            "90 45 00 00 00  # GetKeySettings",
            "90 5A 00 00 03 01 02 03 00  # SelectApplication 030201: not on the card",
            "90 5A 00 00 02 01 02 00  # SelectApplication with a 2-byte AID",
            "90 6A 00 00 01 00 00  # GetApplicationIDs with a stray data byte",
        ],
    )
    assert [r.shape for r in replies] == [
        ("91AF", 7),
        ("91AF", 7),
        ("9100", 14),
        ("9100", 0),
        ("9100", 2),
        ("91A0", 0),
        ("917E", 0),
        ("917E", 0),
    ]
    assert replies[2].data[:7] == UID
    assert replies[4].data == bytes.fromhex("0F01")  # factory: 0F, one DES key


def test_scriptor_desfire_native_framing(pcscd: PcscdProcess, desfire: VirtualDesfire) -> None:
    # Native DESFire framing: the command byte and its data, no ISO wrapper;
    # the answer is the status byte, then the data.
    raw = _scriptor_raw(
        pcscd,
        [
            "60  # GetVersion (a one-byte APDU: vpcd must carry it as a command)",
            "AF  # AdditionalFrame",
            "AF  # AdditionalFrame",
            "6A  # GetApplicationIDs",
            "5A 01 02 03  # SelectApplication 030201: not on the card",
        ],
    )
    assert [(frame[0], len(frame) - 1) for frame in raw] == [
        (0xAF, 7),
        (0xAF, 7),
        (0x00, 14),
        (0x00, 0),
        (0xA0, 0),
    ]
    assert raw[2][1:8] == UID


def test_scriptor_ntag_ndef_script(pcscd: PcscdProcess, ntag: VirtualNtag424) -> None:
    replies = _scriptor(
        pcscd,
        [
            "00 A4 04 00 07 D2 76 00 00 85 01 01 00  # SELECT the NDEF application",
            "00 A4 00 0C 02 E1 04  # SELECT the NDEF file",
            "00 B0 00 00 02  # READ BINARY: NLEN",
            "00 B0 00 02 10  # READ BINARY: the first 16 bytes of the message",
        ],
    )
    assert [r.shape for r in replies] == [("9000", 0), ("9000", 0), ("9000", 2), ("9000", 16)]
    assert replies[3].data.startswith(b"\xd1\x01")  # a short well-known record
    assert replies[3].data[3:5] == b"U\x04"  # a URI, https://


def test_scriptor_ntag_capability_container(pcscd: PcscdProcess, ntag: VirtualNtag424) -> None:
    replies = _scriptor(
        pcscd,
        [
            "00 A4 04 00 07 D2 76 00 00 85 01 01 00  # SELECT the NDEF application",
            "00 A4 00 0C 02 E1 03  # SELECT the capability container",
            "00 B0 00 00 0F  # READ BINARY: the CC",
            "00 A4 00 0C 02 E1 04  # SELECT the NDEF file the CC names",
            "00 B0 00 00 02  # READ BINARY: NLEN",
        ],
    )
    assert [r.shape for r in replies] == [
        ("9000", 0),
        ("9000", 0),
        ("9000", 15),
        ("9000", 0),
        ("9000", 2),
    ]
    _check_capability_container(replies[2].data)
    max_size = int.from_bytes(replies[2].data[11:13], "big")
    assert int.from_bytes(replies[4].data, "big") + 2 <= max_size


# -- python-desfire over pyscard ---------------------------------------------------


def _python_desfire() -> Any:
    """PyPI's python-desfire (a test extra), or a failure under CI=true."""
    try:
        return importlib.import_module("desfire")
    except ImportError as error:
        message = f"python-desfire is not installed (pyproject.toml's test extra): {error}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def outside(pcscd: PcscdProcess, slot: PcscSlot) -> Iterator[Callable[[], Any]]:
    """Connect python-desfire to our reader through pyscard, as its README shows.

    pyscard's transmit waits for the card without a bound, so a watchdog
    takes the card away if the test is still running after the bound: the
    transmit then fails instead of hanging the suite.
    """
    from smartcard.System import readers

    def tear_away() -> None:
        print(f"python-desfire got no answer within {_TIMEOUT:.0f} s; card taken away")
        slot.remove()

    watchdog = threading.Timer(_TIMEOUT, tear_away)
    watchdog.daemon = True
    watchdog.start()
    connections: list[Any] = []

    def connect() -> Any:
        library = _python_desfire()
        (reader,) = (r for r in readers() if str(r) == pcscd.reader_name)
        connection = reader.createConnection()
        connection.connect()
        connections.append(connection)
        return library.DESFire(library.PCSCDevice(connection.component))

    try:
        yield connect
    finally:
        watchdog.cancel()
        for connection in connections:
            # Release the PC/SC context now, while our pcscd still runs (pyscard
            # would do it at garbage collection, after the module stopped it).
            with contextlib.suppress(Exception):  # a torn card's connection is gone already
                connection.component.release()


# Key settings 0F as python-desfire names its four low bits.
_FLAGS_0F = {
    "KS_ALLOW_CHANGE_MK",
    "KS_LISTING_WITHOUT_MK",
    "KS_CREATE_DELETE_WITHOUT_MK",
    "KS_CONFIGURATION_CHANGEABLE",
}


def _flags(settings: Any) -> set[str]:
    """The single-bit flags python-desfire parsed from a key settings byte.

    Its `get_settings()` does not give the byte back: it adds every member
    whose bits are set, the multi-bit ones too (0F reads back as 1E).
    """
    return {flag.name for flag in settings.settings if flag.value in (0x01, 0x02, 0x04, 0x08)}


def _aes_key(key: bytes) -> Any:
    library = _python_desfire()
    enums = importlib.import_module("desfire.enums")
    schemas = importlib.import_module("desfire.schemas")
    settings = schemas.KeySettings(key_type=enums.DESFireKeyType.DF_KEY_AES)
    return library.DESFireKey(settings, key.hex())


def test_python_desfire_get_card_version(
    desfire: VirtualDesfire, outside: Callable[[], Any]
) -> None:
    version = outside().get_card_version()
    assert len(version.raw_bytes) == 28  # 7 + 7 + 14 over three native frames
    assert (version.hardware_vendor_id, version.hardware_type) == (0x04, 0x01)  # NXP, DESFire
    assert version.hardware_major_version == 0x12  # EV2
    assert (version.software_vendor_id, version.software_type) == (0x04, 0x01)
    assert bytes(version.uid) == UID


def test_python_desfire_factory_key_settings(
    desfire: VirtualDesfire, outside: Callable[[], Any]
) -> None:
    enums = importlib.import_module("desfire.enums")
    settings = outside().get_key_setting()
    # A factory PICC: settings 0F, one DES key.
    assert _flags(settings) == _FLAGS_0F
    assert settings.key_type is enums.DESFireKeyType.DF_KEY_2K3DES
    assert settings.max_keys == 1


def test_python_desfire_lists_and_selects(
    issued: VirtualDesfire, outside: Callable[[], Any]
) -> None:
    card = outside()
    assert card.get_application_ids() == [list(PURSE_AID)]
    refusal = importlib.import_module("desfire.exceptions").DESFireCommunicationError
    with pytest.raises(refusal) as refused:
        card.select_application([0x01, 0x02, 0x03])  # 030201: not on the card
    assert refused.value.status_code == 0xA0  # APPLICATION_NOT_FOUND
    card.select_application(list(PURSE_AID))


def test_python_desfire_authenticates_with_the_default_key(
    slot: PcscSlot, outside: Callable[[], Any]
) -> None:
    # An application made by our own client, its two AES keys still all zero.
    card = VirtualDesfire(UID)
    local = VirtualReader()
    local.insert(card)
    DesfireClient(local.connect()).create_application(0x123456, 0x0F, 2)
    local.remove()
    slot.insert(card)
    enums = importlib.import_module("desfire.enums")
    client = outside()
    client.select_application([0x56, 0x34, 0x12])
    client.authenticate(0, _aes_key(bytes(16)))  # AuthenticateAES (EV1), default key
    # Now every answer carries a CMAC that python-desfire checks.
    settings = client.get_key_setting()
    assert _flags(settings) == _FLAGS_0F
    assert settings.key_type is enums.DESFireKeyType.DF_KEY_AES and settings.max_keys == 2
    assert client.get_key_version(1) == 0
    assert client.get_file_ids() == []


def test_python_desfire_reads_the_purse_with_its_diversified_key(
    issued: VirtualDesfire, outside: Callable[[], Any], keystore: SoftwareKeyStore
) -> None:
    client = outside()
    client.select_application(list(PURSE_AID))
    # Key 3 (read), diversified per card by AN10922 from the chain's read master.
    client.authenticate(3, _aes_key(keystore.card_key(KeyRole.READ, UID, PURSE_AID)))
    assert sorted(client.get_file_ids()) == [1, 2]
    assert client.get_key_version(3) == keystore.key_version(KeyRole.READ)
