# SPDX-License-Identifier: Apache-2.0
"""PC/SC readers through pyscard and pcscd.

The driver talks to pcscd with pyscard's `smartcard.scard` layer, so every
failure arrives as a PC/SC result code and is classified by that code (and
by the empty-response case), never by exception class: a card torn away
mid-APDU shows up as a transmit that "succeeds" with no bytes, then as
SCARD_W_REMOVED_CARD or SCARD_E_NOT_TRANSACTED. After any transmit error the
transport is dead: the driver disconnects, and the card is trusted again
only after a fresh insert event.

Card presence is watched by one monitor thread per reader
(SCardGetStatusChange with a short timeout, so `close()` stops it within a
fraction of a second), which delivers insert and remove events in order.

Reader quirks live in one table (`QUIRKS`): how to ask the UID, whether
the reader needs pseudo-APDUs for its LED and buzzer, and whether a
command for a non-ISO-14443-4 card must be wrapped for direct transmit.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable

import attrs
from smartcard import scard

from loyaltysdk._errors import (
    CardMute,
    CardRemoved,
    NoReader,
    ReaderBusy,
    ReaderError,
    ReaderTimeout,
    ReaderUnplugged,
)
from loyaltysdk.cards.reader import CardEvent, Reader
from loyaltysdk.cards.transport import CardInfo, Transport

# PC/SC result codes (winscard.h); pyscard returns them as signed or unsigned ints.
SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069

_CARD_GONE = {
    SCARD_E_NO_SMARTCARD,
    SCARD_E_NOT_TRANSACTED,
    SCARD_W_REMOVED_CARD,
    SCARD_W_RESET_CARD,
    SCARD_W_UNPOWERED_CARD,
}
_READER_GONE = {
    SCARD_E_UNKNOWN_READER,
    SCARD_E_READER_UNAVAILABLE,
    SCARD_E_NO_SERVICE,
    SCARD_E_SERVICE_STOPPED,
    SCARD_E_NO_READERS_AVAILABLE,
}
_STALE_CONTEXT = {SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, 0x80100003}  # + INVALID_HANDLE
_POLL_MS = 200


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def classify(hresult: int, what: str) -> Exception:
    """The SDK error for a PC/SC result code."""
    code = _code(hresult)
    message = f"{what}: {scard.SCardGetErrorMessage(hresult)} ({code:#010x})"
    if code in _CARD_GONE:
        return CardRemoved(message)
    if code == SCARD_W_UNRESPONSIVE_CARD:
        return CardMute(message)
    if code == SCARD_E_SHARING_VIOLATION:
        return ReaderBusy(message)
    if code == SCARD_E_TIMEOUT:
        return ReaderTimeout(message)
    if code in _READER_GONE:
        return ReaderUnplugged(message)
    return ReaderError(message)


# -- card identification from the ATR -------------------------------------------

#: PC/SC part 3 card names (the two bytes after the standard byte).
_PCSC_CARD_NAMES = {
    0x0001: "mifare-classic-1k",
    0x0002: "mifare-classic-4k",
    0x0003: "mifare-ultralight",
    0x0026: "mifare-mini",
    0x003A: "mifare-ultralight-c",
    0x0036: "mifare-plus-sl1-2k",
    0x0037: "mifare-plus-sl1-4k",
}


def identify_atr(atr: bytes) -> str:
    """A card type from a contactless ATR as PC/SC readers build it.

    Storage cards get the PC/SC part 3 ATR (3B 8F 80 01 80 4F 0C A0 00 00 03 06
    SS NN NN ...) whose NN NN names the card; ISO 14443-4 cards get
    3B 8n 80 01 and their historical bytes (DESFire: the single byte 0x80).
    """
    if len(atr) >= 15 and atr[:2] == b"\x3b\x8f" and atr[4:12] == bytes.fromhex("804f0ca000000306"):
        name = int.from_bytes(atr[13:15], "big")
        return _PCSC_CARD_NAMES.get(name, f"pcsc-storage-{name:04x}")
    if len(atr) >= 4 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01":
        historical = atr[4 : 4 + (atr[1] & 0x0F)]
        if historical == b"\x80":
            return "mifare-desfire"
        if historical[:1] == b"\xc1" or historical.startswith(b"\x80\x77"):
            return "mifare-desfire"
        return "iso14443-4"
    return "unknown"


# -- reader quirks ---------------------------------------------------------------


@attrs.frozen
class ReaderQuirks:
    """What a reader model needs done differently.

    Attributes:
        name: the model, for logs.
        pattern: a regular expression on the PC/SC reader name.
        uid_apdu: the pseudo-APDU that returns the card UID (PC/SC GET DATA).
        led_buzzer: builds the pseudo-APDU for LED state and buzzer, or None.
        direct_wrap: wraps a native command for non-ISO-14443-4 cards, or None.
    """

    name: str
    pattern: str
    uid_apdu: bytes = b"\xff\xca\x00\x00\x00"
    led_buzzer: Callable[[int, int], bytes] | None = None
    direct_wrap: Callable[[bytes], bytes] | None = None


def _acr122_led_buzzer(led_state: int, buzzer_ms: int) -> bytes:
    # FF 00 40 <LED state control> 04 <T1> <T2> <repetitions> <buzzer link>,
    # T1/T2 in units of 100 ms.
    units = max(0, min(255, buzzer_ms // 100))
    return bytes([0xFF, 0x00, 0x40, led_state & 0xFF, 0x04, units, 0, 1, 1 if units else 0])


def _acr122_direct(command: bytes) -> bytes:
    # InCommunicateThru (PN533 D4 42) inside the reader's direct-transmit
    # pseudo-APDU, for cards the reader does not speak ISO 14443-4 to.
    payload = b"\xd4\x42" + command
    if len(payload) > 255:
        raise ValueError("direct-transmit payload too long")
    return b"\xff\x00\x00\x00" + bytes([len(payload)]) + payload


QUIRKS: tuple[ReaderQuirks, ...] = (
    ReaderQuirks(
        "ACS ACR122U", r"ACR122", led_buzzer=_acr122_led_buzzer, direct_wrap=_acr122_direct
    ),
    ReaderQuirks("ACS ACR1252U", r"ACR1252"),
    ReaderQuirks("HID Omnikey 5x22", r"OMNIKEY.*5[0-9]22"),
    ReaderQuirks("Identiv uTrust", r"uTrust|Identiv"),
    ReaderQuirks("vsmartcard vpcd", r"Virtual PCD"),
    ReaderQuirks("generic CCID", r".*"),
)


def quirks_for(reader_name: str) -> ReaderQuirks:
    """The quirks entry for a reader name (the generic CCID entry last)."""
    for quirks in QUIRKS:
        if re.search(quirks.pattern, reader_name, re.IGNORECASE):
            return quirks
    return QUIRKS[-1]


# -- context and readers ---------------------------------------------------------


class _Context:
    """One PC/SC context; re-established when pcscd restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.handle = self._establish()

    @staticmethod
    def _establish() -> int:
        hresult, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != SCARD_S_SUCCESS:
            raise classify(hresult, "cannot reach pcscd")
        return int(handle)

    def readers(self) -> list[str]:
        hresult, names = scard.SCardListReaders(self.handle, [])
        code = _code(hresult)
        if code == SCARD_E_NO_READERS_AVAILABLE:
            return []
        if code in (SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED):
            # pcscd restarted: one fresh context, then give up.
            with self._lock:
                self.handle = self._establish()
            hresult, names = scard.SCardListReaders(self.handle, [])
            if _code(hresult) == SCARD_E_NO_READERS_AVAILABLE:
                return []
        if _code(hresult) != SCARD_S_SUCCESS:
            raise classify(hresult, "cannot list readers")
        return list(names)

    def release(self) -> None:
        scard.SCardReleaseContext(self.handle)


def list_readers() -> list[str]:
    """The PC/SC reader names pcscd knows now.

    Raises:
        ReaderUnplugged: pcscd does not answer.
    """
    context = _Context()
    try:
        return context.readers()
    finally:
        context.release()


class PcscReader(Reader):
    """One PC/SC reader with a presence monitor thread.

    Args:
        name: the exact PC/SC reader name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.quirks = quirks_for(name)
        # Two contexts: pcsc-lite serialises calls on one context, and the
        # monitor's blocking SCardGetStatusChange would hold every transmit.
        self._context = _Context()
        self._watch_context = _Context()
        self._events: queue.Queue[CardEvent] = queue.Queue()
        self._info: CardInfo | None = None
        self._present = threading.Condition()
        self._generation = 0
        self._counter = -1
        self._tainted = -1  # a presence whose exchange failed: not trusted again
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._monitor = threading.Thread(
            target=self._watch, name=f"loyaltysdk-pcsc-{name}", daemon=True
        )
        self._monitor.start()

    # -- presence ----------------------------------------------------------------

    def _watch(self) -> None:
        state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            hresult, states = scard.SCardGetStatusChange(
                self._watch_context.handle, _POLL_MS, [(self.name, state)]
            )
            code = _code(hresult)
            if code in (SCARD_E_TIMEOUT, SCARD_E_CANCELLED):
                continue
            if code != SCARD_S_SUCCESS:
                with self._present:
                    self._error = classify(hresult, f"reader {self.name}")
                    self._left()
                    self._present.notify_all()
                # The reader is gone or pcscd restarted: wait and look again,
                # so a reader that comes back recovers by itself.
                time.sleep(_POLL_MS / 1000)
                try:
                    fresh = _Context()
                except ReaderError:
                    continue
                self._watch_context.release()
                self._watch_context = fresh
                state = scard.SCARD_STATE_UNAWARE
                continue
            _, event_state, atr = states[0]
            state = event_state & ~scard.SCARD_STATE_CHANGED
            present = bool(event_state & scard.SCARD_STATE_PRESENT) and not bool(
                event_state & scard.SCARD_STATE_MUTE
            )
            # pcscd counts card events in the high 16 bits: a card removed and
            # put back between two polls still moves the counter.
            counter = (event_state >> 16) & 0xFFFF
            with self._present:
                self._error = None
                if present and self._info is not None and counter != self._counter:
                    self._left()
                if present and self._info is None:
                    self._arrived(bytes(atr))
                elif not present and self._info is not None:
                    self._left()
                self._counter = counter
                self._present.notify_all()

    def _arrived(self, atr: bytes) -> None:
        self._generation += 1
        self._info = CardInfo(self.name, atr, None)
        self._events.put(CardEvent("inserted", self.name, self._info))

    def _left(self) -> None:
        if self._info is not None:
            self._generation += 1
            self._events.put(CardEvent("removed", self.name, self._info))
            self._info = None

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        with self._present:
            if not self._present.wait_for(lambda: self._info is not None, timeout):
                if self._error is not None:
                    raise self._error
                raise ReaderTimeout(f"no card on {self.name} within {timeout} s")
            assert self._info is not None
            return self._info

    def next_event(self, timeout: float | None = None) -> CardEvent | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    # -- connecting ----------------------------------------------------------------

    def connect(self) -> PcscTransport:
        with self._present:
            if self._info is None:
                if self._error is not None:
                    raise self._error
                raise CardRemoved(f"no card on {self.name}")
            if self._generation == self._tainted:
                raise CardRemoved(
                    f"the last exchange with the card on {self.name} failed; tap it again"
                )
            generation, info = self._generation, self._info
        hresult, handle, protocol = self._connect()
        if _code(hresult) in _STALE_CONTEXT:
            # pcscd restarted since this context was made: make another once.
            stale, self._context = self._context, _Context()
            stale.release()
            hresult, handle, protocol = self._connect()
        if hresult != SCARD_S_SUCCESS:
            raise classify(hresult, f"cannot connect to the card on {self.name}")
        transport = PcscTransport(self, int(handle), int(protocol), generation)
        try:
            uid = transport.read_uid()
        except (CardRemoved, CardMute):
            transport.close()
            raise
        with self._present:
            if self._info is not None and self._generation == generation:
                self._info = CardInfo(self.name, info.atr, uid)
        return transport

    def _connect(self) -> tuple[int, int, int]:
        hresult, handle, protocol = scard.SCardConnect(
            self._context.handle,
            self.name,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        return int(hresult), int(handle), int(protocol)

    def card_present_since(self, generation: int) -> bool:
        with self._present:
            return self._info is not None and self._generation == generation

    def taint(self, generation: int) -> None:
        """Distrust this presence of the card until a fresh insert event."""
        with self._present:
            self._tainted = generation

    def feedback(self, transport: PcscTransport, *, led_state: int, buzzer_ms: int) -> bool:
        """Drive the reader's LED and buzzer where its quirks know how; False if not."""
        if self.quirks.led_buzzer is None:
            return False
        transport.transmit(self.quirks.led_buzzer(led_state, buzzer_ms))
        return True

    def close(self) -> None:
        self._stop.set()
        scard.SCardCancel(self._watch_context.handle)
        self._monitor.join(timeout=2)
        self._watch_context.release()
        self._context.release()


class PcscTransport(Transport):
    """A connection to the card in one PC/SC reader, for one presence of it."""

    def __init__(self, reader: PcscReader, handle: int, protocol: int, generation: int) -> None:
        super().__init__()
        self._reader = reader
        self._handle: int | None = handle
        self._protocol = protocol
        self._generation = generation

    def read_uid(self) -> bytes | None:
        """The UID through the PC/SC GET DATA pseudo-APDU (None if the reader refuses)."""
        data, sw = self.transmit(self._reader.quirks.uid_apdu)
        return data if sw == 0x9000 and data else None

    def _transmit(self, apdu: bytes) -> bytes:
        if self._handle is None:
            raise CardRemoved("this connection ended; wait for the card to be tapped again")
        if not self._reader.card_present_since(self._generation):
            self._drop()
            raise CardRemoved(f"the card left {self._reader.name}")
        hresult, response = scard.SCardTransmit(self._handle, self._protocol, list(apdu))
        if hresult != SCARD_S_SUCCESS:
            self._drop()
            raise classify(hresult, "transmit failed")
        if not response:
            # pcscd's "no valid response": the card went away mid-exchange.
            self._drop()
            raise CardRemoved("the card gave no valid response (torn away)")
        return bytes(response)

    def _drop(self) -> None:
        self._reader.taint(self._generation)
        handle, self._handle = self._handle, None
        if handle is not None:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)

    def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)


def open_reader(pattern: str = "") -> PcscReader:
    """The first reader whose name contains `pattern` (case-insensitive); any if empty.

    Raises:
        NoReader: no reader matches.
        ReaderUnplugged: pcscd does not answer.
    """
    names = list_readers()
    for name in names:
        if pattern.lower() in name.lower():
            return PcscReader(name)
    raise NoReader(f"no PC/SC reader matches {pattern!r}; readers: {names or 'none'}")


__all__ = [
    "QUIRKS",
    "PcscReader",
    "PcscTransport",
    "ReaderQuirks",
    "classify",
    "identify_atr",
    "list_readers",
    "open_reader",
    "quirks_for",
]
