# SPDX-License-Identifier: Apache-2.0
"""A virtual MIFARE DESFire EV2 card: real keys, real secure messaging, real transactions.

It answers ISO-wrapped native commands exactly as the client expects from a
real card: EV2 (and EV1 AES) authentication, MAC and full communication
modes, backup files whose changes are staged until CommitTransaction, and
everything that discards them (power off, SelectApplication,
AbortTransaction, a new authentication, any refusing status).

Faults on demand (`Faults`): tear before the n-th APDU, tear after a commit
took effect but before its answer left the card, a mute card, a full
EEPROM (by a small `eeprom_size`). A clone is a card with the same UID and
other keys. Cards persist to JSON (`save`, `load`) so one survives a till
restart; staged changes are not saved, as they would not survive on a card.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import attrs

from loyaltysdk._errors import (
    CardAuthenticationFailed,
    CardIntegrityError,
    CardMute,
    CardRemoved,
    MalformedResponse,
)
from loyaltysdk.cards.crypto import desfire_crc32
from loyaltysdk.cards.desfire._client import AccessRights
from loyaltysdk.cards.desfire._secure import (
    CommMode,
    Ev1CardAuthentication,
    Ev1Session,
    Ev2CardAuthentication,
    Ev2Session,
)

ATR = bytes.fromhex("3B8180018080")
_FRAME = 59  # bytes of data per response frame, as a real card sends them
_NEVER, _FREE = 0xF, 0xE

# status bytes
_OK, _AF = 0x00, 0xAF
_NO_CHANGES, _OUT_OF_EEPROM, _ILLEGAL, _INTEGRITY = 0x0C, 0x0E, 0x1C, 0x1E
_NO_SUCH_KEY, _LENGTH, _PERMISSION, _PARAMETER = 0x40, 0x7E, 0x9D, 0x9E
_APP_NOT_FOUND, _AUTH, _BOUNDARY, _DUPLICATE, _FILE_NOT_FOUND = 0xA0, 0xAE, 0xBE, 0xDE, 0xF0
_COUNT = 0xCE


class _Refusal(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status:02X}")
        self.status = status


@attrs.define
class Faults:
    """Faults the card injects; each fires once and is then cleared.

    Attributes:
        tear_before: tear the card away when this APDU index (counted over the
            card's life from 0) arrives: the command is not executed.
        tear_after_commit: let the next CommitTransaction take effect, then
            leave the field before the answer is sent.
        mute: answer nothing (the reader reports a mute card).
    """

    tear_before: int | None = None
    tear_after_commit: bool = False
    mute: bool = False


@attrs.define
class _ValueFile:
    comm: int
    access: AccessRights
    lower: int
    upper: int
    value: int
    limited_enabled: bool
    limited_value: int = 0

    def size(self) -> int:
        return 32


@attrs.define
class _CyclicFile:
    comm: int
    access: AccessRights
    record_size: int
    max_records: int
    records: list[bytes] = attrs.Factory(list)

    def size(self) -> int:
        return self.record_size * self.max_records


@attrs.define
class _Application:
    key_settings: int
    keys: list[tuple[bytes, int]]
    files: dict[int, _ValueFile | _CyclicFile] = attrs.Factory(dict)


_File = _ValueFile | _CyclicFile


class VirtualDesfire:
    """A DESFire EV2 card in memory.

    Args:
        uid: the 7-byte UID (random if None).
        picc_key: the AES PICC master key (a blank card's is all zeros).
        eeprom_size: bytes of user memory (8 KiB by default); small values
            simulate a full card.
    """

    def __init__(
        self,
        uid: bytes | None = None,
        *,
        picc_key: bytes = bytes(16),
        eeprom_size: int = 8192,
    ) -> None:
        self._uid = uid if uid is not None else b"\x04" + os.urandom(6)
        if len(self._uid) != 7:
            raise ValueError("a DESFire UID is 7 bytes")
        self.picc_key = picc_key
        self.picc_key_settings = 0x0F
        self.eeprom_size = eeprom_size
        self.apps: dict[int, _Application] = {}
        self.faults = Faults()
        #: When set, the card writes itself here after every committed change,
        #: so it survives the process (a till restart) like a real card.
        self.path: Path | None = None
        self.apdu_count = 0
        self.commits = 0
        self._reset_volatile()

    # -- VirtualCard protocol ------------------------------------------------

    @property
    def uid(self) -> bytes:
        return self._uid

    def power_on(self) -> bytes:
        self._reset_volatile()
        return ATR

    def power_off(self) -> None:
        self._reset_volatile()

    def process(self, apdu: bytes) -> bytes:
        """Answer one APDU (response data + SW1 SW2).

        Raises:
            CardRemoved: a tear fault fired.
            CardMute: the mute fault fired.
        """
        index = self.apdu_count
        self.apdu_count += 1
        if self.faults.tear_before is not None and index >= self.faults.tear_before:
            self.faults.tear_before = None
            self._reset_volatile()
            raise CardRemoved(f"virtual card torn away before APDU {index}")
        if self.faults.mute:
            self.faults.mute = False
            raise CardMute("virtual card did not answer")
        parsed = _parse_iso_wrapped(apdu)
        if isinstance(parsed, bytes):
            return parsed
        command, data = parsed
        try:
            status, answer = self._dispatch(command, data)
        except _Refusal as refusal:
            self._refuse()
            return bytes([0x91, refusal.status])
        except (CardIntegrityError, MalformedResponse):
            self._refuse()
            return bytes([0x91, _INTEGRITY])
        except CardAuthenticationFailed:
            self._refuse()
            return bytes([0x91, _AUTH])
        if self.path is not None and command in _PERSISTENT_COMMANDS:
            self.save(self.path)
        return answer + bytes([0x91, status])

    # -- state -----------------------------------------------------------------

    def _reset_volatile(self) -> None:
        self.selected = 0
        self.session: Ev2Session | Ev1Session | None = None
        self._handshake: Ev2CardAuthentication | Ev1CardAuthentication | None = None
        self._previous: Ev2Session | None = None
        self._frames: list[bytes] = []
        self._staged: dict[int, _File] = {}
        self._debits: dict[int, int] = {}

    def _refuse(self) -> None:
        # Any refusing status drops authentication and the transaction.
        self.session = None
        self._handshake = None
        self._frames = []
        self._staged, self._debits = {}, {}

    def _used(self) -> int:
        total = 0
        for app in self.apps.values():
            total += 64 + 32 * len(app.keys)
            total += sum(-(-f.size() // 32) * 32 for f in app.files.values())
        return total

    def _reserve(self, size: int) -> None:
        if self._used() + size > self.eeprom_size:
            raise _Refusal(_OUT_OF_EEPROM)

    def _app(self) -> _Application:
        app = self.apps.get(self.selected)
        if app is None:
            raise _Refusal(_PERMISSION)
        return app

    def _key(self, key_no: int) -> bytes:
        if self.selected == 0:
            if key_no != 0:
                raise _Refusal(_NO_SUCH_KEY)
            return self.picc_key
        keys = self._app().keys
        if not 0 <= key_no < len(keys):
            raise _Refusal(_NO_SUCH_KEY)
        return keys[key_no][0]

    def _mode(self, default: CommMode = CommMode.MAC) -> CommMode:
        if isinstance(self.session, Ev1Session):
            # EV1 sends management commands without a MAC (their CMAC only
            # moves the IV) and MACs every answer in either mode.
            return CommMode.PLAIN
        return default if self.session is not None else CommMode.PLAIN

    def _open(self, command: int, data: bytes, header: int, mode: CommMode) -> tuple[bytes, bytes]:
        if self.session is None:
            return data[:header], data[header:]
        return self.session.open(command, data, header, mode)

    def _seal(self, data: bytes, mode: CommMode) -> bytes:
        if self.session is None:
            return data
        return self.session.seal(_OK, data, mode)

    def _reply(self, data: bytes, frames: list[int] | None = None) -> tuple[int, bytes]:
        """Split an answer into frames; the first goes now, the rest on 0xAF."""
        if frames:
            parts, rest = [], data
            for size in frames:
                parts.append(rest[:size])
                rest = rest[size:]
            parts[-1] += rest
        else:
            parts = [data[i : i + _FRAME] for i in range(0, len(data), _FRAME)] or [b""]
        self._frames = parts[1:]
        return (_AF if self._frames else _OK), parts[0]

    # -- commands ------------------------------------------------------------

    def _dispatch(self, command: int, data: bytes) -> tuple[int, bytes]:
        if command == 0xAF:
            return self._continue(data)
        self._frames = []
        if self._handshake is not None:
            self._handshake = None
        handler = _HANDLERS.get(command)
        if handler is None:
            raise _Refusal(_ILLEGAL)
        return handler(self, data)

    def _continue(self, data: bytes) -> tuple[int, bytes]:
        handshake = self._handshake
        if handshake is not None:
            self._handshake = None
            if isinstance(handshake, Ev1CardAuthentication):
                reply, self.session = handshake.verify(data)
                return _OK, reply
            reply, self.session = handshake.verify(data, self._previous)
            return _OK, reply
        if self._frames and not data:
            part = self._frames.pop(0)
            return (_AF if self._frames else _OK), part
        raise _Refusal(0xCA)

    def _authenticate_ev2(self, data: bytes, first: bool) -> tuple[int, bytes]:
        if not data:
            raise _Refusal(_LENGTH)
        key_no = data[0]
        key = self._key(key_no)
        previous = self.session if isinstance(self.session, Ev2Session) else None
        if not first and previous is None:
            raise _Refusal(_AUTH)
        self._staged, self._debits = {}, {}
        self.session = None
        self._previous = previous
        self._handshake = Ev2CardAuthentication(key_no, key, first=first)
        return _AF, self._handshake.challenge()

    def _auth_first(self, data: bytes) -> tuple[int, bytes]:
        return self._authenticate_ev2(data, True)

    def _auth_non_first(self, data: bytes) -> tuple[int, bytes]:
        return self._authenticate_ev2(data, False)

    def _auth_ev1(self, data: bytes) -> tuple[int, bytes]:
        if len(data) != 1:
            raise _Refusal(_LENGTH)
        key = self._key(data[0])
        self._staged, self._debits = {}, {}
        self.session = None
        self._handshake = Ev1CardAuthentication(data[0], key)
        return _AF, self._handshake.challenge()

    def _get_version(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        self._open(0x60, data, 0, mode)
        version = (
            bytes([0x04, 0x01, 0x01, 0x12, 0x00, 0x1A, 0x05])
            + bytes([0x04, 0x01, 0x01, 0x02, 0x00, 0x1A, 0x05])
            + self._uid
            + bytes.fromhex("BA5E0000AA")
            + bytes([0x30, 0x26])
        )
        return self._reply(self._seal(version, mode), [7, 7])

    def _get_card_uid(self, data: bytes) -> tuple[int, bytes]:
        if self.session is None:
            raise _Refusal(_AUTH)
        self._open(0x51, data, 0, CommMode.FULL)
        return self._reply(self._seal(self._uid, CommMode.FULL))

    def _select(self, data: bytes) -> tuple[int, bytes]:
        if len(data) != 3:
            raise _Refusal(_LENGTH)
        aid = int.from_bytes(data, "little")
        self._refuse()
        if aid != 0 and aid not in self.apps:
            raise _Refusal(_APP_NOT_FOUND)
        self.selected = aid
        return _OK, b""

    def _get_key_settings(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        self._open(0x45, data, 0, mode)
        if self.selected == 0:
            answer = bytes([self.picc_key_settings, 0x81])
        else:
            app = self._app()
            answer = bytes([app.key_settings, 0x80 | len(app.keys)])
        return self._reply(self._seal(answer, mode))

    def _create_application(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        _, body = self._open(0xCA, data, 0, mode)
        if self.selected != 0:
            raise _Refusal(_PERMISSION)
        free_create = bool(self.picc_key_settings & 0x04)
        if not free_create and (self.session is None or self.session.key_no != 0):
            raise _Refusal(_AUTH)
        if len(body) < 5:
            raise _Refusal(_LENGTH)
        aid = int.from_bytes(body[:3], "little")
        key_count = body[4] & 0x0F
        if aid == 0 or not 1 <= key_count <= 14 or body[4] & 0xC0 != 0x80:
            raise _Refusal(_PARAMETER)
        if aid in self.apps:
            raise _Refusal(_DUPLICATE)
        if len(self.apps) >= 28:
            raise _Refusal(_COUNT)
        self._reserve(64 + 32 * key_count)
        self.apps[aid] = _Application(body[3], [(bytes(16), 0)] * key_count)
        return _OK, self._seal(b"", mode)

    def _change_key(self, data: bytes) -> tuple[int, bytes]:
        session = self.session
        if session is None or self.selected == 0:
            raise _Refusal(_AUTH)
        app = self._app()
        change_access = app.key_settings >> 4
        header, body = session.open(0xC4, data, 1, CommMode.FULL)
        key_no = header[0]
        if not 0 <= key_no < len(app.keys):
            raise _Refusal(_NO_SUCH_KEY)
        if key_no == 0:
            allowed = session.key_no == 0 and bool(app.key_settings & 0x01)
        elif change_access == 0xE:
            allowed = session.key_no == key_no
        else:
            allowed = session.key_no == change_access  # 0xF: nobody
        if not allowed:
            raise _Refusal(_AUTH)
        if key_no == session.key_no:
            if len(body) != 17:
                raise _Refusal(_LENGTH)
            app.keys[key_no] = (body[:16], body[16])
            self.session = None  # the answer is in clear; the session is over
            return _OK, b""
        if len(body) != 21:
            raise _Refusal(_LENGTH)
        old = app.keys[key_no][0]
        new = bytes(a ^ b for a, b in zip(body[:16], old, strict=True))
        if desfire_crc32(new) != body[17:21]:
            raise _Refusal(_INTEGRITY)
        app.keys[key_no] = (new, body[16])
        return _OK, session.seal(_OK, b"", CommMode.MAC)

    def _delete_application(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        _, body = self._open(0xDA, data, 0, mode)
        if len(body) != 3:
            raise _Refusal(_LENGTH)
        aid = int.from_bytes(body, "little")
        if aid not in self.apps:
            raise _Refusal(_APP_NOT_FOUND)
        # The PICC master key at PICC level, or the application's own master key.
        master = self.session is not None and self.session.key_no == 0
        if not master or self.selected not in (0, aid):
            raise _Refusal(_AUTH)
        answer = self._seal(b"", mode)
        del self.apps[aid]
        self._refuse()
        self.selected = 0
        return _OK, answer

    def _format(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        self._open(0xFC, data, 0, mode)
        if self.selected != 0 or self.session is None or self.session.key_no != 0:
            raise _Refusal(_AUTH)
        self.apps.clear()
        return _OK, self._seal(b"", mode)

    def _require_master(self) -> _Application:
        app = self._app()
        free_files = bool(app.key_settings & 0x04)
        if not free_files and (self.session is None or self.session.key_no != 0):
            raise _Refusal(_AUTH)
        return app

    def _create_value_file(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        _, body = self._open(0xCC, data, 0, mode)
        app = self._require_master()
        if len(body) != 17:
            raise _Refusal(_LENGTH)
        file_no, comm = body[0], body[1]
        lower = int.from_bytes(body[4:8], "little", signed=True)
        upper = int.from_bytes(body[8:12], "little", signed=True)
        value = int.from_bytes(body[12:16], "little", signed=True)
        if file_no > 31 or comm not in (0, 1, 3) or not lower <= value <= upper:
            raise _Refusal(_PARAMETER)
        if file_no in app.files:
            raise _Refusal(_DUPLICATE)
        self._reserve(32)
        access = AccessRights.decode(body[2:4])
        app.files[file_no] = _ValueFile(comm, access, lower, upper, value, bool(body[16] & 1))
        return _OK, self._seal(b"", mode)

    def _create_cyclic_file(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        _, body = self._open(0xC0, data, 0, mode)
        app = self._require_master()
        if len(body) != 10:
            raise _Refusal(_LENGTH)
        file_no, comm = body[0], body[1]
        record_size = int.from_bytes(body[4:7], "little")
        max_records = int.from_bytes(body[7:10], "little")
        if file_no > 31 or comm not in (0, 1, 3) or record_size < 1 or max_records < 2:
            raise _Refusal(_PARAMETER)
        if file_no in app.files:
            raise _Refusal(_DUPLICATE)
        self._reserve(record_size * max_records)
        app.files[file_no] = _CyclicFile(
            comm, AccessRights.decode(body[2:4]), record_size, max_records
        )
        return _OK, self._seal(b"", mode)

    # -- file access -------------------------------------------------------------

    def _file(self, data: bytes) -> tuple[int, _File]:
        if not data:
            raise _Refusal(_LENGTH)
        file = self._app().files.get(data[0])
        if file is None:
            raise _Refusal(_FILE_NOT_FOUND)
        return data[0], file

    def _granted(self, file: _File, *rights: str) -> CommMode:
        """Check access; return the mode the exchange uses."""
        nibbles = [getattr(file.access, right) for right in rights]
        if _FREE in nibbles:
            return CommMode(file.comm) if self.session is not None else CommMode.PLAIN
        if self.session is None or self.session.key_no not in nibbles:
            raise _Refusal(_AUTH if self.session is None else _PERMISSION)
        return CommMode(file.comm)

    def _staged_file(self, file_no: int, file: _File) -> _File:
        if file_no not in self._staged:
            self._staged[file_no] = copy.deepcopy(file)
        return self._staged[file_no]

    def _get_value(self, data: bytes) -> tuple[int, bytes]:
        _file_no, file = self._file(data[:1])
        if not isinstance(file, _ValueFile):
            raise _Refusal(_PARAMETER)
        mode = self._granted(file, "read", "write", "read_write")
        self._open(0x6C, data, 1, mode)
        return self._reply(self._seal(file.value.to_bytes(4, "little", signed=True), mode))

    def _value_op(self, data: bytes, command: int, rights: tuple[str, ...]) -> tuple[int, bytes]:
        file_no, file = self._file(data[:1])
        if not isinstance(file, _ValueFile):
            raise _Refusal(_PARAMETER)
        mode = self._granted(file, *rights)
        _, body = self._open(command, data, 1, mode)
        if len(body) != 4:
            raise _Refusal(_LENGTH)
        amount = int.from_bytes(body, "little", signed=True)
        if amount <= 0:
            raise _Refusal(_PARAMETER)
        staged = self._staged_file(file_no, file)
        assert isinstance(staged, _ValueFile)
        if command == 0xDC:
            if staged.value - amount < staged.lower:
                raise _Refusal(_BOUNDARY)
            staged.value -= amount
            self._debits[file_no] = self._debits.get(file_no, 0) + amount
        else:
            if command == 0x1C:
                if not file.limited_enabled:
                    raise _Refusal(_PERMISSION)
                if amount > file.limited_value or self._debits.get(file_no):
                    raise _Refusal(_BOUNDARY)
            if staged.value + amount > staged.upper:
                raise _Refusal(_BOUNDARY)
            staged.value += amount
            if command == 0x1C:
                staged.limited_value = 0  # usable once, after a debit transaction
        return _OK, self._seal(b"", mode)

    def _debit(self, data: bytes) -> tuple[int, bytes]:
        return self._value_op(data, 0xDC, ("read", "write", "read_write"))

    def _credit(self, data: bytes) -> tuple[int, bytes]:
        return self._value_op(data, 0x0C, ("read_write",))

    def _limited_credit(self, data: bytes) -> tuple[int, bytes]:
        return self._value_op(data, 0x1C, ("write", "read_write"))

    def _write_record(self, data: bytes) -> tuple[int, bytes]:
        file_no, file = self._file(data[:1])
        if not isinstance(file, _CyclicFile):
            raise _Refusal(_PARAMETER)
        mode = self._granted(file, "write", "read_write")
        header, body = self._open(0x8B, data, 7, mode)
        if len(header) != 7:
            raise _Refusal(_LENGTH)
        offset = int.from_bytes(header[1:4], "little")
        length = int.from_bytes(header[4:7], "little")
        if length != len(body) or length == 0 or offset + length > file.record_size:
            raise _Refusal(_BOUNDARY if length == len(body) else _LENGTH)
        staged = self._staged_file(file_no, file)
        assert isinstance(staged, _CyclicFile)
        # One new record per transaction; later writes in it fill the same one.
        if len(staged.records) == len(file.records):
            staged.records.append(bytes(file.record_size))
        record = bytearray(staged.records[-1])
        record[offset : offset + length] = body
        staged.records[-1] = bytes(record)
        return _OK, self._seal(b"", mode)

    def _read_records(self, data: bytes) -> tuple[int, bytes]:
        _file_no, file = self._file(data[:1])
        if not isinstance(file, _CyclicFile):
            raise _Refusal(_PARAMETER)
        mode = self._granted(file, "read", "read_write")
        header, _ = self._open(0xBB, data, 7, mode)
        if len(header) != 7:
            raise _Refusal(_LENGTH)
        newest = int.from_bytes(header[1:4], "little")
        count = int.from_bytes(header[4:7], "little")
        records = file.records
        available = len(records) - newest
        if available <= 0 or count > available:
            raise _Refusal(_BOUNDARY)
        count = count or available
        chosen = records[len(records) - newest - count : len(records) - newest]
        return self._reply(self._seal(b"".join(chosen), mode))

    def _commit(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        self._open(0xC7, data, 0, mode)
        app = self._app()
        if not self._staged:
            # Nothing staged: a real card answers OK here too.
            return _OK, self._seal(b"", mode)
        for file_no, staged in self._staged.items():
            if isinstance(staged, _CyclicFile):
                keep = staged.max_records - 1
                staged.records = staged.records[-keep:]
            elif file_no in self._debits:
                staged.limited_value = self._debits[file_no]
            app.files[file_no] = staged
        self._staged, self._debits = {}, {}
        self.commits += 1
        if self.faults.tear_after_commit:
            self.faults.tear_after_commit = False
            self._reset_volatile()
            raise CardRemoved("virtual card torn away after its commit took effect")
        return _OK, self._seal(b"", mode)

    def _abort(self, data: bytes) -> tuple[int, bytes]:
        mode = self._mode()
        self._open(0xA7, data, 0, mode)
        self._staged, self._debits = {}, {}
        return _OK, self._seal(b"", mode)

    # -- persistence -------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The card's committed state as JSON-ready data."""

        def file_json(file: _File) -> dict[str, Any]:
            access = file.access.encode().hex()
            if isinstance(file, _ValueFile):
                return {
                    "type": "value",
                    "comm": file.comm,
                    "access": access,
                    "lower": file.lower,
                    "upper": file.upper,
                    "value": file.value,
                    "limited_enabled": file.limited_enabled,
                    "limited_value": file.limited_value,
                }
            return {
                "type": "cyclic",
                "comm": file.comm,
                "access": access,
                "record_size": file.record_size,
                "max_records": file.max_records,
                "records": [r.hex() for r in file.records],
            }

        return {
            "type": "desfire",
            "uid": self._uid.hex(),
            "picc_key": self.picc_key.hex(),
            "picc_key_settings": self.picc_key_settings,
            "eeprom_size": self.eeprom_size,
            "apps": {
                f"{aid:06X}": {
                    "key_settings": app.key_settings,
                    "keys": [[k.hex(), v] for k, v in app.keys],
                    "files": {str(n): file_json(f) for n, f in app.files.items()},
                }
                for aid, app in self.apps.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VirtualDesfire:
        """Rebuild a card from `to_json` output."""
        card = cls(
            bytes.fromhex(data["uid"]),
            picc_key=bytes.fromhex(data["picc_key"]),
            eeprom_size=data["eeprom_size"],
        )
        card.picc_key_settings = data["picc_key_settings"]
        for aid_hex, app_data in data["apps"].items():
            app = _Application(
                app_data["key_settings"], [(bytes.fromhex(k), v) for k, v in app_data["keys"]]
            )
            for number, f in app_data["files"].items():
                access = AccessRights.decode(bytes.fromhex(f["access"]))
                if f["type"] == "value":
                    app.files[int(number)] = _ValueFile(
                        f["comm"],
                        access,
                        f["lower"],
                        f["upper"],
                        f["value"],
                        f["limited_enabled"],
                        f["limited_value"],
                    )
                else:
                    app.files[int(number)] = _CyclicFile(
                        f["comm"],
                        access,
                        f["record_size"],
                        f["max_records"],
                        [bytes.fromhex(r) for r in f["records"]],
                    )
            card.apps[int(aid_hex, 16)] = app
        return card

    def save(self, path: str | Path) -> None:
        """Write the card to a JSON file atomically (write, fsync, rename)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w") as handle:
            json.dump(self.to_json(), handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, *, autosave: bool = False) -> VirtualDesfire:
        """Read a card written by `save`; with `autosave`, keep writing it back there."""
        card = cls.from_json(json.loads(Path(path).read_text()))
        if autosave:
            card.path = Path(path)
        return card

    # -- inspection for tests ------------------------------------------------------

    def value_of(self, aid: int, file_no: int) -> int:
        """The committed value of a value file (what the card would report)."""
        file = self.apps[aid].files[file_no]
        assert isinstance(file, _ValueFile)
        return file.value

    def records_of(self, aid: int, file_no: int) -> list[bytes]:
        """The committed records of a record file, oldest first."""
        file = self.apps[aid].files[file_no]
        assert isinstance(file, _CyclicFile)
        return list(file.records)


def _parse_iso_wrapped(apdu: bytes) -> tuple[int, bytes] | bytes:
    """Split ``90 cmd 00 00 [Lc data] 00``; return an ISO status word on malformed input."""
    if len(apdu) < 4:
        return b"\x67\x00"
    if apdu[0] != 0x90:
        return b"\x6e\x00"
    if apdu[2] or apdu[3]:
        return b"\x6b\x00"
    rest = apdu[4:]
    if len(rest) in (0, 1):  # no data, with or without Le
        return apdu[1], b""
    lc = rest[0]
    if lc == 0 or len(rest) not in (1 + lc, 2 + lc):
        return b"\x67\x00"
    return apdu[1], rest[1 : 1 + lc]


# Commands after which the committed state may differ.
_PERSISTENT_COMMANDS = frozenset({0xCA, 0xC4, 0xFC, 0xDA, 0xCC, 0xC0, 0xC7})

_HANDLERS = {
    0x71: VirtualDesfire._auth_first,
    0x77: VirtualDesfire._auth_non_first,
    0xAA: VirtualDesfire._auth_ev1,
    0x60: VirtualDesfire._get_version,
    0x51: VirtualDesfire._get_card_uid,
    0x5A: VirtualDesfire._select,
    0x45: VirtualDesfire._get_key_settings,
    0xCA: VirtualDesfire._create_application,
    0xC4: VirtualDesfire._change_key,
    0xFC: VirtualDesfire._format,
    0xDA: VirtualDesfire._delete_application,
    0xCC: VirtualDesfire._create_value_file,
    0xC0: VirtualDesfire._create_cyclic_file,
    0x6C: VirtualDesfire._get_value,
    0xDC: VirtualDesfire._debit,
    0x0C: VirtualDesfire._credit,
    0x1C: VirtualDesfire._limited_credit,
    0x8B: VirtualDesfire._write_record,
    0xBB: VirtualDesfire._read_records,
    0xC7: VirtualDesfire._commit,
    0xA7: VirtualDesfire._abort,
}
