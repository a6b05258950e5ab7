# SPDX-License-Identifier: Apache-2.0
"""DESFire status codes (the second status byte after 0x91), each a named exception."""

from __future__ import annotations

from typing import ClassVar

from ..._errors import CardError

#: SW1 of every native DESFire answer, ISO-wrapped.
SW1_DESFIRE = 0x91
OPERATION_OK = 0x00
ADDITIONAL_FRAME = 0xAF


class DesfireError(CardError):
    """The card refused a command with a DESFire status code.

    Attributes:
        code: the status byte (0x9D for permission denied, ...).
        command: the command byte that was refused, when known.
    """

    code: ClassVar[int] = -1

    def __init__(self, message: str = "", *, command: int | None = None) -> None:
        self.command = command
        where = f" (command {command:02X})" if command is not None else ""
        super().__init__(f"{message or self.__doc__}{where}")


class NoChanges(DesfireError):
    """No changes done to backup files; CommitTransaction or AbortTransaction not needed."""

    code = 0x0C


class OutOfEeprom(DesfireError):
    """Insufficient non-volatile memory to complete the command."""

    code = 0x0E


class IllegalCommand(DesfireError):
    """The command code is not supported."""

    code = 0x1C


class IntegrityError(DesfireError):
    """CRC or MAC does not match the data, or padding bytes are not valid."""

    code = 0x1E


class NoSuchKey(DesfireError):
    """Invalid key number specified."""

    code = 0x40


class LengthError(DesfireError):
    """The length of the command string is invalid."""

    code = 0x7E


class PermissionDenied(DesfireError):
    """The current configuration or status does not allow the command."""

    code = 0x9D


class ParameterError(DesfireError):
    """A value of a parameter is invalid."""

    code = 0x9E


class ApplicationNotFound(DesfireError):
    """The requested AID is not present on the card."""

    code = 0xA0


class ApplicationIntegrityError(DesfireError):
    """Unrecoverable error within the application; it will be disabled."""

    code = 0xA1


class AuthenticationError(DesfireError):
    """The current authentication status does not allow the command."""

    code = 0xAE


class BoundaryError(DesfireError):
    """An attempt to read or write beyond a file's or value's limits."""

    code = 0xBE


class PiccIntegrityError(DesfireError):
    """Unrecoverable error within the card; it will be disabled."""

    code = 0xC1


class CommandAborted(DesfireError):
    """The previous command was not fully completed (a frame was missing)."""

    code = 0xCA


class PiccDisabled(DesfireError):
    """The card was disabled by an unrecoverable error."""

    code = 0xCD


class CountError(DesfireError):
    """The number of applications is limited to 28; no more can be created."""

    code = 0xCE


class DuplicateError(DesfireError):
    """The application or file to create exists already."""

    code = 0xDE


class EepromError(DesfireError):
    """Could not complete a non-volatile write operation."""

    code = 0xEE


class FileNotFound(DesfireError):
    """The specified file number does not exist."""

    code = 0xF0


class FileIntegrityError(DesfireError):
    """Unrecoverable error within the file; it will be disabled."""

    code = 0xF1


class UnknownStatus(DesfireError):
    """The card answered with a status this SDK does not know."""


STATUS_ERRORS: dict[int, type[DesfireError]] = {
    cls.code: cls
    for cls in (
        NoChanges,
        OutOfEeprom,
        IllegalCommand,
        IntegrityError,
        NoSuchKey,
        LengthError,
        PermissionDenied,
        ParameterError,
        ApplicationNotFound,
        ApplicationIntegrityError,
        AuthenticationError,
        BoundaryError,
        PiccIntegrityError,
        CommandAborted,
        PiccDisabled,
        CountError,
        DuplicateError,
        EepromError,
        FileNotFound,
        FileIntegrityError,
    )
}


def status_error(sw: int, command: int | None = None) -> DesfireError:
    """The exception for a refusing status word (0x91XX, or any other SW)."""
    if sw >> 8 == SW1_DESFIRE and (sw & 0xFF) in STATUS_ERRORS:
        return STATUS_ERRORS[sw & 0xFF](command=command)
    error = UnknownStatus(f"unexpected status word {sw:04X}", command=command)
    return error
