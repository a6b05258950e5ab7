# SPDX-License-Identifier: Apache-2.0
"""EV1 secure messaging after AuthenticateAES: the client against the virtual card.

Every test runs in process and through pyscard -> pcscd -> vpcd -> bridge
(the `reader` fixture). The application is created without authentication
(the PICC settings allow it) so nothing here depends on the PICC master
key's type; its keys are AES, as AuthenticateAES needs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.ciphers.modes import CBC, ECB
from cryptography.hazmat.primitives.cmac import CMAC

from loyaltysdk._errors import CardAuthenticationFailed, CardIntegrityError
from loyaltysdk.cards.desfire import (
    AccessRights,
    CommMode,
    DesfireClient,
    Ev1Session,
    IntegrityError,
)
from loyaltysdk.cards.transport import MockTransport, Transport
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader

from ..slots import PcscSlot

AID = 0x0EE1E1
MASTER, DEBIT_KEY, CREDIT_KEY = bytes(16), bytes(range(16)), bytes(range(16, 32))
FULL_VALUE, MAC_VALUE, MAC_LOG, FULL_LOG = 1, 2, 3, 4
Reader = VirtualReader | PcscSlot


def _personalise(client: DesfireClient) -> None:
    """An application of three AES keys, value and record files in MAC and full mode."""
    client.select_application(0)
    client.create_application(AID, 0x0B, 3)
    client.select_application(AID)
    session = client.authenticate_ev1(0, MASTER)
    assert isinstance(session, Ev1Session) and client.ev1_session_key == session.key
    client.change_key(1, DEBIT_KEY)
    client.change_key(2, CREDIT_KEY)
    for file_no, mode in ((FULL_VALUE, CommMode.FULL), (MAC_VALUE, CommMode.MAC)):
        client.create_value_file(
            file_no,
            mode,
            AccessRights(0xF, 1, 2, 0),
            lower_limit=0,
            upper_limit=10_000,
            value=100,
            limited_credit=True,
        )
    for file_no, mode in ((MAC_LOG, CommMode.MAC), (FULL_LOG, CommMode.FULL)):
        client.create_cyclic_record_file(
            file_no, mode, AccessRights(1, 2, 1, 0), record_size=12, max_records=4
        )


@pytest.fixture
def client(reader: Reader) -> DesfireClient:
    client = DesfireClient(reader.connect())
    _personalise(client)
    return client


def _relay(
    inner: Transport,
    command: Callable[[bytes], bytes] = lambda apdu: apdu,
    answer: Callable[[bytes, bytes], bytes] = lambda apdu, raw: raw,
) -> MockTransport:
    """A man in the middle: passes APDUs to `inner`, changing commands or answers."""

    def handler(apdu: bytes) -> bytes:
        data, sw = inner.transmit(command(apdu))
        return answer(apdu, data + sw.to_bytes(2, "big"))

    return MockTransport(handler)


def test_get_card_uid_comes_enciphered(reader: Reader, card: VirtualDesfire) -> None:
    transport = reader.connect()
    seen: list[bytes] = []
    transport.add_trace(lambda apdu, data, sw: seen.append(data))
    client = DesfireClient(transport)
    _personalise(client)
    client.authenticate_ev1(1, DEBIT_KEY)
    assert client.get_card_uid() == card.uid
    # 7-byte UID, CRC32 and zero padding: one AES block, the UID nowhere in clear.
    assert len(seen[-1]) == 16 and card.uid not in seen[-1]


def test_get_key_settings_and_version_are_maced(client: DesfireClient) -> None:
    assert client.get_key_settings() == (0x0B, 0x83)
    version = client.get_version()  # three frames, the CMAC in the last
    assert len(version.uid) == 7
    assert client.get_key_settings() == (0x0B, 0x83)


@pytest.mark.parametrize(
    ("file_no", "mode"), [(FULL_VALUE, CommMode.FULL), (MAC_VALUE, CommMode.MAC)]
)
def test_value_file_credit_debit_get_value(
    client: DesfireClient, card: VirtualDesfire, file_no: int, mode: CommMode
) -> None:
    client.authenticate_ev1(2, CREDIT_KEY)
    assert client.get_value(file_no, mode) == 100
    client.credit(file_no, 0x100, mode)  # ends in a zero byte, like many amounts
    client.commit_transaction()
    assert card.value_of(AID, file_no) == 356
    client.authenticate_ev1(1, DEBIT_KEY)
    client.debit(file_no, 56, mode)
    client.commit_transaction()
    client.limited_credit(file_no, 6, mode)
    client.commit_transaction()
    assert client.get_value(file_no, mode) == 306 == card.value_of(AID, file_no)


@pytest.mark.parametrize(("file_no", "mode"), [(MAC_LOG, CommMode.MAC), (FULL_LOG, CommMode.FULL)])
def test_record_write_and_read(
    client: DesfireClient, card: VirtualDesfire, file_no: int, mode: CommMode
) -> None:
    client.authenticate_ev1(2, CREDIT_KEY)
    client.write_record(file_no, b"first record", mode)
    client.commit_transaction()
    client.write_record(file_no, b"second\x00\x00\x00\x00\x00\x00", mode)
    client.commit_transaction()
    client.authenticate_ev1(1, DEBIT_KEY)
    assert client.read_records(file_no, 12, mode) == [b"second" + bytes(6), b"first record"]
    assert card.records_of(AID, file_no)[-1] == b"second" + bytes(6)


def test_a_tampered_answer_mac_drops_the_session(reader: Reader) -> None:
    def flip_key_settings_mac(apdu: bytes, raw: bytes) -> bytes:
        if apdu[1] == 0x45:  # GetKeySettings: 2 bytes, 8-byte CMAC, 91 00
            return raw[:-3] + bytes([raw[-3] ^ 0x01]) + raw[-2:]
        return raw

    client = DesfireClient(_relay(reader.connect(), answer=flip_key_settings_mac))
    _personalise(client)
    with pytest.raises(CardIntegrityError):
        client.get_key_settings()
    assert client.session is None and client.ev1_session_key is None


def test_a_tampered_command_mac_is_refused_by_the_card(
    reader: Reader, card: VirtualDesfire
) -> None:
    def flip_credit_mac(apdu: bytes) -> bytes:
        if apdu[1] == 0x0C:  # Credit in MAC mode: 90 0C 00 00 Lc file amount CMAC Le
            return apdu[:-2] + bytes([apdu[-2] ^ 0x80]) + apdu[-1:]
        return apdu

    client = DesfireClient(_relay(reader.connect(), command=flip_credit_mac))
    _personalise(client)
    client.authenticate_ev1(2, CREDIT_KEY)
    with pytest.raises(IntegrityError):  # 91 1E
        client.credit(MAC_VALUE, 5, CommMode.MAC)
    assert client.session is None and card.session is None
    assert card.value_of(AID, MAC_VALUE) == 100


def test_the_card_refuses_a_command_sent_in_clear_after_ev1(
    client: DesfireClient, card: VirtualDesfire
) -> None:
    client.authenticate_ev1(2, CREDIT_KEY)
    client.session = None  # a reader that forgot: Credit goes without its CMAC
    with pytest.raises(IntegrityError):
        client.credit(MAC_VALUE, 5, CommMode.MAC)
    assert card.session is None


def test_change_key_in_an_ev1_session(client: DesfireClient) -> None:
    new_debit = bytes([0xD1]) * 16
    client.authenticate_ev1(0, MASTER)
    client.change_key(1, new_debit, old_key=DEBIT_KEY)  # XORed, both CRCs
    client.change_key(0, bytes([0x0A]) * 16)  # its own key: the session ends
    assert client.session is None
    client.authenticate_ev1(1, new_debit)
    assert client.get_value(MAC_VALUE, CommMode.MAC) == 100
    with pytest.raises(CardAuthenticationFailed):
        client.authenticate_ev1(0, MASTER)


def test_ev2_non_first_needs_an_ev2_session(client: DesfireClient) -> None:
    client.authenticate_ev1(1, DEBIT_KEY)
    with pytest.raises(CardAuthenticationFailed):
        client.authenticate(1, DEBIT_KEY, first=False)


def test_select_application_ends_the_ev1_session(
    client: DesfireClient, card: VirtualDesfire
) -> None:
    client.authenticate_ev1(1, DEBIT_KEY)
    client.select_application(AID)
    assert client.session is None and card.session is None
    client.get_key_settings()  # in clear again, no CMAC expected either way


def _cmac_from(key: bytes, iv: bytes, message: bytes) -> bytes:
    """AES-CMAC started from `iv`, spelled out from SP 800-38B (subkeys, CBC)."""

    def double(block: bytes) -> bytes:
        value = int.from_bytes(block, "big") << 1
        if value >> 128:
            value ^= (1 << 128) | 0x87
        return value.to_bytes(16, "big")

    encryptor = Cipher(AES(key), ECB()).encryptor()  # L = E(K, 0), for the subkeys
    k1 = double(encryptor.update(bytes(16)))
    k2 = double(k1)
    if message and len(message) % 16 == 0:
        last_key, padded = k1, message
    else:
        last_key = k2
        padded = message + b"\x80" + bytes(-(len(message) + 1) % 16)
    padded = padded[:-16] + bytes(a ^ b for a, b in zip(padded[-16:], last_key, strict=True))
    chained = Cipher(AES(key), CBC(iv)).encryptor()
    return (chained.update(padded) + chained.finalize())[-16:]


def test_get_key_settings_answer_checked_without_the_session_code() -> None:
    # The card's answer recomputed with `cryptography` alone: the command's
    # CMAC (a plain CMAC, the IV being zero right after authentication) is
    # the IV of the answer's CMAC over settings || key count || status.
    card = VirtualDesfire(bytes.fromhex("04112233445566"))
    reader = VirtualReader()
    reader.insert(card)
    transport = reader.connect()
    answers: list[bytes] = []
    transport.add_trace(lambda apdu, data, sw: answers.append(data))
    client = DesfireClient(transport)
    client.select_application(0)
    client.create_application(AID, 0x0B, 3)
    client.select_application(AID)
    key = client.authenticate_ev1(0, MASTER).key
    assert client.get_key_settings() == (0x0B, 0x83)
    command_mac = CMAC(AES(key))
    command_mac.update(b"\x45")
    iv = command_mac.finalize()
    expected = _cmac_from(key, iv, b"\x0b\x83\x00")
    assert answers[-1] == b"\x0b\x83" + expected[:8]


def test_a_tampered_change_key_answer_drops_the_session(reader: Reader) -> None:
    def flip_change_key_mac(apdu: bytes, raw: bytes) -> bytes:
        if apdu[1] == 0xC4 and len(raw) == 10:  # another key's ChangeKey: CMAC, 91 00
            return bytes([raw[0] ^ 0x01]) + raw[1:]
        return raw

    client = DesfireClient(_relay(reader.connect(), answer=flip_change_key_mac))
    client.select_application(0)
    client.create_application(AID, 0x0B, 3)
    client.select_application(AID)
    client.authenticate_ev1(0, MASTER)
    with pytest.raises(CardIntegrityError):
        client.change_key(1, DEBIT_KEY)
    assert client.session is None
