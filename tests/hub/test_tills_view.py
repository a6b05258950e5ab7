# SPDX-License-Identifier: Apache-2.0
"""Head office's view of its tills: last sync, cursor, outbox lag, offline since, exceptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loyaltysdk import Basket, Line
from loyaltysdk.cli import main
from loyaltysdk.hub import Hub, PostgresHubStore, SQLiteHubStore, create_app
from loyaltysdk.sync import DirectLink, Syncer

from .test_updates import open_till


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _sale(till, ref: str) -> None:  # type: ignore[no-untyped-def]
    till.enrol(f"M-{ref}")
    till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify(f"M-{ref}")).complete(ref)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_tills_one_offline_one_lagging(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = _Clock()
    store = (
        SQLiteHubStore(tmp_path / "hub.db")
        if engine == "sqlite"
        else PostgresHubStore(request.getfixturevalue("pg_dsn"))
    )
    hub = Hub(store, clock=clock)
    hub.create_till("S3-T9")  # created, never registered
    syncers = {}
    for store in ("S1", "S2"):
        till_id = f"{store}-T1"
        link = DirectLink(hub, hub.register(till_id, hub.create_till(till_id)))
        till = open_till(tmp_path / f"{store}.db", store, till_id)
        syncers[store] = (till, Syncer(till, link, batch=2))
    for till, syncer in syncers.values():
        _sale(till, f"R-{till.till_id}")
        syncer.run_once()
    first = {t.till_id: t for t in hub.tills()}
    assert set(first) == {"S1-T1", "S2-T1", "S3-T9"}
    assert first["S3-T9"].registered_at is None and first["S3-T9"].last_sync is None
    for name in ("S1-T1", "S2-T1"):
        assert first[name].lag == 0 and first[name].acked == first[name].head > 0
        assert first[name].offline_since is None and first[name].exceptions == 0

    # S1 keeps syncing (with nothing to send: a heartbeat); S2 sells, reaches the
    # hub with one batch of two records, then its network goes.
    clock.now += 1_000
    s1, s2 = syncers["S1"], syncers["S2"]
    s1[1].run_once()
    for n in range(3):
        _sale(s2[0], f"R-S2-{n}")
    head = s2[0].ledger.outbox_status().last_seq
    s2[1].link.push(  # one push of the first two waiting records, as a round cut short
        [(r.seq, r.payload) for r in s2[0].ledger.outbox(after_seq=first["S2-T1"].acked, limit=2)],
        head=head,
    )
    clock.now += 1_000
    s1[1].run_once()
    now = {t.till_id: t for t in hub.tills(offline_after=900)}
    assert now["S1-T1"].offline_since is None
    assert now["S1-T1"].last_sync is not None and now["S1-T1"].last_sync > first["S1-T1"].last_sync  # type: ignore[operator]
    assert now["S2-T1"].offline_since == now["S2-T1"].last_sync  # its last contact
    assert now["S2-T1"].head == head and now["S2-T1"].lag == head - now["S2-T1"].acked > 0

    # The same through head office's HTTP API and the CLI.
    admin = hub.add_admin("ops")
    client = TestClient(create_app(hub))
    answer = client.get("/v1/admin/tills", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200, answer.text
    by_id = {t["till_id"]: t for t in answer.json()["tills"]}
    assert by_id["S2-T1"]["lag"] == now["S2-T1"].lag
    assert client.get("/v1/admin/tills").status_code == 401
    till_credential = hub.register("S9-T1", hub.create_till("S9-T1"))
    refused = client.get("/v1/admin/tills", headers={"Authorization": f"Bearer {till_credential}"})
    assert refused.status_code == 403
    for till, _ in syncers.values():
        till.close()
    if engine != "sqlite":
        return  # the CLI opens the file; PostgreSQL's is the same query, shown above
    printed = CliRunner().invoke(main, ["hub", "tills", "--db", str(tmp_path / "hub.db"), "--json"])
    assert printed.exit_code == 0, printed.output
    assert {t["till_id"] for t in json.loads(printed.output)} == {
        "S1-T1",
        "S2-T1",
        "S3-T9",
        "S9-T1",
    }
    table = CliRunner().invoke(main, ["hub", "tills", "--db", str(tmp_path / "hub.db")])
    assert "not registered" in table.output.split("S3-T9")[1].splitlines()[0]
    assert "S2-T1" in table.output and "lag" in table.output


def test_status_of_a_hub_file_points_to_hub_tills(tmp_path: Path) -> None:
    Hub(SQLiteHubStore(tmp_path / "hub.db")).create_till("S1-T1")
    result = CliRunner().invoke(main, ["status", str(tmp_path / "hub.db")])
    assert result.exit_code == 1
    assert "hub's database" in result.output and "loyalty hub tills" in result.output
