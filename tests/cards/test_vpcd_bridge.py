# SPDX-License-Identifier: Apache-2.0
"""The vpcd bridge answers every framing a vpcd peer can send, or closes cleanly (issue 18).

First against a fake vpcd (a TCP server in the test that the bridge connects
to, speaking the wire as vsmartcard's vpcd.c does), then through the real
stack: an outside client's raw 1-byte and zero-length APDUs return, and the
reader goes on working without a re-insert.

Nothing here decides by the clock. A wait for an answer or a close is
bounded (`_BOUND`) only so that a hang fails instead of stalling the suite.
Where the bridge's answer depends on vpcd staying quiet (a 1-byte 00/01/02
or an empty APDU), the test waits for that answer as an event; a control
code followed by another message is sent in one write, so no pause of the
test's own thread can look like quiet.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from loyaltysdk._errors import CardRemoved
from loyaltysdk.simulators.desfire import ATR as DESFIRE_ATR
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.pcscd import PcscdProcess, in_ci
from loyaltysdk.simulators.vpcd import VpcdBridge

_BOUND = 60.0  # seconds: only a hang detector, never what a test asserts
_ATR = bytes.fromhex("3B8180018080")
_QUIET = 0.3  # the bridge's `silence` where a test needs vpcd to be quiet


def frame(*payloads: bytes) -> bytes:
    """Messages as vpcd frames them: a 2-byte big-endian length, then the payload."""
    return b"".join(len(p).to_bytes(2, "big") + p for p in payloads)


class RecordingCard:
    """A card that notes every call; it answers an APDU with its length and 90 00."""

    uid = bytes.fromhex("04A1B2C3D4E5F6")

    def __init__(self, answer: Callable[[bytes], bytes] | None = None) -> None:
        self.calls: list[str | bytes] = []
        self._answer = answer

    def power_on(self) -> bytes:
        self.calls.append("on")
        return _ATR

    def power_off(self) -> None:
        self.calls.append("off")

    def process(self, apdu: bytes) -> bytes:
        self.calls.append(apdu)
        if self._answer is not None:
            return self._answer(apdu)
        if len(apdu) < 4:
            return b"\x67\x00"
        return len(apdu).to_bytes(2, "big") + b"\x90\x00"


class FakeVpcd:
    """The vpcd end of the wire: accepts the bridge and reads its answers."""

    def __init__(self, card: RecordingCard | VirtualDesfire, *, silence: float = 3.0) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(_BOUND)
        port = self.server.getsockname()[1]
        self.bridge = VpcdBridge(card, port=port, silence=silence)  # type: ignore[arg-type]
        self.bridge.insert()
        self.conn, _ = self.server.accept()
        self.conn.settimeout(_BOUND)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = self.bridge._thread
        assert thread is not None
        self.thread: threading.Thread = thread

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def answer(self) -> bytes | None:
        """The bridge's next answer; None when it closed the connection."""
        header = self._read(2)
        if header is None:
            return None
        length = int.from_bytes(header, "big")
        payload = self._read(length)
        assert payload is not None, "the bridge closed inside its own answer"
        return payload

    def exchange(self, *payloads: bytes) -> list[bytes | None]:
        self.send(frame(*payloads))
        return [self.answer() for _ in payloads]

    def answer_skipping_quiet(self) -> bytes | None:
        # After a quiet answer the bridge may answer a further (empty) APDU
        # if this thread is slow to speak; those are 67 00, never an ATR.
        while (reply := self.answer()) == b"\x67\x00":
            pass
        return reply

    def assert_closed_cleanly(self) -> None:
        assert self.answer() is None  # the connection ends: vpcd sees the card leave
        self.thread.join(_BOUND)
        assert not self.thread.is_alive()
        assert not self.bridge.inserted

    def close(self) -> None:
        self.bridge.remove()
        self.conn.close()
        self.server.close()


@pytest.fixture
def card() -> RecordingCard:
    return RecordingCard()


@pytest.fixture
def peer(card: RecordingCard) -> Iterator[FakeVpcd]:
    peer = FakeVpcd(card)
    yield peer
    peer.close()


@pytest.fixture
def quiet_peer(card: RecordingCard) -> Iterator[FakeVpcd]:
    peer = FakeVpcd(card, silence=_QUIET)
    yield peer
    peer.close()


# -- control messages and APDUs --------------------------------------------------


def test_get_atr_powers_the_card_once(peer: FakeVpcd, card: RecordingCard) -> None:
    assert peer.exchange(b"\x04", b"\x04") == [_ATR, _ATR]
    assert card.calls == ["on"]  # the idle poll must not reset the session


@pytest.mark.parametrize(
    ("control", "calls"),
    [
        (b"\x00", ["off"]),  # power off
        (b"\x01", ["off", "on"]),  # power on
        (b"\x02", ["off", "on"]),  # reset
    ],
)
def test_a_control_message_followed_by_another_is_applied_and_not_answered(
    peer: FakeVpcd, card: RecordingCard, control: bytes, calls: list[str]
) -> None:
    # As IFDHPowerICC sends them: the control code, then at once a 04 (or, after
    # a power off, whatever comes next), in one write.
    peer.send(frame(control, b"\x04", b"\x90\x60\x00\x00\x00"))
    assert peer.answer() == _ATR
    assert peer.answer() == b"\x00\x05\x90\x00"  # GetVersion answered, nothing in between
    assert card.calls[: len(calls)] == calls
    assert card.calls[-1] == b"\x90\x60\x00\x00\x00"
    assert peer.bridge.quiet_answers == 0


@pytest.mark.parametrize("control", [b"\x00", b"\x01", b"\x02"])
def test_a_1_byte_apdu_that_looks_like_control_is_answered_when_vpcd_stays_quiet(
    quiet_peer: FakeVpcd, card: RecordingCard, control: bytes
) -> None:
    # vpcd sends an application's 1-byte APDU exactly as it sends a control
    # code, then waits: only its quiet says which it was.
    quiet_peer.send(frame(control))
    assert quiet_peer.answer() == b"\x67\x00"  # the card's answer to a 1-byte APDU
    assert card.calls == [control]  # no power cycle: it was an APDU
    assert quiet_peer.bridge.quiet_answers >= 1
    quiet_peer.send(frame(b"\x04"))
    assert quiet_peer.answer_skipping_quiet() == _ATR  # the reader goes on working


@pytest.mark.parametrize("apdu", [b"\x03", b"\x05", b"\x80", b"\x90", b"\xfe"])
def test_a_1_byte_apdu_that_is_no_control_code_goes_to_the_card_at_once(
    peer: FakeVpcd, card: RecordingCard, apdu: bytes
) -> None:
    assert peer.exchange(apdu) == [b"\x67\x00"]
    assert card.calls == [apdu]
    assert peer.bridge.quiet_answers == 0


def test_a_1_byte_class_ff_apdu_is_answered_by_the_reader(peer: FakeVpcd) -> None:
    assert peer.exchange(b"\xff") == [b"\x6a\x81"]  # function not supported


def test_an_empty_apdu_leaves_nothing_on_the_wire_and_is_answered_when_vpcd_stays_quiet(
    quiet_peer: FakeVpcd, card: RecordingCard
) -> None:
    # vicc_transmit skips the send for a zero-length APDU and waits for an
    # answer: after the bridge's last answer, vpcd just stays quiet.
    assert quiet_peer.exchange(b"\x04") == [_ATR]
    assert quiet_peer.answer() == b"\x67\x00"
    assert card.calls == ["on"]  # the card saw nothing
    quiet_peer.send(frame(b"\x90\x60\x00\x00\x00"))
    assert quiet_peer.answer_skipping_quiet() == b"\x00\x05\x90\x00"


def test_nothing_is_answered_before_vpcd_has_spoken(quiet_peer: FakeVpcd) -> None:
    # vpcd can owe nothing before its first message; a quiet answer now would
    # be read as the answer to its first ATR request. The first answer the
    # peer reads is therefore the ATR.
    assert quiet_peer.bridge.quiet_answers == 0
    assert quiet_peer.exchange(b"\x04") == [_ATR]


def test_a_zero_length_message_is_answered_and_the_thread_lives(
    peer: FakeVpcd, card: RecordingCard
) -> None:
    # Issue 18, item 9: this used to raise IndexError in the bridge's thread.
    assert peer.exchange(b"") == [b"\x67\x00"]
    assert peer.exchange(b"\x90\x60\x00\x00\x00") == [b"\x00\x05\x90\x00"]
    assert card.calls == [b"\x90\x60\x00\x00\x00"]
    assert peer.thread.is_alive()


# -- framing ------------------------------------------------------------------------


def test_several_messages_in_one_segment(peer: FakeVpcd) -> None:
    answers = peer.exchange(b"\x04", b"\x90\x60\x00\x00\x00", b"\x90\xaf\x00\x00\x00", b"\x04")
    assert answers == [_ATR, b"\x00\x05\x90\x00", b"\x00\x05\x90\x00", _ATR]


def test_one_message_split_over_many_segments(peer: FakeVpcd, card: RecordingCard) -> None:
    apdu = bytes(range(40))
    for byte in frame(apdu):
        peer.send(bytes([byte]))  # TCP_NODELAY: a segment each
    assert peer.answer() == b"\x00\x28\x90\x00"
    assert card.calls == [apdu]


def test_the_longest_message_the_length_can_say(peer: FakeVpcd, card: RecordingCard) -> None:
    apdu = b"\x00\xd6\x00\x00" + bytes(65535 - 4)
    sender = threading.Thread(target=peer.send, args=(frame(apdu),))
    sender.start()
    assert peer.answer() == b"\xff\xff\x90\x00"
    sender.join(_BOUND)
    assert card.calls == [apdu]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",  # half a length
        b"\x00\x05",  # a length, no payload
        b"\x00\x05\x90\x60",  # a length of 5, then 2 bytes
        frame(b"\x04") + b"\xff\xff" + bytes(100),  # 65535 announced, 100 sent
    ],
)
def test_a_peer_that_closes_mid_message(peer: FakeVpcd, data: bytes) -> None:
    peer.send(data)
    peer.conn.shutdown(socket.SHUT_WR)
    if data.startswith(frame(b"\x04")):
        assert peer.answer() == _ATR
    peer.assert_closed_cleanly()
    assert peer.bridge.error is None
    assert "closed after" in (peer.bridge.closed_because or "")


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",  # half a length, then nothing
        b"\x00\x0a\x90\x60\x00\x00",  # a length of 10, then 4 bytes, then nothing
    ],
)
def test_a_length_that_disagrees_with_the_bytes_that_follow(
    quiet_peer: FakeVpcd, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Both ends would wait for ever; the bridge gives up on the connection.
    with caplog.at_level(logging.WARNING, logger="loyaltysdk.simulators.vpcd"):
        quiet_peer.send(data)
        quiet_peer.assert_closed_cleanly()
    assert "stalled" in (quiet_peer.bridge.closed_because or "")
    assert "stalled" in caplog.text


def test_a_peer_that_closes_between_messages(peer: FakeVpcd, card: RecordingCard) -> None:
    assert peer.exchange(b"\x04") == [_ATR]
    peer.conn.shutdown(socket.SHUT_WR)
    peer.assert_closed_cleanly()
    assert peer.bridge.error is None and peer.bridge.closed_because is None
    assert card.calls[-1] == "off"  # the card left the field


def test_a_held_control_code_then_the_peer_closes(peer: FakeVpcd) -> None:
    peer.send(frame(b"\x04", b"\x00"))
    assert peer.answer() == _ATR
    peer.conn.shutdown(socket.SHUT_WR)
    peer.assert_closed_cleanly()
    assert peer.bridge.error is None


# -- card faults and bugs -----------------------------------------------------------


def test_a_card_that_raises_is_removed_and_the_thread_ends_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(apdu: bytes) -> bytes:
        raise IndexError("a card bug")

    card = RecordingCard(broken)
    peer = FakeVpcd(card)
    try:
        with caplog.at_level(logging.WARNING, logger="loyaltysdk.simulators.vpcd"):
            peer.send(frame(b"\x90\x60\x00\x00\x00"))
            peer.assert_closed_cleanly()
        assert isinstance(peer.bridge.error, IndexError)
        assert "IndexError" in (peer.bridge.closed_because or "")
        assert "a card bug" in caplog.text
        # The bridge can put the card back: a fresh connection, served again.
        card._answer = None
        peer.bridge.insert()
        conn, _ = peer.server.accept()
        conn.settimeout(_BOUND)
        peer.conn.close()
        peer.conn = conn
        assert peer.exchange(b"\x04") == [_ATR]
    finally:
        peer.close()


@pytest.mark.parametrize("reply", [b"", bytes(65536)])
def test_an_answer_that_cannot_be_framed_removes_the_card(reply: bytes) -> None:
    peer = FakeVpcd(RecordingCard(lambda apdu: reply))
    try:
        peer.send(frame(b"\x90\x60\x00\x00\x00"))
        peer.assert_closed_cleanly()
        assert f"{len(reply)} bytes" in (peer.bridge.closed_because or "")
    finally:
        peer.close()


def test_a_torn_card_closes_without_an_answer() -> None:
    card = VirtualDesfire()
    peer = FakeVpcd(card)
    try:
        assert peer.exchange(b"\x04") == [DESFIRE_ATR]
        card.faults.tear_before = card.apdu_count
        peer.send(frame(b"\x90\x60\x00\x00\x00"))
        peer.assert_closed_cleanly()
        assert peer.bridge.error is None and peer.bridge.closed_because is None
    finally:
        peer.close()


def test_card_removed_is_the_bridges_expected_fault() -> None:
    def torn(apdu: bytes) -> bytes:
        raise CardRemoved("torn")

    peer = FakeVpcd(RecordingCard(torn))
    try:
        peer.send(frame(b"\x90\x60\x00\x00\x00"))
        peer.assert_closed_cleanly()
        assert peer.bridge.error is None
    finally:
        peer.close()


# -- through the real PC/SC stack ---------------------------------------------------


def _pyscard() -> ModuleType:
    # Only these tests need pyscard; the ones above run anywhere.
    try:
        from smartcard import scard
    except ImportError as error:
        if in_ci():
            pytest.fail(f"pyscard is required under CI=true: {error}")
        pytest.skip(f"no pyscard: {error}")
    return scard


_GET_VERSION = [0x90, 0x60, 0x00, 0x00, 0x00]


@pytest.mark.pcsc
def test_raw_short_apdus_through_pcscd_return_and_the_reader_goes_on(
    pcscd: PcscdProcess,
) -> None:
    """An outside client's 1-byte and zero-length APDUs return; no re-insert needed.

    What real readers do with these: libccid on a character-level T=0 reader
    refuses an APDU shorter than 4 bytes (CCID src/commands.c, T0CmdParsing:
    IFD_COMMUNICATION_ERROR, which pcscd reports as SCARD_E_NOT_TRANSACTED);
    an APDU-level reader passes it on and the card answers wrong length
    (67 00). Either way the call returns. Through vpcd the card answers,
    so SCardTransmit succeeds with the card's status word; a 1-byte 04 is
    vpcd's ATR request on the wire and gets the ATR.
    """
    scard = _pyscard()
    card = VirtualDesfire()
    bridge = VpcdBridge(card, port=pcscd.port)
    bridge.insert()
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        hresult, _ = scard.SCardGetStatusChange(
            context,
            int(_BOUND * 1000),
            [(pcscd.reader_name, scard.SCARD_STATE_EMPTY)],
        )
        assert hresult == scard.SCARD_S_SUCCESS, "the card never appeared"
        hresult, handle, protocol = scard.SCardConnect(
            context,
            pcscd.reader_name,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        assert hresult == scard.SCARD_S_SUCCESS
        answers = {}
        for apdu in ([0x00], [0x01], [0x02], [0x04], [0x80], _GET_VERSION):
            hresult, response = scard.SCardTransmit(handle, protocol, apdu)
            assert hresult == scard.SCARD_S_SUCCESS, bytes(apdu).hex()
            answers[bytes(apdu)] = bytes(response)
        # The card's own answers (67 00, or a native DESFire status): they came.
        assert all(answers[bytes([b])] for b in (0x00, 0x01, 0x02, 0x80))
        assert answers[b"\x04"] == DESFIRE_ATR
        assert answers[bytes(_GET_VERSION)][-2:] == b"\x91\xaf"

        # pyscard hands libpcsclite no buffer for an empty list, which the
        # client library refuses (winscard_clnt.c, SCardTransmit) ...
        hresult, _ = scard.SCardTransmit(handle, protocol, [])
        assert hresult & 0xFFFFFFFF == scard.SCARD_E_INVALID_PARAMETER & 0xFFFFFFFF
        # ... but a C client with a buffer and a length of 0 reaches vpcd,
        # which then puts nothing on the wire and waits.
        assert _transmit_zero_length(handle, protocol) == (scard.SCARD_S_SUCCESS, b"\x67\x00")

        hresult, response = scard.SCardTransmit(handle, protocol, _GET_VERSION)
        assert hresult == scard.SCARD_S_SUCCESS and bytes(response)[-2:] == b"\x91\xaf"
        assert bridge.inserted and bridge.closed_because is None and bridge.error is None
        assert bridge.quiet_answers >= 4  # 00, 01, 02 and the empty APDU
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
    finally:
        scard.SCardReleaseContext(context)
        bridge.remove()


class _IoRequest(ctypes.Structure):
    _fields_ = [("protocol", ctypes.c_ulong), ("length", ctypes.c_ulong)]


def _transmit_zero_length(handle: int, protocol: int) -> tuple[int, bytes]:
    # libpcsclite on Linux: SCARDHANDLE is a long, DWORD an unsigned long.
    # pyscard's handle is valid here: ctypes opens the library pyscard loaded.
    library = ctypes.CDLL("libpcsclite.so.1")
    send = ctypes.create_string_buffer(1)
    receive = ctypes.create_string_buffer(258)
    received = ctypes.c_ulong(len(receive))
    pci = _IoRequest(protocol, ctypes.sizeof(_IoRequest))
    result = library.SCardTransmit(
        ctypes.c_long(handle),
        ctypes.byref(pci),
        send,
        ctypes.c_ulong(0),
        None,
        receive,
        ctypes.byref(received),
    )
    return result & 0xFFFFFFFF, receive.raw[: received.value]
