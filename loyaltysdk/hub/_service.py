# SPDX-License-Identifier: Apache-2.0
"""The hub's rules: who may call, exactly-once ingest, updates by cursor, online holds.

Ingest (`Hub.push`) applies a till's outbox records in sequence order,
exactly once per ``(till, seq)``: a record at or below the till's cursor is
a duplicate and ignored; one beyond the next expected is held until the
gap fills; the rest are applied in one transaction per batch (entries,
then balances summed per account). What offline tills could not see is
applied as it happened and recorded: a member account driven below zero
is an ``overdraft`` exception, a single-use voucher redeemed at two tills a
``double_redemption`` exception. No record is dropped or rewritten.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .. import _enrolment
from .._errors import UnknownCurrency
from .._ids import RESERVED_NAMES, is_id, is_name
from .._money import MAX_AMOUNT, check_unit
from ..cards.ntag424 import CounterStore, SunVerifier
from ..sync import (
    AuthError,
    BadRecord,
    Forbidden,
    InsufficientOnline,
    PushResult,
    Snapshot,
    TooLarge,
    UnknownUpdate,
    Update,
    UpdateKind,
    check_update,
    is_uid,
    update_message,
)
from . import _records
from ._book import HUB, Book, Moves
from ._directory import Directory, check_event
from ._store import HubStore


def _hash(secret: str) -> str:
    # Tokens are 256 random bits: a plain SHA-256 is enough to keep them
    # out of the database in usable form.
    return hashlib.sha256(secret.encode()).hexdigest()


@attrs.frozen
class HubLimits:
    """What one request may carry; beyond each, `TooLarge` (HTTP 413) and nothing changes.

    Attributes:
        body_bytes: an HTTP request body.
        records_per_push: outbox records in one push (a till sends 500 at most).
        held_bytes: record payloads one till may park beyond a gap in its
            sequence numbers; the till must send the missing ones first.
    """

    body_bytes: int = 8 << 20
    records_per_push: int = 1_000
    held_bytes: int = 4 << 20


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@attrs.frozen
class TillStatus:
    """One till as head office sees it (`Hub.tills`, `GET /v1/admin/tills`)."""

    till_id: str
    registered_at: str | None  # None: created, its enrolment token not used yet
    last_sync: str | None  # UTC, ISO 8601: its last push (None: never synced)
    acked: int  # the hub's cursor in its outbox: every record up to it applied
    head: int  # the newest outbox record it said it holds
    lag: int  # records it holds that the hub has not applied (head - acked)
    events_acked: int  # what it learned (enrolments, cards, taps) received up to here
    offline_since: str | None  # its last sync, once no other followed for a while
    exceptions: int  # conflicts its offline records caused (`exceptions`)


@attrs.frozen
class Principal:
    """Who a credential belongs to: a till, or head office."""

    kind: Literal["till", "admin"]
    id: str


class Hub:
    """Head office's service on a `HubStore`."""

    def __init__(
        self,
        store: HubStore,
        *,
        clock: Callable[[], float] = time.time,
        update_key: Ed25519PrivateKey | None = None,
        limits: HubLimits = HubLimits(),
        sun: Callable[[CounterStore], SunVerifier] | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        # The SUN keys, as a verifier made on a counter store the hub supplies
        # (`functools.partial(SunVerifier, meta_key, file_key)`): members' pages
        # (`GET /t`) check taps against the chain's counters, never a verifier's own.
        self.sun = sun
        self._clock = clock
        # Head office's signing key: given (from a key store), or kept in the database.
        self._signer = self._update_signer(update_key)
        self.book = Book(store, clock)
        self.directory = Directory(store, self.publish, self.book.sweep_replaced)

    # -- credentials ------------------------------------------------------------------

    def add_admin(self, name: str) -> str:
        """Create a head-office credential; the token is shown once."""
        token = f"admin.{secrets.token_urlsafe(32)}"
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO hub_admins (token_hash, name) VALUES (?, ?)", (_hash(token), name)
            )
        return token

    def create_till(self, till_id: str) -> str:
        """Allow a till to register; returns its one-time enrolment token."""
        if not is_name(till_id) or till_id in RESERVED_NAMES:
            raise BadRecord(
                f"a till id is 1 to 64 letters, digits, - and _ (not {sorted(RESERVED_NAMES)})"
            )
        token = secrets.token_urlsafe(24)
        with self.store.transaction():
            if self.store.execute("SELECT 1 FROM hub_tills WHERE id = ?", (till_id,)):
                self.store.execute(
                    "UPDATE hub_tills SET enrol_hash = ? WHERE id = ?", (_hash(token), till_id)
                )
            else:
                self.store.execute(
                    "INSERT INTO hub_tills (id, enrol_hash) VALUES (?, ?)", (till_id, _hash(token))
                )
        return token

    def register(self, till_id: str, enrolment_token: str) -> str:
        """Exchange a one-time enrolment token for the till's credential (in process).

        Re-registering (a new enrolment token from head office) keeps the
        till's cursor and history: nothing it pushed is forgotten.

        Raises:
            AuthError: unknown till, or a wrong or used token.
        """
        if not is_id(enrolment_token):
            raise AuthError("unknown till or wrong enrolment token")
        secret = _enrolment.digest(enrolment_token)
        return self.register_proven(till_id, _enrolment.enrolment_proof(secret, till_id))[0]

    def register_proven(self, till_id: str, proof: bytes) -> tuple[str, bytes]:
        """Register a till that proves it holds the enrolment token without sending it.

        Returns the till's credential and the proof of the hub's update key
        (`loyaltysdk._enrolment`), for the till to check what it will trust.

        Raises:
            AuthError: unknown till, or a wrong or used token.
        """
        if not is_name(till_id) or not isinstance(proof, bytes):
            raise AuthError("unknown till or wrong enrolment token")
        with self.store.transaction(lock_till=till_id):
            rows = self.store.execute("SELECT enrol_hash FROM hub_tills WHERE id = ?", (till_id,))
            stored = bytes.fromhex(rows[0][0]) if rows and rows[0][0] else None
            if stored is None or not hmac.compare_digest(
                _enrolment.enrolment_proof(stored, till_id), proof
            ):
                raise AuthError("unknown till or wrong enrolment token")
            key_proof = _enrolment.key_proof(stored, till_id, self.update_key)
            secret = f"{till_id}.{secrets.token_urlsafe(32)}"
            self.store.execute(
                "UPDATE hub_tills SET secret_hash = ?, enrol_hash = '', registered_at = ?"
                " WHERE id = ?",
                (_hash(secret), datetime.now(UTC).isoformat(), till_id),
            )
        return secret, key_proof

    # -- the key that signs updates -----------------------------------------------------

    @property
    def update_key(self) -> bytes:
        """The public key (Ed25519, 32 bytes) that verifies every update this hub sends."""
        return self._signer.public_key().public_bytes_raw()

    def _update_signer(self, given: Ed25519PrivateKey | None) -> Ed25519PrivateKey:
        # Made once per database, so every hub process on it signs alike.
        if given is not None:
            return given
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO hub_keys (name, value) VALUES ('update', ?)"
                " ON CONFLICT (name) DO NOTHING",
                (Ed25519PrivateKey.generate().private_bytes_raw().hex(),),
            )
            (raw,) = self.store.execute("SELECT value FROM hub_keys WHERE name = 'update'")[0]
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw))

    def authenticate(self, token: str | None) -> Principal:
        """Who a bearer token belongs to.

        Raises:
            AuthError: missing or not a valid credential.
        """
        if not is_id(token) or "." not in token:
            raise AuthError("missing or malformed credentials")
        name, _, _ = token.partition(".")
        digest = _hash(token)
        if name == "admin":
            rows = self.store.execute("SELECT name FROM hub_admins WHERE token_hash = ?", (digest,))
            if rows:
                return Principal("admin", rows[0][0])
            raise AuthError("invalid credentials")
        rows = self.store.execute("SELECT secret_hash FROM hub_tills WHERE id = ?", (name,))
        if rows and rows[0][0] and hmac.compare_digest(rows[0][0], digest):
            return Principal("till", name)
        raise AuthError("invalid credentials")

    # -- ingest -----------------------------------------------------------------------

    def push(
        self, till_id: str, records: Sequence[tuple[int, str]], *, head: int | None = None
    ) -> PushResult:
        """Apply a batch of `(seq, payload)` outbox records from one till, exactly once.

        `head`: the newest record the till's outbox holds (it may send it with no
        records: a sync round's heartbeat). It and the time are what `tills` shows.
        """
        if head is not None and (type(head) is not int or not 0 <= head <= _records.MAX_SEQ):
            raise BadRecord(f"bad outbox head {head!r:.40}")
        if len(records) > self.limits.records_per_push:
            raise TooLarge(f"a push carries at most {self.limits.records_per_push} records")
        parsed: dict[int, str] = {}
        for seq, payload in records:
            if type(seq) is not int or not 1 <= seq <= _records.MAX_SEQ:
                raise BadRecord(f"bad sequence number {seq!r:.40}")
            if not isinstance(payload, str):
                raise BadRecord(f"record {seq}: payload must be text")
            if seq in parsed and parsed[seq] != payload:
                raise BadRecord(f"record {seq} comes twice, differently, in one push")
            parsed[seq] = payload
        with self.store.transaction(lock_till=till_id):
            # The cursor, and whether records wait beyond a gap, in one read.
            rows = self.store.execute(
                "SELECT acked, EXISTS (SELECT 1 FROM hub_held WHERE till = ?)"
                " FROM hub_tills WHERE id = ?",
                (till_id, till_id),
            )
            if not rows:
                raise Forbidden(f"till {till_id} is not registered")
            acked = int(rows[0][0])
            if parsed and min(parsed) > acked:
                duplicates, fresh = 0, parsed  # the usual push: nothing seen before
            else:
                duplicates = sum(1 for seq in parsed if seq <= acked)
                if duplicates:
                    self._check_replays(till_id, {s: p for s, p in parsed.items() if s <= acked})
                fresh = {seq: p for seq, p in parsed.items() if seq > acked}
            # Records held from earlier pushes (a gap) join this batch; in the
            # usual case there are none and nothing goes through hub_held.
            held = (
                {
                    int(seq): payload
                    for seq, payload in self.store.execute(
                        "SELECT seq, payload FROM hub_held WHERE till = ? AND seq > ? ORDER BY seq",
                        (till_id, acked),
                    )
                }
                if rows[0][1]
                else {}
            )
            ready: list[tuple[int, str]] = []
            if not held and fresh and max(fresh) - acked == len(fresh):
                # Distinct and all past the cursor: exactly the next ones, no gap.
                ready = sorted(fresh.items())
            else:
                merged = {**held, **fresh}
                while acked + len(ready) + 1 in merged:
                    seq = acked + len(ready) + 1
                    ready.append((seq, merged[seq]))
            # New records are checked whole, the ones held beyond a gap too (after
            # the ready ones, so the first bad record in sequence is the one
            # named); a replay is only compared with what is stored.
            if ready:
                self._apply(till_id, ready)
                acked = ready[-1][0]
                self.store.defer("UPDATE hub_tills SET acked = ? WHERE id = ?", (acked, till_id))
            later = (
                [(till_id, seq, p) for seq, p in sorted(fresh.items()) if seq > acked]
                if len(ready) < len(fresh) + len(held)
                else []
            )
            for _, seq, p in later:
                _records.parse(seq, p)
            parked = sum(len(p) for _, _, p in later) + sum(
                len(p) for seq, p in held.items() if seq > acked and seq not in fresh
            )
            if parked > self.limits.held_bytes:
                raise TooLarge(
                    f"at most {self.limits.held_bytes} bytes wait beyond a gap:"
                    f" send record {acked + 1} first"
                )
            if later:
                self.store.insert_rows(
                    "hub_held",
                    ("till", "seq", "payload"),
                    later,
                    "ON CONFLICT (till, seq) DO NOTHING",
                )
            if held:
                self.store.execute(
                    "DELETE FROM hub_held WHERE till = ? AND seq <= ?", (till_id, acked)
                )
            waiting = len(later) + sum(1 for seq in held if seq > acked)
            newest = max([head or 0, *parsed])
            # The cursor and the contact go out with the COMMIT (PostgreSQL).
            self.store.defer(
                "INSERT INTO hub_till_contact (till, last_sync, head) VALUES (?, ?, ?)"
                " ON CONFLICT (till) DO UPDATE SET last_sync = excluded.last_sync,"
                " head = CASE WHEN excluded.head > hub_till_contact.head"
                " THEN excluded.head ELSE hub_till_contact.head END",
                (till_id, int(self._clock()), newest),
            )
        return PushResult(acked, len(ready), duplicates, int(waiting))

    def _check_replays(self, till_id: str, replays: dict[int, str]) -> None:
        """A replayed sequence number must carry the very record stored before.

        A different key means the till's file was replaced or restored from
        an old copy: its new records would be silently ignored as duplicates.
        Refuse loudly instead.
        """
        seqs = sorted(replays)
        stored: dict[int, str] = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            stored.update(
                self.store.execute(
                    f"SELECT seq, payload FROM hub_entries WHERE till = ? AND seq IN ({marks})",  # noqa: S608
                    (till_id, *chunk),
                )
            )
        for seq, payload in replays.items():
            # A genuine replay resends the stored payload byte for byte.
            if seq in stored and payload != stored[seq]:
                raise BadRecord(
                    f"till {till_id} reused sequence {seq} for another transaction: its file was"
                    " replaced or restored; register it under a new till id"
                )

    def _apply(self, till_id: str, records: list[tuple[int, str]]) -> None:
        batch: list[tuple[int, dict[str, Any]]] = []
        moves = Moves()
        voucher_uses: list[tuple[str, str, int]] = []

        def entries() -> Iterator[tuple[Any, ...]]:
            # Each record is checked and gathered as its entry goes out, so on
            # PostgreSQL the server stores entries while the next ones are read.
            # A bad record stops the COPY and the push rolls back whole.
            parse, add, keep = _records.parse, moves.add, batch.append
            for seq, payload in records:
                record = parse(seq, payload)
                add(seq, record)
                keep((seq, record))
                key, kind = record["key"], record["kind"]
                if kind == "transfer" and key[:8] == "voucher:" and key.count(":") == 1:
                    voucher_uses.append((key[8:], till_id, seq))
                yield (till_id, seq, key, kind, record["at"], record["memo"], payload)

        # Appended (COPY on PostgreSQL): every seq is past the till's cursor,
        # read under the till's lock, so no entry can be there already; the
        # primary key (till, seq) refuses one that is, and the push rolls back.
        self.store.copy_rows(
            "hub_entries", ("till", "seq", "key", "kind", "at", "memo", "payload"), entries()
        )
        named = {a: v for a, v in moves.named.items() if a not in moves.deltas}
        closing = _records.References(self.store, till_id, records[0][0]).check(batch, named)
        if closing:
            self.store.insert_rows("hub_closed", ("till", "ref"), closing, "")
        self.book.apply(till_id, moves)
        exceptions = []
        for code, till, seq in voucher_uses:
            others = self.store.execute(
                "SELECT till, seq FROM hub_voucher_uses"
                " WHERE code = ? AND NOT (till = ? AND seq = ?)",
                (code, till, seq),
            )
            if others:
                first = others[0]
                detail = f"already redeemed at {first[0]} (record {first[1]})"
                exceptions.append((till, seq, "double_redemption", f"voucher:{code}", 0, detail))
        if voucher_uses:
            self.store.executemany(
                "INSERT INTO hub_voucher_uses (code, till, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (code, till, seq) DO NOTHING",
                voucher_uses,
            )
        if exceptions:
            self.store.executemany(
                "INSERT INTO hub_exceptions (till, seq, kind, account, amount, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                exceptions,
            )

    # -- the book of record -------------------------------------------------------------

    def snapshot(
        self,
        till_id: str,
        member: str | None = None,
        accounts: Sequence[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot:
        """What a till may spend from: a member's accounts (and others named), chain-wide.

        The figures hold every till's applied records and the hub's own
        entries (funding, breakage booked now), and the asking till's records
        up to `Snapshot.cursor`; `held` is what other tills hold online. A
        tap's SUN counter (`sun`: tag UID in hex, counter) is checked against
        the chain's in the same call (`Snapshot.sun_fresh`).
        """
        if member is not None and not is_name(member):
            raise BadRecord(f"a member id is letters, digits, - and _, not {member!r:.80}")
        if not all(is_id(account) for account in accounts):
            raise BadRecord("accounts are 1-200 printable characters")
        if sun is not None and not (is_uid(sun[0]) and type(sun[1]) is int and 0 <= sun[1] < 2**24):
            raise BadRecord("a SUN tap is a card UID in hex and a 24-bit counter")
        with self.store.transaction(lock_till=till_id):
            rows = self.store.execute("SELECT acked FROM hub_tills WHERE id = ?", (till_id,))
            if not rows:
                raise Forbidden(f"till {till_id} is not registered")
            snapshot = self.book.snapshot(till_id, member, list(accounts), int(rows[0][0]))
            if member is not None:
                # Tiers and the member cap count every store's sales: two years of days.
                since = datetime.fromtimestamp(self._clock(), UTC).date() - timedelta(days=800)
                snapshot = attrs.evolve(
                    snapshot,
                    member=member,
                    days=self.directory.days(member, since.isoformat()),
                    events_cursor=self.directory.events_cursor(till_id),
                )
            if sun is None:
                return snapshot
            uid, counter = sun
            fresh = self.directory.advance_sun(str(uid).upper(), int(counter))
            return attrs.evolve(snapshot, sun_fresh=fresh)

    def push_events(self, till_id: str, events: Sequence[tuple[int, str, Any]]) -> int:
        """Apply a till's events (enrolments, cards, blocks, SUN counters) once each, in order.

        Returns the sequence up to which the hub has them; an event after a
        gap waits for the till to send the gap.
        """
        checked = sorted((check_event(*event) for event in events), key=lambda e: e[0])
        with self.store.transaction(lock_till=till_id):
            if not self.store.execute("SELECT 1 FROM hub_tills WHERE id = ?", (till_id,)):
                raise Forbidden(f"till {till_id} is not registered")
            rows = self.store.execute(
                "SELECT acked FROM hub_event_cursors WHERE till = ?", (till_id,)
            )
            acked = int(rows[0][0]) if rows else 0
            ready: list[tuple[int, str, dict[str, Any]]] = []
            for seq, kind, payload in checked:
                if seq == acked + len(ready) + 1:
                    ready.append((seq, kind, payload))
            if ready:
                # Receipt records live in the report tables, filed by the directory.
                kept = [
                    (till_id, seq, kind, json.dumps(p, sort_keys=True))
                    for seq, kind, p in ready
                    if kind != "receipt"
                ]
                if kept:
                    self.store.insert_rows(
                        "hub_till_events",
                        ("till", "seq", "kind", "payload"),
                        kept,
                        "ON CONFLICT (till, seq) DO NOTHING",
                    )
                self.directory.apply(till_id, ready)
                acked = ready[-1][0]
                self.store.execute(
                    "INSERT INTO hub_event_cursors (till, acked) VALUES (?, ?)"
                    " ON CONFLICT (till) DO UPDATE SET acked = excluded.acked",
                    (till_id, acked),
                )
            return acked

    def expire(self) -> int:
        """Book the breakage of every expired points lot (once); returns the points booked."""
        with self.store.transaction():
            return self.book.expire()

    # -- updates ------------------------------------------------------------------------

    def publish(self, kind: str, payload: Any) -> int:
        """Publish an update of any kind for every till, checked against its schema; its cursor."""
        try:
            check_update(kind, payload)
        except UnknownUpdate as error:
            raise BadRecord(str(error)) from None
        text = json.dumps(payload, sort_keys=True)
        with self.store.transaction():
            if kind == UpdateKind.HOTLIST:
                # A replaced card is refused as a blocked one is, and stays
                # 'replaced': value pushed to it later follows its member
                # (`Book.sweep_replaced`). The replacement's own hotlist entry
                # used to turn it into 'blocked', and late value stayed put.
                self.store.executemany(
                    "UPDATE hub_cards SET status = 'blocked' WHERE uid = ?"
                    " AND status != 'replaced'",
                    [(uid.upper(),) for uid in payload["block"]],
                )
            if kind == UpdateKind.MEMBERS:
                self.directory.record_members(payload)
            if kind == UpdateKind.VOUCHERS:
                # The issuer funds a voucher, once: tills redeem against that liability.
                self.book.fund_vouchers(payload["terms"])
            self.store.execute(
                "INSERT INTO hub_updates (kind, payload, at) VALUES (?, ?, ?)",
                (kind, text, datetime.now(UTC).isoformat()),
            )
            return int(self.store.execute("SELECT max(cursor) FROM hub_updates")[0][0])

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        """Updates after a cursor, oldest first."""
        rows = self.store.execute(
            "SELECT cursor, kind, payload FROM hub_updates WHERE cursor > ?"
            " ORDER BY cursor LIMIT ?",
            (after, min(max(limit, 1), 5000)),
        )
        updates = []
        for cursor, kind, text in rows:
            payload = json.loads(text)
            signature = self._signer.sign(update_message(int(cursor), kind, payload))
            updates.append(Update(int(cursor), kind, payload, signature))
        return updates

    # -- reads --------------------------------------------------------------------------

    def cursor_of(self, till_id: str) -> int:
        rows = self.store.execute("SELECT acked FROM hub_tills WHERE id = ?", (till_id,))
        if not rows:
            raise Forbidden(f"till {till_id} is not registered")
        return int(rows[0][0])

    def balance(self, account: str) -> tuple[str, int, int] | None:
        """(unit, debits, credits) of an account across all tills."""
        rows = self.store.execute(
            "SELECT unit, debits, credits FROM hub_balances WHERE account = ?", (account,)
        )
        return (rows[0][0], int(rows[0][1]), int(rows[0][2])) if rows else None

    def unit_totals(self) -> dict[str, int]:
        """Per unit, debits minus credits over every account: zero when all is well."""
        rows = self.store.execute(
            "SELECT unit, sum(debits) - sum(credits) FROM hub_balances GROUP BY unit"
        )
        return {unit: int(total) for unit, total in rows}

    def entries(self, till_id: str | None = None) -> int:
        if till_id is None:
            return int(self.store.execute("SELECT count(*) FROM hub_entries")[0][0])
        return int(
            self.store.execute("SELECT count(*) FROM hub_entries WHERE till = ?", (till_id,))[0][0]
        )

    def tills(self, *, offline_after: float = 900) -> list[TillStatus]:
        """Every till head office created: registered, last sync, cursor, lag, exceptions.

        A till is offline from its last sync once `offline_after` seconds pass
        with no other (its background sync runs a round every few seconds).
        """
        now = int(self._clock())
        exceptions = dict(
            self.store.execute("SELECT till, count(*) FROM hub_exceptions GROUP BY till")
        )
        rows = self.store.execute(
            "SELECT t.id, t.registered_at, t.acked, c.last_sync, c.head, e.acked"
            " FROM hub_tills t LEFT JOIN hub_till_contact c ON c.till = t.id"
            " LEFT JOIN hub_event_cursors e ON e.till = t.id WHERE t.id != ? ORDER BY t.id",
            (HUB,),
        )
        out = []
        for till_id, registered, acked, last_sync, head, events in rows:
            seen = None if last_sync is None else int(last_sync)
            acked, head = int(acked), max(int(head or 0), int(acked))
            out.append(
                TillStatus(
                    till_id=till_id,
                    registered_at=registered,
                    last_sync=None if seen is None else _iso(seen),
                    acked=acked,
                    head=head,
                    lag=head - acked,
                    events_acked=int(events or 0),
                    offline_since=_iso(seen)
                    if seen is not None and now - seen > offline_after
                    else None,
                    exceptions=int(exceptions.get(till_id, 0)),
                )
            )
        return out

    def exceptions(self) -> list[dict[str, Any]]:
        rows = self.store.execute(
            "SELECT till, seq, kind, account, amount, detail FROM hub_exceptions ORDER BY id"
        )
        return [
            {"till": t, "seq": int(s), "kind": k, "account": a, "amount": int(m), "detail": d}
            for t, s, k, a, m, d in rows
        ]

    # -- online holds -----------------------------------------------------------------------

    def take_hold(
        self,
        till_id: str,
        hold_id: str,
        account: str,
        unit: str,
        amount: int,
        ttl: float = 1800,
        records: Sequence[tuple[int, str]] = (),
    ) -> int:
        """Reserve `amount` of an online balance for a till's checkout (idempotent by id).

        `records` are the till's outbox records the hub may not have yet (a
        top-up just made there): they are applied first, exactly once, as a
        push, so value the till took in can be spent at once. Returns the
        hub's cursor for the till.

        Raises:
            InsufficientOnline: the account's available balance is smaller.
        """
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            raise BadRecord(f"a hold amount is a whole number from 1 to {MAX_AMOUNT}")
        if not is_id(hold_id) or not is_id(account):
            raise BadRecord("hold ids and accounts are 1-200 printable characters")
        try:
            check_unit(unit)
        except UnknownCurrency:
            raise BadRecord(f"{unit!r:.20} is neither PTS nor an ISO 4217 code") from None
        if records:
            self.push(till_id, records)
        now = int(self._clock())
        with self.store.transaction():
            self.store.lock_accounts([account])
            existing = self.store.execute(
                "SELECT till, account, amount FROM hub_holds WHERE id = ?", (hold_id,)
            )
            if existing:
                if tuple(existing[0]) != (till_id, account, amount):
                    raise Forbidden("that hold id belongs to another hold")
                return self.cursor_of(till_id)
            rows = self.store.execute(
                "SELECT credits - debits, unit FROM hub_balances WHERE account = ?", (account,)
            )
            if rows and rows[0][1] != unit:
                raise BadRecord(f"{account} is in {rows[0][1]}, not {unit}")
            held = self.store.execute(
                "SELECT coalesce(sum(amount), 0) FROM hub_holds WHERE account = ?"
                " AND status = 'open' AND expires_at > ?",
                (account, now),
            )[0][0]
            available = (int(rows[0][0]) if rows else 0) - int(held)
            if available < amount:
                raise InsufficientOnline(f"{account} has {available} available, not {amount}")
            self.store.execute(
                "INSERT INTO hub_holds (id, till, account, unit, amount, status, expires_at)"
                " VALUES (?, ?, ?, ?, ?, 'open', ?)",
                (hold_id, till_id, account, unit, amount, now + int(ttl)),
            )
        return self.cursor_of(till_id)

    def release_hold(self, till_id: str, hold_id: str) -> None:
        """Release a hold (after the till posted or voided it); idempotent."""
        if not is_id(hold_id):
            raise BadRecord("a hold id is 1-200 printable characters")
        with self.store.transaction():
            rows = self.store.execute("SELECT till FROM hub_holds WHERE id = ?", (hold_id,))
            if rows and rows[0][0] != till_id:
                raise Forbidden("that hold belongs to another till")
            self.store.execute("UPDATE hub_holds SET status = 'released' WHERE id = ?", (hold_id,))


def records_of(items: Iterable[dict[str, Any]]) -> list[tuple[int, str]]:
    """Validate pushed JSON items into (seq, payload) pairs."""
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRecord("each record is an object with seq and payload")
        out.append((item.get("seq"), item.get("payload")))
    return out  # type: ignore[return-value]
