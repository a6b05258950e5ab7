# SPDX-License-Identifier: Apache-2.0
"""NTAG 424 DNA tap-to-identify: SUN (secure unique NFC) messages, verified offline.

A tapped tag returns a URL whose query carries the encrypted PICC data
(UID and read counter, AES under the SDM meta read key), optionally
encrypted file data, and an 8-byte SDMMAC under a session key derived from
the SDM file read key, the UID and the counter (NXP AN12196 section 4).
`SunVerifier` checks all of it and refuses a counter it has already seen for
the card, so a copied URL cannot identify anyone twice.

`read_sun_url` reads that URL from a tag in a reader (ISO 7816-4 SELECT of
the NDEF application and file, then READ BINARY), through any `Transport`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import attrs

from .._errors import CardError, MalformedResponse
from .crypto import (
    ZERO_IV,
    aes_cmac,
    cbc_decrypt,
    encrypt_block,
    equal,
    truncate_mac,
)
from .transport import Transport

NDEF_AID = bytes.fromhex("D2760000850101")
NDEF_FILE_ID = bytes.fromhex("E104")
_URI_PREFIXES = {
    0x00: "",
    0x01: "http://www.",
    0x02: "https://www.",
    0x03: "http://",
    0x04: "https://",
}
_MAX_COUNTER = 0xFFFFFF


class SunError(CardError):
    """A SUN message was refused."""


class SunInvalid(SunError):
    """The message is malformed or its MAC is wrong: not from a genuine tag with our keys."""


class SunReplayed(SunError):
    """The message's counter is not above the last one seen for this tag: a copy."""


def _check_key(key: bytes) -> None:
    if len(key) != 16:
        raise ValueError("NTAG 424 keys are 16-byte AES keys")


def decrypt_picc_data(key: bytes, encrypted: bytes) -> tuple[bytes, int]:
    """Decrypt the 16-byte PICC data of a SUN message: (UID, read counter).

    The plain block is a tag byte (bit 7: UID mirrored, bit 6: counter
    mirrored, bits 3..0: UID length), the 7-byte UID, the counter as 3 bytes
    little-endian, then random padding.

    Raises:
        SunInvalid: not 16 bytes, or the tag byte does not announce a 7-byte
            UID and a counter (the wrong key decrypts to noise).
    """
    _check_key(key)
    if len(encrypted) != 16:
        raise SunInvalid(f"PICC data is 16 bytes, not {len(encrypted)}")
    plain = cbc_decrypt(key, ZERO_IV, encrypted)
    tag = plain[0]
    if tag & 0xC0 != 0xC0 or tag & 0x0F != 7:
        raise SunInvalid("PICC data does not decrypt to a UID and counter (wrong key or forged)")
    return plain[1:8], int.from_bytes(plain[8:11], "little")


def _session_vector(label: bytes, uid: bytes, counter: int) -> bytes:
    if len(uid) != 7 or not 0 <= counter <= _MAX_COUNTER:
        raise ValueError("a SUN session needs a 7-byte UID and a 24-bit counter")
    return label + b"\x00\x01\x00\x80" + uid + counter.to_bytes(3, "little")


def sdm_mac(key: bytes, uid: bytes, counter: int, data: bytes = b"") -> bytes:
    """The 8-byte SDMMAC over `data` (AN12196: SV2 = 3CC3 0001 0080 || UID || counter).

    Args:
        key: the SDM file read key (the card's diversified key).
        uid: the tag's 7-byte UID.
        counter: the SDM read counter.
        data: the MAC input: the URL text between the configured MAC input
            offset and the MAC itself (empty when they coincide).
    """
    _check_key(key)
    session_key = aes_cmac(key, _session_vector(b"\x3c\xc3", uid, counter))
    return truncate_mac(aes_cmac(session_key, data))


def decrypt_file_data(key: bytes, uid: bytes, counter: int, encrypted: bytes) -> bytes:
    """Decrypt SDM encrypted file data (SV1 = C33C 0001 0080 || UID || counter).

    Raises:
        SunInvalid: not whole AES blocks.
    """
    _check_key(key)
    if not encrypted or len(encrypted) % 16:
        raise SunInvalid("encrypted file data is not whole AES blocks")
    session_key = aes_cmac(key, _session_vector(b"\xc3\x3c", uid, counter))
    iv = encrypt_block(session_key, counter.to_bytes(3, "little") + bytes(13))
    return cbc_decrypt(session_key, iv, encrypted)


# -- counters ------------------------------------------------------------------


class CounterStore(Protocol):
    """The highest counter accepted per tag; the check and the update are one step."""

    def advance(self, uid: bytes, counter: int) -> bool:
        """Record `counter` for `uid` if it is above the last; return whether it was."""
        ...


class MemoryCounterStore:
    """Counters in memory (a test, or a till that reloads them from sync)."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def advance(self, uid: bytes, counter: int) -> bool:
        with self._lock:
            if counter <= self._seen.get(uid, -1):
                return False
            self._seen[uid] = counter
            return True


class SQLiteCounterStore:
    """Counters in a SQLite table (the till's own file): durable across restarts."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS sun_counters (uid BLOB PRIMARY KEY, counter INTEGER"
            " NOT NULL) WITHOUT ROWID"
        )

    def advance(self, uid: bytes, counter: int) -> bool:
        # One statement: inserts a new tag, or raises its counter only if the
        # new one is higher, atomically under SQLite's write lock.
        with self._conn:
            cursor = self._conn.execute(
                "INSERT INTO sun_counters (uid, counter) VALUES (?, ?) ON CONFLICT (uid)"
                " DO UPDATE SET counter = excluded.counter WHERE excluded.counter > counter",
                (uid, counter),
            )
        return cursor.rowcount == 1


# -- the verifier --------------------------------------------------------------


@attrs.frozen
class SunTap:
    """A verified tap: who, which read, and the decrypted file data if any."""

    uid: bytes
    counter: int
    file_data: bytes | None = None


@attrs.frozen
class SunUrlFormat:
    """Where the SUN fields sit in the chain's URL (the tag's SDM configuration).

    Attributes:
        picc_param: the query parameter holding the PICC data (32 hex digits).
        mac_param: the parameter holding the SDMMAC (16 hex digits).
        enc_param: the parameter holding encrypted file data, if configured.
        mac_from: the parameter whose value starts the MAC input; None means
            the MAC input is empty (SDMMACInputOffset equals SDMMACOffset).
    """

    picc_param: str = "picc_data"
    mac_param: str = "cmac"
    enc_param: str | None = None
    mac_from: str | None = None


class SunVerifier:
    """Verify SUN URLs offline and refuse replays.

    Args:
        meta_read_key: the key the PICC data is encrypted with.
        file_read_key: the SDM file read key, or a function of the UID that
            returns it (keys diversified per tag).
        counters: where accepted counters are kept.
        url_format: where the fields are in the URL.
    """

    def __init__(
        self,
        meta_read_key: bytes,
        file_read_key: bytes | Callable[[bytes], bytes],
        counters: CounterStore,
        url_format: SunUrlFormat | None = None,
    ) -> None:
        _check_key(meta_read_key)
        self._meta_key = meta_read_key
        self._file_key = file_read_key
        self._counters = counters
        self.format = url_format or SunUrlFormat()

    def _key_for(self, uid: bytes) -> bytes:
        key = self._file_key
        return key(uid) if callable(key) else key

    def verify(self, url: str) -> SunTap:
        """Check a tapped URL and record its counter.

        Raises:
            SunInvalid: a field is missing or malformed, or the MAC is wrong.
            SunReplayed: the counter was seen before for this tag.
        """
        fmt = self.format
        query = urlsplit(url).query
        fields = _query_fields(query)
        picc = _hex_field(fields, fmt.picc_param, 32)
        mac = _hex_field(fields, fmt.mac_param, 16)
        uid, counter = decrypt_picc_data(self._meta_key, picc)
        key = self._key_for(uid)
        if fmt.mac_from is None:
            mac_input = b""
        else:
            start = _value_offset(query, fmt.mac_from)
            end = _value_offset(query, fmt.mac_param)
            if start is None or end is None or start > end:
                raise SunInvalid("the URL lacks the MAC input or the MAC")
            mac_input = query[start:end].encode("ascii")
        if not equal(mac, sdm_mac(key, uid, counter, mac_input)):
            raise SunInvalid("the SUN MAC does not match: not a genuine tap")
        file_data = None
        if fmt.enc_param is not None:
            raw = fields.get(fmt.enc_param)
            if raw is None:
                raise SunInvalid(f"the URL lacks {fmt.enc_param}")
            file_data = decrypt_file_data(key, uid, counter, _unhex(raw, fmt.enc_param))
        if not self._counters.advance(uid, counter):
            raise SunReplayed(f"tag {uid.hex()} counter {counter} was already seen")
        return SunTap(uid, counter, file_data)


def _query_fields(query: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep:
            if name in fields:
                raise SunInvalid(f"parameter {name} appears twice")
            fields[name] = value
    return fields


def _value_offset(query: str, name: str) -> int | None:
    """Where the value of parameter `name` starts in the raw query text."""
    if query.startswith(f"{name}="):
        return len(name) + 1
    index = query.find(f"&{name}=")
    return None if index < 0 else index + len(name) + 2


def _unhex(value: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise SunInvalid(f"{name} is not hexadecimal") from None


def _hex_field(fields: dict[str, str], name: str, digits: int) -> bytes:
    value = fields.get(name)
    if value is None or len(value) != digits:
        raise SunInvalid(f"the URL needs {name} with {digits} hex digits")
    return _unhex(value, name)


# -- reading the tag -----------------------------------------------------------


def _iso(transport: Transport, apdu: bytes, what: str) -> bytes:
    data, sw = transport.transmit(apdu)
    if sw != 0x9000:
        raise CardError(f"{what} failed with status {sw:04X}")
    return data


def read_sun_url(transport: Transport) -> str:
    """Read the URL of the NDEF message from an NTAG 424 DNA (or any Type 4 tag).

    Raises:
        CardError: the tag refused a command.
        MalformedResponse: the NDEF message is not one URI record.
    """
    _iso(transport, b"\x00\xa4\x04\x00\x07" + NDEF_AID + b"\x00", "SELECT NDEF application")
    _iso(transport, b"\x00\xa4\x00\x0c\x02" + NDEF_FILE_ID, "SELECT NDEF file")
    head = _iso(transport, b"\x00\xb0\x00\x00\x02", "READ BINARY")
    if len(head) != 2:
        raise MalformedResponse("NDEF length field is not 2 bytes")
    length = int.from_bytes(head, "big")
    if not 0 < length <= 0xFE:
        raise MalformedResponse(f"NDEF message length {length} out of range")
    message = _iso(transport, b"\x00\xb0\x00\x02" + bytes([length]), "READ BINARY")
    return parse_uri_record(message)


def parse_uri_record(message: bytes) -> str:
    """The URI of an NDEF message holding one short URI record.

    Raises:
        MalformedResponse: anything else.
    """
    if len(message) < 5 or message[0] & 0x17 != 0x11 or message[1] != 1 or message[3:4] != b"U":
        raise MalformedResponse("the NDEF message is not a short URI record")
    payload = message[4 : 4 + message[2]]
    if len(payload) != message[2] or not payload:
        raise MalformedResponse("the NDEF URI record is truncated")
    prefix = _URI_PREFIXES.get(payload[0])
    if prefix is None:
        raise MalformedResponse(f"unknown URI prefix code {payload[0]}")
    try:
        return prefix + payload[1:].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponse("the URI is not UTF-8") from None


def uri_record(uri: str) -> bytes:
    """An NDEF message with one short URI record (used by the virtual tag)."""
    code, rest = 0x00, uri
    for prefix_code, prefix in sorted(_URI_PREFIXES.items(), key=lambda i: -len(i[1])):
        if prefix and uri.startswith(prefix):
            code, rest = prefix_code, uri[len(prefix) :]
            break
    payload = bytes([code]) + rest.encode("utf-8")
    if len(payload) > 0xFF:
        raise ValueError("URI too long for a short record")
    return bytes([0xD1, 0x01, len(payload)]) + b"U" + payload


__all__ = [
    "CounterStore",
    "MemoryCounterStore",
    "SQLiteCounterStore",
    "SunError",
    "SunInvalid",
    "SunReplayed",
    "SunTap",
    "SunUrlFormat",
    "SunVerifier",
    "decrypt_file_data",
    "decrypt_picc_data",
    "parse_uri_record",
    "read_sun_url",
    "sdm_mac",
    "uri_record",
]
