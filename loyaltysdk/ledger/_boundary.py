# SPDX-License-Identifier: Apache-2.0
"""The public boundary: SQLite's exceptions leave the SDK as its own typed errors.

Writes translate them where they roll back (`_sqlite._Write`); reads and
calls after `close()` are translated here, once per public method, so a POS
sees `StorageClosed`, `StorageFull`, `LedgerCorrupted` or `StorageError`,
never `sqlite3.*`.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ._sqlite import storage_error

T = TypeVar("T", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


def no_storage(method: F) -> F:
    """Leave a public method outside the boundary: it reads and writes no storage, so
    it cannot raise a `sqlite3` error, and it runs many times a checkout (a till's
    `money`, `now`, account names), where the wrapper's frame cost more than its body."""
    method.__no_storage__ = True  # type: ignore[attr-defined]
    return method


def _guarded(method: Callable[..., Any], owner: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as error:
            typed = storage_error(error, owner)
            if typed is None:
                raise
            raise typed from error

    return call


def storage_boundary(cls: T) -> T:
    """Wrap `cls`'s public methods (not properties or dunders) as described above."""
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or getattr(value, "__no_storage__", False):
            continue
        if isinstance(value, classmethod | staticmethod):
            kind = type(value)
            setattr(cls, name, kind(_guarded(value.__func__, f"{cls.__name__}.{name}")))
        elif callable(value):
            setattr(cls, name, _guarded(value, f"{cls.__name__}.{name}"))
    return cls
