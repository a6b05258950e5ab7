# SPDX-License-Identifier: Apache-2.0
"""What head office sends a till, applied durably: one handler per update kind.

Each update is applied in one commit with the pull cursor that follows it,
so a till that restarts neither loses nor repeats one. Rules, keys and the
offline allowance are kept in `till_settings` and read back at open: what
head office sent survives a restart. A malformed payload raises
`BadRecord`; a kind the till does not know raises `UnknownUpdate`; the sync
loop records either as a problem the till reports, and goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from .._errors import LoyaltyError
from ..rules import RuleSet, load_rules
from ..sync import BadRecord, UnknownUpdate, Update, UpdateKind, check_update
from ..vouchers import Keyring, VoucherTerms
from ._online import OfflineAllowance

if TYPE_CHECKING:
    from ._till import Till


def _field(payload: Any, name: str, kind: type) -> Any:
    if not isinstance(payload, dict) or not isinstance(payload.get(name), kind):
        raise BadRecord(f"the update needs {name!r} as a {kind.__name__}, got {payload!r:.200}")
    return payload[name]


def _strings(payload: Any, name: str) -> list[str]:
    values = _field(payload, name, list)
    if not all(isinstance(v, str) for v in values):
        raise BadRecord(f"{name!r} lists strings only")
    return list(values)


class Updates:
    """Apply head office's updates to a till, and keep what they set."""

    def __init__(self, till: Till) -> None:
        self._till = till
        self._conn = till.ledger.store.connection  # type: ignore[attr-defined]
        self._handlers: dict[UpdateKind, Callable[[Any], None]] = {
            UpdateKind.RULES: self._rules,
            UpdateKind.HOTLIST: self._hotlist,
            UpdateKind.REVOCATIONS: self._revocations,
            UpdateKind.KEYS: self._keys,
            UpdateKind.VOUCHERS: self._vouchers,
            UpdateKind.MEMBERS: self._members,
            UpdateKind.ALLOWANCE: self._allowance,
        }

    # -- at open: what earlier updates set ------------------------------------------------

    def restore(self) -> None:
        """Bring back the rules, keys and allowance that earlier updates set."""
        till = self._till
        rules = self._setting("rules")
        if rules is not None:
            stored = load_rules(rules)
            if stored.currency == till.currency and stored.version > till.rules.version:
                till.rules = stored
        keys = self._setting("keys")
        if keys is not None:
            for key_id, key in Keyring.from_json(keys).keys.items():
                till.vouchers.keyring.add(key_id, key)
        allowance = self._setting("allowance")
        if allowance is not None:
            till.allowance = _allowance(allowance)

    def _setting(self, name: str) -> Any:
        row = self._conn.execute("SELECT value FROM till_settings WHERE name = ?", (name,))
        found = row.fetchone()
        return None if found is None else json.loads(found[0])

    def _keep(self, name: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO till_settings (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, json.dumps(value, sort_keys=True)),
        )

    # -- applying ---------------------------------------------------------------------------

    def apply(self, update: Update) -> None:
        """Apply one update and move the pull cursor past it, in one commit.

        Raises:
            UnknownUpdate: a kind this till does not know (nothing changed).
            BadRecord: a malformed payload (nothing changed).
        """
        try:
            kind = check_update(update.kind, update.payload)
        except UnknownUpdate:
            raise UnknownUpdate(
                f"update {update.cursor} is of unknown kind {update.kind!r:.40}"
            ) from None
        except BadRecord as error:
            raise BadRecord(f"update {update.cursor} ({update.kind}): {error}") from None
        till = self._till
        with till.ledger.atomic():
            till._quiet = True  # what the hub sent does not go back to it as events
            try:
                self._handlers[kind](update.payload)
            except BadRecord:
                raise
            except (LoyaltyError, ValueError, TypeError, KeyError, AttributeError) as error:
                raise BadRecord(f"update {update.cursor} ({kind}): {error}") from error
            finally:
                till._quiet = False
            till._set_sync("pull_cursor", str(update.cursor))

    def skip(self, update: Update, problem: Exception) -> None:
        """Record an update the till could not apply, and move past it."""
        with self._till.ledger.atomic():
            self._conn.execute(
                "INSERT INTO till_update_problems (cursor, kind, detail, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (cursor) DO NOTHING",
                (
                    update.cursor,
                    str(update.kind)[:50],
                    str(problem)[:500],
                    self._till.now().isoformat(),
                ),
            )
            self._till._set_sync("pull_cursor", str(update.cursor))

    def problems(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT cursor, kind, detail, at FROM till_update_problems ORDER BY cursor"
        )
        return [{"cursor": c, "kind": k, "detail": d, "at": a} for c, k, d, a in rows]

    # -- one handler per kind ------------------------------------------------------------

    def _rules(self, payload: Any) -> None:
        till = self._till
        rules: RuleSet = load_rules(payload)
        if rules.currency != till.currency:
            raise BadRecord(f"rules in {rules.currency} for a till in {till.currency}")
        if rules.version > till.rules.version:
            till.rules = rules
            self._keep("rules", payload)

    def _hotlist(self, payload: Any) -> None:
        self._till._block_cards([uid.upper() for uid in _strings(payload, "block")])

    def _revocations(self, payload: Any) -> None:
        for code in _strings(payload, "codes"):
            self._till._revoke(code)

    def _keys(self, payload: Any) -> None:
        ring = Keyring.from_json(payload)
        keyring = self._till.vouchers.keyring
        for key_id, key in ring.keys.items():
            keyring.add(key_id, key)
        self._keep("keys", keyring.to_json())

    def _vouchers(self, payload: Any) -> None:
        for terms in _field(payload, "terms", list):
            self._till.vouchers.register(VoucherTerms.from_json(terms))

    def _members(self, payload: Any) -> None:
        till = self._till
        for member in _field(payload, "members", list):
            member_id = _field(member, "id", str)
            birthday = member.get("birthday")
            till.enrol(
                member_id,
                tier=member.get("tier", ""),
                segments=frozenset(member.get("segments", [])),
                birthday=date.fromisoformat(birthday) if birthday else None,
            )
            for card in member.get("cards", []):
                till.link_card(
                    member_id,
                    bytes.fromhex(_field(card, "uid", str)),
                    kind=card.get("kind", "identity"),
                )

    def _allowance(self, payload: Any) -> None:
        self._till.allowance = _allowance(payload)
        self._keep("allowance", payload)


def _allowance(payload: Any) -> OfflineAllowance:
    if not isinstance(payload, dict):
        raise BadRecord(f"an allowance is an object, not {payload!r:.200}")
    known = {"per_transaction", "per_member_per_day", "per_till_total", "max_transactions"}
    limits: dict[str, Any] = {}
    for name, value in payload.items():
        if name == "max_hours_offline":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadRecord("max_hours_offline is a whole number of hours")
            limits["max_time_offline"] = timedelta(hours=value)
        elif name in known:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadRecord(f"{name} is a non-negative whole number")
            limits[name] = value
        else:
            raise BadRecord(f"unknown allowance field {name!r}")
    return OfflineAllowance(**limits)
