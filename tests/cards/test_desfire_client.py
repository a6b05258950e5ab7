# SPDX-License-Identifier: Apache-2.0
"""The DESFire client against the virtual card, and bad answers from a card."""

from __future__ import annotations

import pytest

from loyaltysdk import CardError
from loyaltysdk._errors import (
    CardAuthenticationFailed,
    CardIntegrityError,
    CardMute,
    CardRemoved,
    MalformedResponse,
)
from loyaltysdk.cards.desfire import (
    STATUS_ERRORS,
    AccessRights,
    ApplicationNotFound,
    AuthenticationError,
    BoundaryError,
    CommMode,
    DesfireClient,
    DesfireError,
    DuplicateError,
    KeyType,
    OutOfEeprom,
    PermissionDenied,
    UnknownStatus,
)
from loyaltysdk.cards.transport import MockTransport
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader

AID = 0x112233
KEY1 = bytes(range(16))
KEY2 = bytes(range(16, 32))


def _prepared(card: VirtualDesfire) -> tuple[VirtualReader, DesfireClient]:
    reader = VirtualReader()
    reader.insert(card)
    client = DesfireClient(reader.connect())
    client.select_application(0)
    client.create_application(AID, 0x0B, 3)
    client.select_application(AID)
    client.authenticate(0, bytes(16))
    client.change_key(1, KEY1)
    client.change_key(2, KEY2)
    client.create_value_file(
        1,
        CommMode.FULL,
        AccessRights(0xF, 1, 2, 0),
        lower_limit=0,
        upper_limit=10_000,
        value=100,
        limited_credit=True,
    )
    client.create_cyclic_record_file(
        2, CommMode.MAC, AccessRights(0xE, 2, 1, 0), record_size=8, max_records=4
    )
    return reader, client


def test_every_status_code_has_a_named_exception() -> None:
    codes = {0x0C, 0x0E, 0x1C, 0x1E, 0x40, 0x7E, 0x9D, 0x9E, 0xA0, 0xA1, 0xAE, 0xBE}
    codes |= {0xC1, 0xCA, 0xCD, 0xCE, 0xDE, 0xEE, 0xF0, 0xF1}
    assert set(STATUS_ERRORS) == codes
    for code, cls in STATUS_ERRORS.items():
        assert issubclass(cls, DesfireError) and cls.code == code
        assert cls.__name__ != "DesfireError"


def test_version_uid_and_key_settings() -> None:
    card = VirtualDesfire(bytes.fromhex("04010203040506"))
    _, client = _prepared(card)
    version = client.get_version()  # in MAC mode, three frames
    assert version.uid == card.uid and version.generation == "EV2"
    assert client.get_card_uid() == card.uid
    assert client.get_key_settings() == (0x0B, 0x83)


def test_value_file_commit_and_abort() -> None:
    card = VirtualDesfire()
    _, client = _prepared(card)
    client.authenticate(2, KEY2)
    client.credit(1, 50, CommMode.FULL)
    assert client.get_value(1, CommMode.FULL) == 100  # staged, not yet committed
    client.commit_transaction()
    assert client.get_value(1, CommMode.FULL) == 150
    client.authenticate(1, KEY1)
    client.debit(1, 30, CommMode.FULL)
    client.abort_transaction()
    assert client.get_value(1, CommMode.FULL) == 150
    client.debit(1, 30, CommMode.FULL)
    client.commit_transaction()
    client.limited_credit(1, 30, CommMode.FULL)
    client.commit_transaction()
    assert card.value_of(AID, 1) == 150


def test_records_cycle_and_read_free() -> None:
    card = VirtualDesfire()
    _, client = _prepared(card)
    client.authenticate(2, KEY2)
    for n in range(5):
        client.write_record(2, bytes([n]) * 8, CommMode.MAC)
        client.commit_transaction()
    # Read access is free (0xE); four records of which one is the spare.
    plain = DesfireClient(client.transport)
    plain.select_application(AID)
    records = plain.read_records(2, 8, CommMode.PLAIN)
    assert [r[0] for r in records] == [4, 3, 2]
    assert plain.read_records(2, 8, CommMode.PLAIN, count=1) == [bytes([4]) * 8]


def test_refusals_are_typed_and_drop_the_session() -> None:
    card = VirtualDesfire()
    _, client = _prepared(card)
    client.authenticate(1, KEY1)
    with pytest.raises(BoundaryError):
        client.debit(1, 10_000, CommMode.FULL)
    assert client.session is None
    with pytest.raises(AuthenticationError):
        client.get_value(1, CommMode.FULL)
    client.authenticate(1, KEY1)
    with pytest.raises(PermissionDenied):
        client.credit(1, 1, CommMode.FULL)  # credit needs key 2
    with pytest.raises(ApplicationNotFound):
        client.select_application(0x999999)
    client.select_application(0)
    with pytest.raises(DuplicateError):
        client.create_application(AID, 0x0B, 3)
    assert card.value_of(AID, 1) == 100


def test_wrong_key_and_cloned_uid_fail_authentication() -> None:
    card = VirtualDesfire()
    _, client = _prepared(card)
    with pytest.raises(CardAuthenticationFailed):
        client.authenticate(1, KEY2)
    clone = VirtualDesfire(card.uid)  # same UID, issued with other keys
    reader = VirtualReader()
    reader.insert(clone)
    other = DesfireClient(reader.connect())
    other.select_application(0)
    other.create_application(AID, 0x0B, 3)
    other.select_application(AID)
    with pytest.raises(CardAuthenticationFailed):
        other.authenticate(1, KEY1)


def test_full_eeprom_is_out_of_eeprom() -> None:
    card = VirtualDesfire(eeprom_size=200)
    reader = VirtualReader()
    reader.insert(card)
    client = DesfireClient(reader.connect())
    client.select_application(0)
    with pytest.raises(OutOfEeprom):
        client.create_application(AID, 0x0B, 14)


def test_mute_card_and_removed_card() -> None:
    card = VirtualDesfire()
    reader, client = _prepared(card)
    card.faults.mute = True
    with pytest.raises(CardMute):
        client.get_version()
    reader.remove()
    with pytest.raises(CardRemoved):
        client.get_version()


def test_persisted_card_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    card = VirtualDesfire()
    _prepared(card)
    card.save(tmp_path / "card.json")
    again = VirtualDesfire.load(tmp_path / "card.json")
    assert again.to_json() == card.to_json()
    reader = VirtualReader()
    reader.insert(again)
    client = DesfireClient(reader.connect())
    client.select_application(AID)
    client.authenticate(1, KEY1)
    assert client.get_value(1, CommMode.FULL) == 100


# -- bad answers from the card side ---------------------------------------------


def _scripted(*answers: bytes) -> DesfireClient:
    queue = list(answers)
    return DesfireClient(MockTransport(lambda apdu: queue.pop(0)))


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ((b"\x91",), MalformedResponse),  # truncated: no status word
        ((b"",), MalformedResponse),
        ((b"\x6a\x82",), UnknownStatus),  # an ISO status where a DESFire one belongs
        ((b"\x91\x42",), UnknownStatus),  # an unknown DESFire status
        ((b"\x01\x02\x03\x91\x00",), MalformedResponse),  # GetValue with 3 bytes
        ((b"\x00" * 300 + b"\x91\x00",), MalformedResponse),  # oversized GetValue
    ],
)
def test_bad_answers_are_typed_errors(answers: tuple[bytes, ...], error: type[Exception]) -> None:
    client = _scripted(*answers)
    with pytest.raises(error) as caught:
        client.get_value(1, CommMode.PLAIN)
    assert isinstance(caught.value, CardError)


def test_runaway_chaining_is_refused() -> None:
    client = DesfireClient(MockTransport(lambda apdu: b"\x00\x91\xaf"))
    with pytest.raises(MalformedResponse):
        client.get_version()


def test_wrong_response_mac_is_an_integrity_error() -> None:
    card = VirtualDesfire()
    _reader, client = _prepared(card)
    client.authenticate(1, KEY1)
    transport = client.transport

    def flip_mac(index: int, apdu: bytes) -> bytes | None:
        raw = card.process(apdu)
        return raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:]

    transport.set_fault(flip_mac)
    with pytest.raises(CardIntegrityError):
        client.get_value(1, CommMode.FULL)
    transport.set_fault(None)
    assert client.session is None
    client.authenticate(1, KEY1)
    transport.set_fault(lambda i, apdu: b"\x01\x91\x00")  # too short for its MAC
    with pytest.raises(MalformedResponse):
        client.get_value(1, CommMode.FULL)
    transport.set_fault(None)
    assert client.session is None and card.value_of(AID, 1) == 100


@pytest.mark.parametrize(
    "answers",
    [(b"\x01\x02\x91\xaf",), (b"\x91\x00",), (bytes(16) + b"\x91\xaf", bytes(5) + b"\x91\x00")],
    ids=["short challenge", "OK instead of a challenge", "short proof"],
)
def test_bad_authentication_answers(answers: tuple[bytes, ...]) -> None:
    client = _scripted(*answers)
    with pytest.raises(MalformedResponse):
        client.authenticate(0, bytes(16))
    assert client.session is None


def test_authenticate_non_first_keeps_ti_and_counter() -> None:
    card = VirtualDesfire()
    _, client = _prepared(card)
    first = client.authenticate(1, KEY1)
    client.get_value(1, CommMode.FULL)
    second = client.authenticate(2, KEY2, first=False)
    assert second.ti == first.ti and second.counter == 1 and second.key_no == 2
    assert second.mac_key != first.mac_key
    client.credit(1, 5, CommMode.FULL)  # the card agrees on keys and counter
    client.commit_transaction()
    assert card.value_of(AID, 1) == 105


def test_format_picc_needs_the_picc_master_key() -> None:
    # A card whose PICC master key was already changed to AES (a factory
    # card's is DES: see test_desfire_conformance.py).
    card = VirtualDesfire(picc_key_type=KeyType.AES)
    _, client = _prepared(card)
    client.select_application(0)
    with pytest.raises(AuthenticationError):
        client.format_picc()
    client.authenticate(0, bytes(16))
    client.format_picc()
    assert card.apps == {}
