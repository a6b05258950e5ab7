# SPDX-License-Identifier: Apache-2.0
"""A virtual NTAG 424 DNA that answers each tap with a fresh SUN URL.

It speaks what an NFC Forum Type 4 Tag reader (a phone) and NXP's tools
send first, as the NT4H2421Gx datasheet describes the chip:

- ISO 7816-4 SELECT of the NDEF Tag Application by name (D2760000850101),
  of its files by identifier (E103 capability container, E104 NDEF file,
  E105 proprietary file) and of the PICC level (3F00) or the application's
  own DF (E110); READ BINARY with an offset or a short file identifier
  (1, 2, 3 for the same files);
- the native GetVersion (``90 60 00 00 00``, then ``90 AF 00 00 00``
  twice), ISO-wrapped as PC/SC applications send it.

The capability container holds the factory default (CCLEN 0017h, mapping
version 2.0, MLe 0100h, MLc 00FFh, the NDEF file of 256 bytes readable and
writable without a key, the proprietary file of 128 bytes read with key 2
and written with key 3). The NDEF file holds one URI record, the SUN URL.
Every field entry increments the SDM read counter at the first read of the
NDEF file, as the real tag does, and mirrors encrypted PICC data (UID and
counter), an optional encrypted file-data block, and the SDMMAC into it.

Not modelled: authentication, so UPDATE BINARY and reading the proprietary
file are refused (6982: a personalised tag's NDEF file needs a key to be
written, whatever the unchanged CC says); SELECT with P1 01 or 03; native
framing without the ISO wrapper (PC/SC applications and the SDK's
`Transport` send the wrapped form).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loyaltysdk.cards.crypto import ZERO_IV, aes_cmac, cbc_encrypt, encrypt_block
from loyaltysdk.cards.ntag424 import NDEF_AID, sdm_mac, uri_record

ATR = bytes.fromhex("3B8180018080")

# ISO 7816-4 status words the datasheet lists for ISOSelectFile and
# ISOReadBinary (and, for the native commands, the 91xx ones).
_OK = b"\x90\x00"
WRONG_LENGTH = b"\x67\x00"
SECURITY_NOT_SATISFIED = b"\x69\x82"
NO_FILE_SELECTED = b"\x69\x85"  # "conditions of use not satisfied"
FILE_NOT_FOUND = b"\x6a\x82"
WRONG_P1P2 = b"\x6a\x86"
LC_INCONSISTENT = b"\x6a\x87"
INS_NOT_SUPPORTED = b"\x6d\x00"
CLA_NOT_SUPPORTED = b"\x6e\x00"
_NATIVE_OK = b"\x91\x00"
_NATIVE_MORE = b"\x91\xaf"
NATIVE_ILLEGAL_COMMAND = b"\x91\x1c"
NATIVE_LENGTH_ERROR = b"\x91\x7e"
NATIVE_ABORTED = b"\x91\xca"

MF_ID = 0x3F00
DF_ID = 0xE110  # the NDEF Tag Application's ISO file identifier
CC_ID, NDEF_ID, PROPRIETARY_ID = 0xE103, 0xE104, 0xE105
_SHORT_IDS = {1: CC_ID, 2: NDEF_ID, 3: PROPRIETARY_ID}
NDEF_SIZE, PROPRIETARY_SIZE, CC_SIZE = 256, 128, 32

#: The factory capability container: CCLEN, T4T mapping version 2.0, MLe,
#: MLc, then an NDEF file control TLV (E104, 256 bytes, read 00 write 00)
#: and a proprietary file control TLV (E105, 128 bytes, read key 2, write key 3).
CAPABILITY_CONTAINER = (
    bytes.fromhex("0017 20 0100 00FF")
    + bytes.fromhex("04 06 E104 0100 00 00")
    + bytes.fromhex("05 06 E105 0080 82 83")
)

#: GetVersion: hardware and software parts (vendor NXP 04, type NTAG 04,
#: subtype 02, version, storage size code 11h, protocol 05: ISO 14443-2 and -3).
HARDWARE_VERSION = bytes.fromhex("04040230001105")
SOFTWARE_VERSION = bytes.fromhex("04040201021105")
#: Production part after the UID: batch number and fab key, then the week and
#: year of production in BCD (made up for the simulator: week 49 of 2026).
_PRODUCTION = bytes.fromhex("BA5E0000004926")


def _split(apdu: bytes) -> tuple[bytes | None, int | None] | None:
    """(data, Le) of a short APDU; data None without Lc, Le None without Le; None if malformed."""
    if len(apdu) == 4:
        return None, None
    if len(apdu) == 5:
        return None, apdu[4] or 256
    lc = apdu[4]
    rest = apdu[5:]
    if lc == 0 or len(rest) not in (lc, lc + 1):
        return None  # extended lengths are not supported either
    le = (rest[lc] or 256) if len(rest) == lc + 1 else None
    return rest[:lc], le


class VirtualNtag424:
    """An NTAG 424 DNA with SDM configured to mirror a SUN URL.

    Args:
        uid: 7-byte UID (random when None).
        meta_read_key: encrypts the PICC data.
        file_read_key: keys the SDMMAC and the file data encryption.
        base_url: the URL before the query (``https://loyalty.example/t``).
        file_data: 16 bytes to mirror encrypted as ``enc``, or None.
        counter: the SDM read counter so far.
    """

    def __init__(
        self,
        uid: bytes | None = None,
        *,
        meta_read_key: bytes = bytes(16),
        file_read_key: bytes = bytes(16),
        base_url: str = "https://loyalty.example/t",
        file_data: bytes | None = None,
        counter: int = 0,
    ) -> None:
        if file_data is not None and (not file_data or len(file_data) % 16):
            # The file part of a SUN is AES-CBC enciphered: whole blocks only.
            raise ValueError(f"file_data must be whole 16-byte blocks, not {len(file_data)} bytes")
        self._uid = uid if uid is not None else b"\x04" + os.urandom(6)
        self.meta_read_key = meta_read_key
        self.file_read_key = file_read_key
        self.base_url = base_url
        self.file_data = file_data
        self.counter = counter
        self._reset()

    @property
    def uid(self) -> bytes:
        return self._uid

    def _reset(self) -> None:
        self._ndef: bytes | None = None  # this field entry's NDEF file, once read
        self._in_app = False
        self._file: int | None = None
        self._version_parts: list[bytes] = []

    def power_on(self) -> bytes:
        self._reset()
        return ATR

    def power_off(self) -> None:
        self._reset()

    def sun_url(self, counter: int) -> str:
        """The URL this tag mirrors at `counter`."""
        picc_plain = b"\xc7" + self._uid + counter.to_bytes(3, "little") + os.urandom(5)
        picc = cbc_encrypt(self.meta_read_key, ZERO_IV, picc_plain).hex().upper()
        query = f"picc_data={picc}"
        if self.file_data is None:
            mac = sdm_mac(self.file_read_key, self._uid, counter)
            return f"{self.base_url}?{query}&cmac={mac.hex().upper()}"
        vector = b"\xc3\x3c\x00\x01\x00\x80" + self._uid + counter.to_bytes(3, "little")
        session = aes_cmac(self.file_read_key, vector)
        iv = encrypt_block(session, counter.to_bytes(3, "little") + bytes(13))
        enc = cbc_encrypt(session, iv, self.file_data).hex().upper()
        mac_input = f"{enc}&cmac="
        mac = sdm_mac(self.file_read_key, self._uid, counter, mac_input.encode())
        return f"{self.base_url}?{query}&enc={mac_input}{mac.hex().upper()}"

    # -- commands ----------------------------------------------------------------

    def process(self, apdu: bytes) -> bytes:
        """Answer one APDU (response data + SW1 SW2)."""
        if len(apdu) < 4:
            return WRONG_LENGTH
        if apdu[0] == 0x90:
            return self._native(apdu)
        self._version_parts = []  # any other command ends a GetVersion chain
        if apdu[0] != 0x00:
            return CLA_NOT_SUPPORTED
        parts = _split(apdu)
        if parts is None:
            return WRONG_LENGTH
        data, le = parts
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        if ins == 0xA4:
            return self._select(p1, p2, data)
        if ins == 0xB0:
            return self._read_binary(p1, p2, data, le)
        if ins == 0xD6:
            return SECURITY_NOT_SATISFIED
        return INS_NOT_SUPPORTED

    def _select(self, p1: int, p2: int, data: bytes | None) -> bytes:
        if p1 not in (0x00, 0x02, 0x04) or p2 not in (0x00, 0x0C):
            return WRONG_P1P2
        if data is None:
            return WRONG_LENGTH
        # A failed SELECT leaves the current selection as it was.
        if p1 == 0x04:
            if data != NDEF_AID:
                return FILE_NOT_FOUND
            self._in_app, self._file = True, None
            return _OK  # no FCI, with P2 00 too
        if len(data) != 2:
            return LC_INCONSISTENT
        fid = int.from_bytes(data, "big")
        if p1 == 0x00 and fid in (MF_ID, DF_ID):
            self._in_app, self._file = fid == DF_ID, None
            return _OK
        if not self._in_app or fid not in _SHORT_IDS.values():
            return FILE_NOT_FOUND
        self._file = fid
        return _OK

    def _read_binary(self, p1: int, p2: int, data: bytes | None, le: int | None) -> bytes:
        if data is not None or le is None:
            return WRONG_LENGTH
        if p1 & 0x80:
            # Short file identifier in bits 5..1 (bits 7 and 6 zero), offset in P2.
            if p1 & 0x60:
                return WRONG_P1P2
            fid = _SHORT_IDS.get(p1 & 0x1F)
            if fid is None or not self._in_app:
                return FILE_NOT_FOUND
            self._file, offset = fid, p2
        else:
            if self._file is None:
                return NO_FILE_SELECTED
            offset = (p1 << 8) | p2
        content = self._content(self._file)
        if content is None:
            return SECURITY_NOT_SATISFIED
        if offset >= len(content):
            return WRONG_P1P2  # the offset is P1-P2
        # Le 00 asks for up to 256 bytes: what is left of the file. A larger
        # explicit Le than the file holds is refused.
        if le != 256 and offset + le > len(content):
            return WRONG_LENGTH
        return content[offset : offset + le] + _OK

    def _content(self, fid: int) -> bytes | None:
        if fid == CC_ID:
            return CAPABILITY_CONTAINER.ljust(CC_SIZE, b"\x00")
        if fid == NDEF_ID:
            if self._ndef is None:
                # The counter moves on the first read of the file in a session.
                self.counter = min(self.counter + 1, 0xFFFFFF)
                record = uri_record(self.sun_url(self.counter))
                message = len(record).to_bytes(2, "big") + record
                self._ndef = message.ljust(NDEF_SIZE, b"\x00")
            return self._ndef
        return None  # the proprietary file is read with key 2

    def _native(self, apdu: bytes) -> bytes:
        parts = _split(apdu)
        if parts is None:
            self._version_parts = []
            return WRONG_LENGTH
        data, _ = parts
        if apdu[2] or apdu[3]:
            self._version_parts = []
            return WRONG_P1P2
        command = apdu[1]
        if command == 0xAF:
            if not self._version_parts:
                return NATIVE_ABORTED
            if data:
                self._version_parts = []
                return NATIVE_LENGTH_ERROR
            part = self._version_parts.pop(0)
            return part + (_NATIVE_MORE if self._version_parts else _NATIVE_OK)
        self._version_parts = []
        if command != 0x60:
            return NATIVE_ILLEGAL_COMMAND
        if data:
            return NATIVE_LENGTH_ERROR
        self._version_parts = [SOFTWARE_VERSION, self._uid + _PRODUCTION]
        return HARDWARE_VERSION + _NATIVE_MORE

    # -- persistence -------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "ntag424",
            "uid": self._uid.hex(),
            "meta_read_key": self.meta_read_key.hex(),
            "file_read_key": self.file_read_key.hex(),
            "base_url": self.base_url,
            "file_data": self.file_data.hex() if self.file_data is not None else None,
            "counter": self.counter,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VirtualNtag424:
        return cls(
            bytes.fromhex(data["uid"]),
            meta_read_key=bytes.fromhex(data["meta_read_key"]),
            file_read_key=bytes.fromhex(data["file_read_key"]),
            base_url=data["base_url"],
            file_data=bytes.fromhex(data["file_data"]) if data["file_data"] else None,
            counter=data["counter"],
        )

    def save(self, path: str | Path) -> None:
        """Write the tag (with its counter) to a JSON file atomically."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> VirtualNtag424:
        return cls.from_json(json.loads(Path(path).read_text()))
