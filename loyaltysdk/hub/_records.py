# SPDX-License-Identifier: Apache-2.0
"""What the hub accepts as a till's outbox record: checked as the till's ledger checks it.

The hub is the book of record, so a record is applied only if a till's own
ledger could have written it: the known fields and nothing else, a known
kind, identifiers and texts that storage and the wire hold (`loyaltysdk._ids`),
integer amounts within `MAX_AMOUNT`, units that exist and match their
accounts, postings balanced per unit, and holds, posts, voids and reversals
that refer to records the till pushed before. `parse` checks one record on
its own; `References` checks a batch against what the hub holds. Either
refuses with `BadRecord` naming the record and the reason; the caller
rolls the whole push back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import orjson

from .._errors import UnknownCurrency
from .._ids import is_id, is_text
from .._money import EXPONENTS, MAX_AMOUNT, POINTS_UNIT, check_unit
from ..sync import BadRecord
from ._store import HubStore

_FIELDS: Final = frozenset(
    {"v", "origin", "key", "kind", "ref", "at", "expires_at", "memo", "postings"}
)
#: Kinds whose postings move or reserve value, balanced per unit.
_WITH_POSTINGS: Final = frozenset({"transfer", "hold", "post", "reversal", "breakage", "mirror"})
#: Kinds that only close a hold: no postings.
_CLOSING: Final = frozenset({"void", "expiry"})
_REVERSIBLE: Final = frozenset({"transfer", "post", "breakage"})
_MAX_KEY: Final = 200
_MAX_MEMO: Final = 1000
_MAX_POSTINGS: Final = 1000
_MAX_MICROS: Final = 2**62
#: The largest outbox sequence number (a till writes far fewer).
MAX_SEQ: Final = 2**62


def _refuse(seq: int, why: str) -> BadRecord:
    return BadRecord(f"record {seq}: {why}")


def _whole(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _unit_of_account(account: str) -> str | None:
    """The unit an account's name implies, where it implies one."""
    parts = account.split(":")
    if parts[0] == "member" and len(parts) == 3 and parts[2] in ("points", "pending"):
        return POINTS_UNIT
    if parts[0] == "member" and len(parts) == 4 and parts[2] == "wallet":
        return parts[3]
    return None


# The usual record is read by orjson (a fraction of the standard decoder's
# instructions) and kept by one expression per record and one per posting,
# the checks `_decode` makes one by one, inlined. Whatever orjson refuses
# (a lone surrogate, NaN) or reads differently (an integer beyond 64 bits
# becomes a float: no field takes one), and whatever breaks a rule, takes
# `_decode`, which decides with the standard decoder and names the reason:
# both accept exactly the same records, alike.
_NEEDS_REF: Final = frozenset({"post", "reversal", *_CLOSING})
_KINDS: Final = _WITH_POSTINGS | _CLOSING


def _lean(payload: str) -> dict[str, Any] | None:
    """The record, if orjson reads it and it keeps every rule; else None."""
    try:
        record = orjson.loads(payload)
    except ValueError:  # orjson.JSONDecodeError
        return None
    if type(record) is not dict or record.keys() != _FIELDS:
        return None
    v, origin, key, kind = record["v"], record["origin"], record["key"], record["kind"]
    ref, at, expires, memo = record["ref"], record["at"], record["expires_at"], record["memo"]
    postings = record["postings"]
    if not (
        type(v) is int
        and v == 1
        and type(kind) is str
        and kind in _KINDS
        and type(origin) is str
        and 0 < len(origin) <= 64
        and origin.isprintable()
        and type(key) is str
        and 0 < len(key) <= _MAX_KEY
        and key.isprintable()
        and (ref is None or (type(ref) is str and 0 < len(ref) <= _MAX_KEY and ref.isprintable()))
        and (ref is None) != (kind in _NEEDS_REF)
        and type(at) is int
        and 0 <= at <= _MAX_MICROS
        and (expires is None) != (kind == "hold")
        and (expires is None or (type(expires) is int and 0 <= expires <= _MAX_MICROS))
        # orjson reads no lone surrogate: a string it gives is valid UTF-8.
        and (memo is None or (type(memo) is str and len(memo) <= _MAX_MEMO and "\x00" not in memo))
        and type(postings) is list
        and len(postings) <= _MAX_POSTINGS
        and (not postings) == (kind in _CLOSING)
    ):
        return None
    if postings:
        totals: dict[str, int] = {}
        implied_of = _IMPLIED.get
        for posting in postings:
            if type(posting) is not list or len(posting) != 5:
                return None
            account, side, amount, unit, lot = posting
            if not (
                type(account) is str
                and type(unit) is str
                and (side == "D" or side == "C")
                and type(amount) is int
                and 1 <= amount <= MAX_AMOUNT
                and (
                    lot is None
                    or (
                        type(lot) is int
                        and 0 <= lot <= _MAX_MICROS
                        and side == "C"
                        and unit == POINTS_UNIT
                    )
                )
                and unit in _UNITS
            ):
                return None
            # `_account_fits`, inlined.
            implied = implied_of(account, False)
            if implied is False:
                implied = _learn(account)
            if implied is None or (implied and implied != unit):
                return None
            totals[unit] = totals.get(unit, 0) + (amount if side == "D" else -amount)
        if any(totals.values()):
            return None
    return record


def parse(seq: int, payload: str) -> dict[str, Any]:
    """One record, checked on its own (fields, kinds, identifiers, amounts, units, balance).

    Raises:
        BadRecord: what is wrong, and with which record.
    """
    record = _lean(payload)
    return record if record is not None else _decode(seq, payload)


def _decode(seq: int, payload: str) -> dict[str, Any]:
    """`parse` for any JSON text, each rule checked by itself and named when broken."""
    try:
        record = json.loads(payload)
    except ValueError:
        raise _refuse(seq, "not JSON") from None
    if not isinstance(record, dict) or set(record) != _FIELDS:
        raise _refuse(seq, f"an outbox record has exactly the fields {sorted(_FIELDS)}")
    if record["v"] != 1 or type(record["v"]) is not int:
        raise _refuse(seq, f"unknown record version {record['v']!r:.40}")
    kind = record["kind"]
    if not isinstance(kind, str) or (kind not in _WITH_POSTINGS and kind not in _CLOSING):
        raise _refuse(seq, f"unknown kind {kind!r:.40}")
    if not is_id(record["origin"], 64):
        raise _refuse(seq, "the origin is 1-64 printable characters")
    if not is_id(record["key"], _MAX_KEY):
        raise _refuse(seq, f"the key is 1-{_MAX_KEY} printable characters")
    ref = record["ref"]
    if ref is not None and not is_id(ref, _MAX_KEY):
        raise _refuse(seq, f"the ref is 1-{_MAX_KEY} printable characters or null")
    if (ref is None) == (kind in ("post", "reversal", *_CLOSING)):
        raise _refuse(seq, f"a {kind} {'needs' if ref is None else 'has no'} ref")
    if not _whole(record["at"], 0, _MAX_MICROS):
        raise _refuse(seq, "at is a whole number of microseconds")
    expires = record["expires_at"]
    if (expires is None) == (kind == "hold") or (
        expires is not None and not _whole(expires, 0, _MAX_MICROS)
    ):
        raise _refuse(seq, "a hold, and only a hold, expires at a whole number of microseconds")
    memo = record["memo"]
    if memo is not None and not is_text(memo, _MAX_MEMO):
        raise _refuse(seq, f"a memo is text of at most {_MAX_MEMO} characters, without NUL")
    postings = record["postings"]
    if not isinstance(postings, list) or len(postings) > _MAX_POSTINGS:
        raise _refuse(seq, f"postings are a list of at most {_MAX_POSTINGS}")
    if bool(postings) != (kind in _WITH_POSTINGS):
        raise _refuse(seq, f"a {kind} {'has no' if postings else 'needs'} postings")
    totals: dict[str, int] = {}
    for index, posting in enumerate(postings):
        # The usual posting passes this one expression (no call but the memo
        # of account and unit); anything else goes through `_check_posting`,
        # which names what is wrong. Both accept exactly the same postings.
        if type(posting) is not list or len(posting) != 5:
            _check_posting(seq, index, posting)
        account, side, amount, unit, expires = posting
        if not (
            type(account) is str
            and type(unit) is str
            and (side == "D" or side == "C")
            and type(amount) is int
            and 1 <= amount <= MAX_AMOUNT
            and (
                expires is None
                or (_whole(expires, 0, _MAX_MICROS) and side == "C" and unit == POINTS_UNIT)
            )
            and _account_fits(account, unit)
        ):
            _check_posting(seq, index, posting)
        totals[unit] = totals.get(unit, 0) + (amount if side == "D" else -amount)
    unbalanced = sorted(unit for unit, total in totals.items() if total)
    if unbalanced:
        raise _refuse(seq, f"debits and credits differ in {', '.join(unbalanced)}")
    return record


#: Units a posting may carry: points and the ISO 4217 codes.
_UNITS: Final = frozenset({POINTS_UNIT, *EXPONENTS})
#: Accounts seen, each with the unit its name implies ("" for none) or None if
#: it is no identifier: accounts repeat across records (the system accounts in
#: every one), and a dict lookup is a fifth of an `lru_cache` call.
_IMPLIED: dict[str, str | None] = {}
_IMPLIED_MAX: Final = 65536


def _account_fits(account: str, unit: str) -> bool:
    """An account id and a unit a posting may carry (`_check_posting`'s rules for them)."""
    implied = _IMPLIED.get(account, False)
    if implied is False:
        implied = _learn(account)
    return unit in _UNITS and implied is not None and (not implied or implied == unit)


def _learn(account: str) -> str | None:
    if len(_IMPLIED) >= _IMPLIED_MAX:
        _IMPLIED.clear()  # a bound on memory, whatever tills send
    implied = (_unit_of_account(account) or "") if is_id(account) else None
    _IMPLIED[account] = implied
    return implied


def _check_posting(seq: int, index: int, posting: Any) -> None:
    where = f"posting {index}"
    if not isinstance(posting, list) or len(posting) != 5:
        raise _refuse(seq, f"{where} is [account, side, amount, unit, lot expiry]")
    account, side, amount, unit, expires = posting
    if not is_id(account):
        raise _refuse(seq, f"{where}: an account is 1-200 printable characters")
    if side not in ("D", "C"):
        raise _refuse(seq, f"{where}: the side is D or C, not {side!r:.20}")
    if not _whole(amount, 1, MAX_AMOUNT):
        raise _refuse(seq, f"{where}: an amount is a whole number from 1 to {MAX_AMOUNT}")
    try:
        check_unit(unit if isinstance(unit, str) else "")
    except UnknownCurrency:
        raise _refuse(seq, f"{where}: {unit!r:.20} is neither PTS nor an ISO 4217 code") from None
    implied = _unit_of_account(account)
    if implied is not None and implied != unit:
        raise _refuse(seq, f"{where}: {account} holds {implied}, not {unit}")
    if expires is not None and not (
        _whole(expires, 0, _MAX_MICROS) and side == "C" and unit == POINTS_UNIT
    ):
        raise _refuse(seq, f"{where}: only a points credit carries a lot expiry")


class References:
    """Checks a batch against the hub: account units, and what posts, voids and reversals name.

    Called inside the push's transaction once the batch's entries are
    written (so "earlier" reads only entries before the batch's first) and
    before its balances; `batch` and `closed` remember the batch's own
    records so a hold and its post may arrive in one push.
    """

    def __init__(self, store: HubStore, till_id: str, first: int) -> None:
        self._store = store
        self._till = till_id
        # The batch's own entries may be written already: "earlier" is before it.
        self._first = first

    def check(
        self, records: Sequence[tuple[int, dict[str, Any]]], named: dict[str, tuple[str, int]]
    ) -> list[tuple[str, str]]:
        """Raise `BadRecord` for the first record that does not fit; else the refs it closes.

        `named`: the accounts the batch names without moving them (`Moves.named`:
        unit and first record). The accounts it moves are checked where their
        balance rows are written (`Book.apply`: the upsert flags a stored unit
        that differs, and the push rolls back); the batch's own consistency
        was checked as it was read.
        """
        if named:
            for account, unit in sorted(self._store.units(sorted(named)).items()):
                if named[account][0] != unit:
                    raise _refuse(
                        named[account][1], f"{account} is in {unit}, not {named[account][0]}"
                    )
        wanted = sorted({r["ref"] for _, r in records if r["ref"] is not None})
        if not wanted:
            return []
        earlier = self._earlier(wanted)
        closed = self._closed(wanted)
        batch: dict[str, dict[str, Any]] = {}
        closing: list[tuple[str, str]] = []
        for seq, record in records:
            ref, kind = record["ref"], record["kind"]
            if ref is not None:
                target = batch.get(ref) or earlier.get(ref)
                if target is None:
                    raise _refuse(seq, f"its ref {ref!r} names no earlier record of this till")
                allowed = _REVERSIBLE if kind == "reversal" else {"hold"}
                if target["kind"] not in allowed:
                    raise _refuse(seq, f"a {kind} cannot refer to a {target['kind']}")
                if ref in closed:
                    raise _refuse(
                        seq, f"{ref!r} was already {'reversed' if kind == 'reversal' else 'closed'}"
                    )
                if kind == "post":
                    _within(seq, record["postings"], target["postings"])
                closed.add(ref)
                closing.append((self._till, ref))
            batch[record["key"]] = record
        return closing

    def _earlier(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, payload in self._store.execute(
                "SELECT key, payload FROM hub_entries"  # noqa: S608
                f" WHERE till = ? AND seq < ? AND key IN ({marks})",
                (self._till, self._first, *chunk),
            ):
                found[key] = json.loads(payload)
        return found

    def _closed(self, keys: list[str]) -> set[str]:
        closed: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            closed.update(
                ref
                for (ref,) in self._store.execute(
                    f"SELECT ref FROM hub_closed WHERE till = ? AND ref IN ({marks})",  # noqa: S608
                    (self._till, *chunk),
                )
            )
        return closed


def _within(seq: int, posted: list[Any], held: list[Any]) -> None:
    """A post moves at most what its hold reserved, on the same accounts and sides."""
    room: dict[tuple[str, str, str], int] = {}
    for account, side, amount, unit, _ in held:
        room[(account, side, unit)] = room.get((account, side, unit), 0) + amount
    for account, side, amount, unit, _ in posted:
        left = room.get((account, side, unit), 0) - amount
        if left < 0:
            raise _refuse(seq, f"the post moves more on {account} than its hold reserved")
        room[(account, side, unit)] = left


__all__ = ["MAX_SEQ", "References", "parse"]
