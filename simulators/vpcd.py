# SPDX-License-Identifier: Apache-2.0
"""Put a virtual card behind vsmartcard's vpcd, so the real PC/SC stack sees it.

vpcd (a pcscd reader driver) listens on a TCP port (35963 by default) and a
virtual card connects to it. Each message either way is a 2-byte big-endian
length and a payload. A 1-byte payload from vpcd is a control message:
00 power off, 01 power on, 02 reset, 04 get ATR (answered with the ATR);
vpcd sends these on its own while idle too, and 00 and 02 are a field loss
for the card. Anything longer is an APDU, answered with the response.

A connected bridge is a card in the reader; closing the connection removes
it. A card fault that tears the card away (`CardRemoved`) closes the
connection without an answer, as a card leaving mid-APDU would.

Latency: vpcd writes the length and the payload in two writes, and with
delayed acknowledgements the second stalls for tens of milliseconds. The
bridge sets TCP_NODELAY and re-arms TCP_QUICKACK after every receive, which
brings a round trip under a millisecond.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from loyaltysdk._errors import CardMute, CardRemoved, ReaderError

from .card import VirtualCard

DEFAULT_PORT = 35963
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class VpcdBridge:
    """Serve one virtual card to vpcd on a background thread.

    Args:
        card: the card to serve.
        host, port: where vpcd listens.
    """

    def __init__(
        self,
        card: VirtualCard,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        prompt: bool = True,
    ) -> None:
        self.card = card
        #: Answer promptly (TCP_NODELAY, TCP_QUICKACK); False only to measure the naive loop.
        self.prompt = prompt
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.apdus = 0
        self._atr: bytes | None = None
        self.error: BaseException | None = None

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
        try:
            while not self._stop.is_set():
                message = _receive(sock, quickack=self.prompt)
                if message is None:
                    break
                reply = self._answer(message)
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
        except CardRemoved:
            pass  # torn away: the connection closes below without an answer
        except CardMute:
            pass  # a mute card answers nothing; vpcd times out
        except OSError as error:
            if not self._stop.is_set():
                self.error = error
        finally:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock, self._thread = None, None
        with contextlib.suppress(OSError):
            sock.close()
        self.card.power_off()

    def _answer(self, message: bytes) -> bytes | None:
        if len(message) == 1:
            control = message[0]
            if control in (_POWER_OFF,):
                self.card.power_off()
                return None
            if control in (_POWER_ON, _RESET):
                self.card.power_off()
                self._atr = self.card.power_on()
                return None
            if control == _GET_ATR:
                # vpcd asks for the ATR while idle too: that must not reset
                # the card's session, so only the first request powers it.
                if self._atr is None:
                    self._atr = self.card.power_on()
                return self._atr
            return None
        self.apdus += 1
        if message[0] == 0xFF:
            return self._pseudo_apdu(message)
        return self.card.process(message)

    def _pseudo_apdu(self, apdu: bytes) -> bytes:
        # A real contactless reader answers class FF itself; vpcd passes it
        # through, so the bridge plays the reader: GET DATA (FF CA 00 00)
        # returns the UID; anything else is "function not supported".
        if apdu[1:4] == b"\xca\x00\x00":
            return self.card.uid + b"\x90\x00"
        return b"\x6a\x81"


def _receive(sock: socket.socket, *, quickack: bool = True) -> bytes | None:
    """One length-prefixed message, read until complete; None when vpcd closed."""
    header = _read_exactly(sock, 2, quickack)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    return _read_exactly(sock, length, quickack) if length else b""


def _read_exactly(sock: socket.socket, size: int, quickack: bool) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            return None
        if quickack and _QUICKACK is not None:
            # Acknowledge at once so vpcd's second write is not held back.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
