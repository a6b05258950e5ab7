# SPDX-License-Identifier: Apache-2.0
"""A MIFARE DESFire EV2 client over any `Transport`.

Commands travel ISO 7816-4 wrapped (``90 cmd 00 00 Lc data 00``), the form
every PC/SC reader passes through; answers longer than one frame come in
0xAF-chained parts that the client joins. After an EV2 authentication every
command goes through the session (`Ev2Session`): file commands in the
file's communication mode, management commands MAC-protected, as the EV2
datasheet requires. After an EV1 AuthenticateAES the same commands go
through an `Ev1Session` instead (CMAC-chained IV, see `_secure`). Any
refusing status, or a card that leaves the field, ends the session: the
card has dropped it too.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from ..._errors import (
    CardAuthenticationFailed,
    CardError,
    CardIntegrityError,
    MalformedResponse,
)
from ..crypto import desfire_crc32
from ..transport import Transport
from ._secure import (
    CommMode,
    Ev1Authentication,
    Ev1Session,
    Ev2Authentication,
    Ev2Session,
)
from ._status import (
    ADDITIONAL_FRAME,
    OPERATION_OK,
    SW1_DESFIRE,
    AuthenticationError,
    DesfireError,
    status_error,
)

# Native command bytes (MIFARE DESFire EV2 datasheet).
GET_VERSION = 0x60
GET_CARD_UID = 0x51
SELECT_APPLICATION = 0x5A
GET_KEY_SETTINGS = 0x45
CREATE_APPLICATION = 0xCA
CHANGE_KEY = 0xC4
CREATE_VALUE_FILE = 0xCC
CREATE_CYCLIC_RECORD_FILE = 0xC0
GET_VALUE = 0x6C
CREDIT = 0x0C
DEBIT = 0xDC
LIMITED_CREDIT = 0x1C
WRITE_RECORD = 0x8B
READ_RECORDS = 0xBB
COMMIT_TRANSACTION = 0xC7
ABORT_TRANSACTION = 0xA7
FORMAT_PICC = 0xFC
DELETE_APPLICATION = 0xDA
GET_APPLICATION_IDS = 0x6A
GET_FREE_MEMORY = 0x6E
GET_KEY_VERSION = 0x64
GET_DF_NAMES = 0x6D
GET_FILE_IDS = 0x6F
GET_FILE_SETTINGS = 0xF5
AUTHENTICATE_LEGACY = 0x0A  # DES / 2K3DES, D40 secure messaging
AUTHENTICATE_ISO = 0x1A  # DES / 2K3DES / 3K3DES, EV1 secure messaging
WRITE_RECORD_NATIVE = 0x3B  # the same WriteRecord as 0x8B
READ_RECORDS_NATIVE = 0xAB  # the same ReadRecords as 0xBB

#: The DF name of the PICC level, for ISO 7816-4 SELECT (by DF name).
DESFIRE_DF_NAME = bytes.fromhex("D2760000850100")

#: The largest command data one short APDU carries.
_MAX_LC = 255
#: How many 0xAF continuation frames a response may have before we call it runaway.
_MAX_FRAMES = 64

PICC_AID = 0x000000
#: Access condition nibbles: a key number 0..13, 0xE free for all, 0xF never.
FREE = 0xE
NEVER = 0xF


@attrs.frozen
class AccessRights:
    """Which key may do what with a file (each a key number, `FREE` or `NEVER`)."""

    read: int
    write: int
    read_write: int
    change: int

    def encode(self) -> bytes:
        """The two bytes on the wire, least significant first."""
        for value in (self.read, self.write, self.read_write, self.change):
            if not 0 <= value <= 0xF:
                raise ValueError(f"access condition out of range: {value}")
        return bytes([(self.read_write << 4) | self.change, (self.read << 4) | self.write])

    @classmethod
    def decode(cls, data: bytes) -> AccessRights:
        """Parse the two wire bytes."""
        return cls(data[1] >> 4, data[1] & 0xF, data[0] >> 4, data[0] & 0xF)


class KeyType(enum.IntEnum):
    """A key's cipher, as the top bits of a key-count or key-number byte carry it."""

    DES = 0x00  # DES or 2K3DES (a DES key is a 2K3DES key with equal halves)
    TK3DES = 0x40
    AES = 0x80


class FileType(enum.IntEnum):
    """The file types GetFileSettings reports."""

    STANDARD = 0x00
    BACKUP = 0x01
    VALUE = 0x02
    LINEAR_RECORD = 0x03
    CYCLIC_RECORD = 0x04


@attrs.frozen
class FileSettings:
    """What GetFileSettings reports about one file.

    Attributes:
        file_type: standard, backup, value, linear or cyclic record file.
        comm_mode: the file's communication mode.
        access: who may read, write, read-and-write and change the settings.
        size: a data file's size in bytes (None for other types).
        lower_limit, upper_limit: a value file's limits (None otherwise).
        limited_credit_value: what LimitedCredit may give back now (value files).
        limited_credit: whether LimitedCredit is enabled (value files).
        record_size, max_records, current_records: a record file's shape (None otherwise).
    """

    file_type: FileType
    comm_mode: CommMode
    access: AccessRights
    size: int | None = None
    lower_limit: int | None = None
    upper_limit: int | None = None
    limited_credit_value: int | None = None
    limited_credit: bool | None = None
    record_size: int | None = None
    max_records: int | None = None
    current_records: int | None = None

    @classmethod
    def parse(cls, data: bytes) -> FileSettings:
        """Parse a GetFileSettings answer.

        Raises:
            MalformedResponse: unknown file type, communication mode or length.
        """
        if len(data) < 4:
            raise MalformedResponse(f"GetFileSettings returned {len(data)} bytes")
        try:
            file_type = FileType(data[0])
            comm_mode = CommMode(data[1] & 0x03)
        except ValueError:
            raise MalformedResponse(f"GetFileSettings: unknown settings {data[:2].hex()}") from None
        access = AccessRights.decode(data[2:4])
        rest = data[4:]
        # Each type's fixed length; EV2 may append SDM or additional access rights
        # only when flagged in the comm byte's upper bits, which this SDK never sets.
        expected = {FileType.VALUE: 13, FileType.STANDARD: 3, FileType.BACKUP: 3}
        if len(rest) != expected.get(file_type, 9):
            raise MalformedResponse(
                f"GetFileSettings for a {file_type.name} file returned {len(data)} bytes"
            )
        if file_type is FileType.VALUE:
            return cls(
                file_type,
                comm_mode,
                access,
                lower_limit=int.from_bytes(rest[0:4], "little", signed=True),
                upper_limit=int.from_bytes(rest[4:8], "little", signed=True),
                limited_credit_value=int.from_bytes(rest[8:12], "little", signed=True),
                limited_credit=bool(rest[12] & 0x01),
            )
        if file_type in (FileType.STANDARD, FileType.BACKUP):
            return cls(file_type, comm_mode, access, size=int.from_bytes(rest, "little"))
        return cls(
            file_type,
            comm_mode,
            access,
            record_size=int.from_bytes(rest[0:3], "little"),
            max_records=int.from_bytes(rest[3:6], "little"),
            current_records=int.from_bytes(rest[6:9], "little"),
        )


@attrs.frozen
class VersionInfo:
    """What GetVersion reports: hardware, software and production data."""

    vendor: int
    hardware_type: int
    hardware_version: tuple[int, int]
    storage_size: int
    software_version: tuple[int, int]
    uid: bytes
    batch: bytes
    production_week: int
    production_year: int

    @classmethod
    def parse(cls, data: bytes) -> VersionInfo:
        """Parse the 28 joined bytes of the three GetVersion frames.

        Raises:
            MalformedResponse: the answer has the wrong length.
        """
        if len(data) not in (28, 29, 30):  # EV2 may append a fab key / product id byte
            raise MalformedResponse(f"GetVersion answered {len(data)} bytes, expected 28")
        return cls(
            vendor=data[0],
            hardware_type=data[1],
            hardware_version=(data[3], data[4]),
            storage_size=data[5],
            software_version=(data[10], data[11]),
            uid=data[14:21],
            batch=data[21:26],
            production_week=data[26],
            production_year=data[27],
        )

    @property
    def generation(self) -> str:
        """ "EV1", "EV2", "EV3" or "unknown", from the hardware major version."""
        return {0x01: "EV1", 0x12: "EV2", 0x33: "EV3"}.get(self.hardware_version[0], "unknown")


def aid_bytes(aid: int) -> bytes:
    """The three wire bytes of an application id (least significant first)."""
    if not 0 <= aid <= 0xFFFFFF:
        raise ValueError(f"application id out of range: {aid:#x}")
    return aid.to_bytes(3, "little")


def _int_le(value: int, length: int, *, signed: bool = False) -> bytes:
    return value.to_bytes(length, "little", signed=signed)


class DesfireClient:
    """Commands to one DESFire card through a transport.

    Args:
        transport: the channel to the card.

    Attributes:
        session: the running EV2 or EV1 session, or None when not authenticated.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.session: Ev2Session | Ev1Session | None = None

    @property
    def ev1_session_key(self) -> bytes | None:
        """The session key of a running EV1 session, else None (kept for older callers)."""
        return self.session.key if isinstance(self.session, Ev1Session) else None

    # -- framing -------------------------------------------------------------

    def _drop_session(self) -> None:
        self.session = None

    def _send(self, command: int, data: bytes) -> tuple[int, bytes]:
        """One command, all its response frames; returns (status byte, data)."""
        if len(data) > _MAX_LC:
            raise ValueError(f"command data of {len(data)} bytes exceeds one short APDU")
        apdu = bytes([0x90, command, 0x00, 0x00])
        apdu += (bytes([len(data)]) + data + b"\x00") if data else b"\x00"
        parts: list[bytes] = []
        try:
            response, sw = self.transport.transmit(apdu)
            for _ in range(_MAX_FRAMES):
                if sw >> 8 != SW1_DESFIRE:
                    raise status_error(sw, command)
                parts.append(response)
                if sw & 0xFF != ADDITIONAL_FRAME or command in _AUTH_COMMANDS:
                    break
                response, sw = self.transport.transmit(b"\x90\xaf\x00\x00\x00")
            else:
                raise MalformedResponse(f"more than {_MAX_FRAMES} response frames")
        except CardError:
            self._drop_session()
            raise
        return sw & 0xFF, b"".join(parts)

    def _check_status(self, command: int, status: int, expected: int = OPERATION_OK) -> None:
        if status != expected:
            self._drop_session()
            raise status_error((SW1_DESFIRE << 8) | status, command)

    def command(
        self,
        command: int,
        header: bytes = b"",
        data: bytes = b"",
        mode: CommMode = CommMode.MAC,
    ) -> bytes:
        """Send one command through the session (if any) and return its plain answer.

        Args:
            command: the native command byte.
            header: parameters that stay in clear (file number, offsets).
            data: the command data (encrypted in full mode).
            mode: the communication mode when authenticated; ignored otherwise.

        Raises:
            DesfireError: the card refused (the session is dropped).
            CardIntegrityError: the answer failed its MAC (the session is dropped).
        """
        session = self.session
        body = session.wrap(command, header, data, mode) if session else header + data
        status, answer = self._send(command, body)
        self._check_status(command, status)
        if session is None:
            return answer
        try:
            return session.unwrap(status, answer, mode)
        except (CardIntegrityError, MalformedResponse):
            self._drop_session()
            raise

    # -- authentication ----------------------------------------------------

    def authenticate(self, key_no: int, key: bytes, *, first: bool = True) -> Ev2Session:
        """AuthenticateEV2First (or NonFirst, keeping TI and counter) with an AES key.

        Raises:
            CardAuthenticationFailed: the card refused the key or failed to prove it.
        """
        previous = self.session if isinstance(self.session, Ev2Session) else None
        if not first and previous is None:
            raise CardAuthenticationFailed("AuthenticateEV2NonFirst needs a running EV2 session")
        steps = Ev2Authentication(key_no, key, first=first)
        code, data = steps.command()
        self._drop_session()
        status, challenge = self._send(code, data)
        self._expect_auth(code, status, ADDITIONAL_FRAME)
        status, reply = self._send(0xAF, steps.respond(challenge))
        self._expect_auth(code, status, OPERATION_OK)
        self.session = steps.finish(reply, previous)
        return self.session

    def authenticate_ev1(self, key_no: int, key: bytes) -> Ev1Session:
        """EV1 AuthenticateAES (0xAA); later commands use EV1 secure messaging.

        For cards without EV2 authentication. The session key is the
        returned session's ``key`` (also `ev1_session_key`).

        Raises:
            CardAuthenticationFailed: the card refused the key or failed to prove it.
        """
        steps = Ev1Authentication(key_no, key)
        code, data = steps.command()
        self._drop_session()
        status, challenge = self._send(code, data)
        self._expect_auth(code, status, ADDITIONAL_FRAME)
        status, reply = self._send(0xAF, steps.respond(challenge))
        self._expect_auth(code, status, OPERATION_OK)
        self.session = steps.finish(reply)
        return self.session

    def _expect_auth(self, command: int, status: int, expected: int) -> None:
        if status == expected:
            return
        if status in (OPERATION_OK, ADDITIONAL_FRAME):
            raise MalformedResponse(
                f"authentication step answered {status:02X}, not {expected:02X}"
            )
        error = status_error((SW1_DESFIRE << 8) | status, command)
        if isinstance(error, AuthenticationError):
            raise CardAuthenticationFailed(f"the card refused the key: {error}") from error
        raise error

    # -- card and application level ------------------------------------------

    def get_version(self) -> VersionInfo:
        """GetVersion: hardware, software and production data (3 frames)."""
        return VersionInfo.parse(self.command(GET_VERSION, mode=CommMode.MAC))

    def get_card_uid(self) -> bytes:
        """GetCardUID: the real UID even when the card shows a random one (needs auth)."""
        if self.session is None:
            raise CardAuthenticationFailed("GetCardUID needs an authenticated session")
        uid = self.command(GET_CARD_UID, mode=CommMode.FULL)
        if len(uid) not in (4, 7, 10):
            raise MalformedResponse(f"GetCardUID returned {len(uid)} bytes")
        return uid

    def select_application(self, aid: int) -> None:
        """SelectApplication: ends any authentication and pending transaction."""
        self._drop_session()
        self.command(SELECT_APPLICATION, aid_bytes(aid), mode=CommMode.PLAIN)

    def get_key_settings(self) -> tuple[int, int]:
        """GetKeySettings: (settings byte, key count with the crypto bits of byte 2)."""
        answer = self.command(GET_KEY_SETTINGS, mode=CommMode.MAC)
        if len(answer) != 2:
            raise MalformedResponse(f"GetKeySettings returned {len(answer)} bytes")
        return answer[0], answer[1]

    def create_application(self, aid: int, key_settings: int, key_count: int) -> None:
        """CreateApplication with AES keys (all zero until changed)."""
        if not 1 <= key_count <= 14:
            raise ValueError(f"an application has 1 to 14 keys, not {key_count}")
        self.command(
            CREATE_APPLICATION,
            aid_bytes(aid) + bytes([key_settings, 0x80 | key_count]),
            mode=CommMode.MAC,
        )

    def change_key(
        self, key_no: int, new_key: bytes, *, old_key: bytes | None = None, version: int = 0
    ) -> None:
        """ChangeKey with an AES key, in full mode.

        Changing the key the session is authenticated with sends the new key
        and ends the session; changing another key sends it XORed with the
        old one plus a CRC32 of the new key, as the card requires.
        """
        session = self.session
        if session is None:
            raise CardAuthenticationFailed("ChangeKey needs an authenticated session")
        if len(new_key) != 16:
            raise ValueError("AES keys are 16 bytes")
        if key_no == session.key_no:
            cryptogram = new_key + bytes([version])
        else:
            old = old_key if old_key is not None else bytes(16)
            xored = bytes(a ^ b for a, b in zip(new_key, old, strict=True))
            cryptogram = xored + bytes([version]) + desfire_crc32(new_key)
        body = session.wrap(CHANGE_KEY, bytes([key_no]), cryptogram, CommMode.FULL)
        status, answer = self._send(CHANGE_KEY, body)
        self._check_status(CHANGE_KEY, status)
        if key_no == session.key_no:
            self._drop_session()  # the card answers in clear and forgets the session
            return
        try:
            session.unwrap(status, answer, CommMode.MAC)
        except (CardIntegrityError, MalformedResponse):
            self._drop_session()
            raise

    def delete_application(self, aid: int) -> None:
        """DeleteApplication: with the PICC master key, or that application's master key.

        The card returns to the PICC level and forgets the session.
        """
        self.command(DELETE_APPLICATION, aid_bytes(aid), mode=CommMode.MAC)
        self._drop_session()

    def get_key_version(self, key_no: int) -> int:
        """GetKeyVersion: the version byte of key `key_no` of the selected level.

        A till checks it before trusting a card's keys: a key still at the
        factory version was never changed.

        Raises:
            NoSuchKey: the application has no such key.
        """
        if not 0 <= key_no <= 0x0D:
            raise ValueError(f"key number out of range: {key_no}")
        answer = self.command(GET_KEY_VERSION, bytes([key_no]), mode=CommMode.MAC)
        if len(answer) != 1:
            raise MalformedResponse(f"GetKeyVersion returned {len(answer)} bytes")
        return answer[0]

    def get_file_settings(self, file_no: int) -> FileSettings:
        """GetFileSettings: a file's type, mode, access rights and shape.

        Raises:
            FileNotFound: the selected application has no such file.
            MalformedResponse: the answer is not a file's settings.
        """
        if not 0 <= file_no <= 31:
            raise ValueError(f"file number out of range: {file_no}")
        return FileSettings.parse(
            self.command(GET_FILE_SETTINGS, bytes([file_no]), mode=CommMode.MAC)
        )

    def format_picc(self) -> None:
        """FormatPICC: delete every application (PICC master key session needed)."""
        self.command(FORMAT_PICC, mode=CommMode.MAC)

    # -- files -----------------------------------------------------------------

    def create_value_file(
        self,
        file_no: int,
        mode: CommMode,
        access: AccessRights,
        *,
        lower_limit: int,
        upper_limit: int,
        value: int = 0,
        limited_credit: bool = False,
    ) -> None:
        """CreateValueFile (a backup file: changes wait for CommitTransaction)."""
        data = (
            bytes([file_no, int(mode)])
            + access.encode()
            + _int_le(lower_limit, 4, signed=True)
            + _int_le(upper_limit, 4, signed=True)
            + _int_le(value, 4, signed=True)
            + bytes([1 if limited_credit else 0])
        )
        self.command(CREATE_VALUE_FILE, data, mode=CommMode.MAC)

    def create_cyclic_record_file(
        self,
        file_no: int,
        mode: CommMode,
        access: AccessRights,
        *,
        record_size: int,
        max_records: int,
    ) -> None:
        """CreateCyclicRecordFile: the newest `max_records - 1` records are kept."""
        data = (
            bytes([file_no, int(mode)])
            + access.encode()
            + _int_le(record_size, 3)
            + _int_le(max_records, 3)
        )
        self.command(CREATE_CYCLIC_RECORD_FILE, data, mode=CommMode.MAC)

    def get_value(self, file_no: int, mode: CommMode) -> int:
        """GetValue: the committed value of a value file."""
        answer = self.command(GET_VALUE, bytes([file_no]), mode=mode)
        if len(answer) != 4:
            raise MalformedResponse(f"GetValue returned {len(answer)} bytes")
        return int.from_bytes(answer, "little", signed=True)

    def _value_op(self, command: int, file_no: int, amount: int, mode: CommMode) -> None:
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 2**31:
            raise ValueError(f"a value operation needs a positive 31-bit integer, not {amount!r}")
        self.command(command, bytes([file_no]), _int_le(amount, 4), mode=mode)

    def credit(self, file_no: int, amount: int, mode: CommMode) -> None:
        """Credit (staged until CommitTransaction)."""
        self._value_op(CREDIT, file_no, amount, mode)

    def debit(self, file_no: int, amount: int, mode: CommMode) -> None:
        """Debit (staged until CommitTransaction)."""
        self._value_op(DEBIT, file_no, amount, mode)

    def limited_credit(self, file_no: int, amount: int, mode: CommMode) -> None:
        """LimitedCredit: give back up to the sum of the debits of the last transaction."""
        self._value_op(LIMITED_CREDIT, file_no, amount, mode)

    def write_record(self, file_no: int, data: bytes, mode: CommMode, *, offset: int = 0) -> None:
        """WriteRecord (a new record, staged until CommitTransaction)."""
        header = bytes([file_no]) + _int_le(offset, 3) + _int_le(len(data), 3)
        self.command(WRITE_RECORD, header, data, mode=mode)

    def read_records(
        self, file_no: int, record_size: int, mode: CommMode, *, newest: int = 0, count: int = 0
    ) -> list[bytes]:
        """ReadRecords, newest first: `newest` skips that many, `count` 0 means all.

        Raises:
            BoundaryError: the file has no records (or fewer than asked).
            MalformedResponse: the answer is not whole records.
        """
        header = bytes([file_no]) + _int_le(newest, 3) + _int_le(count, 3)
        answer = self.command(READ_RECORDS, header, mode=mode)
        if record_size <= 0 or len(answer) % record_size:
            raise MalformedResponse(
                f"ReadRecords returned {len(answer)} bytes, not whole {record_size}-byte records"
            )
        if count and len(answer) != count * record_size:
            raise MalformedResponse(f"asked for {count} records, got {len(answer) // record_size}")
        records = [answer[i : i + record_size] for i in range(0, len(answer), record_size)]
        # The card sends oldest first; callers think newest first.
        return records[::-1]

    def commit_transaction(self) -> None:
        """CommitTransaction: every staged change of the application, at once."""
        self.command(COMMIT_TRANSACTION, mode=CommMode.MAC)

    def abort_transaction(self) -> None:
        """AbortTransaction: forget every staged change."""
        self.command(ABORT_TRANSACTION, mode=CommMode.MAC)


_AUTH_COMMANDS: Sequence[int] = (0x71, 0x77, 0xAA)

__all__ = [
    "AccessRights",
    "DesfireClient",
    "DesfireError",
    "FileSettings",
    "FileType",
    "KeyType",
    "VersionInfo",
]
