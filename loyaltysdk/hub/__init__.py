# SPDX-License-Identifier: Apache-2.0
"""The hub (head office's HTTP service) and the tills' sync with it.

hub = Hub(open_store("postgresql://..."))       # or a SQLite path
app = create_app(hub)                            # serve with uvicorn: `loyalty hub serve`
Syncer(till, HttpLink(url, credential)).run_once()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._client import DirectLink, HttpLink, HubLink, register
from ._service import (
    MOVING,
    AuthError,
    BadRecord,
    Forbidden,
    Hub,
    InsufficientOnline,
    Principal,
    PushResult,
    Update,
)
from ._store import HubStore, PostgresHubStore, SQLiteHubStore, open_store
from ._sync import Syncer, SyncReport

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "MOVING",
    "AuthError",
    "BadRecord",
    "DirectLink",
    "Forbidden",
    "HttpLink",
    "Hub",
    "HubLink",
    "HubStore",
    "InsufficientOnline",
    "PostgresHubStore",
    "Principal",
    "PushResult",
    "SQLiteHubStore",
    "SyncReport",
    "Syncer",
    "Update",
    "create_app",
    "open_store",
    "register",
]


def create_app(hub: Hub) -> FastAPI:
    """The ASGI app (imports FastAPI only when asked)."""
    from ._app import create_app as make

    return make(hub)
