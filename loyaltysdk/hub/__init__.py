# SPDX-License-Identifier: Apache-2.0
"""The hub: head office's HTTP service and the chain's book of record.

    hub = Hub(open_store("postgresql://..."))       # or a SQLite path
    app = create_app(hub)                            # serve with uvicorn: `loyalty hub serve`

Tills reach it through `loyaltysdk.sync` (links, the sync loop, the wire
types and refusals); the hub imports `sync`, never `till`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._service import Hub, HubLimits, Principal, TillStatus
from ._store import HubStore, PostgresHubStore, SQLiteHubStore, open_store

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "Hub",
    "HubLimits",
    "HubStore",
    "PostgresHubStore",
    "Principal",
    "SQLiteHubStore",
    "TillStatus",
    "create_app",
    "open_store",
]


def create_app(hub: Hub) -> FastAPI:
    """The ASGI app (imports FastAPI only when asked)."""
    from .._extras import require

    require("fastapi", extra="hub", feature="the hub's HTTP service")
    from ._app import create_app as make

    return make(hub)


from .._public import present  # noqa: E402

present(__name__, globals())
