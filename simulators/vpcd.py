# SPDX-License-Identifier: Apache-2.0
"""Put a virtual card behind vsmartcard's vpcd, so the real PC/SC stack sees it.

vpcd (a pcscd reader driver) listens on a TCP port (35963 by default) and a
virtual card connects to it. Each message either way is a 2-byte big-endian
length and a payload. A 1-byte payload from vpcd is a control message:
00 power off, 01 power on, 02 reset (none answered), 04 get ATR (answered
with the ATR); vpcd sends these on its own while idle too, and 00 and 02
are a field loss for the card. Anything longer is an APDU, answered with
the response.

What the wire cannot say (vsmartcard's vpcd.c, `vicc_transmit`, lines
336-358 in release 0.8, 362-384 now): vpcd sends an application's APDU as
it is and then waits for an answer with no timeout. A 1-byte APDU is
therefore the same bytes as a control message, and a zero-length APDU puts
nothing on the wire at all. A bridge that answered neither would wedge the
reader (vpcd holds its lock, pcscd's presence poll blocks behind it). The
bridge resolves this by the one thing that differs: pcscd polls presence
(a 04) every 0.4 s (pcsc-lite's PCSCLITE_STATUS_POLL_RATE; vpcd has no
event thread), and IFDHPowerICC follows 01 and 02 with a 04 at once
(ifd-vpcd.c), so vpcd is never quiet for long unless it waits for the card. A 00, 01 or
02 is held back; the next message shows it was a control message (it is
applied then), while `silence` seconds of quiet show it was an APDU (the
card answers it, with 67 00 or whatever the card says). Quiet after an
answer likewise means an empty APDU, which the bridge answers 67 00 as a
reader refuses an empty frame. A 1-byte payload that is no control code
(03, 05-FF) can only be an APDU and goes to the card at once; an APDU 04
cannot be told from vpcd's ATR request and gets the ATR.

Anything else that breaks the framing (a peer closing or stalling inside a
message, a response that cannot be framed) closes the connection, which
vpcd reports as a removed card; so does any exception from the card. The
reason is logged and kept in `closed_because`; the thread never dies with
an exception.

A connected bridge is a card in the reader; closing the connection removes
it. A card fault that tears the card away (`CardRemoved`) closes the
connection without an answer, as a card leaving mid-APDU would.

Latency: vpcd writes the length and the payload in two writes (release
0.8; later ones write once), and with delayed acknowledgements the second
stalls for tens of milliseconds. The bridge sets TCP_NODELAY and re-arms
TCP_QUICKACK after every receive, which brings a round trip under a
millisecond.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

from loyaltysdk._errors import CardMute, CardRemoved, ReaderError

from .card import VirtualCard

DEFAULT_PORT = 35963
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
#: Control codes vpcd does not wait on: held back until the wire says what they were.
_UNANSWERED = {_POWER_OFF: "power off", _POWER_ON: "power on", _RESET: "reset"}
_WRONG_LENGTH = b"\x67\x00"  # ISO 7816-4: wrong length (an empty frame)
_MAX_MESSAGE = 0xFFFF  # the 2-byte length
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_log = logging.getLogger("loyaltysdk.simulators.vpcd")


class _Silence(Exception):
    """No message began within the wait: vpcd waits for an answer."""


class _BrokenFrame(Exception):
    """The framing cannot go on (a peer stalled or closed mid-message, an unframeable answer)."""


class VpcdBridge:
    """Serve one virtual card to vpcd on a background thread.

    Args:
        card: the card to serve.
        host, port: where vpcd listens.
        prompt: answer promptly (TCP_NODELAY, TCP_QUICKACK); False only to
            measure the naive loop.
        silence: seconds of quiet after which vpcd must be waiting for an
            answer (see the module's notes); also how long a message may
            stall half-sent before the bridge gives up on the connection.
            pcscd polls every 0.4 s, so the default leaves a wide margin for
            a busy machine; a shorter one risks answering a control message,
            which would put every later answer one behind.
    """

    def __init__(
        self,
        card: VirtualCard,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        prompt: bool = True,
        silence: float = 3.0,
    ) -> None:
        self.card = card
        self.prompt = prompt
        self.host = host
        self.port = port
        self.silence = silence
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        #: Messages the card answered (APDUs, class FF pseudo-APDUs included).
        self.apdus = 0
        #: Answers given because vpcd fell quiet (1-byte or empty APDUs).
        self.quiet_answers = 0
        self._atr: bytes | None = None
        #: The last unexpected error (a socket error, or a card's exception).
        self.error: BaseException | None = None
        #: Why the bridge last ended a connection itself (None: vpcd or remove() did).
        self.closed_because: str | None = None

    @property
    def inserted(self) -> bool:
        """Whether the card is in the virtual reader now."""
        return self._sock is not None

    def insert(self, timeout: float = 10.0) -> None:
        """Connect to vpcd: the card enters the reader's field.

        Raises:
            ReaderError: vpcd did not accept within `timeout` (is pcscd running?).
        """
        with self._lock:
            if self._sock is not None:
                return
            deadline = time.monotonic() + timeout
            while True:
                try:
                    sock = socket.create_connection((self.host, self.port), timeout=1.0)
                    break
                except OSError as error:
                    if time.monotonic() > deadline:
                        raise ReaderError(
                            f"vpcd does not listen on {self.host}:{self.port}: {error}"
                        ) from error
                    time.sleep(0.05)
            sock.settimeout(None)
            if self.prompt:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._stop.clear()
            self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._thread.start()

    def remove(self) -> None:
        """Close the connection: the card leaves the field."""
        with self._lock:
            sock, thread = self._sock, self._thread
            self._sock, self._thread = None, None
            self._stop.set()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.card.power_off()

    close = remove

    def _serve(self, sock: socket.socket) -> None:
        reason: str | None = None
        try:
            self._converse(sock)
        except CardRemoved:
            pass  # torn away: the connection closes below without an answer
        except CardMute:
            pass  # a mute card answers nothing; closing is all vpcd can see of it
        except _BrokenFrame as broken:
            reason = str(broken)
        except OSError as error:
            if not self._stop.is_set():
                self.error = error
                reason = f"socket error: {error}"
        except Exception as error:
            # A card bug must not kill the thread and leave vpcd waiting: the
            # card leaves the field instead, and the log says why.
            self.error = error
            reason = f"the card raised {error!r}"
            _log.exception("vpcd bridge: the card raised; removing it")
        finally:
            if reason is not None and not self._stop.is_set():
                self.closed_because = reason
                _log.warning("vpcd bridge closes the card connection: %s", reason)
            self._drop(sock)

    def _converse(self, sock: socket.socket) -> None:
        # `held` is what vpcd may still be waiting on: a 00/01/02 not yet
        # known to be control or APDU, or b"" after any answer (an empty
        # APDU leaves no trace on the wire). None until vpcd has spoken.
        held: bytes | None = None
        while not self._stop.is_set():
            try:
                message = _receive(
                    sock,
                    quickack=self.prompt,
                    idle=self.silence if held is not None else None,
                    stall=self.silence,
                )
            except _Silence:
                assert held is not None
                self.quiet_answers += 1
                _log.info(
                    "vpcd quiet after %s: answering it as an APDU",
                    f"{held.hex()} (not {_UNANSWERED[held[0]]})" if held else "an answer",
                )
                self._send(sock, self._apdu(held) if held else _WRONG_LENGTH)
                held = b""
                continue
            if message is None:
                return  # vpcd closed between messages: the card was ejected
            if held:
                self._control(held[0])  # something followed, so it was control
            held = None
            if len(message) == 1 and message[0] in _UNANSWERED:
                held = message
                continue
            self._send(sock, self._answer(message))
            held = b""

    def _control(self, code: int) -> None:
        self.card.power_off()
        if code != _POWER_OFF:
            self._atr = self.card.power_on()

    def _answer(self, message: bytes) -> bytes:
        if not message:
            return _WRONG_LENGTH  # vpcd never frames one; a reader refuses an empty frame
        if message == bytes([_GET_ATR]):
            # vpcd asks for the ATR while idle too: that must not reset
            # the card's session, so only the first request powers it.
            if self._atr is None:
                self._atr = self.card.power_on()
            return self._atr
        return self._apdu(message)

    def _apdu(self, apdu: bytes) -> bytes:
        self.apdus += 1
        if apdu[0] == 0xFF:
            return self._pseudo_apdu(apdu)
        return self.card.process(apdu)

    def _send(self, sock: socket.socket, reply: bytes) -> None:
        # vpcd reads a zero-length answer as the card gone, and one longer
        # than the 2-byte length can say cannot be sent: both are card bugs.
        # (One byte is fine: a native DESFire answer can be its status alone.)
        if not 1 <= len(reply) <= _MAX_MESSAGE:
            raise _BrokenFrame(f"the card's answer of {len(reply)} bytes cannot be framed")
        sock.sendall(len(reply).to_bytes(2, "big") + reply)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock, self._thread = None, None
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(Exception):
            self.card.power_off()

    def _pseudo_apdu(self, apdu: bytes) -> bytes:
        # A real contactless reader answers class FF itself; vpcd passes it
        # through, so the bridge plays the reader: GET DATA (FF CA 00 00)
        # returns the UID; anything else is "function not supported".
        if apdu[1:4] == b"\xca\x00\x00":
            return self.card.uid + b"\x90\x00"
        return b"\x6a\x81"


def _receive(
    sock: socket.socket, *, quickack: bool, idle: float | None, stall: float
) -> bytes | None:
    """One length-prefixed message; None when the peer closed between messages.

    Raises:
        _Silence: no message began within `idle` seconds (None: wait for ever).
        _BrokenFrame: the peer closed, or sent nothing for `stall` seconds,
            inside a message.
    """
    header = _read_exactly(sock, 2, quickack, first=idle, stall=stall)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if not length:
        return b""
    try:
        payload = _read_exactly(sock, length, quickack, first=stall, stall=stall)
    except _Silence:
        raise _BrokenFrame(
            f"the peer stalled after the length of a {length}-byte message"
        ) from None
    if payload is None:
        raise _BrokenFrame(f"the peer closed after the length of a {length}-byte message")
    return payload


def _read_exactly(
    sock: socket.socket, size: int, quickack: bool, *, first: float | None, stall: float
) -> bytes | None:
    """`size` bytes; None if the peer closed before the first.

    Raises:
        _Silence: nothing arrived within `first` seconds (None: wait for ever).
        _BrokenFrame: the peer closed, or sent nothing for `stall` seconds,
            after some bytes had come.
    """
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        started = remaining < size
        sock.settimeout(stall if started else first)
        try:
            chunk = sock.recv(remaining)
        except TimeoutError:
            if not started:
                raise _Silence from None
            raise _BrokenFrame(
                f"the peer stalled after {size - remaining} of {size} bytes"
            ) from None
        if not chunk:
            if not started:
                return None
            raise _BrokenFrame(f"the peer closed after {size - remaining} of {size} bytes")
        if quickack and _QUICKACK is not None:
            # Acknowledge at once so vpcd's second write is not held back.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
