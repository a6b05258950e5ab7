# SPDX-License-Identifier: Apache-2.0
"""What crosses between a till and the hub: records up, updates down, holds, and refusals.

Both sides import these and nothing of each other: a till knows the hub
only as a `HubLink`, the hub knows tills only by their records.
"""

from __future__ import annotations

import enum
import json
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


class TooLarge(HubError):
    """A request beyond the hub's limits: body size, records per push, bytes held (HTTP 413)."""


class UntrustedUpdate(HubError):
    """An update not signed by head office's key (or no key to check it): never applied.

    The till stays at that cursor and tries again next round: what failed to
    verify may have been changed in transit.
    """


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
class Figure:
    """One chain-wide account as the hub holds it.

    Attributes:
        unit: a currency or PTS.
        posted: credits less debits over every till's records (and the hub's own).
        held: what open online holds of other tills reserve on it.
    """

    unit: str
    posted: int
    held: int = 0


@attrs.frozen
class Snapshot:
    """The hub's figures for some accounts, as of the asking till's acknowledged records.

    Attributes:
        cursor: the asking till's records up to this sequence number are in
            the figures; its later ones are not (the till adds them itself).
        accounts: account id -> `Figure`.
        lots: for points accounts: (points left, expiry in epoch microseconds
            or None), oldest first.
    """

    cursor: int
    accounts: dict[str, Figure]
    lots: dict[str, tuple[tuple[int, int | None], ...]] = attrs.Factory(dict)
    #: For a tap's SUN counter sent with the request: whether it was new
    #: for the chain (False: a replay), or None when none was sent.
    sun_fresh: bool | None = None
    #: The member asked about, their goods spend and points per local day at
    #: every store (for tiers and the member cap), and the asking till's
    #: events up to this sequence counted in them.
    member: str | None = None
    days: dict[str, tuple[int, int]] = attrs.Factory(dict)
    events_cursor: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "accounts": {
                name: {"unit": f.unit, "posted": f.posted, "held": f.held}
                for name, f in sorted(self.accounts.items())
            },
            "lots": {name: [list(lot) for lot in lots] for name, lots in sorted(self.lots.items())},
            "sun_fresh": self.sun_fresh,
            "member": self.member,
            "days": {day: list(v) for day, v in sorted(self.days.items())},
            "events_cursor": self.events_cursor,
        }

    @classmethod
    def from_json(cls, data: Any) -> Snapshot:
        try:
            return cls(
                int(data["cursor"]),
                {
                    str(name): Figure(str(f["unit"]), int(f["posted"]), int(f.get("held", 0)))
                    for name, f in data["accounts"].items()
                },
                {
                    str(name): tuple((int(left), None if e is None else int(e)) for left, e in lots)
                    for name, lots in data.get("lots", {}).items()
                },
                None if data.get("sun_fresh") is None else bool(data["sun_fresh"]),
                None if data.get("member") is None else str(data["member"]),
                {str(d): (int(v[0]), int(v[1])) for d, v in data.get("days", {}).items()},
                int(data.get("events_cursor", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BadRecord(f"not a snapshot: {error}") from None


@attrs.frozen
class Update:
    """One update, at its cursor, with head office's signature over both (`update_message`)."""

    cursor: int
    kind: str
    payload: Any
    signature: bytes | None = None


def update_message(cursor: int, kind: str, payload: Any) -> bytes:
    """What head office signs for an update: its cursor, kind and payload, canonical JSON.

    The cursor is inside, so an old update cannot be replayed in a new one's place.
    """
    body = json.dumps(
        {"cursor": cursor, "kind": kind, "payload": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return b"loyaltysdk update v1\n" + body.encode("ascii")


@attrs.frozen
class Registration:
    """What a till gets when it registers: its credential, and the key that signs updates."""

    credential: str
    update_key: bytes


__all__ = [
    "MOVING",
    "AuthError",
    "BadRecord",
    "Figure",
    "Forbidden",
    "InsufficientOnline",
    "PushResult",
    "Registration",
    "Snapshot",
    "TooLarge",
    "UnknownUpdate",
    "UntrustedUpdate",
    "Update",
    "UpdateKind",
    "update_message",
]
