# SPDX-License-Identifier: Apache-2.0
"""The card intent journal: every movement of card value is intent → card → ledger.

A sale, a top-up, a refund or void, a transfer to a replacement card and
an issue with value all move value on a chip and in the ledger, which no
single commit can cover. So each goes the same way:

1. `begin`: the intent (operation, reference, card, amount, and the plan
   that finishes it) is committed durably, with whatever the operation
   reserves in the ledger (holds) in the same commit;
2. `touch`: the card commits the movement, with a log record carrying the
   intent's id (DESFire's transaction commit: all or nothing);
3. the operation's finish posts its ledger entries and marks the intent
   done, in one commit.

If the card leaves or the process dies between 1 and 3, the intent stays
pending. The next call with the same reference and the card (`settle`), or
any tap of that card (`Till.resolve_card`), asks the card's log: found, the
operation finishes; not found, it is applied again (a retry) or abandoned
(a tap), exactly once either way. A card that refuses outright (too little
value, over its limit) changed nothing: the intent is abandoned at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import CardAuthenticationFailed, CardError, CardRemoved, ReaderError
from ..cards.desfire import DesfireError
from ..cards.purse import CardIntent, Kind, LogRecord, Purse, PurseError
from ..cards.transport import Transport
from ._errors import PaymentInterrupted

if TYPE_CHECKING:
    from ._till import Till

#: Keys of the holds a card intent takes start so (a checkout session's: "s:").
INTENT_HOLD = "i:"
#: Errors after which the card may or may not have committed: only its log can tell.
_AMBIGUOUS = (CardRemoved, ReaderError, CardError)
#: Refusals before the card's commit took anything: nothing happened.
_REFUSED = (DesfireError, PurseError, CardAuthenticationFailed)


@attrs.frozen
class Pending:
    """A card intent that is not finished yet."""

    id: str
    op: str
    ref: str
    uid: str
    kind: Kind
    amount: int
    plan: dict[str, Any]
    status: str


class CardJournal:
    """The till's intents, in `till_card_intents`, written on the ledger's connection."""

    def __init__(self, till: Till) -> None:
        self._till = till
        self._conn = till.ledger.store.connection  # type: ignore[attr-defined]

    def _purse(self) -> Purse:
        return self._till._purse()

    # -- reading -----------------------------------------------------------------

    def find(self, op: str, ref: str, uid: str) -> Pending | None:
        """The live (pending or done) intent of this operation on this card, if any."""
        row = self._conn.execute(
            "SELECT id, op, receipt, uid, kind, amount, plan, status FROM till_card_intents"
            " WHERE op = ? AND receipt = ? AND uid = ? AND status != 'abandoned'",
            (op, ref, uid),
        ).fetchone()
        return None if row is None else _pending(row)

    def pending_for(self, op: str, ref: str) -> Pending | None:
        """The pending intent of this operation, on whichever card."""
        row = self._conn.execute(
            "SELECT id, op, receipt, uid, kind, amount, plan, status FROM till_card_intents"
            " WHERE op = ? AND receipt = ? AND status = 'pending'",
            (op, ref),
        ).fetchone()
        return None if row is None else _pending(row)

    def get(self, intent_id: str) -> Pending:
        row = self._conn.execute(
            "SELECT id, op, receipt, uid, kind, amount, plan, status FROM till_card_intents"
            " WHERE id = ?",
            (intent_id,),
        ).fetchone()
        return _pending(row)

    def pending(self, uid: str | None = None) -> list[Pending]:
        query = (
            "SELECT id, op, receipt, uid, kind, amount, plan, status FROM till_card_intents"
            " WHERE status = 'pending'"
        )
        args: tuple[str, ...] = ()
        if uid is not None:
            query += " AND uid = ?"
            args = (uid,)
        return [_pending(row) for row in self._conn.execute(query + " ORDER BY created_at", args)]

    def intent(self, pending: Pending) -> CardIntent:
        row = self._conn.execute(
            "SELECT till, created_at FROM till_card_intents WHERE id = ?", (pending.id,)
        ).fetchone()
        return CardIntent(
            bytes.fromhex(pending.id),
            pending.kind,
            pending.amount,
            _label(pending.ref, 18),
            row[0],
            row[1],
        )

    # -- writing -----------------------------------------------------------------

    def begin(
        self,
        op: str,
        ref: str,
        uid: str,
        kind: Kind,
        amount: int,
        plan: dict[str, Any],
        *,
        reserve: Callable[[dict[str, Any], str], None] | None = None,
    ) -> Pending:
        """Commit the intent durably, with what `reserve(plan, hold_prefix)` holds.

        Holds an intent takes are keyed ``i:<intent id>:...`` (`hold_prefix`):
        unique to this attempt, so a retry after an abandoned one starts afresh.
        """
        till = self._till
        intent = CardIntent.new(
            kind, amount, receipt=_label(ref, 18), till=_label(till.till_id, 8), now=till._epoch()
        )
        with till.ledger.atomic():
            if reserve is not None:
                reserve(plan, f"{INTENT_HOLD}{intent.id.hex()}:")
            self._conn.execute(
                "INSERT INTO till_card_intents (id, uid, kind, amount, receipt, till, created_at,"
                " plan, status, op) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    intent.id.hex(),
                    uid,
                    int(kind),
                    amount,
                    ref,
                    intent.till,
                    intent.created_at,
                    json.dumps(plan),
                    op,
                ),
            )
        return Pending(intent.id.hex(), op, ref, uid, kind, amount, plan, "pending")

    def touch(self, transport: Transport, pending: Pending) -> LogRecord:
        """Move the value on the card; returns its log record (with the chip's balance after).

        Raises:
            PaymentInterrupted: the card may or may not have taken it (pending).
            The purse's refusal: the card took nothing; the intent is abandoned.
        """
        purse = self._purse()
        intent = self.intent(pending)
        uid = bytes.fromhex(pending.uid)
        # Settle what this card still owes first: the card's log can then
        # always tell this intent apart (see `Purse.resolve`).
        for other in self.pending(pending.uid):
            if other.id != pending.id:
                self._till._settle_at_tap(transport, other)
        try:
            if pending.kind is Kind.DEBIT:
                return purse.debit(transport, uid, intent)
            if pending.kind is Kind.ISSUE:
                purse.discard_partial(transport, uid)
                return purse.issue(transport, uid, initial=pending.amount, intent=intent).records[0]
            return purse.credit(transport, uid, intent)
        except _REFUSED:
            self._till._abandon(pending)
            raise
        except _AMBIGUOUS as error:
            raise PaymentInterrupted(
                f"the card left before {pending.op} {pending.ref} finished; tap it again ({error})"
            ) from error

    def settle(self, transport: Transport, pending: Pending) -> LogRecord:
        """A retry with the card here: its log record of the intent, applying it again if absent."""
        found = self.locate(transport, pending)
        return found if found is not None else self.touch(transport, pending)

    def locate(self, transport: Transport, pending: Pending) -> LogRecord | None:
        """The card's log record of a pending intent, or None if the card never took it."""
        uid = bytes.fromhex(pending.uid)
        try:
            return self._purse().locate(transport, uid, self.intent(pending))
        except _REFUSED:
            raise
        except _AMBIGUOUS as error:
            raise PaymentInterrupted(f"the card left again; tap it once more ({error})") from error

    def mark(self, intent_id: str, status: str) -> None:
        """Set an intent done or abandoned (inside the caller's commit)."""
        self._conn.execute(
            "UPDATE till_card_intents SET status = ? WHERE id = ? AND status = 'pending'",
            (status, intent_id),
        )


def _label(text: str, size: int) -> str:
    """What the card's log record keeps of a reference: its last ASCII characters."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    return ascii_text[-size:]


def _pending(row: tuple[Any, ...]) -> Pending:
    intent_id, op, ref, uid, kind, amount, plan, status = row
    plan_data = json.loads(plan)
    return Pending(
        intent_id, op or plan_data.get("op", ""), ref, uid, Kind(kind), amount, plan_data, status
    )
