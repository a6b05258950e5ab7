# SPDX-License-Identifier: Apache-2.0
"""The hub's HTTP API: auth refusals, validation, sync of a real till through it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk.hub import Hub, create_app
from loyaltysdk.sync import AuthError, HttpLink, Syncer, register

from .test_hub import topup

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}


@pytest.fixture
def api(hub: Hub) -> Any:
    return TestClient(create_app(hub))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_auth_refusals_change_nothing(hub: Hub, api: Any) -> None:
    admin = hub.add_admin("ops")
    made = api.post("/v1/admin/tills", json={"till_id": "T1"}, headers=bearer(admin))
    assert made.status_code == 200
    token = made.json()["enrolment_token"]
    with pytest.raises(AuthError):
        register("", "T1", "x", client=api)
    assert api.post("/v1/tills/T1/register", json={"proof": "00" * 32}).status_code == 401
    credential = register("", "T1", token, client=api).credential
    other = hub.register("T2", hub.create_till("T2"))
    body = {"records": [{"seq": 1, "payload": topup(1)}]}
    assert api.post("/v1/sync/push", json=body).status_code == 401  # missing
    assert api.post("/v1/sync/push", json=body, headers=bearer("T1.wrong")).status_code == 401
    assert (
        api.post("/v1/sync/push", json=body, headers={"Authorization": credential}).status_code
        == 401
    )
    # An admin credential is not a till's; a till's is not head office's.
    assert api.post("/v1/sync/push", json=body, headers=bearer(admin)).status_code == 403
    assert api.get("/v1/admin/exceptions", headers=bearer(credential)).status_code == 403
    # A replaced (expired) credential is refused.
    hub.register("T1", hub.create_till("T1"))
    assert api.get("/v1/sync/cursor", headers=bearer(credential)).status_code == 401
    assert hub.entries() == 0
    # Another till's credential pushes only as that till.
    assert api.post("/v1/sync/push", json=body, headers=bearer(other)).json()["acked"] == 1
    assert hub.entries("T1") == 0 and hub.entries("T2") == 1


def test_validation_errors_are_4xx(hub: Hub, api: Any) -> None:
    credential = hub.register("T1", hub.create_till("T1"))
    for body in (
        {},
        {"records": [{"seq": 0, "payload": "{}"}]},
        {"records": [{"seq": 1}]},
        {"records": [{"seq": 1, "payload": "[]"}]},
        {"records": "x"},
    ):
        response = api.post("/v1/sync/push", json=body, headers=bearer(credential))
        assert 400 <= response.status_code < 500, (body, response.text)
    assert hub.entries() == 0


def test_openapi_schema_lists_every_endpoint(api: Any) -> None:
    schema = api.get("/openapi.json").json()
    assert {"/v1/sync/push", "/v1/sync/pull", "/v1/holds", "/v1/admin/tills"} <= set(
        schema["paths"]
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(["/v1/sync/push", "/v1/holds", "/v1/admin/updates", "/v1/tills/T1/register"]),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    ),
)
def test_no_generated_input_gives_a_500(hub: Hub, api: Any, path: str, body: Any) -> None:
    if not hasattr(hub, "_fuzz_tokens"):
        hub._fuzz_tokens = (hub.register("T1", hub.create_till("T1")), hub.add_admin("ops"))  # type: ignore[attr-defined]
    for token in hub._fuzz_tokens:  # type: ignore[attr-defined]
        response = api.post(
            path,
            content=json.dumps(body),
            headers={**bearer(token), "Content-Type": "application/json"},
        )
        assert response.status_code < 500, response.text
    for records in ([{"seq": 1, "payload": json.dumps(body)}],):
        response = api.post(
            "/v1/sync/push", json={"records": records}, headers=bearer(hub._fuzz_tokens[0])
        )  # type: ignore[attr-defined]
        assert response.status_code < 500, response.text


def test_a_till_syncs_through_http(hub: Hub, api: Any, tmp_path: Path) -> None:
    admin = hub.add_admin("ops")
    token = api.post("/v1/admin/tills", json={"till_id": "S1-T1"}, headers=bearer(admin)).json()[
        "enrolment_token"
    ]
    registration = register("", "S1-T1", token, client=api)
    credential = registration.credential
    till = Till.open(
        tmp_path / "till.db",
        store="S1",
        till_id="S1-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
    )
    till.trust_hub(registration.update_key)
    till.enrol("M1", card_uid=bytes.fromhex("04AABBCCDDEEFF"))
    till.top_up("M1", Money(5_000, "EUR"), payment_ref="P1")
    for n in range(3):
        till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify("M1")).complete(f"R-{n}")
    syncer = Syncer(till, HttpLink("", credential, client=api))
    api.post(
        "/v1/admin/updates",
        json={"kind": "hotlist", "payload": {"block": ["04AABBCCDDEEFF"]}},
        headers=bearer(admin),
    )
    report = syncer.run_once()
    # The hotlist, and the member this till enrolled, which the hub now sends every till.
    assert report.waiting == 0 and report.pulled == 2
    assert hub.entries("S1-T1") == till.ledger.outbox_status().last_seq
    assert till.hotlist() == {"04AABBCCDDEEFF"}
    assert syncer.run_once().pushed == 0  # nothing new
    points = hub.balance("member:M1:points")
    assert points is not None and points[2] - points[1] == 30
    totals = api.get("/v1/admin/totals", headers=bearer(admin)).json()
    assert all(v == 0 for v in totals["units"].values())
    till.close()


def test_background_sync_with_backoff(hub: Hub, tmp_path: Path) -> None:
    import time

    from loyaltysdk._errors import SyncError
    from loyaltysdk.sync import DirectLink

    credential = hub.register("S1-T1", hub.create_till("S1-T1"))

    class Flaky(DirectLink):
        calls = 0

        def push(self, records, *, head=None):  # type: ignore[no-untyped-def]
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise SyncError("network down")
            return super().push(records, head=head)

    till = Till.open(
        tmp_path / "till.db",
        store="S1",
        till_id="S1-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
    )
    till.enrol("M1")
    till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify("M1")).complete("R-1")
    syncer = Syncer(till, Flaky(hub, credential))
    syncer.start(interval=0.02, max_backoff=0.1)
    # Decided by progress (the outbox drains); the bound only stops a hang.
    deadline = time.monotonic() + 120
    while till.ledger.outbox_status().length and time.monotonic() < deadline:
        time.sleep(0.02)
    syncer.stop()
    assert Flaky.calls >= 3 and till.ledger.outbox_status().length == 0
    assert hub.entries("S1-T1") == till.ledger.outbox_status().last_seq
    till.close()


def test_head_office_endpoints_reach_the_tills(hub: Hub, api: Any, tmp_path: Path) -> None:
    from loyaltysdk.vouchers import IssuerKey, Keyring, VoucherIssuer, VoucherTemplate

    admin = bearer(hub.add_admin("ops"))
    credential = hub.register("S1-T1", hub.create_till("S1-T1"))
    issuer = IssuerKey.generate("HQ-1")
    till = Till.open(
        tmp_path / "till.db",
        store="S1",
        till_id="S1-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        keyring=Keyring({"HQ-1": issuer.public_key}),
    )
    member = {"id": "M9", "tier": "", "cards": [{"uid": "04A1A2A3A4A5A6", "kind": "identity"}]}
    assert api.post("/v1/admin/members", json=member, headers=admin).status_code == 200
    now = datetime.now(UTC)
    voucher = VoucherIssuer(issuer).issue(
        VoucherTemplate("value", 500, "EUR", now, now.replace(year=now.year + 1))
    )
    assert (
        api.post(
            "/v1/admin/vouchers", json={"terms": [voucher.terms.to_json()]}, headers=admin
        ).status_code
        == 200
    )
    assert (
        api.post("/v1/admin/vouchers", json={"terms": [{"c": "x"}]}, headers=admin).status_code
        == 422
    )
    new_rules = {
        **RULES,
        "version": 2,
        "rules": [{"id": "base", "effect": {"type": "earn", "points": 2, "per": 100}}],
    }
    assert api.post("/v1/admin/rules", json=new_rules, headers=admin).status_code == 200
    assert api.post("/v1/admin/rules", json={"schema": 1}, headers=admin).status_code == 422
    assert (
        api.post(
            "/v1/admin/cards/block", json={"uids": ["04a1a2a3a4a5a6"]}, headers=admin
        ).status_code
        == 200
    )
    till.trust_hub(hub.update_key)  # in process; over HTTP it comes from `register`
    Syncer(till, HttpLink("", credential, client=api)).run_once()
    assert till.member("M9").id == "M9" and till.rules.version == 2
    assert till.vouchers.remaining(voucher.code) == 500
    assert till.hotlist() == {"04A1A2A3A4A5A6"}
    till.close()


def test_a_replaced_till_file_is_refused_not_ignored(hub: Hub, tmp_path: Path) -> None:
    from loyaltysdk.sync import BadRecord, DirectLink

    credential = hub.register("S1-T1", hub.create_till("S1-T1"))
    for name, member in (("one.db", "M1"), ("two.db", "M2")):
        till = Till.open(
            tmp_path / name,
            store="S1",
            till_id="S1-T1",
            currency="EUR",
            timezone="Europe/Berlin",
            rules=load_rules(RULES),
        )
        till.enrol(member)
        till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify(member)).complete("R-1")
        syncer = Syncer(till, DirectLink(hub, credential))
        if name == "one.db":
            syncer.run_once()
        else:
            with pytest.raises(BadRecord):
                syncer.run_once()  # the same sequence numbers, other transactions
            assert till.ledger.outbox_status().length > 0  # nothing acknowledged, nothing lost
        till.close()
