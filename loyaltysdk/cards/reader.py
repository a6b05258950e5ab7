# SPDX-License-Identifier: Apache-2.0
"""Readers: card presence and a transport to the card in the field.

Readers are chosen by a path string and their drivers load lazily, so
``import loyaltysdk`` works on a till without pcsc-lite:

- ``pcsc:ACR122`` the first PC/SC reader whose name contains "ACR122";
- ``sim:desfire`` an in-process simulated reader holding a virtual card;
- ``vpcd:127.0.0.1:35963`` a virtual card served to vsmartcard's vpcd.
"""

from __future__ import annotations

import abc
import importlib
from types import TracebackType
from typing import Literal, Self

import attrs

from .._errors import ConfigurationError, DriverMissing
from .transport import CardInfo, Transport


@attrs.frozen
class CardEvent:
    """A card arrived in or left a reader's field.

    Attributes:
        kind: ``"inserted"`` or ``"removed"``.
        reader: the reader's name.
        card: what is known of the card (for a removal, the card that left).
    """

    kind: Literal["inserted", "removed"]
    reader: str
    card: CardInfo | None = None


class Reader(abc.ABC):
    """One reader: presence events and a transport to the present card."""

    name: str

    @abc.abstractmethod
    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        """Block until a card is in the field and return what is known of it.

        Raises:
            ReaderTimeout: no card came within `timeout` seconds.
            ReaderError: the reader failed or went away.
        """

    @abc.abstractmethod
    def connect(self) -> Transport:
        """Open a transport to the card in the field.

        Raises:
            CardRemoved: there is no card.
            ReaderError: the reader failed or went away.
        """

    @abc.abstractmethod
    def next_event(self, timeout: float | None = None) -> CardEvent | None:
        """Return the next insert or remove event, in order, or None on timeout."""

    def close(self) -> None:
        """Stop any monitoring and release the reader."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# scheme -> (module, factory function, extra that provides its dependencies)
_DRIVERS: dict[str, tuple[str, str, str | None]] = {
    "pcsc": ("loyaltysdk.drivers.pcsc", "open_reader", "pcsc"),
    "sim": ("loyaltysdk.simulators.reader", "open_reader", None),
}


def open_reader(path: str) -> Reader:
    """Open the reader named by `path` (``scheme:argument``).

    Raises:
        ConfigurationError: the scheme is unknown.
        DriverMissing: the driver needs an extra that is not installed
            (``pip install loyaltysdk[pcsc]`` for PC/SC).
    """
    scheme, _, argument = path.partition(":")
    try:
        module_name, factory, extra = _DRIVERS[scheme]
    except KeyError:
        raise ConfigurationError(
            f"unknown reader path {path!r}; known schemes: {', '.join(sorted(_DRIVERS))}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        hint = f": pip install 'loyaltysdk[{extra}]'" if extra else ""
        raise DriverMissing(f"reader driver {scheme!r} cannot load ({error}){hint}") from error
    reader: Reader = getattr(module, factory)(argument)
    return reader
