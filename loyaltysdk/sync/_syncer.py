# SPDX-License-Identifier: Apache-2.0
"""The till's side of sync: push the outbox, pull updates, in rounds or in the background.

Push sends the ledger's outbox after the acknowledged cursor in batches
and moves the cursor only to what the hub acknowledged, so a lost request,
a lost answer or a duplicate costs a resend, never a record. Pull checks
each update's signature against head office's key (kept by the till since
registration), then hands it to the till (`SyncedTill.apply_update`),
which applies it and moves its pull cursor in one commit; one it cannot
apply is recorded as a problem (`skip_update`) and the rest go on. The
syncer touches the till only through these methods: it knows nothing of
the till's tables.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Protocol

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .._errors import HubError, LoyaltyError, SyncError
from ._links import HubLink
from ._wire import BadRecord, UnknownUpdate, UntrustedUpdate, Update, update_message

# Messages name the error, never a credential or a payload.
_log = logging.getLogger("loyaltysdk.sync")


class SyncedTill(Protocol):
    """What the syncer needs of a till (a `loyaltysdk.Till` is one)."""

    @property
    def ledger(self) -> Any: ...

    @property
    def pull_cursor(self) -> int: ...

    def apply_update(self, update: Update) -> None: ...

    def skip_update(self, update: Update, problem: Exception) -> None: ...

    def sync_succeeded(self) -> None: ...

    def unsent_events(self, limit: int) -> list[tuple[int, str, Any]]: ...

    def events_sent(self, upto: int) -> None: ...

    @property
    def hub_key(self) -> bytes | None: ...

    def trust_hub(self, update_key: bytes) -> None: ...


@attrs.frozen
class SyncReport:
    """One round: records sent, the hub's cursor, updates applied and skipped, what waits."""

    pushed: int
    acked: int
    pulled: int
    pull_cursor: int
    waiting: int
    skipped: int = 0


class Syncer:
    """Sync one till with the hub through a `HubLink`."""

    def __init__(
        self, till: SyncedTill, link: HubLink, *, batch: int = 500, max_bytes: int = 1 << 20
    ) -> None:
        self.till = till
        self.link = link
        self.batch = batch
        #: Payload bytes per push at most (the hub refuses bodies beyond its limit).
        self.max_bytes = max_bytes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The last error of the background loop (None after a good round).
        self.last_error: LoyaltyError | None = None

    @property
    def pull_cursor(self) -> int:
        return self.till.pull_cursor

    def push(self) -> tuple[int, int]:
        """Send the outbox; returns (records sent, the hub's acknowledged cursor)."""
        ledger = self.till.ledger
        sent = 0
        status = ledger.outbox_status()
        acked, head = status.acked_seq, status.last_seq
        if head <= acked:
            # Nothing waits: a heartbeat, so head office sees when this till last synced.
            self.link.push([], head=head)
            return 0, acked
        while True:
            records = ledger.outbox(after_seq=acked, limit=self.batch)
            if not records:
                break
            size = 0
            for count, record in enumerate(records):
                size += len(record.payload)
                if size > self.max_bytes and count:
                    records = records[:count]
                    break
            result = self.link.push([(r.seq, r.payload) for r in records], head=head)
            sent += len(records)
            if result.acked > acked:
                ledger.ack_outbox(result.acked)
                acked = result.acked
            if result.acked < records[-1].seq:
                break  # the hub is holding a gap or stopped early; next round
        return sent, acked

    def push_events(self) -> int:
        """Send what the till learned (enrolments, cards, blocks, SUN taps); returns how many."""
        sent = 0
        while True:
            events = self.till.unsent_events(self.batch)
            if not events:
                return sent
            acked = self.link.push_events(events)
            self.till.events_sent(acked)
            sent += len(events)
            if acked < events[-1][0]:
                return sent  # the hub waits for a gap; next round

    def pull(self) -> tuple[int, int]:
        """Apply updates from the hub; returns (applied, skipped as problems).

        Each update is checked against head office's key before the till
        sees it; one that does not verify stops the pull at its cursor.

        Raises:
            UntrustedUpdate: unsigned, a bad signature, or no key to check with.
        """
        applied = skipped = 0
        while True:
            updates = self.link.pull(self.till.pull_cursor, self.batch)
            if not updates:
                break
            verifier = self._verifier()
            for update in updates:
                _verify(verifier, update)
                try:
                    self.till.apply_update(update)
                    applied += 1
                except (UnknownUpdate, BadRecord) as problem:
                    self.till.skip_update(update, problem)
                    skipped += 1
        return applied, skipped

    def _verifier(self) -> Ed25519PublicKey:
        key = self.till.hub_key
        if key is None:
            key = self.link.update_key()  # in process: the hub's own key
            if key is None:
                raise UntrustedUpdate(
                    "this till holds no key to check the hub's updates: register it again"
                )
            self.till.trust_hub(key)
        return Ed25519PublicKey.from_public_bytes(key)

    def run_once(self) -> SyncReport:
        """One round: push, then pull.

        Raises:
            SyncError: the hub is unreachable (retry later; nothing is lost).
            HubError: the hub refused (credentials, a malformed record).
        """
        sent, acked = self.push()
        self.push_events()
        pulled, skipped = self.pull()
        self.till.sync_succeeded()
        status = self.till.ledger.outbox_status()
        return SyncReport(sent, acked, pulled, self.till.pull_cursor, status.length, skipped)

    # -- background -------------------------------------------------------------------

    def start(self, interval: float = 5.0, *, max_backoff: float = 300.0) -> None:
        """Sync every `interval` seconds on a thread, backing off (with jitter) on errors.

        The loop never ends silently: every error is kept in `last_error`
        and the loop goes on; only `stop()` ends it.
        """
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            delay = interval
            while not self._stop.is_set():
                failed = self.last_error
                try:
                    report = self.run_once()
                    self.last_error = None
                    delay = interval
                    if failed is not None:
                        _log.info("sync with the hub works again (acked %d)", report.acked)
                except SyncError as error:
                    self.last_error = error
                    delay = min(max_backoff, max(delay, 0.05) * 2)
                    _log.warning("sync failed, retrying in %.0f s: %s", delay, error)
                except LoyaltyError as error:
                    self.last_error = error  # refused: try again much later
                    delay = max_backoff
                    _log.error("the hub refused the sync (%s): %s", type(error).__name__, error)
                except Exception as error:
                    self.last_error = HubError(f"sync failed: {type(error).__name__}: {error}")
                    delay = max_backoff
                    _log.exception("sync failed unexpectedly; retrying in %.0f s", delay)
                self._stop.wait(delay * random.uniform(0.8, 1.2))

        self._thread = threading.Thread(target=loop, name="loyaltysdk-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _verify(verifier: Ed25519PublicKey, update: Update) -> None:
    if update.signature is None:
        raise UntrustedUpdate(f"update {update.cursor} is not signed")
    try:
        verifier.verify(
            update.signature, update_message(update.cursor, update.kind, update.payload)
        )
    except (InvalidSignature, ValueError, TypeError):
        raise UntrustedUpdate(
            f"update {update.cursor} is not signed by head office's key"
        ) from None


__all__ = ["SyncReport", "SyncedTill", "Syncer"]
