# SPDX-License-Identifier: Apache-2.0
"""The loyalty stored-value application on a DESFire EV2 card.

Layout (one application, four AES keys diversified per card):

- key 0 master (personalisation), 1 debit, 2 credit, 3 read;
- file 1, a value file in full mode: lower limit 0, the chain's upper limit;
  GetValue and Debit with key 1 or 2, Credit with key 2 only, LimitedCredit
  with key 1; nobody reads it without a key;
- file 2, a cyclic record file in full mode, 48-byte records: each debit or
  credit writes one, in the same CommitTransaction, carrying the till's
  intent id, amount, balance after, time, till and receipt reference; read
  with key 3 (or 1), written with key 1 or 2.

Both are backup files, so a card pulled away before CommitTransaction
changes nothing, and one pulled away after it changed both. The till writes
its intent before it touches the card; `Purse.resolve` later decides from
the newest log records (never from the balance alone) whether that intent
happened, exactly once.

APDUs per operation (counted in tests): a debit or credit is 7
(SelectApplication, 2 for AuthenticateEV2First, GetValue, Debit or Credit,
WriteRecord, CommitTransaction); a balance read is 4 (SelectApplication, 2
for authentication, ReadRecords of the newest record).
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable

import attrs

from .._errors import CardAuthenticationFailed, CardError
from .desfire import (
    AccessRights,
    ApplicationNotFound,
    AuthenticationError,
    BoundaryError,
    CommMode,
    DesfireClient,
    FileNotFound,
    NoSuchKey,
    PermissionDenied,
    aid_bytes,
)
from .desfire._client import NEVER, PICC_AID
from .keystore import KeyRole, KeyStore
from .transport import Transport

RECORD_SIZE = 48
_RECORD_FORMAT = 1
_TILL_BYTES, _RECEIPT_BYTES = 8, 18

KEY_MASTER, KEY_DEBIT, KEY_CREDIT, KEY_READ = 0, 1, 2, 3
_ROLE_OF_KEY = {
    KEY_MASTER: KeyRole.MASTER,
    KEY_DEBIT: KeyRole.DEBIT,
    KEY_CREDIT: KeyRole.CREDIT,
    KEY_READ: KeyRole.READ,
}


class PurseError(CardError):
    """The stored-value application refused an operation or is inconsistent."""


class InsufficientCardBalance(PurseError):
    """The card's value would go below zero."""


class CardLimitExceeded(PurseError):
    """The card's value would exceed its upper limit."""


class IntentUndecidable(PurseError):
    """The card's log no longer reaches back to the intent: a person must decide."""


class CardLogCorrupt(PurseError):
    """A log record is malformed, or an intent id appears twice or with other terms."""


class Kind(enum.IntEnum):
    """What a log record did."""

    DEBIT = 1
    CREDIT = 2
    LIMITED_CREDIT = 3
    ISSUE = 4


class Outcome(enum.Enum):
    """How a pending intent resolved against the card."""

    APPLIED = "applied"
    NOT_APPLIED = "not_applied"


@attrs.frozen
class PurseLayout:
    """Where the application lives and its limits (the chain's choice).

    Attributes:
        aid: the application id.
        value_file, log_file: file numbers.
        upper_limit: the most the card may hold, in minor units.
        log_records: the cyclic file's size (one record is the card's spare).
        currency: the ISO 4217 code of the card's value.
    """

    aid: int = 0x4C5901
    value_file: int = 1
    log_file: int = 2
    upper_limit: int = 50_000
    log_records: int = 16
    currency: str = "EUR"


@attrs.frozen
class CardIntent:
    """A value movement the till has promised itself before touching the card.

    Persist it (the checkout keeps it in the ledger as a pending hold)
    before `Purse.debit` or `Purse.credit`, and keep it until `resolve` says
    what happened.
    """

    id: bytes
    kind: Kind
    amount: int
    receipt: str
    till: str
    created_at: int

    @classmethod
    def new(
        cls, kind: Kind, amount: int, *, receipt: str, till: str, now: int | None = None
    ) -> CardIntent:
        """A fresh intent with a random 8-byte id."""
        # An issue may load nothing; every other movement moves something.
        least = 0 if kind is Kind.ISSUE else 1
        if isinstance(amount, bool) or not isinstance(amount, int) or not least <= amount < 2**31:
            raise ValueError(f"a card amount is a positive integer of minor units, not {amount!r}")
        if kind not in (Kind.DEBIT, Kind.CREDIT, Kind.LIMITED_CREDIT, Kind.ISSUE):
            raise ValueError(f"an intent issues, debits or credits, not {kind!r}")
        _ascii(till, _TILL_BYTES, "till id")
        return cls(os.urandom(8), kind, amount, receipt, till, int(now if now else time.time()))


@attrs.frozen
class LogRecord:
    """One record of the card's own transaction log."""

    kind: Kind
    amount: int
    balance_after: int
    intent_id: bytes
    at: int
    till: str
    receipt: str

    def encode(self) -> bytes:
        """The 48 bytes on the card."""
        return (
            bytes([_RECORD_FORMAT, int(self.kind)])
            + self.amount.to_bytes(4, "little")
            + self.balance_after.to_bytes(4, "little", signed=True)
            + self.intent_id
            + (self.at & 0xFFFFFFFF).to_bytes(4, "little")
            + _ascii(self.till, _TILL_BYTES, "till id")
            + _ascii(self.receipt[:_RECEIPT_BYTES], _RECEIPT_BYTES, "receipt")
        )

    @classmethod
    def decode(cls, raw: bytes) -> LogRecord:
        """Parse a record.

        Raises:
            CardLogCorrupt: wrong size, format or kind.
        """
        if len(raw) != RECORD_SIZE or raw[0] != _RECORD_FORMAT:
            raise CardLogCorrupt(f"not a purse log record: {raw.hex()}")
        try:
            kind = Kind(raw[1])
            till = raw[22:30].rstrip(b"\x00").decode("ascii")
            receipt = raw[30:48].rstrip(b"\x00").decode("ascii")
        except (ValueError, UnicodeDecodeError) as error:
            raise CardLogCorrupt(f"bad purse log record: {error}") from None
        return cls(
            kind,
            int.from_bytes(raw[2:6], "little"),
            int.from_bytes(raw[6:10], "little", signed=True),
            raw[10:18],
            int.from_bytes(raw[18:22], "little"),
            till,
            receipt,
        )

    def matches(self, intent: CardIntent) -> bool:
        """Whether this record carries `intent`'s id (`resolve` checks the terms)."""
        return self.intent_id == intent.id


@attrs.frozen
class PurseState:
    """What a read of the card shows: balance and the newest log records, newest first."""

    uid: bytes
    balance: int
    records: tuple[LogRecord, ...]


def _ascii(text: str, size: int, what: str) -> bytes:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be ASCII: {text!r}") from None
    if len(raw) > size:
        raise ValueError(f"{what} is at most {size} characters: {text!r}")
    return raw + bytes(size - len(raw))


class Purse:
    """Issue, read, debit, credit and resolve intents on loyalty DESFire cards.

    Args:
        keystore: where card keys come from.
        layout: the application layout of this chain.
        clock: seconds since the epoch, for log records (injectable for tests).
    """

    def __init__(
        self,
        keystore: KeyStore,
        layout: PurseLayout | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keystore = keystore
        self.layout = layout or PurseLayout()
        self._clock = clock

    def _key(self, key_no: int, uid: bytes) -> bytes:
        return self.keystore.card_key(_ROLE_OF_KEY[key_no], uid, aid_bytes(self.layout.aid))

    def _open(self, transport: Transport, uid: bytes, key_no: int) -> DesfireClient:
        client = DesfireClient(transport)
        client.select_application(self.layout.aid)
        client.authenticate(key_no, self._key(key_no, uid))
        return client

    # -- personalisation -------------------------------------------------------

    def issue(
        self,
        transport: Transport,
        uid: bytes,
        *,
        initial: int = 0,
        intent: CardIntent | None = None,
    ) -> PurseState:
        """Personalise a blank card: application, diversified keys, files, first record.

        The card's PICC settings must allow creating an application without
        the PICC master key (a factory-fresh card does). The first log record
        carries `intent`'s id (an ISSUE intent for `initial`), so `resolve`
        can tell later whether this issue finished; nothing is on the card
        for good before the final CommitTransaction, and a card left
        half-personalised by a tear is cleaned up by `discard_partial`.

        Raises:
            DuplicateError: the card already has the application.
            OutOfEeprom: the card is full.
        """
        layout = self.layout
        if intent is not None and (intent.kind is not Kind.ISSUE or intent.amount != initial):
            raise ValueError("issue() takes an ISSUE intent for the initial value")
        if not 0 <= initial <= layout.upper_limit:
            raise ValueError(f"initial value {initial} outside 0..{layout.upper_limit}")
        client = DesfireClient(transport)
        client.select_application(PICC_AID)
        # Key settings 0x0B: master key changeable, configuration changeable,
        # free directory listing; files only with the master key.
        client.create_application(layout.aid, 0x0B, 4)
        client.select_application(layout.aid)
        client.authenticate(KEY_MASTER, bytes(16))
        for key_no in (KEY_DEBIT, KEY_CREDIT, KEY_READ):
            role = _ROLE_OF_KEY[key_no]
            client.change_key(
                key_no, self._key(key_no, uid), version=self.keystore.key_version(role)
            )
        client.create_value_file(
            layout.value_file,
            CommMode.FULL,
            AccessRights(read=NEVER, write=KEY_DEBIT, read_write=KEY_CREDIT, change=KEY_MASTER),
            lower_limit=0,
            upper_limit=layout.upper_limit,
            value=initial,
            limited_credit=True,
        )
        client.create_cyclic_record_file(
            layout.log_file,
            CommMode.FULL,
            AccessRights(read=KEY_READ, write=KEY_CREDIT, read_write=KEY_DEBIT, change=KEY_MASTER),
            record_size=RECORD_SIZE,
            max_records=layout.log_records,
        )
        client.change_key(
            KEY_MASTER,
            self._key(KEY_MASTER, uid),
            version=self.keystore.key_version(KeyRole.MASTER),
        )
        client.authenticate(KEY_CREDIT, self._key(KEY_CREDIT, uid))
        if intent is None:
            record = LogRecord(Kind.ISSUE, initial, initial, bytes(8), self._now(), "ISSUER", "")
        else:
            record = LogRecord(
                Kind.ISSUE, initial, initial, intent.id, self._now(), intent.till, intent.receipt
            )
        client.write_record(layout.log_file, record.encode(), CommMode.FULL)
        client.commit_transaction()
        return PurseState(uid, initial, (record,))

    def discard_partial(self, transport: Transport, uid: bytes) -> bool:
        """Delete an application a torn `issue` left unfinished; True if there was one.

        Only for a card whose ISSUE intent `resolve` found not applied: its
        master key is still the factory key, or already this chain's.

        Raises:
            PurseError: the application's master key is neither.
        """
        client = DesfireClient(transport)
        try:
            client.select_application(self.layout.aid)
        except ApplicationNotFound:
            return False
        for key in (bytes(16), self._key(KEY_MASTER, uid)):
            try:
                client.select_application(self.layout.aid)
                client.authenticate(KEY_MASTER, key)
            except (CardAuthenticationFailed, AuthenticationError, PermissionDenied, NoSuchKey):
                continue
            client.delete_application(self.layout.aid)
            return True
        raise PurseError("the half-issued application has a master key this till does not know")

    # -- reading ---------------------------------------------------------------

    def read(self, transport: Transport, uid: bytes, *, records: int = 1) -> PurseState:
        """Balance and the newest `records` log records, with the read key.

        The balance is the newest record's balance-after: every value change
        writes its record in the same commit, so the two never disagree.
        """
        client = self._open(transport, uid, KEY_READ)
        log = self._read_log(client, records)
        return PurseState(uid, log[0].balance_after, tuple(log))

    def _read_log(self, client: DesfireClient, count: int) -> list[LogRecord]:
        # Asking for more records than the file holds is a boundary error,
        # which would also end the session; so ask for exactly the newest
        # one (always there after `issue`) or for all of them.
        raw = client.read_records(
            self.layout.log_file, RECORD_SIZE, CommMode.FULL, count=1 if count == 1 else 0
        )
        if not raw:
            raise CardLogCorrupt("the card's log is empty: it was not issued by this SDK")
        return [LogRecord.decode(r) for r in raw[:count]]

    # -- moving value ------------------------------------------------------------

    def debit(self, transport: Transport, uid: bytes, intent: CardIntent) -> LogRecord:
        """Take `intent.amount` off the card, with its log record, in one commit.

        Raises:
            InsufficientCardBalance: the card holds less (nothing changed).
            CardRemoved: the card left mid-way; `resolve(intent)` at the next tap.
        """
        if intent.kind not in (Kind.DEBIT,):
            raise ValueError("debit() takes a debit intent")
        return self._move(transport, uid, intent, KEY_DEBIT)

    def credit(self, transport: Transport, uid: bytes, intent: CardIntent) -> LogRecord:
        """Add value (a top-up with the credit key; a refund with LimitedCredit and the debit key).

        Raises:
            CardLimitExceeded: the card would exceed its upper limit (nothing changed).
            CardRemoved: the card left mid-way; `resolve(intent)` at the next tap.
        """
        if intent.kind not in (Kind.CREDIT, Kind.LIMITED_CREDIT):
            raise ValueError("credit() takes a credit or limited-credit intent")
        key_no = KEY_CREDIT if intent.kind is Kind.CREDIT else KEY_DEBIT
        return self._move(transport, uid, intent, key_no)

    def _move(self, transport: Transport, uid: bytes, intent: CardIntent, key_no: int) -> LogRecord:
        layout = self.layout
        client = self._open(transport, uid, key_no)
        before = client.get_value(layout.value_file, CommMode.FULL)
        sign = -1 if intent.kind is Kind.DEBIT else 1
        after = before + sign * intent.amount
        if after < 0:
            raise InsufficientCardBalance(
                f"card holds {before}, cannot take {intent.amount} ({layout.currency} minor units)"
            )
        if after > layout.upper_limit:
            raise CardLimitExceeded(
                f"card holds {before}; {intent.amount} more exceeds its limit {layout.upper_limit}"
            )
        record = LogRecord(
            intent.kind, intent.amount, after, intent.id, self._now(), intent.till, intent.receipt
        )
        operation = {
            Kind.DEBIT: client.debit,
            Kind.CREDIT: client.credit,
            Kind.LIMITED_CREDIT: client.limited_credit,
        }[intent.kind]
        try:
            operation(layout.value_file, intent.amount, CommMode.FULL)
        except BoundaryError as error:
            raise PurseError(f"the card refused the amount: {error}") from error
        client.write_record(layout.log_file, record.encode(), CommMode.FULL)
        client.commit_transaction()
        return record

    # -- tearing recovery --------------------------------------------------------

    def resolve(self, transport: Transport, uid: bytes, intent: CardIntent) -> Outcome:
        """Decide whether a pending intent took effect on the card, from its log.

        Reads every record the card keeps. The intent's id found once: it
        happened. Not found while the log reaches back before the intent:
        it did not (a card that was torn discards staged changes). Not found
        with a log that starts after the intent: the record may have cycled
        out, which only a person can settle.

        Raises:
            IntentUndecidable: the log no longer covers the intent's time.
            CardLogCorrupt: the intent id appears twice, or with other terms.
        """
        found = self.locate(transport, uid, intent)
        return Outcome.NOT_APPLIED if found is None else Outcome.APPLIED

    def locate(self, transport: Transport, uid: bytes, intent: CardIntent) -> LogRecord | None:
        """The card's log record of `intent` (with the card's balance after it), or None.

        Raises:
            As `resolve`.
        """
        if intent.kind is Kind.ISSUE:
            return self._locate_issue(transport, uid, intent)
        client = self._open(transport, uid, KEY_READ)
        log = self._read_log(client, self.layout.log_records)
        found = [r for r in log if r.matches(intent)]
        if len(found) > 1:
            raise CardLogCorrupt(f"intent {intent.id.hex()} appears {len(found)} times")
        if found:
            record = found[0]
            if record.kind != intent.kind or record.amount != intent.amount:
                raise CardLogCorrupt(
                    f"intent {intent.id.hex()} is on the card as {record.kind.name}"
                    f" {record.amount}, not {intent.kind.name} {intent.amount}"
                )
            return record
        # A full log whose oldest record is newer than the intent may have
        # cycled the intent's record out. (Within the intent's own second it
        # cannot have: the till settles a card's pending intent before it
        # moves value on that card again, and no card is tapped 15 times a second.)
        full = len(log) >= self.layout.log_records - 1
        if full and log[-1].at > intent.created_at:
            raise IntentUndecidable(
                f"intent {intent.id.hex()} is older than the card's oldest log record"
            )
        return None

    def _locate_issue(
        self, transport: Transport, uid: bytes, intent: CardIntent
    ) -> LogRecord | None:
        # An issue commits once, at its end: a card without the application,
        # or whose application cannot show this intent's record, did not take it.
        try:
            client = self._open(transport, uid, KEY_READ)
            log = self._read_log(client, self.layout.log_records)
        except (
            ApplicationNotFound,
            BoundaryError,  # the log file exists but the record was never committed
            CardAuthenticationFailed,
            AuthenticationError,
            PermissionDenied,
            NoSuchKey,
            FileNotFound,
            CardLogCorrupt,
        ):
            return None
        for record in log:
            if record.matches(intent) and record.kind is Kind.ISSUE:
                return record
        raise CardLogCorrupt(f"card {uid.hex()} was issued, but not by intent {intent.id.hex()}")

    def _now(self) -> int:
        return int(self._clock())


__all__ = [
    "RECORD_SIZE",
    "CardIntent",
    "CardLimitExceeded",
    "CardLogCorrupt",
    "InsufficientCardBalance",
    "IntentUndecidable",
    "Kind",
    "LogRecord",
    "Outcome",
    "Purse",
    "PurseError",
    "PurseLayout",
    "PurseState",
]
