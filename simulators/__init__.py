# SPDX-License-Identifier: Apache-2.0
"""Virtual cards, readers, tills and networks (installed as ``loyaltysdk.simulators``).

What a POS uses in its own tests, with no hardware: `VirtualDesfire` and
`VirtualNtag424` (cards that answer APDUs as the chips do), `VirtualReader`
(a reader with a card put in and taken out, ``open_reader("sim:desfire")``),
and, for tests through the real PC/SC stack, `PcscdProcess` (a private pcscd
with vsmartcard's vpcd driver) and `VpcdBridge` (a virtual card in its reader).
"""

from .desfire import Faults, VirtualDesfire
from .ntag424 import VirtualNtag424
from .pcscd import PcscdProcess, PcscdUnavailable
from .reader import VirtualReader
from .vpcd import VpcdBridge

__all__ = [
    "Faults",
    "PcscdProcess",
    "PcscdUnavailable",
    "VirtualDesfire",
    "VirtualNtag424",
    "VirtualReader",
    "VpcdBridge",
]
