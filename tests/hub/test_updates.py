# SPDX-License-Identifier: Apache-2.0
"""What head office sends reaches every till durably; what a till cannot apply is reported.

Two tills of two stores and one hub, on both backends.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk.hub import Hub
from loyaltysdk.sync import BadRecord, DirectLink, Syncer, Update, UpdateKind
from loyaltysdk.vouchers import IssuerKey, Keyring

RULES: dict[str, Any] = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}


def open_till(path: Path, store: str, till_id: str) -> Till:
    return Till.open(
        path,
        store=store,
        till_id=till_id,
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        clock=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )


def chain(hub: Hub, tmp_path: Path) -> list[tuple[Till, Syncer]]:
    tills = []
    for store in ("S1", "S2"):
        till_id = f"{store}-T1"
        link = DirectLink(hub, hub.register(till_id, hub.create_till(till_id)))
        till = open_till(tmp_path / f"{store}.db", store, till_id)
        tills.append((till, Syncer(till, link)))
    return tills


def test_rules_keys_and_allowance_survive_a_restart(hub: Hub, tmp_path: Path) -> None:
    key = IssuerKey.generate("HQ-2027")
    hub.publish(
        "rules",
        {
            **RULES,
            "version": 3,
            "rules": [{"id": "base", "effect": {"type": "earn", "points": 2, "per": 100}}],
        },
    )
    hub.publish("keys", Keyring({"HQ-2027": key.public_key}).to_json())
    hub.publish("allowance", {"per_transaction": 1_234, "max_hours_offline": 6})
    for till, syncer in chain(hub, tmp_path):
        assert syncer.run_once().pulled == 3
        till.close()
    for store in ("S1", "S2"):
        again = open_till(tmp_path / f"{store}.db", store, f"{store}-T1")  # opened with v1
        assert again.rules.version == 3
        assert "HQ-2027" in again.vouchers.keyring.keys
        assert again.allowance.per_transaction == 1_234
        assert again.allowance.max_time_offline == timedelta(hours=6)
        again.enrol("M1")
        sale = again.checkout(Basket("EUR", [Line("A", 1, 1_000)]), again.identify("M1"))
        assert sale.quote().points_to_earn == 20  # the rules head office sent
        again.close()


def test_an_update_a_till_cannot_apply_is_reported_and_the_rest_arrive(
    hub: Hub, tmp_path: Path
) -> None:
    tills = chain(hub, tmp_path)
    for till, _ in tills:
        till.enrol("M1", card_uid=bytes.fromhex("04AABBCCDD0011"))
    with pytest.raises(BadRecord):
        hub.publish("hotlist", [1, 2])  # malformed: not {"block": [...]}
    for kind, payload in (("hotlist", "[1, 2]"), ("loyalty-tiers-v2", "{}")):
        hub.store.execute(  # as an older hub let it through, or a newer hub's kind
            "INSERT INTO hub_updates (kind, payload, at) VALUES (?, ?, ?)",
            (kind, payload, "2026-11-23T10:00:00+00:00"),
        )
    hub.publish("hotlist", {"block": ["04AABBCCDD0011"]})
    for till, syncer in tills:
        report = syncer.run_once()
        assert report.skipped == 2  # (it also pulls the members the tills enrolled)
        assert till.hotlist() == frozenset({"04AABBCCDD0011"})  # the real hotlist arrived
        problems = till.update_problems()
        assert [p["kind"] for p in problems] == ["hotlist", "loyalty-tiers-v2"]
        assert till.sync_status()["update_problems"] == 2
        assert syncer.run_once().pulled == 0  # skipped once, not again and again
        till.close()


def test_the_background_loop_survives_what_it_cannot_handle(hub: Hub, tmp_path: Path) -> None:
    (till, syncer), _ = chain(hub, tmp_path)

    class Broken:
        calls = 0

        def push(self, records: Any, *, head: int | None = None) -> Any:
            Broken.calls += 1
            raise RuntimeError("a bug in a link")

        def pull(self, after: int, limit: int = 500) -> list[Update]:
            Broken.calls += 1
            raise RuntimeError("a bug in a link")

    syncer.link = Broken()  # type: ignore[assignment]
    syncer.start(interval=0.01, max_backoff=0.01)
    give_up = time.monotonic() + 60  # a guard only: the loop's progress decides
    while Broken.calls < 3 and time.monotonic() < give_up:
        time.sleep(0.01)
    syncer.stop()
    assert Broken.calls >= 3  # it kept going after the first failure
    assert syncer.last_error is not None and "RuntimeError" in str(syncer.last_error)
    assert UpdateKind("rules") is UpdateKind.RULES
    till.close()


def test_an_unreachable_hub_says_retry_and_the_loop_logs(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Docs say "retry later" for a hub that does not answer: the error says so too, and the
    background loop logs its failures and its recovery (never a credential)."""
    import logging

    import httpx

    from loyaltysdk import HubUnreachable
    from loyaltysdk.sync import HttpLink

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    credential = hub.register("S7-T1", hub.create_till("S7-T1"))
    link = HttpLink(
        "http://hub.invalid", credential, client=httpx.Client(transport=httpx.MockTransport(down))
    )
    with pytest.raises(HubUnreachable) as caught:
        link.pull(0)
    assert caught.value.should_retry and isinstance(caught.value, ConnectionError)

    (till, syncer), _ = chain(hub, tmp_path)
    real = syncer.link
    DownLink.calls = 0  # the class counts across this test's engines
    syncer.link = DownLink()  # type: ignore[assignment]
    caplog.set_level(logging.INFO, logger="loyaltysdk.sync")
    syncer.start(interval=0.01, max_backoff=0.02)
    give_up = time.monotonic() + 60  # a guard only: the log's progress decides
    while DownLink.calls < 2 and time.monotonic() < give_up:
        time.sleep(0.01)
    syncer.link = real
    while "works again" not in caplog.text and time.monotonic() < give_up:
        time.sleep(0.01)
    syncer.stop()
    assert "sync failed, retrying" in caplog.text and "works again" in caplog.text
    assert credential not in caplog.text and credential.split(".")[1] not in caplog.text
    till.close()


class DownLink:
    calls = 0

    def push(self, records: Any, *, head: int | None = None) -> Any:
        DownLink.calls += 1
        from loyaltysdk import HubUnreachable

        raise HubUnreachable("no route to the hub")


def test_a_voucher_in_one_call_and_where_it_is_good(hub: Hub, tmp_path: Path) -> None:
    """`Till.issue_voucher`: one call, no imports. Without head office's key it is good at
    the till that made it (once) and refused at the chain's other till."""
    from loyaltysdk.vouchers import UnknownIssuerKey, VoucherExhausted

    (first, sync_first), (second, sync_second) = chain(hub, tmp_path)
    voucher = first.issue_voucher(Money(300, "EUR"))
    basket = Basket("EUR", [Line("A", 1, 1_000)])
    sale = first.checkout(basket)
    assert sale.apply_voucher(voucher.payload).amount == Money(300, "EUR")
    assert sale.complete("R-1").to_pay == Money(700, "EUR")
    with pytest.raises(VoucherExhausted):  # its value is spent
        first.checkout(basket).apply_voucher(voucher.payload)
    sync_first.run_once()
    sync_second.run_once()
    with pytest.raises(UnknownIssuerKey):
        second.checkout(basket).apply_voucher(voucher.payload)
    first.ledger.check()
    first.close()
    second.close()
