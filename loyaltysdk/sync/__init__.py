# SPDX-License-Identifier: Apache-2.0
"""Between a till and the hub: the wire types, the links, and the sync loop.

Dependencies run one way: ``till`` and ``hub`` both import ``sync`` and
never each other.

    link = HttpLink("http://hub:8080", credential)      # or DirectLink(hub, credential)
    Syncer(till, link).run_once()                        # push the outbox, pull updates
"""

from ._links import DirectLink, HttpLink, HubLink, HubService, register
from ._receipts import RECEIPT_TYPES, check_receipt
from ._syncer import SyncedTill, Syncer, SyncReport
from ._updates import UID_PATTERN, check_update, is_uid
from ._wire import (
    MOVING,
    AuthError,
    BadRecord,
    Figure,
    Forbidden,
    InsufficientOnline,
    PushResult,
    Registration,
    Snapshot,
    TooLarge,
    UnknownUpdate,
    UntrustedUpdate,
    Update,
    UpdateKind,
    update_message,
)

__all__ = [
    "MOVING",
    "RECEIPT_TYPES",
    "UID_PATTERN",
    "AuthError",
    "BadRecord",
    "DirectLink",
    "Figure",
    "Forbidden",
    "HttpLink",
    "HubLink",
    "HubService",
    "InsufficientOnline",
    "PushResult",
    "Registration",
    "Snapshot",
    "SyncReport",
    "SyncedTill",
    "Syncer",
    "TooLarge",
    "UnknownUpdate",
    "UntrustedUpdate",
    "Update",
    "UpdateKind",
    "check_receipt",
    "check_update",
    "is_uid",
    "register",
    "update_message",
]

from .._public import present

present(__name__, globals())
