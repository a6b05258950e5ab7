# SPDX-License-Identifier: Apache-2.0
"""A virtual NTAG 424 DNA that answers each tap with a fresh SUN URL.

It speaks the ISO 7816-4 subset a reader uses to read a Type 4 tag's NDEF
message (SELECT the NDEF application and file, READ BINARY). Every field
entry increments its SDM read counter when the NDEF file is first read, as
the real tag does, and mirrors encrypted PICC data (UID and counter), an
optional encrypted file-data block, and the SDMMAC into the URL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loyaltysdk.cards.crypto import ZERO_IV, aes_cmac, cbc_encrypt, encrypt_block
from loyaltysdk.cards.ntag424 import NDEF_AID, NDEF_FILE_ID, sdm_mac, uri_record

ATR = bytes.fromhex("3B8180018080")
_OK = b"\x90\x00"


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
        self._uid = uid if uid is not None else b"\x04" + os.urandom(6)
        self.meta_read_key = meta_read_key
        self.file_read_key = file_read_key
        self.base_url = base_url
        self.file_data = file_data
        self.counter = counter
        self._message: bytes | None = None
        self._selected_app = False
        self._selected_file = False

    @property
    def uid(self) -> bytes:
        return self._uid

    def power_on(self) -> bytes:
        self._message = None
        self._selected_app = self._selected_file = False
        return ATR

    def power_off(self) -> None:
        self._message = None
        self._selected_app = self._selected_file = False

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

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4 or apdu[0] != 0x00:
            return b"\x6e\x00"
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        body = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        if ins == 0xA4 and p1 == 0x04:
            self._selected_app = body == NDEF_AID
            self._selected_file = False
            return _OK if self._selected_app else b"\x6a\x82"
        if ins == 0xA4 and p1 == 0x00:
            self._selected_file = self._selected_app and body == NDEF_FILE_ID
            return _OK if self._selected_file else b"\x6a\x82"
        if ins == 0xB0:
            if not self._selected_file:
                return b"\x69\x86"
            if self._message is None:
                # The counter moves on the first read of the file in a session.
                self.counter = min(self.counter + 1, 0xFFFFFF)
                record = uri_record(self.sun_url(self.counter))
                self._message = len(record).to_bytes(2, "big") + record
            offset = (p1 << 8) | p2
            length = apdu[4] if len(apdu) == 5 else 0
            if offset > len(self._message):
                return b"\x6b\x00"
            return self._message[offset : offset + (length or 256)] + _OK
        return b"\x6d\x00"

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
