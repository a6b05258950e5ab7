# SPDX-License-Identifier: Apache-2.0
"""The one interface between card protocols and readers.

A `Transport` sends an APDU to the card in a reader and returns the response
data and the status word. Readers on pyscard, simulated readers and the
test `MockTransport` all derive from it, so every protocol runs unchanged on
any of them. The base class owns tracing and fault injection; a driver only
implements `_transmit` (the way pyscard's `transmit` calls `doTransmit`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType
from typing import Self

import attrs

from .._errors import MalformedApdu, MalformedResponse

#: A hook that sees each command before it is sent; it may raise to simulate a
#: fault (a tear raises `CardRemoved`) or return a replacement response.
FaultHook = Callable[[int, bytes], "bytes | None"]
#: A hook that sees each exchange after it happened: (command, response data, sw).
TraceHook = Callable[[bytes, bytes, int], None]

# ISO 7816-4 extended APDUs carry at most 65535 data bytes plus a header.
_MAX_APDU = 4 + 3 + 65535 + 3


def split_response(raw: bytes) -> tuple[bytes, int]:
    """Split a raw card response into data and the trailing status word.

    Raises:
        MalformedResponse: fewer than the two status bytes arrived.
    """
    if len(raw) < 2:
        raise MalformedResponse(f"response too short for a status word: {raw.hex()}")
    return raw[:-2], int.from_bytes(raw[-2:], "big")


@attrs.frozen
class CardInfo:
    """What a reader knows about the card in its field.

    Attributes:
        reader: the reader's name.
        atr: the answer-to-reset (for contactless cards, built by the reader).
        uid: the card's UID when the reader could read it, else None.
    """

    reader: str
    atr: bytes
    uid: bytes | None = None


class Transport(abc.ABC):
    """A channel to one card.

    Use it as a context manager, or call `close()`. Subclasses implement
    `_transmit` and may override `_close`.
    """

    def __init__(self) -> None:
        self._trace_hooks: list[TraceHook] = []
        self._fault_hook: FaultHook | None = None
        self._count = 0

    @property
    def apdu_count(self) -> int:
        """How many commands this transport has sent (fault hooks count them too)."""
        return self._count

    def add_trace(self, hook: TraceHook) -> None:
        """Call `hook(command, data, sw)` after every exchange."""
        self._trace_hooks.append(hook)

    def set_fault(self, hook: FaultHook | None) -> None:
        """Install (or with None, remove) a fault-injection hook."""
        self._fault_hook = hook

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU and return ``(data, sw)``.

        Args:
            apdu: the whole command, header included.

        Returns:
            The response data and the status word as an int (0x9000, 0x9100...).

        Raises:
            MalformedApdu: `apdu` is not bytes of a plausible APDU length.
            CardRemoved: the card left the field.
            MalformedResponse: the card's answer lacked a status word.
            ReaderError: the reader failed.
        """
        if not isinstance(apdu, bytes | bytearray) or not 4 <= len(apdu) <= _MAX_APDU:
            raise MalformedApdu(f"not an APDU: {apdu!r}")
        apdu = bytes(apdu)
        index = self._count
        self._count += 1
        raw: bytes | None = None
        if self._fault_hook is not None:
            raw = self._fault_hook(index, apdu)
        if raw is None:
            raw = self._transmit(apdu)
        data, sw = split_response(raw)
        for hook in self._trace_hooks:
            hook(apdu, data, sw)
        return data, sw

    @abc.abstractmethod
    def _transmit(self, apdu: bytes) -> bytes:
        """Send `apdu` and return the raw response, status word included."""

    def _close(self) -> None:
        """Release the driver's resources."""

    def close(self) -> None:
        """Release the channel; further use is an error of the driver."""
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MockTransport(Transport):
    """A transport answered by a function, for testing a POS integration.

    Example:
        >>> t = MockTransport(lambda apdu: b"\\x91\\x00")
        >>> t.transmit(bytes.fromhex("905A00000301020300"))  # SelectApplication 010203
        (b'', 37120)
    """

    def __init__(self, handler: Callable[[bytes], bytes]) -> None:
        super().__init__()
        self._handler = handler

    def _transmit(self, apdu: bytes) -> bytes:
        return self._handler(apdu)
