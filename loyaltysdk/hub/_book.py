# SPDX-License-Identifier: Apache-2.0
"""The chain's book of record at the hub: balances, points lots, breakage, holds, snapshots.

Every till's moving records add to `hub_balances` (one row per account, all
tills together), so a member's points and wallet, a card's shadow and a
voucher's liability are one figure for the chain. The hub books what no
till may book alone, as entries of its own (till ``HUB``): the funding of
vouchers head office issues, once, and the breakage of points lots that
expired, once, from its own lots (`hub_lots`, consumed oldest first by
every till's debits). A record that posts or voids a till's hold carries
the online holds it settles (``hub_holds`` in its memo); applying it
closes them, exactly once. `snapshot` gives a till the figures it may
spend from, as of that till's acknowledged records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..sync import MOVING, BadRecord, Figure, Snapshot
from ..vouchers import VoucherError, VoucherTerms
from ._store import HubStore

#: The till id of entries the hub books itself.
HUB = "HUB"
#: Accounts whose credits form lots that expire (a member's points).
POINTS_SUFFIX = ":points"
BREAKAGE = "sys:points:breakage"


def _is_points(account: str) -> bool:
    return account.startswith("member:") and account.endswith(POINTS_SUFFIX)


def _hub_holds(memo: Any) -> list[str]:
    if not isinstance(memo, str) or "hub_holds" not in memo:
        return []
    try:
        data = json.loads(memo)
    except ValueError:
        return []
    holds = data.get("hub_holds") if isinstance(data, dict) else None
    return [h for h in holds if isinstance(h, str)] if isinstance(holds, list) else []


def _like_prefix(text: str) -> str:
    """A LIKE pattern for names starting with `text` exactly (escape character ``!``)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


class Moves:
    """What a batch of records moves, gathered in one pass as each record is read.

    `deltas`: per account moved, ``[unit, debits, credits, first seq, last seq]``;
    `named`: accounts only holds and mirrors name (they move nothing), with
    their unit and first record; `lots`: points postings, in order; `settled`:
    online holds the records close; `cards`: card accounts moved. An account
    in two units within the batch is refused where the second one appears.
    """

    __slots__ = ("cards", "deltas", "lots", "named", "settled")

    def __init__(self) -> None:
        self.deltas: dict[str, list[Any]] = {}
        self.named: dict[str, tuple[str, int]] = {}
        self.lots: list[tuple[str, str, int, int | None, int, int, int]] = []
        self.settled: list[str] = []
        self.cards: list[str] = []

    def add(self, seq: int, record: dict[str, Any]) -> None:
        """Gather one checked record (`_records.parse`), in sequence order.

        Raises:
            BadRecord: it names an account in another unit than the batch did before.
        """
        memo = record["memo"]
        if memo is not None and "hub_holds" in memo:
            self.settled.extend(_hub_holds(memo))
        postings = record["postings"]
        if record["kind"] not in MOVING:
            for account, _, _, unit, _ in postings:
                known = self.deltas.get(account)
                was = (
                    known[0]
                    if known is not None
                    else self.named.setdefault(account, (unit, seq))[0]
                )
                if was != unit:
                    raise BadRecord(f"record {seq}: {account} is in {was}, not {unit}")
            return
        deltas, named, lots, at = self.deltas, self.named, self.lots, record["at"]
        for index, (account, side, amount, unit, expires) in enumerate(postings):
            delta = deltas.get(account)
            if delta is None:
                if named and account in named and named[account][0] != unit:
                    raise BadRecord(
                        f"record {seq}: {account} is in {named[account][0]}, not {unit}"
                    )
                delta = deltas[account] = [unit, 0, 0, seq, seq]
                if account[:5] == "card:":
                    self.cards.append(account)
            elif delta[0] != unit:
                raise BadRecord(f"record {seq}: {account} is in {delta[0]}, not {unit}")
            if side == "D":
                delta[1] += amount
            else:
                delta[2] += amount
            delta[4] = seq
            if account[-7:] == POINTS_SUFFIX and account[:7] == "member:":  # _is_points
                lots.append((account, side, amount, expires, at, seq, index))


class Book:
    """The hub's accounting on a `HubStore` (called inside the caller's transaction)."""

    def __init__(self, store: HubStore, clock: Callable[[], float]) -> None:
        self.store = store
        self._clock = clock

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    # -- applying a till's records --------------------------------------------------------

    def apply(self, till_id: str, moves: Moves) -> None:
        """Balances, lots and settled holds of contiguous records of one till, gathered in `moves`.

        Raises:
            BadRecord: an account the batch moves is in another unit at the hub.
        """
        deltas = moves.deltas
        flagged = self._add(deltas)
        for account, (stored, *_) in sorted(flagged.items()):
            unit, _, _, first, _ = deltas[account]
            if stored != unit:
                raise BadRecord(f"record {first}: {account} is in {stored}, not {unit}")
        self._move_lots(till_id, moves.lots)
        if moves.cards:
            self.sweep_replaced(moves.cards)
        if moves.settled:
            self.store.executemany(
                "UPDATE hub_holds SET status = 'settled' WHERE till = ? AND id = ?"
                " AND status = 'open'",
                [(till_id, hold) for hold in moves.settled],
            )
        self._overdrafts(till_id, deltas, flagged)

    def _add(self, deltas: dict[str, list[Any]]) -> dict[str, tuple[str, int, int]]:
        """Add per-account sums to the balances; the accounts `add_balances` flags after."""
        return self.store.add_balances([(a, d[0], d[1], d[2]) for a, d in sorted(deltas.items())])

    def _overdrafts(
        self, till_id: str, deltas: dict[str, list[Any]], totals: dict[str, tuple[str, int, int]]
    ) -> None:
        # Member, card and voucher accounts never go below zero at a till;
        # below zero at the hub means offline tills spent the same value. The
        # batch's own delta tells how much of the deficit is new. `totals` are
        # the figures the balance rows hold after this batch, of the rows it
        # wrote that have more debits than credits (locked until commit: a
        # concurrent ingest moving the same account waits, then adds to these).
        exceptions = []
        for account, (_, debits, credits) in sorted(totals.items()):
            now = debits - credits
            if now <= 0 or not account.startswith(("member:", "card:", "voucher:")):
                continue
            _, added_debits, added_credits, _, last = deltas[account]
            was = max(0, now - (added_debits - added_credits))
            if now > was:
                exceptions.append(
                    (
                        till_id,
                        last,
                        "overdraft",
                        account,
                        now - was,
                        "spent offline at several tills",
                    )
                )
        if exceptions:
            self.store.executemany(
                "INSERT INTO hub_exceptions (till, seq, kind, account, amount, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                exceptions,
            )

    def _move_lots(
        self, till_id: str, moves: list[tuple[str, str, int, int | None, int, int, int]]
    ) -> None:
        """Credits to points accounts make lots; debits take the oldest unexpired ones first."""
        if not moves:
            return
        columns = ("account", "till", "seq", "idx", "earned_at", "expires_at", "remaining")
        # Only a debit consumes lots: an account the batch only credits gets
        # its new lots appended, and its open lots are not read (they grow
        # with every purchase a member makes).
        debited = sorted({m[0] for m in moves if m[1] == "D"})
        if not debited:
            # The usual batch (sales earning points): every move is a new lot,
            # written as it is, with no lot read or changed.
            self.store.copy_rows(
                "hub_lots",
                columns,
                [(a, till_id, seq, idx, at, exp, n) for a, _, n, exp, at, seq, idx in moves],
            )
            return
        lots: dict[str, list[list[Any]]] = {m[0]: [] for m in moves}
        for start in range(0, len(debited), 500):
            chunk = debited[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for account, till, seq, idx, earned, expires, left in self.store.execute(
                "SELECT account, till, seq, idx, earned_at, expires_at, remaining FROM hub_lots"
                f" WHERE account IN ({marks}) AND remaining > 0"
                " ORDER BY account, earned_at, till, seq, idx",
                chunk,
            ):
                lots[account].append(
                    [till, int(seq), int(idx), int(earned), expires, int(left), False]
                )
        for account, side, amount, expires, at, seq, idx in moves:
            if side == "C":
                lots[account].append([till_id, seq, idx, at, expires, amount, True])
                continue
            # What was still valid when the till spent it goes first.
            order = sorted(
                lots[account], key=lambda lot: (lot[4] is not None and lot[4] <= at, lot[3])
            )
            need = amount
            for lot in order:
                take = min(need, lot[5])
                if take:
                    lot[5] -= take
                    lot[6] = lot[6] or "changed"
                    need -= take
                if not need:
                    break
        new = [
            (account, lot[0], lot[1], lot[2], lot[3], lot[4], lot[5])
            for account, items in lots.items()
            for lot in items
            if lot[6] is True
        ]
        changed = [
            (lot[5], account, lot[0], lot[1], lot[2])
            for account, items in lots.items()
            for lot in items
            if lot[6] == "changed"
        ]
        if new:
            # New lots of new records: their key (account, till, seq, idx) is new,
            # so they are appended (COPY on PostgreSQL) and a clash is an error.
            self.store.copy_rows("hub_lots", columns, new)
        if changed:
            self.store.executemany(
                "UPDATE hub_lots SET remaining = ? WHERE account = ? AND till = ? AND seq = ?"
                " AND idx = ?",
                changed,
            )

    # -- the hub's own entries ----------------------------------------------------------------

    def own_entry(self, key: str, postings: list[list[Any]], memo: dict[str, Any]) -> int:
        """Book an entry of the hub's own (till HUB), in its sequence; returns the sequence."""
        rows = self.store.execute("SELECT acked FROM hub_tills WHERE id = ?", (HUB,))
        if not rows:
            self.store.execute(
                "INSERT INTO hub_tills (id, enrol_hash, acked) VALUES (?, '', 0)", (HUB,)
            )
            rows = [(0,)]
        seq = int(rows[0][0]) + 1
        at = self._now_us()
        record = {
            "v": 1,
            "origin": HUB,
            "key": key,
            "kind": "transfer",
            "ref": None,
            "at": at,
            "expires_at": None,
            "memo": json.dumps(memo, sort_keys=True),
            "postings": postings,
        }
        payload = json.dumps(record, sort_keys=True)
        self.store.insert_rows(
            "hub_entries",
            ("till", "seq", "key", "kind", "at", "memo", "payload"),
            [(HUB, seq, key, "transfer", at, record["memo"], payload)],
            "ON CONFLICT (till, seq) DO NOTHING",
        )
        self.store.execute("UPDATE hub_tills SET acked = ? WHERE id = ?", (seq, HUB))
        deltas: dict[str, list[Any]] = {}
        for account, side, amount, unit, *_ in postings:
            delta = deltas.setdefault(account, [unit, 0, 0, seq, seq])
            delta[1 if side == "D" else 2] += int(amount)
        self._add(deltas)
        return seq

    def sweep_replaced(self, accounts: Iterable[str]) -> None:
        """Move what a replaced card's shadow still holds to its member's wallet.

        The till that replaced a card moved what it knew of the card's value;
        movements it could not know (a load at another till, not yet pushed)
        land on the old card later. The value is the member's: it follows
        them, as the hub's own entry, once the hub has both.
        """
        cards: dict[str, list[tuple[str, str]]] = {}
        for account in accounts:
            parts = account.split(":")
            if len(parts) == 3 and parts[0] == "card":
                cards.setdefault(parts[1], []).append((account, parts[2]))
        # Which of them are replaced, in one read per 500 cards (a batch of
        # card payments asked twice per card account before): usually none.
        uids = sorted(cards)
        replaced: dict[str, str] = {}
        for start in range(0, len(uids), 500):
            chunk = uids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            replaced.update(
                self.store.execute(
                    f"SELECT uid, member FROM hub_cards WHERE uid IN ({marks})"
                    " AND status = 'replaced'",
                    chunk,
                )
            )
        for uid, member in sorted(replaced.items()):
            for account, currency in cards[uid]:
                balance = self.store.execute(
                    "SELECT credits - debits FROM hub_balances WHERE account = ?", (account,)
                )
                left = int(balance[0][0]) if balance else 0
                if left <= 0:
                    continue
                wallet = f"member:{member}:wallet:{currency}"
                self.own_entry(
                    f"replaced:{uid}:{self._now_us()}",
                    [[account, "D", left, currency, None], [wallet, "C", left, currency, None]],
                    {"replaced": uid, "to": wallet},
                )

    def fund_vouchers(self, terms: Iterable[Any]) -> int:
        """Fund value vouchers head office issued: once each, whatever publishes them again."""
        funded = 0
        for raw in terms:
            try:
                voucher = VoucherTerms.from_json(raw)
            except (VoucherError, TypeError, ValueError, KeyError) as error:
                raise BadRecord(f"not voucher terms: {error}") from error
            if voucher.kind != "value":
                continue
            key = f"voucher-fund:{voucher.code}"
            if self.store.execute(
                "SELECT 1 FROM hub_entries WHERE till = ? AND key = ?", (HUB, key)
            ):
                continue
            cur = voucher.currency
            self.own_entry(
                key,
                [
                    [f"sys:vouchers:issued:{cur}", "D", voucher.amount, cur, None],
                    [f"voucher:{voucher.code}", "C", voucher.amount, cur, None],
                ],
                {"voucher": voucher.code, "campaign": voucher.campaign, "funded_by": "head office"},
            )
            funded += 1
        return funded

    def expire(self, accounts: Sequence[str] | None = None) -> int:
        """Book breakage of expired points lots (once); returns the points booked."""
        now = self._now_us()
        query = (
            "SELECT account, sum(remaining) FROM hub_lots WHERE remaining > 0"
            " AND expires_at IS NOT NULL AND expires_at <= ?"
        )
        args: list[Any] = [now]
        if accounts is not None:
            points = [a for a in accounts if _is_points(a)]
            if not points:
                return 0
            query += f" AND account IN ({','.join('?' * len(points))})"
            args += points
        booked = 0
        for account, expired in self.store.execute(query + " GROUP BY account", args):
            self.store.execute(
                "UPDATE hub_lots SET remaining = 0 WHERE account = ? AND remaining > 0"
                " AND expires_at IS NOT NULL AND expires_at <= ?",
                (account, now),
            )
            balance = self.store.execute(
                "SELECT credits - debits FROM hub_balances WHERE account = ?", (account,)
            )
            # Never below zero: an offline overspend already took what expired.
            amount = min(int(expired), max(0, int(balance[0][0]) if balance else 0))
            if amount:
                self.own_entry(
                    f"breakage:{account}:{now}",
                    [[account, "D", amount, "PTS", None], [BREAKAGE, "C", amount, "PTS", None]],
                    {"breakage": account},
                )
                booked += amount
        return booked

    # -- what a till may spend --------------------------------------------------------------

    def snapshot(
        self, till_id: str, member: str | None, accounts: Sequence[str], cursor: int
    ) -> Snapshot:
        """The figures of a member's accounts (and any others named), as of `cursor`."""
        names = set(accounts)
        if member is not None:
            names |= {
                account
                for (account,) in self.store.execute(
                    # `_` is a LIKE wildcard and may be in a member id: escape it.
                    "SELECT account FROM hub_balances WHERE account LIKE ? ESCAPE '!'",
                    (_like_prefix(f"member:{member}:"),),
                )
            }
        if not names:
            return Snapshot(cursor, {})
        ordered = sorted(names)
        self.expire(ordered)
        marks = ",".join("?" * len(ordered))
        figures = {
            account: Figure(unit, int(credits) - int(debits))
            for account, unit, debits, credits in self.store.execute(
                "SELECT account, unit, debits, credits FROM hub_balances"
                f" WHERE account IN ({marks})",
                ordered,
            )
        }
        now = int(self._clock())
        for account, held in self.store.execute(
            "SELECT account, coalesce(sum(amount), 0) FROM hub_holds WHERE status = 'open'"
            f" AND expires_at > ? AND till != ? AND account IN ({marks}) GROUP BY account",
            [now, till_id, *ordered],
        ):
            if account in figures:
                figures[account] = Figure(figures[account].unit, figures[account].posted, int(held))
        lots: dict[str, list[tuple[int, int | None]]] = {}
        for account, left, expires in self.store.execute(
            "SELECT account, remaining, expires_at FROM hub_lots WHERE remaining > 0"
            f" AND account IN ({marks}) ORDER BY account, earned_at, till, seq, idx",
            ordered,
        ):
            lots.setdefault(account, []).append(
                (int(left), None if expires is None else int(expires))
            )
        return Snapshot(cursor, figures, {a: tuple(v) for a, v in lots.items()})
