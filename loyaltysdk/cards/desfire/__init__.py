# SPDX-License-Identifier: Apache-2.0
"""MIFARE DESFire EV2 and EV1: secure messaging, the client, every status code as an exception."""

from ._client import AccessRights, DesfireClient, VersionInfo, aid_bytes
from ._secure import (
    CommMode,
    Ev1Authentication,
    Ev1CardAuthentication,
    Ev1Session,
    Ev2Authentication,
    Ev2CardAuthentication,
    Ev2Session,
)
from ._status import (
    STATUS_ERRORS,
    ApplicationIntegrityError,
    ApplicationNotFound,
    AuthenticationError,
    BoundaryError,
    CommandAborted,
    CountError,
    DesfireError,
    DuplicateError,
    EepromError,
    FileIntegrityError,
    FileNotFound,
    IllegalCommand,
    IntegrityError,
    LengthError,
    NoChanges,
    NoSuchKey,
    OutOfEeprom,
    ParameterError,
    PermissionDenied,
    PiccDisabled,
    PiccIntegrityError,
    UnknownStatus,
)

__all__ = [
    "STATUS_ERRORS",
    "AccessRights",
    "ApplicationIntegrityError",
    "ApplicationNotFound",
    "AuthenticationError",
    "BoundaryError",
    "CommMode",
    "CommandAborted",
    "CountError",
    "DesfireClient",
    "DesfireError",
    "DuplicateError",
    "EepromError",
    "Ev1Authentication",
    "Ev1CardAuthentication",
    "Ev1Session",
    "Ev2Authentication",
    "Ev2CardAuthentication",
    "Ev2Session",
    "FileIntegrityError",
    "FileNotFound",
    "IllegalCommand",
    "IntegrityError",
    "LengthError",
    "NoChanges",
    "NoSuchKey",
    "OutOfEeprom",
    "ParameterError",
    "PermissionDenied",
    "PiccDisabled",
    "PiccIntegrityError",
    "UnknownStatus",
    "VersionInfo",
    "aid_bytes",
]

from ..._public import present

present(__name__, globals())
