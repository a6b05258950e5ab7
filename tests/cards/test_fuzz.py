# SPDX-License-Identifier: Apache-2.0
"""Bounded fuzzing of the virtual cards and the vpcd bridge (issue 18): no crash, no hang.

The cards get random byte strings and mutated valid APDUs, a few to a
session, fresh and personalised, with and without a configured fault. The
only exceptions allowed are the card's own `CardRemoved` / `CardMute` when a
fault was configured; every answer must be well formed. The checks say
nothing about what a command does, so they stay true as the cards learn
commands.

The bridge gets random framings from a fake vpcd (see test_vpcd_bridge.py):
it must answer what it can and then close when the peer stops, its thread
must end, and no card exception may reach it.

Runs are derandomized with a fixed, small number of examples, so CI meets the
same inputs every time in a few seconds. A soak draws new ones:

    LOYALTY_FUZZ_EXAMPLES=20000 scripts/test tests/cards/test_fuzz.py
"""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk._errors import CardMute, CardRemoved
from loyaltysdk.cards.desfire import DesfireClient
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.reader import VirtualReader

from .test_vpcd_bridge import _BOUND, FakeVpcd, frame

UID = bytes.fromhex("04A1B2C3D4E5F6")
_MAX_ANSWER = 0xFFFF  # what vpcd's 2-byte length can carry

# A soak draws new inputs: LOYALTY_FUZZ_EXAMPLES=20000 (then not derandomized).
_SOAK = os.environ.get("LOYALTY_FUZZ_EXAMPLES")
_EXAMPLES = int(_SOAK) if _SOAK else 400
_FUZZ = settings(
    max_examples=_EXAMPLES,
    derandomize=_SOAK is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Valid commands to mutate, each named.
_DESFIRE_SEEDS = [
    "9060000000",  # GetVersion
    "90AF000000",  # additional frame
    "905A00000300000000",  # SelectApplication PICC
    "905A00000301594C00",  # SelectApplication 4C5901 (the purse)
    "906A000000",  # GetApplicationIDs
    "906F000000",  # GetFileIDs
    "9071000002010000",  # AuthenticateEV2First key 1
    "90AA0000010000",  # AuthenticateAES (EV1) key 0
    "906C0000010100",  # GetValue file 1
    "90BB0000070200000000000000",  # ReadRecords file 2, all
    "90BD0000070100000000000000",  # ReadData file 1
    "90DC00000501E803000000",  # Debit file 1, 1000
    "90C7000000",  # CommitTransaction
    "90A7000000",  # AbortTransaction
    "90CA00000501594C0F8400",  # CreateApplication 4C5901
    "9051000000",  # GetCardUID
    "90FC000000",  # FormatPICC
    "00A4040007D276000085010000",  # ISO SELECT of the DESFire DF name
    "60",  # native GetVersion
    "5A000000",  # native SelectApplication PICC
]
_NTAG_SEEDS = [
    "00A4040007D276000085010100",  # SELECT the NDEF application
    "00A4000C02E104",  # SELECT the NDEF file
    "00A4000C02E103",  # SELECT the CC file
    "00B0000000",  # READ BINARY, all
    "00B0000010",  # READ BINARY 16 bytes
    "00B0FFFF00",  # READ BINARY past the end
    "00D6000002AABB",  # UPDATE BINARY
]


def _mutated(seeds: list[str]) -> st.SearchStrategy[bytes]:
    """A seed APDU with a few edits: a byte changed, cut short, grown, or its Lc lying."""
    edit = st.one_of(
        st.tuples(st.just("set"), st.integers(0, 40), st.integers(0, 255)),
        st.tuples(st.just("cut"), st.integers(0, 40), st.just(0)),
        st.tuples(st.just("grow"), st.integers(1, 40), st.integers(0, 255)),
        st.tuples(st.just("lc"), st.just(4), st.integers(0, 255)),
    )

    def apply(seed: str, edits: list[tuple[str, int, int]]) -> bytes:
        apdu = bytearray.fromhex(seed)
        for kind, at, value in edits:
            if kind == "set" and apdu:
                apdu[at % len(apdu)] = value
            elif kind == "cut":
                del apdu[at:]
            elif kind == "grow":
                apdu += bytes([value]) * at
            elif kind == "lc" and len(apdu) > at:
                apdu[at] = value
        return bytes(apdu)

    return st.builds(apply, st.sampled_from(seeds), st.lists(edit, max_size=3))


def _apdus(seeds: list[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=8),
        st.binary(max_size=300),
        _mutated(seeds),
        _mutated(seeds),
    )


def _well_formed(apdu: bytes, answer: object, *, native: bool) -> None:
    assert isinstance(answer, bytes), answer
    assert len(answer) <= _MAX_ANSWER, len(answer)
    # An ISO answer ends in SW1 SW2; a native DESFire answer (a command that
    # is neither class 00 nor wrapped in class 90) starts with its status byte.
    assert len(answer) >= (1 if native else 2), (apdu.hex(), answer.hex())


def _is_native(apdu: bytes) -> bool:
    return bool(apdu) and apdu[0] not in (0x00, 0x90)


def _keystore() -> SoftwareKeyStore:
    return SoftwareKeyStore(
        {role: bytes([n]) * 16 for n, role in enumerate(SoftwareKeyStore.generate(b"X")._masters)},
        b"LOYALTY-TEST",
    )


_PURSE = Purse(_keystore(), clock=lambda: 1_800_000_000)


_ISSUED: dict[str, Any] = {}


def _issued_card() -> VirtualDesfire:
    """A personalised purse card, issued once and copied for every example."""
    if not _ISSUED:
        card = VirtualDesfire(UID)
        reader = VirtualReader()
        reader.insert(card)
        _PURSE.issue(reader.connect(), UID, initial=1000)
        _ISSUED.update(card.to_json())
    return VirtualDesfire.from_json(_ISSUED)


@_FUZZ
@given(
    state=st.sampled_from(["fresh", "issued", "authenticated", "authenticated-ev1"]),
    key_no=st.integers(1, 3),
    apdus=st.lists(_apdus(_DESFIRE_SEEDS), min_size=1, max_size=8),
    tear_at=st.none() | st.integers(0, 7),
    mute=st.booleans(),
)
def test_virtual_desfire_answers_any_bytes(
    state: str, key_no: int, apdus: list[bytes], tear_at: int | None, mute: bool
) -> None:
    card = VirtualDesfire(UID) if state == "fresh" else _issued_card()
    card.power_on()
    if state.startswith("authenticated"):
        # Inside an EV2 or EV1 session of the purse application, so random bytes
        # meet the MAC and FULL mode checks of either secure messaging.
        reader = VirtualReader()
        reader.insert(card)
        client = DesfireClient(reader.connect())
        client.select_application(_PURSE.layout.aid)
        if state == "authenticated-ev1":
            client.authenticate_ev1(key_no, _PURSE._key(key_no, UID))
        else:
            client.authenticate(key_no, _PURSE._key(key_no, UID))
    if tear_at is not None:
        card.faults.tear_before = card.apdu_count + tear_at
    card.faults.mute = mute
    faults = 0
    for apdu in apdus:
        try:
            answer = card.process(apdu)
        except (CardRemoved, CardMute):
            # Only a configured fault may fire, each once; the card is then
            # back in the field, as after a re-insert.
            faults += 1
            assert faults <= (tear_at is not None) + mute
            card.power_on()
            continue
        _well_formed(apdu, answer, native=_is_native(apdu))
    # Whatever came before, a fresh session still answers GetVersion.
    card.power_off()
    card.power_on()
    card.faults.tear_before, card.faults.mute = None, False
    assert card.process(bytes.fromhex("9060000000"))[-2:] == b"\x91\xaf"


@_FUZZ
@given(apdus=st.lists(_apdus(_NTAG_SEEDS), min_size=1, max_size=8))
def test_virtual_ntag424_answers_any_bytes(apdus: list[bytes]) -> None:
    tag = VirtualNtag424(UID, file_data=b"loyalty 16 bytes")  # SDM ENC data is whole AES blocks
    tag.power_on()
    for apdu in apdus:
        _well_formed(apdu, tag.process(apdu), native=False)
    tag.power_off()
    tag.power_on()
    assert tag.process(bytes.fromhex("00A4040007D276000085010100")) == b"\x90\x00"


# -- the bridge -------------------------------------------------------------------

_MESSAGE = st.one_of(
    st.sampled_from([b"", b"\x00", b"\x01", b"\x02", b"\x04"]),  # control codes, empty
    st.binary(min_size=1, max_size=2),  # 1- and 2-byte payloads
    _apdus(_DESFIRE_SEEDS),
)
# One piece of the byte stream: a framed message, or raw bytes / a lying length.
_PIECE = st.one_of(
    _MESSAGE.map(lambda m: frame(m)),
    _MESSAGE.map(lambda m: frame(m)),
    _MESSAGE.map(lambda m: frame(m)),
    st.binary(min_size=1, max_size=6),
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)).map(
        lambda t: t[0].to_bytes(2, "big") + t[1]
    ),
)


@settings(_FUZZ, max_examples=_EXAMPLES // 4)
@given(
    pieces=st.lists(_PIECE, min_size=1, max_size=10),
    cuts=st.lists(st.integers(1, 400), max_size=6),
    ntag=st.booleans(),
)
def test_the_bridge_answers_or_closes_on_any_framing(
    pieces: list[bytes], cuts: list[int], ntag: bool
) -> None:
    card = VirtualNtag424(UID) if ntag else VirtualDesfire(UID)
    peer = FakeVpcd(card)  # type: ignore[arg-type]
    try:
        stream = b"".join(pieces)
        at = 0
        for cut in [*sorted(set(cuts)), len(stream)]:
            if cut > at:
                try:
                    peer.send(stream[at:cut])  # a segment each (TCP_NODELAY)
                except OSError:
                    break  # the bridge already gave up on the connection
                at = cut
        peer.conn.shutdown(socket.SHUT_WR)
        # The peer has stopped: the bridge must answer what it owes and close.
        while (answer := peer.answer()) is not None:
            assert answer, "an empty answer reads as a removed card"
        peer.thread.join(_BOUND)
        assert not peer.thread.is_alive(), "the bridge hangs"
        assert peer.bridge.error is None, peer.bridge.error
        assert not peer.bridge.inserted
    finally:
        peer.close()


@pytest.mark.parametrize("ntag", [False, True])
def test_fuzzed_cards_answer_through_the_bridge(ntag: bool) -> None:
    # The card fuzz above, once more over the wire, for framing of long answers.
    card = VirtualNtag424(UID) if ntag else _issued_card()
    peer = FakeVpcd(card)  # type: ignore[arg-type]
    try:
        seeds = _NTAG_SEEDS if ntag else _DESFIRE_SEEDS
        apdus = [bytes.fromhex(s) for s in seeds] + [bytes(300), b"\x90" * 260]
        answers = peer.exchange(b"\x04", *apdus)
        assert all(answers), answers
    finally:
        peer.close()


def test_a_short_command_in_an_ev1_session_is_refused_not_raised() -> None:
    """Found by this fuzz: ChangeKey with no data in an EV1 session raised IndexError."""
    card = _issued_card()
    card.power_on()
    reader = VirtualReader()
    reader.insert(card)
    client = DesfireClient(reader.connect())
    client.select_application(_PURSE.layout.aid)
    client.authenticate_ev1(1, _PURSE._key(1, UID))
    assert card.process(bytes.fromhex("90C4000000")) == b"\x91\x1e"


def test_a_tag_refuses_file_data_it_could_not_encipher() -> None:
    """Found by this fuzz: 7 bytes of file data were taken, and the tap's read raised."""
    with pytest.raises(ValueError, match="whole 16-byte blocks"):
        VirtualNtag424(UID, file_data=b"loyalty")
