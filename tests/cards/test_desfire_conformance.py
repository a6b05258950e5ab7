# SPDX-License-Identifier: Apache-2.0
"""The virtual DESFire answers raw APDUs as a real chip does (issue 18).

Each test sends what an outside client (libfreefare, OpenSC, scriptor)
sends, byte for byte, and checks frame sizes and status words, in process
and through pyscard -> pcscd -> vpcd -> bridge -> card. The reader halves of
the DES authentications are written here from the protocol, not taken from
the card's code, and a real blank card's trace pins the 0x0A card half.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.modes import ECB

from loyaltysdk.cards.desfire import (
    AccessRights,
    CommMode,
    DesfireClient,
    FileSettings,
    FileType,
    KeyType,
)
from loyaltysdk.cards.keystore import KeyRole, SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.simulators._legacy import LegacyCardAuthentication, crc16_a
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader

from ..slots import PcscSlot
from ._legacy_vectors import BLANK_CARD_0A_TRACE

Raw = Callable[[bytes], bytes]
AES_KEY = bytes(range(16))


def _raw(slot: VirtualReader | PcscSlot) -> Raw:
    # Transport.transmit insists on a 4-byte APDU and a status word; an
    # outside client in native mode sends 1-byte frames and gets answers
    # that start with the status byte, so these tests use the raw channel.
    transport = slot.connect()
    return transport._transmit


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# -- reader-side DES, from the protocol ------------------------------------------


def _e(key: bytes, block: bytes) -> bytes:
    enc = Cipher(TripleDES(key + key[:8]), ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _d(key: bytes, block: bytes) -> bytes:
    dec = Cipher(TripleDES(key + key[:8]), ECB()).decryptor()
    return dec.update(block) + dec.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rotl(data: bytes) -> bytes:
    return data[1:] + data[:1]


def _send_mode(key: bytes, plain: bytes) -> bytes:
    """The D40 reader's enciphering: c_i = D(p_i ^ c_i-1), IV zero."""
    out, previous = b"", bytes(8)
    for i in range(0, len(plain), 8):
        previous = _d(key, _xor(plain[i : i + 8], previous))
        out += previous
    return out


def _crc_a(data: bytes) -> bytes:
    crc = 0x6363
    for byte in data:
        byte ^= crc & 0xFF
        byte ^= (byte << 4) & 0xFF
        crc = (crc >> 8) ^ (byte << 8) ^ (byte << 3) ^ (byte >> 4)
    return (crc & 0xFFFF).to_bytes(2, "little")


def _authenticate_des(raw: Raw, *, iso: bool, key: bytes = bytes(16)) -> bytes:
    """0x0A or 0x1A with key 0, ISO-wrapped; returns the 16-byte session key."""
    answer = raw(bytes([0x90, 0x1A if iso else 0x0A, 0, 0, 1, 0, 0]))
    assert len(answer) == 8 + 2 and answer[-2:] == b"\x91\xaf"
    challenge = answer[:8]
    rnd_b, rnd_a = _d(key, challenge), os.urandom(8)
    if iso:  # plain CBC, IV carried from the challenge
        c1 = _e(key, _xor(rnd_a, challenge))
        token = c1 + _e(key, _xor(_rotl(rnd_b), c1))
    else:
        token = _send_mode(key, rnd_a + _rotl(rnd_b))
    answer = raw(_h("90AF000010") + token + b"\x00")
    assert len(answer) == 8 + 2 and answer[-2:] == b"\x91\x00"
    iv = token[-8:] if iso else bytes(8)
    assert _xor(_d(key, answer[:8]), iv) == _rotl(rnd_a)
    return (rnd_a[:4] + rnd_b[:4]) * 2  # a DES key: the session key is DES too


# -- GetVersion ---------------------------------------------------------------------


def test_get_version_is_three_frames(slot: VirtualReader | PcscSlot) -> None:
    card = VirtualDesfire(_h("04112233445566"))
    slot.insert(card)
    raw = _raw(slot)
    first = raw(_h("9060000000"))  # GetVersion
    assert len(first) == 7 + 2 and first[-2:] == b"\x91\xaf"  # hardware
    second = raw(_h("90AF000000"))
    assert len(second) == 7 + 2 and second[-2:] == b"\x91\xaf"  # software
    third = raw(_h("90AF000000"))
    assert len(third) == 14 + 2 and third[-2:] == b"\x91\x00"  # UID, batch, week, year
    assert third[:7] == card.uid
    # Native framing: the status byte first.
    assert [len(a) for a in (raw(b"\x60"), raw(b"\xaf"), raw(b"\xaf"))] == [8, 8, 15]


def test_get_version_in_a_session_keeps_three_frames() -> None:
    card = VirtualDesfire(picc_key_type=KeyType.AES)
    reader = VirtualReader()
    reader.insert(card)
    client = DesfireClient(reader.connect())
    sizes: list[int] = []
    client.transport.add_trace(lambda apdu, data, sw: sizes.append(len(data)))
    client.authenticate(0, bytes(16))
    sizes.clear()
    assert client.get_version().uid == card.uid
    assert sizes == [7, 7, 14 + 8]  # the MAC rides on the last frame


# -- framing and ISO SELECT -----------------------------------------------------------


def test_native_framing_and_iso_select(slot: VirtualReader | PcscSlot) -> None:
    slot.insert(VirtualDesfire())
    raw = _raw(slot)
    # ISO 7816-4 SELECT by DF name of the PICC level, as libfreefare sends it.
    assert raw(_h("00A4040007D276000085010000")) == b"\x90\x00"
    assert raw(_h("00A4040007D276000085010100")) == b"\x6a\x82"  # no such DF name
    assert raw(_h("00B0000000")) == b"\x6d\x00"  # READ BINARY: no such instruction
    # Any other first byte is a native command byte, as on a real card: 80 is none.
    assert raw(_h("80A4040000")) == b"\x1c"
    assert raw(_h("5A000000")) == b"\x00"  # native SelectApplication 000000
    assert raw(_h("5A010203")) == b"\xa0"  # native: application not found
    assert raw(_h("45")) == b"\x00\x0f\x01"  # native GetKeySettings: 0F, one DES key
    assert raw(_h("905A00000300000000")) == b"\x91\x00"  # ISO-wrapped, still fine


# -- factory state ---------------------------------------------------------------------


def test_a_blank_card_has_the_des_zero_key(slot: VirtualReader | PcscSlot) -> None:
    card = VirtualDesfire()
    slot.insert(card)
    raw = _raw(slot)
    assert raw(_h("9045000000")) == _h("0F01 9100")  # settings 0F, 1 key, DES
    assert raw(_h("906400000100 00")) == _h("00 9100")  # key version 0
    # An AES-only tool is told the key is not for it.
    assert raw(_h("9071000002000000")) == _h("91AE")
    assert raw(_h("90AA0000010000")) == _h("91AE")
    _authenticate_des(raw, iso=True)
    _authenticate_des(raw, iso=False)


def test_factory_card_personalised_to_aes(slot: VirtualReader | PcscSlot) -> None:
    card = VirtualDesfire()
    slot.insert(card)
    raw = _raw(slot)
    session_key = _authenticate_des(raw, iso=False)
    # ChangeKey 0x80 (PICC master key, to AES): key, version, CRC_A, padding.
    plain = AES_KEY + b"\x05"
    plain += _crc_a(plain)
    plain += bytes(24 - len(plain))
    assert raw(_h("90C4000019 80") + _send_mode(session_key, plain) + b"\x00") == _h("9100")
    assert card.picc_key_type is KeyType.AES and card.picc_key == AES_KEY
    assert raw(_h("9045000000")) == _h("0F81 9100")  # now one AES key
    assert raw(_h("90640000010000")) == _h("05 9100")
    assert raw(_h("900A0000010000")) == _h("91AE")  # the DES handshake is over
    client = DesfireClient(slot.connect())
    client.select_application(0)
    client.authenticate(0, AES_KEY)  # EV2 now works
    client.format_picc()


def test_change_key_with_a_bad_crc_is_an_integrity_error() -> None:
    card = VirtualDesfire()
    raw = card.process
    session_key = _authenticate_des(raw, iso=False)
    plain = AES_KEY + b"\x00" + b"\x00\x00" + bytes(5)
    assert raw(_h("90C4000019 80") + _send_mode(session_key, plain) + b"\x00") == _h("911E")
    assert card.picc_key_type is KeyType.DES


def test_legacy_card_half_against_a_real_blank_card() -> None:
    trace = BLANK_CARD_0A_TRACE
    auth = LegacyCardAuthentication(0, bytes(16), iso=False, rnd_b=trace["rnd_b"])
    assert auth.challenge() == trace["challenge"]
    reply, session = auth.verify(trace["token"])
    assert reply == trace["reply"] and session.key_no == 0


def test_crc_a_published_examples() -> None:
    # ISO/IEC 14443-3 Annex B: 00 00 -> A0 1E, 12 34 -> 26 CF.
    for data, crc in ((b"\x00\x00", b"\xa0\x1e"), (b"\x12\x34", b"\x26\xcf")):
        assert crc16_a(data) == crc == _crc_a(data)


def test_purse_issues_a_factory_card(keystore: SoftwareKeyStore) -> None:
    card = VirtualDesfire()
    reader = VirtualReader()
    reader.insert(card)
    purse = Purse(keystore, clock=lambda: 1_800_000_000)
    purse.issue(reader.connect(), card.uid, initial=500)
    assert card.picc_key_type is KeyType.DES  # free creation needed no PICC key
    client = DesfireClient(reader.connect())
    client.select_application(purse.layout.aid)
    settings = client.get_file_settings(purse.layout.value_file)
    assert settings == FileSettings(
        FileType.VALUE,
        CommMode.FULL,
        AccessRights(read=0xF, write=1, read_write=2, change=0),
        lower_limit=0,
        upper_limit=purse.layout.upper_limit,
        limited_credit_value=0,
        limited_credit=True,
    )
    log = client.get_file_settings(purse.layout.log_file)
    assert (log.file_type, log.record_size, log.max_records, log.current_records) == (
        FileType.CYCLIC_RECORD,
        48,
        purse.layout.log_records,
        1,
    )
    assert client.get_key_version(1) == keystore.key_version(KeyRole.DEBIT)
    # In an EV2 session the same commands travel MACed.
    client.authenticate(3, keystore.card_key(KeyRole.READ, card.uid, _aid(purse)))
    assert client.get_file_settings(purse.layout.log_file) == log
    assert client.get_key_version(0) == keystore.key_version(KeyRole.MASTER)


def _aid(purse: Purse) -> bytes:
    return purse.layout.aid.to_bytes(3, "little")


# -- the commands that were missing ---------------------------------------------------------


def test_directory_commands(slot: VirtualReader | PcscSlot) -> None:
    card = VirtualDesfire(eeprom_size=32 * 1024)
    slot.insert(card)
    raw = _raw(slot)
    assert raw(_h("906A000000")) == _h("9100")  # GetApplicationIDs: none yet
    free = raw(_h("906E000000"))  # GetFreeMemory: 3 bytes
    assert len(free) == 5 and int.from_bytes(free[:3], "little") == 32 * 1024
    for n in range(1, 21):  # CreateApplication, 1 AES key
        assert raw(_h("90CA000005") + n.to_bytes(3, "little") + _h("0F8100")) == _h("9100")
    # With a DF name (ISO file id E1 10).
    assert raw(_h("90CA00000E 300000 0F A1 10E1 D2760000850101 00")) == _h("9100")
    first = raw(_h("906A000000"))
    assert len(first) == 57 + 2 and first[-2:] == _h("91AF")  # 19 whole AIDs
    rest = raw(_h("90AF000000"))
    assert len(rest) == 2 * 3 + 2 and rest[-2:] == _h("9100")
    assert raw(_h("906D000000")) == _h("300000 10E1 D2760000850101 9100")  # GetDFNames
    assert raw(_h("906F000000")) == _h("919D")  # GetFileIDs: no files at PICC level
    assert raw(_h("905A000003010000 00")) == _h("9100")
    assert raw(_h("906F000000")) == _h("9100")  # GetFileIDs: none
    assert raw(_h("900A0000010000")) == _h("91AE")  # application keys are AES
    assert raw(_h("905A000003010000 00")) == _h("9100")
    assert raw(_h("90F50000010100")) == _h("91F0")  # GetFileSettings: no file 1
    assert raw(_h("906400000100 00")) == _h("00 9100")
    assert raw(_h("90640000010100")) == _h("9140")  # only key 0


def test_delete_application_as_the_datasheet_says(slot: VirtualReader | PcscSlot) -> None:
    card = VirtualDesfire()
    slot.insert(card)
    raw = _raw(slot)
    for aid in ("010000", "020000"):
        assert raw(_h("90CA000005") + _h(aid) + _h("0F8100")) == _h("9100")
    # Free creation does not extend to deletion: the PICC master key is needed.
    assert raw(_h("90DA000003 010000 00")) == _h("91AE")
    assert set(card.apps) == {1, 2}
    _authenticate_des(raw, iso=False)
    assert raw(_h("90DA000003 010000 00")) == _h("9100")
    assert raw(_h("90DA000003 020000 00")) == _h("9100")  # still authenticated
    assert raw(_h("90DA000003 020000 00")) == _h("91A0")
    assert card.apps == {}
    # An application's own master key deletes it too.
    assert raw(_h("90CA000005 030000 0F81 00")) == _h("9100")
    client = DesfireClient(slot.connect())
    client.select_application(3)
    client.authenticate(0, bytes(16))
    client.delete_application(3)
    assert card.apps == {}


def test_native_write_record_is_the_same_write_record() -> None:
    card = VirtualDesfire()
    reader = VirtualReader()
    reader.insert(card)
    client = DesfireClient(reader.connect())
    client.select_application(0)
    client.create_application(0x010203, 0x0F, 1)
    client.select_application(0x010203)
    client.create_cyclic_record_file(
        1, CommMode.PLAIN, AccessRights(0xE, 0xE, 0xE, 0xE), record_size=4, max_records=3
    )
    # WriteRecord 3B, native framing: file 1, offset 0, length 4, data.
    assert card.process(_h("3B 01 000000 040000 DEADBEEF")) == b"\x00"
    assert card.process(_h("C7")) == b"\x00"
    assert card.records_of(0x010203, 1) == [_h("DEADBEEF")]
    assert card.process(_h("AB 01 000000 000000")) == _h("00 DEADBEEF")  # ReadRecords AB


# -- exact lengths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "apdu",
    [
        "90450000010000",  # GetKeySettings with a data byte
        "9060000001FF00",  # GetVersion with a data byte
        "906A0000010000",  # GetApplicationIDs with a data byte
        "906E0000010000",  # GetFreeMemory with a data byte
        "90710000030000AA00",  # AuthenticateEV2First: a stray byte after LenCap
        "907100000100 00",  # AuthenticateEV2First without LenCap
        "900A00000200 0000",  # Authenticate with two bytes
        "905A0000020000 00",  # SelectApplication with two AID bytes
        "9064000002000000",  # GetKeyVersion with two bytes
        "90FC0000010000",  # FormatPICC with a data byte
    ],
)
def test_every_command_checks_its_length(apdu: str) -> None:
    card = VirtualDesfire(picc_key_type=KeyType.AES)
    assert card.process(_h(apdu)) == _h("917E")


def test_next_frame_request_with_data_is_a_length_error() -> None:
    card = VirtualDesfire()
    assert card.process(_h("9060000000"))[-2:] == _h("91AF")
    assert card.process(_h("90AF00000100 00")) == _h("917E")


# -- the command counter ------------------------------------------------------------------


def test_spent_command_counter_refuses_and_never_raises(slot: VirtualReader | PcscSlot) -> None:
    card = VirtualDesfire(picc_key_type=KeyType.AES)
    slot.insert(card)
    client = DesfireClient(slot.connect())
    client.select_application(0)
    session = client.authenticate(0, bytes(16))
    assert card.session is not None
    card.session.counter = session.counter = 0xFFFE  # no need for 65,534 commands
    client.get_key_settings()  # the last command the counter allows
    assert card.session is not None and card.session.counter == 0xFFFF
    raw = _raw(slot)
    # GetKeySettings with some MAC: refused before the MAC is even computed.
    assert raw(_h("9045000008 0000000000000000 00")) == _h("91AE")
    assert card.session is None  # the session is over
    client.authenticate(0, bytes(16))  # a new authentication starts at CmdCtr 0
    assert client.get_key_settings() == (0x0F, 0x81)
