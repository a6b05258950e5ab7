# SPDX-License-Identifier: Apache-2.0
"""What crosses between a till and the hub: records up, updates down, holds, and refusals.

Both sides import these and nothing of each other: a till knows the hub
only as a `HubLink`, the hub knows tills only by their records.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .._errors import HubError

#: Outbox record kinds that move value at the hub (holds, voids, expiries
#: and a till's local mirrors of the hub's figures do not).
MOVING = frozenset({"transfer", "post", "reversal", "breakage"})


class AuthError(HubError):
    """Missing, wrong or expired credentials (HTTP 401)."""


class Forbidden(HubError):
    """Valid credentials for something else (HTTP 403)."""


class BadRecord(HubError, ValueError):
    """A pushed record or a published update is malformed (HTTP 422)."""


class InsufficientOnline(HubError):
    """An online hold would take more than the account holds (HTTP 409)."""


class UnknownUpdate(HubError, ValueError):
    """An update of a kind this till does not know: it is reported, never counted as applied."""


class UpdateKind(enum.StrEnum):
    """What head office sends every till, by cursor."""

    RULES = "rules"
    HOTLIST = "hotlist"
    REVOCATIONS = "revocations"
    KEYS = "keys"
    VOUCHERS = "vouchers"
    MEMBERS = "members"
    ALLOWANCE = "allowance"


@attrs.frozen
class PushResult:
    """The hub's answer to a push: its cursor for the till, and what it did."""

    acked: int
    applied: int
    duplicates: int
    held: int


@attrs.frozen
class Update:
    """One update, at its cursor."""

    cursor: int
    kind: str
    payload: Any


__all__ = [
    "MOVING",
    "AuthError",
    "BadRecord",
    "Forbidden",
    "InsufficientOnline",
    "PushResult",
    "UnknownUpdate",
    "Update",
    "UpdateKind",
]
