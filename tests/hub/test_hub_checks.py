# SPDX-License-Identifier: Apache-2.0
"""The hub as the book of record: it checks everything it is told (issue 14, one test per finding).

Each test sends what an outside party sent in the attack on the hub (a
till credential pushing crafted records, an admin publishing poison, bodies
that crashed or bloated it, updates changed in transit) and shows the
refusal: a 4xx problem document, nothing changed, tills still syncing.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk import Till, load_rules
from loyaltysdk.hub import Hub, HubLimits, create_app
from loyaltysdk.sync import (
    AuthError,
    BadRecord,
    DirectLink,
    HttpLink,
    Syncer,
    UntrustedUpdate,
    Update,
    UpdateKind,
    register,
)
from loyaltysdk.till import InvalidName

from .test_hub import payload, registered, topup

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}
UID = "04AABBCCDDEE01"
# Bodies are sent as ASCII JSON (escapes keep NUL and lone surrogates intact on the wire).
JSON = {"Content-Type": "application/json"}
TABLES = (
    "hub_entries",
    "hub_balances",
    "hub_held",
    "hub_lots",
    "hub_holds",
    "hub_exceptions",
    "hub_updates",
    "hub_members",
    "hub_cards",
    "hub_closed",
)


def state(hub: Hub) -> dict[str, Any]:
    """Everything the hub holds that a request could change."""
    found: dict[str, Any] = {"acked": hub.store.execute("SELECT id, acked FROM hub_tills")}
    for table in TABLES:
        found[table] = sorted(map(repr, hub.store.execute(f"SELECT * FROM {table}")))
    return found


def open_till(path: Path, store: str) -> Till:
    """Till 1 of `store`, with the rules every test here uses."""
    return Till.open(
        path,
        store=store,
        till_id=f"{store}-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(hub: Hub) -> TestClient:
    return TestClient(create_app(hub))


def is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def record(
    name: str,
    moves: list[list[Any]],
    kind: str = "transfer",
    ref: str | None = None,
    **fields: Any,
) -> str:
    """An outbox record as a till writes it, with `fields` set to what an attacker chose."""
    data = json.loads(payload(name, moves, kind=kind, ref=ref))
    data.update(fields)
    return json.dumps(data)


EUR_MOVE = [["sys:float:EUR", "D", 100, "EUR", None], ["sys:sales:EUR", "C", 100, "EUR", None]]
HOLD = record(
    "h1",
    [["member:M1:wallet:EUR", "D", 100, "EUR", None], ["sys:sales:EUR", "C", 100, "EUR", None]],
    kind="hold",
)
BAD_RECORDS: dict[str, list[str]] = {
    "unbalanced": [
        record("u", [["sys:float:EUR", "D", 100, "EUR", None], ["x", "C", 90, "EUR", None]])
    ],
    "credit only": [record("c", [["member:M1:wallet:EUR", "C", 1_000_000, "EUR", None]])],
    "negative amount": [
        record("n", [["sys:float:EUR", "D", -5, "EUR", None], ["x", "C", -5, "EUR", None]])
    ],
    "a fraction": [
        record("f", [["sys:float:EUR", "D", 1.9, "EUR", None], ["x", "C", 1.9, "EUR", None]])
    ],
    "a string amount": [
        record("s", [["sys:float:EUR", "D", "abc", "EUR", None], ["x", "C", 1, "EUR", None]])
    ],
    "beyond the maximum": [
        record("m", [["sys:float:EUR", "D", 2**64, "EUR", None], ["x", "C", 2**64, "EUR", None]])
    ],
    "points into a euro wallet": [
        record(
            "p",
            [
                ["sys:points:issued", "D", 5, "PTS", None],
                ["member:M1:wallet:EUR", "C", 5, "PTS", None],
            ],
        )
    ],
    "euros into an existing points account": [
        record(
            "e",
            [["sys:float:EUR", "D", 5, "EUR", None], ["sys:points:issued", "C", 5, "EUR", None]],
        )
    ],
    "an unknown unit": [
        record("x", [["sys:float:XXY", "D", 5, "XXY", None], ["y", "C", 5, "XXY", None]])
    ],
    "an unknown kind": [record("k", EUR_MOVE, kind="gift")],
    "a side X": [
        record("x", [["sys:float:EUR", "X", 100, "EUR", None], ["y", "C", 100, "EUR", None]])
    ],
    "postings not a list": [record("l", EUR_MOVE, postings=5)],
    "a short posting": [record("s", [["sys:float:EUR", "D", 100]])],
    "an int key": [record("i", EUR_MOVE, key=7)],
    "a dict memo": [record("d", EUR_MOVE, memo={"a": 1})],
    "a NUL in an account": [
        record("z", [["sys:fl\x00oat", "D", 1, "EUR", None], ["y", "C", 1, "EUR", None]])
    ],
    "a NUL in a key": [record("k\x00", EUR_MOVE)],
    "a lone surrogate in a memo": [record("s", EUR_MOVE, memo="MARK").replace("MARK", "\\ud800")],
    "an unknown field": [record("f", EUR_MOVE, extra=1)],
    "a post of no hold": [record("p", EUR_MOVE, kind="post", ref="nothing")],
    "a post of more than its hold": [
        HOLD,
        record(
            "p",
            [
                ["member:M1:wallet:EUR", "D", 101, "EUR", None],
                ["sys:sales:EUR", "C", 101, "EUR", None],
            ],
            kind="post",
            ref="h1",
        ),
    ],
    "a hold voided twice": [
        HOLD,
        record("v1", [], kind="void", ref="h1"),
        record("v2", [], kind="void", ref="h1"),
    ],
    "a reversal of a hold": [HOLD, record("r", EUR_MOVE, kind="reversal", ref="h1")],
    "a hold without expiry": [record("h", EUR_MOVE, kind="hold", expires_at=None)],
    "not JSON": ["{nope"],
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_finding_1_ingest_refuses_what_a_ledger_could_not_write(
    hub: Hub, api: TestClient, case: str
) -> None:
    credential = registered(hub, "T1")
    first = [
        topup(1),
        record(
            "pts",
            [["sys:points:issued", "D", 5, "PTS", None], ["member:M1:points", "C", 5, "PTS", None]],
        ),
    ]
    assert hub.push("T1", list(enumerate(first, 1))).acked == 2
    before = state(hub)
    # A good record first: the whole push is refused, the good one with it.
    batch = [topup(3), *BAD_RECORDS[case]]
    records = [{"seq": seq, "payload": p} for seq, p in enumerate(batch, 3)]
    response = api.post("/v1/sync/push", json={"records": records}, headers=bearer(credential))
    detail = is_problem(response, 422)["detail"]
    named = re.match(r"record (\d+): ", detail)
    assert named and int(named[1]) >= 4, detail  # the bad record, never the good one (3)
    assert state(hub) == before
    assert hub.unit_totals() == {"EUR": 0, "PTS": 0}


def test_finding_1_a_till_is_told_which_record_and_why(hub: Hub, api: TestClient) -> None:
    credential = registered(hub, "T1")
    bad = record("u", [["sys:float:EUR", "D", 100, "EUR", None], ["x", "C", 90, "EUR", None]])
    records = [{"seq": 1, "payload": topup(1)}, {"seq": 2, "payload": bad}]
    body = is_problem(
        api.post("/v1/sync/push", json={"records": records}, headers=bearer(credential)), 422
    )
    assert body["detail"].startswith("record 2:") and "EUR" in body["detail"]


def test_finding_1_a_hold_and_its_post_in_one_push_are_applied(hub: Hub) -> None:
    registered(hub, "T1")
    post = record(
        "p",
        [["member:M1:wallet:EUR", "D", 60, "EUR", None], ["sys:sales:EUR", "C", 60, "EUR", None]],
        kind="post",
        ref="h1",
    )
    assert hub.push("T1", [(1, topup(1)), (2, HOLD), (3, post)]).acked == 3
    assert hub.balance("member:M1:wallet:EUR") == ("EUR", 60, 1_000)


ADMIN_POISON: list[tuple[str, dict[str, Any]]] = [
    ("/v1/admin/members", {"id": "M\x001"}),
    ("/v1/admin/members", {"id": "M:1"}),
    ("/v1/admin/members", {"id": "M1", "tier": "gold\x00"}),
    ("/v1/admin/members", {"id": "M1", "cards": [{"uid": "not hex"}]}),
    ("/v1/admin/updates", {"kind": "members", "payload": {"members": [{"id": "M\x001"}]}}),
    ("/v1/admin/updates", {"kind": "hotlist", "payload": [1, 2]}),
    ("/v1/admin/updates", {"kind": "hotlist", "payload": {"block": [1, 2]}}),
    ("/v1/admin/updates", {"kind": "revocations", "payload": {"codes": "X"}}),
    ("/v1/admin/updates", {"kind": "keys", "payload": {"K": "not base64!"}}),
    ("/v1/admin/updates", {"kind": "vouchers", "payload": {"terms": [{"c": 1}]}}),
    ("/v1/admin/updates", {"kind": "allowance", "payload": {"per_transaction": -1}}),
    ("/v1/admin/updates", {"kind": "allowance", "payload": {"per_day": 5}}),
    ("/v1/admin/updates", {"kind": "rules", "payload": None}),
    ("/v1/admin/updates", {"kind": "rules", "payload": {"schema": 1}}),
    ("/v1/admin/cards/block", {"uids": ["04AA\x00"]}),
    ("/v1/admin/vouchers/revoke", {"codes": ["\ud800"]}),
]


@pytest.mark.parametrize(
    ("path", "body"), ADMIN_POISON, ids=[repr(b)[:60] for _, b in ADMIN_POISON]
)
def test_finding_2_admin_input_that_would_poison_every_till_is_refused(
    hub: Hub, api: TestClient, path: str, body: dict[str, Any]
) -> None:
    admin = bearer(hub.add_admin("ops"))
    before = state(hub)
    is_problem(api.post(path, content=json.dumps(body), headers={**admin, **JSON}), 422)
    assert state(hub) == before


def test_finding_2_identifiers_follow_one_rule_at_the_till_too(tmp_path: Path) -> None:
    till = open_till(tmp_path / "till.db", "S1")
    for bad in ("M\x001", "M:1", "M 1", "x" * 65, "M\ud800"):
        with pytest.raises(InvalidName):
            till.enrol(bad)
    assert till.enrol("M-1_a").id == "M-1_a"
    till.close()


def test_finding_2_an_update_the_till_cannot_apply_is_reported_and_syncing_goes_on(
    hub: Hub, tmp_path: Path
) -> None:
    tills = []
    for name in ("S1", "S2"):
        till = open_till(tmp_path / f"{name}.db", name)
        till.enrol("M1", card_uid=bytes.fromhex(UID))
        tills.append((till, Syncer(till, DirectLink(hub, registered(hub, f"{name}-T1")))))
    # As an older hub let it through: a hotlist of numbers, at a cursor of its own.
    hub.store.execute(
        "INSERT INTO hub_updates (kind, payload, at) VALUES ('hotlist', '[1, 2]', 'then')"
    )
    hub.publish("hotlist", {"block": [UID]})
    for _, syncer in tills:
        syncer.start(interval=0.01)
    for till, syncer in tills:
        while till.pull_cursor < 2:  # decided by progress, not by time
            assert syncer._thread is not None and syncer._thread.is_alive()
            syncer._stop.wait(0.01)
        syncer.stop()
        assert till.hotlist() == frozenset({UID})
        assert [p["kind"] for p in till.update_problems()] == ["hotlist"]
        till.close()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/holds", {"hold_id": "h", "account": "a", "unit": "EUR", "amount": True}),
        ("/v1/holds", {"hold_id": "h", "account": "a", "unit": "EUR", "amount": "5"}),
        ("/v1/holds", {"hold_id": "h", "account": "a", "unit": "EUR", "amount": 5.0}),
        ("/v1/holds", {"hold_id": "h\x00", "account": "a", "unit": "EUR", "amount": 5}),
        ("/v1/holds", {"hold_id": "h", "account": "a\x00", "unit": "EUR", "amount": 5}),
        ("/v1/holds", {"hold_id": "h", "account": "a", "unit": "XXY", "amount": 5}),
        (
            "/v1/holds",
            {"hold_id": "h", "account": "member:M1:wallet:EUR", "unit": "PTS", "amount": 5},
        ),
        ("/v1/sync/push", {"records": [{"seq": 1, "payload": 5}]}),
        ("/v1/sync/push", {"records": [{"seq": "1", "payload": "{}"}]}),
        ("/v1/sync/push", {"records": [{"seq": 1, "payload": "\ud800\ud800"}]}),
        (
            "/v1/sync/events",
            {"events": [{"seq": 1, "kind": "enrol", "payload": {"member": "M\x00"}}]},
        ),
        ("/v1/sync/events", {"events": [{"seq": 1, "kind": "block", "payload": {"uid": "zz"}}]}),
        ("/v1/snapshot", {"member": "M\x00"}),
        ("/v1/snapshot", {"accounts": ["a\x00"]}),
        ("/v1/admin/updates", {"kind": "rules", "payload": None}),
        ("/v1/admin/tills", {"till_id": "T\x00"}),
        ("/v1/admin/tills", {"till_id": "admin"}),
        ("/v1/tills/T%001/register", {"proof": "00" * 32}),
        ("/v1/tills/T1/register", {"proof": "\x00"}),
        ("/v1/tills/T1/register", {"enrolment_token": "x"}),
    ],
)
def test_finding_3_no_input_gives_a_500(
    hub: Hub, api: TestClient, path: str, body: dict[str, Any]
) -> None:
    till = bearer(registered(hub, "T1"))
    hub.push("T1", [(1, topup(1))])
    admin = bearer(hub.add_admin("ops"))
    before = state(hub)
    # The party the endpoint is for reaches the checks: theirs is a 422; others are refused.
    meant = admin if "/admin/" in path else {} if path.endswith("/register") else till
    for headers in (till, admin, {}):
        response = api.post(path, content=json.dumps(body), headers={**headers, **JSON})
        status = response.status_code
        assert status == 422 if headers is meant else status in (401, 403, 422), response.text
        is_problem(response, status)
    assert api.delete("/v1/holds/h%00", headers=till).status_code == 422
    assert state(hub) == before


def test_finding_3_a_till_named_admin_is_refused(hub: Hub, api: TestClient) -> None:
    admin = bearer(hub.add_admin("ops"))
    is_problem(api.post("/v1/admin/tills", json={"till_id": "admin"}, headers=admin), 422)


def test_finding_4_bodies_pushes_and_gaps_are_bounded(hub: Hub) -> None:
    limits = HubLimits(body_bytes=1 << 20, records_per_push=100, held_bytes=64 << 10)
    limited = Hub(hub.store, limits=limits)
    api = TestClient(create_app(limited))
    admin = bearer(hub.add_admin("ops"))
    credential = bearer(registered(hub, "T1"))
    before = state(hub)
    huge = {"kind": "revocations", "payload": {"codes": ["X" * 60] * 20_000}}
    is_problem(api.post("/v1/admin/updates", json=huge, headers=admin), 413)
    many = [{"seq": n, "payload": topup(n)} for n in range(1, 102)]
    is_problem(api.post("/v1/sync/push", json={"records": many}, headers=credential), 413)
    # Beyond a gap (record 1 missing), only held_bytes may wait.
    big_memo = "m" * 900
    beyond = [
        {"seq": n, "payload": record(f"k{n}", EUR_MOVE, memo=big_memo)} for n in range(2, 100)
    ]
    body = is_problem(api.post("/v1/sync/push", json={"records": beyond}, headers=credential), 413)
    assert "send record 1 first" in body["detail"]
    assert state(hub) == before
    # Within the limits, all goes on.
    few = [{"seq": n, "payload": topup(n)} for n in range(1, 11)]
    assert (
        api.post("/v1/sync/push", json={"records": few}, headers=credential).json()["acked"] == 10
    )


class Tampering:
    """A link in the middle: it changes what the hub sends (keys, a hotlist) or strips signatures."""

    def __init__(self, link: DirectLink, how: str) -> None:
        self.link = link
        self.how = how

    def __getattr__(self, name: str) -> Any:
        return getattr(self.link, name)

    def update_key(self) -> bytes | None:
        return None  # as over HTTP: the key comes from registration only

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        updates = self.link.pull(after, limit)
        if self.how == "change":
            return [Update(u.cursor, u.kind, {"block": []}, u.signature) for u in updates]
        if self.how == "strip":
            return [Update(u.cursor, u.kind, u.payload) for u in updates]
        if self.how == "replay":  # an old update, in the new one's place
            first = self.link.pull(0, 1)[0]
            return [Update(u.cursor, first.kind, first.payload, first.signature) for u in updates]
        return updates


@pytest.mark.parametrize("how", ["change", "strip", "replay"])
def test_finding_5_updates_changed_in_transit_are_never_applied(
    hub: Hub, tmp_path: Path, how: str
) -> None:
    till = open_till(tmp_path / "till.db", "S1")
    till.enrol("M1", card_uid=bytes.fromhex(UID))
    link = DirectLink(hub, registered(hub, "S1-T1"))
    hub.publish("revocations", {"codes": ["OLD"]})
    hub.publish("hotlist", {"block": [UID]})
    syncer = Syncer(till, Tampering(link, how))  # type: ignore[arg-type]
    with pytest.raises(UntrustedUpdate):
        syncer.run_once()  # no key yet: nothing is trusted
    till.trust_hub(hub.update_key)
    if how != "replay":
        with pytest.raises(UntrustedUpdate):
            syncer.run_once()
        assert till.pull_cursor == 0 and till.hotlist() == frozenset()
    else:
        with pytest.raises(UntrustedUpdate):  # the first is genuine; the second is the replay
            syncer.run_once()
        assert till.pull_cursor == 1 and till.hotlist() == frozenset()
    assert Syncer(till, link).run_once().pulled >= 1  # the genuine updates, untouched
    assert till.hotlist() == frozenset({UID})
    till.close()


def test_finding_5_registration_proves_the_update_key(hub: Hub, api: TestClient) -> None:
    token = hub.create_till("T1")
    forged = TestClient(create_app(hub))

    class Swap:
        """In the middle of registration: answer with another key."""

        def post(self, url: str, **kwargs: Any) -> Any:
            response = forged.post(url, **kwargs)
            data = response.json()
            data["update_key"] = "11" * 32
            response._content = json.dumps(data).encode()
            return response

    with pytest.raises(AuthError):
        register("", "T1", token, client=Swap())
    token = hub.create_till("T1")
    sent: list[Any] = []

    class Watch:
        def post(self, url: str, **kwargs: Any) -> Any:
            sent.append(kwargs["json"])
            return api.post(url, **kwargs)

    registration = register("", "T1", token, client=Watch())
    assert registration.update_key == hub.update_key
    assert token not in json.dumps(sent)  # the token itself never travels
    assert HttpLink("", registration.credential, client=api).pull(0) == []


def test_finding_6_the_schema_declares_every_refusal_as_a_problem(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    problem = schema["components"]["schemas"]["Problem"]
    assert {"title", "status", "detail"} <= set(problem["properties"])
    declared: set[str] = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"]) - {"200"}
            assert codes, (method, path)
            for code in codes:
                content = operation["responses"][code]["content"]
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }, (method, path, code)
            declared |= codes
    assert {"400", "401", "403", "404", "409", "413", "422"} <= declared
    assert "HTTPValidationError" not in schema["components"]["schemas"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_SHAPED = st.one_of(
    _JSON,
    # Rules one field away from valid, at the top or inside the one rule.
    st.builds(lambda f, v: {**RULES, f: v}, st.sampled_from(sorted(RULES)), _JSON),
    st.builds(
        lambda f, v: {**RULES, "rules": [{**RULES["rules"][0], f: v}]},  # type: ignore[index]
        st.sampled_from(["id", "effect", "when", "tier", "priority"]),
        _JSON,
    ),
    st.builds(
        lambda f, v: {**RULES, "rules": [{"id": "x", "effect": {"type": "earn", f: v}}]},
        st.sampled_from(["points", "per", "type", "multiplier", "cap"]),
        _JSON,
    ),
    st.fixed_dictionaries({"block": st.lists(st.sampled_from([UID, "04aabbccddee02", "zz", 1]))}),
    st.fixed_dictionaries({"codes": st.lists(st.text(max_size=70) | st.integers(), max_size=3)}),
    st.fixed_dictionaries(
        {"members": st.lists(st.fixed_dictionaries({"id": st.text(max_size=8)}), max_size=2)}
    ),
    st.dictionaries(
        st.sampled_from(["per_transaction", "per_member_per_day", "max_hours_offline", "x"]),
        st.integers(-2, 10**6) | st.text(max_size=3),
        max_size=2,
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from([k.value for k in UpdateKind]), body=_SHAPED)
def test_after_any_update_head_office_can_publish_every_till_syncs_on(
    hub: Hub, tmp_path_factory: pytest.TempPathFactory, kind: str, body: Any
) -> None:
    if not hasattr(hub, "_chain"):  # two tills for every example of this test
        tills = []
        for name in ("S1", "S2"):
            till = open_till(tmp_path_factory.mktemp(name) / "till.db", name)
            tills.append((till, Syncer(till, DirectLink(hub, registered(hub, f"{name}-T1")))))
        hub._chain = tills  # type: ignore[attr-defined]
    tills = hub._chain  # type: ignore[attr-defined]
    with contextlib.suppress(BadRecord):  # refused at publish: no till ever sees it
        hub.publish(kind, body)
    published = hub.pull(0, 5000)
    real = f"R{published[-1].cursor if published else 0}"
    hub.publish("members", {"members": [{"id": real}]})
    for till, syncer in tills:
        syncer.run_once()  # never raises: a poisoned update is a problem, not a stop
        assert till.member(real).id == real  # the next real update arrived
        assert till.pull_cursor == hub.pull(0, 5000)[-1].cursor
        assert till.update_problems() == []  # what the hub accepted, every till could apply


_FIELD_NAMES = ["v", "origin", "key", "kind", "ref", "at", "expires_at", "memo", "postings"]


@settings(max_examples=400, deadline=None)
@given(
    whole=_JSON,
    field=st.sampled_from(_FIELD_NAMES),
    value=_JSON,
    index=st.integers(0, 4),
    part=_JSON,
)
def test_any_record_is_checked_or_refused_never_crashes(
    whole: Any, field: str, value: Any, index: int, part: Any
) -> None:
    from loyaltysdk.hub._records import parse

    good = json.loads(HOLD)
    mutated = {**good, field: value}
    posting_changed = json.loads(HOLD)
    posting_changed["postings"][0][index] = part
    for candidate in (whole, mutated, posting_changed):
        with contextlib.suppress(BadRecord):  # a refusal, with its reason; else a crash
            parse(1, json.dumps(candidate))


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from([k.value for k in UpdateKind]),
    payload=_SHAPED,
    event_kind=st.sampled_from(["enrol", "card", "block", "replace", "sun", "sale"]),
    event=st.dictionaries(
        st.sampled_from(
            ["member", "uid", "kind", "lost", "new", "counter", "day", "spend", "tier", "segments"]
        ),
        _JSON,
    ),
)
def test_any_update_or_event_is_checked_or_refused_never_crashes(
    kind: str, payload: Any, event_kind: str, event: dict[str, Any]
) -> None:
    from loyaltysdk.hub._directory import check_event
    from loyaltysdk.sync import check_update

    with contextlib.suppress(BadRecord):
        check_update(kind, payload)
    with contextlib.suppress(BadRecord):
        check_event(1, event_kind, event)


def test_a_receipt_number_sent_twice_is_refused(hub: Hub) -> None:
    import random as _random
    from datetime import date as _date

    from loyaltysdk.reports._data import generated_records

    registered(hub, "S000-T1")
    first, *_ = generated_records(
        _random.Random(1), 1, 5, 1, _date(2026, 1, 1), 10, 1, ("EUR",), ("X",)
    )
    assert hub.push_events("S000-T1", [(1, "receipt", first)]) == 1
    before = state(hub)
    with pytest.raises(BadRecord):
        hub.push_events("S000-T1", [(2, "receipt", first)])  # the same sale again
    with pytest.raises(BadRecord):
        hub.push_events("S000-T1", [(2, "receipt", first), (3, "receipt", first)])
    assert state(hub) == before


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(
        ["sku", "category", "brand", "quantity", "unit_price", "discount", "points", "extra"]
    ),
    value=_JSON,
    top=st.sampled_from(["type", "ref", "store", "at", "day", "hour", "member", "total", "lines"]),
    other=_JSON,
)
def test_any_receipt_record_is_checked_or_refused_never_crashes(
    field: str, value: Any, top: str, other: Any
) -> None:
    import random as _random
    from datetime import date as _date

    from loyaltysdk.reports._data import generated_records
    from loyaltysdk.sync import check_receipt

    (good, *_) = generated_records(
        _random.Random(2), 1, 3, 1, _date(2026, 1, 1), 10, 2, ("EUR",), ("X",)
    )
    check_receipt(good)
    line_changed = {**good, "lines": [{**good["lines"][0], field: value}, good["lines"][1]]}
    for candidate in (line_changed, {**good, top: other}):
        with contextlib.suppress(BadRecord):
            check_receipt(candidate)
