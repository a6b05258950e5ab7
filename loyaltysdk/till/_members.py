# SPDX-License-Identifier: Apache-2.0
"""The till's member directory: members, their cards, tiers, and what the rules remember.

Beside who a member is, the rules need three facts the till keeps in its
file, written in the commit of the sale or refund that changes them:

- spend per receipt (`till_spend`), net of refunds, for tiers over a
  rolling window: a sale upgrades at once, a review date moves up or down;
- points earned per receipt (`till_earnings`), net of what refunds took
  back, for the per-member cap of the rules' period;
- which once-per-period rules a member has had (`till_rule_uses`, one row
  per member, rule and period as a primary key), released again when the
  receipt that used them is refunded in full or voided.

Spend counts goods only: lines that sell value (gift cards, stored-value
top-ups) do not qualify for tiers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .._json import parse_texts
from ..rules import EarnResult, Member, RuleSet, period_of
from ..sync import Snapshot
from ._errors import CardInUse, UnknownCard, UnknownMember, UnknownTier

if TYPE_CHECKING:
    from ._till import Till


@attrs.frozen
class MemberRecord:
    """A member as the till knows them."""

    id: str
    tier: str = ""
    segments: frozenset[str] = frozenset()
    birthday: date | None = None


def pin_hash(member: str, pin: str) -> str:
    return hashlib.scrypt(pin.encode(), salt=member.encode(), n=2**12, r=8, p=1).hex()


class Directory:
    """Members and cards in the till's tables, on the ledger's connection."""

    def __init__(self, till: Till) -> None:
        self._till = till
        self._conn = till.ledger.store.connection  # type: ignore[attr-defined]

    @property
    def _rules(self) -> RuleSet:
        return self._till.rules

    # -- members ----------------------------------------------------------------------

    def insert(
        self,
        record: MemberRecord,
        pin: str | None,
        enrolled_at: str,
        today: date,
    ) -> bool:
        self.check_tier(record.tier)
        review = None
        if self._rules.tiers is not None:
            review = self._rules.tiers.next_review(today).isoformat()
        """Add a member; True if new (an existing one is left as it is)."""
        cursor = self._conn.execute(
            "INSERT INTO till_members (id, tier, segments, birthday, pin_hash, enrolled_at,"
            " tier_review) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                record.id,
                record.tier,
                json.dumps(sorted(record.segments)),
                record.birthday.isoformat() if record.birthday else None,
                pin_hash(record.id, pin) if pin else None,
                enrolled_at,
                review,
            ),
        )
        return bool(cursor.rowcount == 1)

    def get(self, member_id: str) -> MemberRecord:
        row = self._conn.execute(
            "SELECT id, tier, segments, birthday FROM till_members WHERE id = ?", (member_id,)
        ).fetchone()
        if row is None:
            raise UnknownMember(f"no member {member_id!r}")
        return _record(row)

    def for_sale(self, member_id: str) -> tuple[MemberRecord, str | None]:
        """The member and their next tier review, in one read (a sale's commit needs both)."""
        row = self._conn.execute(
            "SELECT id, tier, segments, birthday, tier_review FROM till_members WHERE id = ?",
            (member_id,),
        ).fetchone()
        if row is None:
            raise UnknownMember(f"no member {member_id!r}")
        return _record(row), row[4]

    def pin_hash(self, member_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT pin_hash FROM till_members WHERE id = ?", (member_id,)
        ).fetchone()
        return None if row is None else row[0]

    def check_tier(self, tier: str) -> None:
        """Refuse a tier the rules do not define ("" is no tier)."""
        if not isinstance(tier, str):
            raise UnknownTier(f"a tier is a name, not {tier!r}")
        if tier == "":
            return
        policy = self._rules.tiers
        names = [level.name for level in policy.levels] if policy else []
        if tier not in names:
            known = ", ".join(names) or "none"
            raise UnknownTier(f"the rules define no tier {tier!r} (tiers: {known})")

    def set_tier(self, member_id: str, tier: str) -> None:
        self.check_tier(tier)
        self.get(member_id)
        self._conn.execute("UPDATE till_members SET tier = ? WHERE id = ?", (tier, member_id))

    # -- cards -----------------------------------------------------------------------

    def check_link(self, member_id: str, uid: str, kind: Literal["identity", "purse"]) -> bool:
        """Whether linking would be new; refuses a card that is another member's.

        Raises:
            CardInUse: the card belongs to another member (or is registered as another kind).
        """
        row = self._conn.execute(
            "SELECT member, kind FROM till_cards WHERE uid = ?", (uid,)
        ).fetchone()
        if row is not None and (row[0], row[1]) != (member_id, kind):
            # Name the card, never the other member.
            raise CardInUse(f"card {uid} is already registered to a member")
        return row is None

    def link(self, member_id: str, uid: str, kind: Literal["identity", "purse"]) -> bool:
        """Register a card to a member; True if it is new. Idempotent for the same member.

        Raises:
            CardInUse: the card belongs to another member (or is registered as another kind).
        """
        if not self.check_link(member_id, uid, kind):
            return False
        self._conn.execute(
            "INSERT INTO till_cards (uid, member, kind) VALUES (?, ?, ?)", (uid, member_id, kind)
        )
        return True

    def card_holder(self, uid: str) -> tuple[MemberRecord, str]:
        """The member a registered card belongs to, and the card's status, in one read."""
        row = self._conn.execute(
            "SELECT m.id, m.tier, m.segments, m.birthday, c.status FROM till_cards AS c"
            " JOIN till_members AS m ON m.id = c.member WHERE c.uid = ?",
            (uid,),
        ).fetchone()
        if row is None:
            self.card(uid)  # names the unknown card
            raise UnknownMember(f"card {uid} belongs to a member this till does not know")
        return _record(row), row[4]

    def card(self, uid: str) -> tuple[str, str, str]:
        """(member, kind, status) of a registered card."""
        row = self._conn.execute(
            "SELECT member, kind, status FROM till_cards WHERE uid = ?", (uid,)
        ).fetchone()
        if row is None:
            raise UnknownCard(f"card {uid} is not registered")
        return row[0], row[1], row[2]

    # -- what the rules remember ----------------------------------------------------

    def view(self, record: MemberRecord, day: date) -> Member:
        """The member as the rules see them on `day`: cap-period earnings, rules used."""
        earned = 0
        rules = self._rules
        if rules.cap_per_member is not None:
            _, first, last = period_of(rules.cap_period, day)
            earned = self._total(record.id, first, last)[1]
        used = frozenset(self._used_rules(record.id, day))
        return Member(record.id, record.tier, record.segments, record.birthday, earned, used)

    def _used_rules(self, member_id: str, day: date) -> Iterable[str]:
        limited = [(r.id, period_of(r.once_per, day)[0]) for r in self._rules.rules if r.once_per]
        if not limited:
            return ()
        used = {
            (rule, period)
            for rule, period in self._conn.execute(
                "SELECT rule, period FROM till_rule_uses WHERE member = ?", (member_id,)
            )
        }
        return [rule for rule, period in limited if (rule, period) in used]

    def record_sale(
        self,
        ref: str,
        member_id: str,
        day: date,
        spend: int,
        points: int,
        earn: EarnResult,
        events: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """A completed sale's spend, points and the once-per rules `earn` used (inside
        its commit).

        Its event joins `events`, which the caller writes with its own, and
        then calls `upgrade` (a chain member's spend counts the events).
        """
        day_text = day.isoformat()
        self._conn.execute(
            "INSERT INTO till_spend (ref, member, local_date, amount) VALUES (?, ?, ?, ?)",
            (ref, member_id, day_text, spend),
        )
        if points:
            self._conn.execute(
                "INSERT INTO till_earnings (ref, member, local_date, points) VALUES (?, ?, ?, ?)",
                (ref, member_id, day_text, points),
            )
        once = [(rule.id, rule.once_per) for rule in self._rules.rules if rule.once_per]
        # The rules that gave points, only where a once-per rule is there to ask:
        # results are tuples (rules/_model), a contribution (rule, description,
        # points, ...), a line's contributions its item 4.
        used = (
            {c[0] for line in earn.lines for c in line[4] if c[2]}
            | {c[0] for c in earn.receipt if c[2]}
            if once
            else set()
        )
        for rule_id, per in once:
            if rule_id in used:
                self._conn.execute(
                    "INSERT INTO till_rule_uses (member, rule, period, receipt)"
                    " VALUES (?, ?, ?, ?)",
                    (member_id, rule_id, period_of(per, day)[0], ref),
                )
        events.append(
            (
                "sale",
                {
                    "member": member_id,
                    "ref": ref,
                    "day": day_text,
                    "spend": spend,
                    "points": points,
                },
            )
        )

    def upgrade(self, member_id: str, day: date, read: tuple[str, str | None]) -> None:
        """Move the member up a tier if their spend now qualifies (after `record_sale`).

        `read` is the (tier, next review) `for_sale` read in the same commit.
        """
        self._upgrade(member_id, day, read)

    def record_refund(
        self,
        refund_ref: str,
        receipt_ref: str,
        member_id: str,
        sale_day: date,
        spend_back: int,
        points_back: int,
        whole: bool,
    ) -> None:
        """A refund's effect on spend and earnings, on the sale's day (inside its commit)."""
        if spend_back:
            self._conn.execute(
                "INSERT INTO till_spend (ref, member, local_date, amount) VALUES (?, ?, ?, ?)",
                (f"refund:{refund_ref}", member_id, sale_day.isoformat(), -spend_back),
            )
        if points_back:
            self._conn.execute(
                "INSERT INTO till_earnings (ref, member, local_date, points) VALUES (?, ?, ?, ?)",
                (f"refund:{refund_ref}", member_id, sale_day.isoformat(), -points_back),
            )
        if spend_back or points_back:
            self._till._event(
                "sale",
                {
                    "member": member_id,
                    "ref": f"refund:{refund_ref}",
                    "day": sale_day.isoformat(),
                    "spend": -spend_back,
                    "points": -points_back,
                },
            )
        if whole:
            # All of the receipt came back: its once-per rules may be had again.
            self._conn.execute("DELETE FROM till_rule_uses WHERE receipt = ?", (receipt_ref,))

    # -- tiers ------------------------------------------------------------------------

    def rolling_spend(self, member_id: str, day: date) -> int:
        policy = self._rules.tiers
        assert policy is not None
        start = day - timedelta(days=policy.window_days - 1)
        return self._total(member_id, start, day)[0]

    def _total(self, member_id: str, first: date, last: date) -> tuple[int, int]:
        """Goods spend and points between two days: the chain's, when the hub told us."""
        span = (first.isoformat(), last.isoformat())
        chain = self._conn.execute(
            "SELECT events_cursor FROM till_chain_members WHERE member = ?", (member_id,)
        ).fetchone()
        if chain is None:
            (spend,) = self._conn.execute(
                "SELECT coalesce(sum(amount), 0) FROM till_spend"
                " WHERE member = ? AND local_date BETWEEN ? AND ?",
                (member_id, *span),
            ).fetchone()
            (points,) = self._conn.execute(
                "SELECT coalesce(sum(points), 0) FROM till_earnings"
                " WHERE member = ? AND local_date BETWEEN ? AND ?",
                (member_id, *span),
            ).fetchone()
            return int(spend), int(points)
        # Every store's days as of the last snapshot, and this till's sales since.
        spend, points = self._conn.execute(
            "SELECT coalesce(sum(spend), 0), coalesce(sum(points), 0) FROM till_chain_days"
            " WHERE member = ? AND day BETWEEN ? AND ?",
            (member_id, *span),
        ).fetchone()
        for (payload,) in self._conn.execute(
            "SELECT payload FROM till_events WHERE kind = 'sale' AND seq > ?", (chain[0],)
        ):
            sale = json.loads(payload)
            if sale["member"] == member_id and span[0] <= sale["day"] <= span[1]:
                spend += sale["spend"]
                points += sale["points"]
        return int(spend), int(points)

    def learn_chain(self, snapshot: Snapshot) -> None:
        """Keep the chain's days of a member from a snapshot, and apply what they qualify for."""
        if snapshot.member is None:
            return
        member = snapshot.member
        try:
            self.get(member)
        except UnknownMember:
            return
        self._conn.execute("DELETE FROM till_chain_days WHERE member = ?", (member,))
        self._conn.executemany(
            "INSERT INTO till_chain_days (member, day, spend, points) VALUES (?, ?, ?, ?)",
            [(member, day, spend, points) for day, (spend, points) in snapshot.days.items()],
        )
        self._conn.execute(
            "INSERT INTO till_chain_members (member, events_cursor, at) VALUES (?, ?, ?)"
            " ON CONFLICT (member) DO UPDATE SET events_cursor = excluded.events_cursor,"
            " at = excluded.at",
            (member, snapshot.events_cursor, self._till.now().isoformat()),
        )
        self._upgrade(member, self._till.local_date())

    def _upgrade(
        self, member_id: str, day: date, read: tuple[str, str | None] | None = None
    ) -> None:
        policy = self._rules.tiers
        if policy is None:
            return
        current = self._review(member_id, day, read)
        if policy.rank(current) == len(policy.levels) - 1:
            return  # at the top already: no need to add up the spend
        tier = policy.upgrade(current, self.rolling_spend(member_id, day))
        if tier != current:
            self._conn.execute("UPDATE till_members SET tier = ? WHERE id = ?", (tier, member_id))

    def review(self, member_id: str, today: date) -> bool:
        """Apply a review date that has passed; True if the tier moved."""
        row = self._conn.execute("SELECT tier FROM till_members WHERE id = ?", (member_id,))
        before = row.fetchone()
        return before is not None and self._review(member_id, today) != before[0]

    def _review(
        self, member_id: str, today: date, read: tuple[str, str | None] | None = None
    ) -> str:
        """The member's tier after any review date that passed (the spend up to it decides).

        `read`: the (tier, next review) read earlier in this commit, if any.
        """
        policy = self._rules.tiers
        assert policy is not None
        row = (
            read
            or self._conn.execute(
                "SELECT tier, tier_review FROM till_members WHERE id = ?", (member_id,)
            ).fetchone()
        )
        if row is None:
            raise UnknownMember(f"no member {member_id!r}")
        current, review = row
        if review is not None and date.fromisoformat(review) >= today:
            return str(current)
        tier = current
        if review is not None:
            # Several periods may have passed: the latest review date decides.
            latest = period_of(policy.review, today)[1] - timedelta(days=1)
            tier = policy.review_tier(current, self.rolling_spend(member_id, latest))
        self._conn.execute(
            "UPDATE till_members SET tier = ?, tier_review = ? WHERE id = ?",
            (tier, policy.next_review(today).isoformat(), member_id),
        )
        return str(tier)

    def due_for_review(self, today: date) -> list[str]:
        if self._rules.tiers is None:
            return []
        rows = self._conn.execute(
            "SELECT id FROM till_members WHERE tier_review IS NULL OR tier_review < ?",
            (today.isoformat(),),
        )
        return [member for (member,) in rows]


def _record(row: tuple[Any, ...]) -> MemberRecord:
    """A member from (id, tier, segments, birthday, ...) as the directory's reads select them."""
    birthday = date.fromisoformat(row[3]) if row[3] else None
    return MemberRecord(row[0], row[1], frozenset(parse_texts(row[2])), birthday)
