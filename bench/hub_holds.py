# SPDX-License-Identifier: Apache-2.0
"""Online identify and holds at the hub over loopback HTTP, against a bare round trip, in one run.

Starts the hub (uvicorn, SQLite backend) on a free port; measures a till's
snapshot of a member (POST /v1/snapshot: the member's chain-wide figures
and points lots, what identify asks), a hold (POST /v1/holds, durable) and
its release, and as the baseline an authenticated GET of the till's cursor
through the same client. Then a full online checkout through a real till
(identify, redeem points, pay from the wallet, complete) and the number of
round trips it made. Target: snapshot and hold p50 at most 2 ms each.

    python bench/hub_holds.py          # quick: 500 holds
    python bench/hub_holds.py --full   # 5,000 holds
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from _common import parse_args, percentile, result

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk.hub import Hub, SQLiteHubStore, create_app
from loyaltysdk.sync import HttpLink, Syncer
from loyaltysdk.till import TillPolicy


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 5_000 if args.full else 500
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        hub = Hub(SQLiteHubStore(Path(tmp) / "hub.db"))
        credential = hub.register("T1", hub.create_till("T1"))
        funding = json.dumps(
            {
                "v": 1,
                "origin": "T1",
                "key": "f",
                "kind": "transfer",
                "ref": None,
                "at": 1,
                "expires_at": None,
                "memo": None,
                "postings": [
                    ["sys:float:EUR", "D", 10**12, "EUR", None],
                    ["member:M1:wallet:EUR", "C", 10**12, "EUR", None],
                    ["sys:points:issued", "D", 5_000, "PTS", None],
                    ["member:M1:points", "C", 5_000, "PTS", 4_102_444_800_000_000],
                ],
            }
        )
        hub.push("T1", [(1, funding)])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(hub), host="127.0.0.1", port=port, log_level="warning", access_log=False
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        link = HttpLink(f"http://127.0.0.1:{port}", credential)
        client = link._client
        baseline, snapshots, holds, releases = [], [], [], []
        for n in range(count + 50):
            start = time.perf_counter()
            client.get("/v1/sync/cursor")
            t1 = time.perf_counter()
            link.snapshot("M1")
            t2 = time.perf_counter()
            link.take_hold(f"h{n}", "member:M1:wallet:EUR", "EUR", 100)
            t3 = time.perf_counter()
            link.release_hold(f"h{n}")
            t4 = time.perf_counter()
            if n >= 50:  # warm-up
                baseline.append(t1 - start)
                snapshots.append(t2 - t1)
                holds.append(t3 - t2)
                releases.append(t4 - t3)
        trips = _checkout_round_trips(Path(tmp), hub, f"http://127.0.0.1:{port}")
        server.should_exit = True
        thread.join(timeout=5)
        link.close()
        hub.store.close()
    p50_snapshot = percentile(snapshots, 0.5) * 1e3
    p50 = percentile(holds, 0.5) * 1e3
    print(f"requests: {count} of each over loopback HTTP (SQLite hub)")
    print(f"authenticated GET    p50 {percentile(baseline, 0.5) * 1e3:6.2f} ms")
    print(
        f"snapshot (identify)  p50 {p50_snapshot:6.2f} ms"
        f"  p99 {percentile(snapshots, 0.99) * 1e3:6.2f} ms"
    )
    print(f"take hold            p50 {p50:6.2f} ms  p99 {percentile(holds, 0.99) * 1e3:6.2f} ms")
    print(f"release hold         p50 {percentile(releases, 0.5) * 1e3:6.2f} ms")
    print(f"full online checkout (identify, points, wallet, complete): {trips} round trips")
    worst = max(p50_snapshot, p50)
    result("hub_holds", worst, 2.0, worst <= 2.0 and trips <= 3)


class _Counting(HttpLink):
    trips = 0

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        _Counting.trips += 1
        return super()._call(method, path, **kwargs)


def _checkout_round_trips(tmp: Path, hub: Hub, url: str) -> int:
    """A real till's full online checkout: how many times it called the hub."""
    credential = hub.register("S1-T1", hub.create_till("S1-T1"))
    link = _Counting(url, credential)
    rules = load_rules(
        {
            "schema": 1,
            "version": 1,
            "currency": "EUR",
            "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
        }
    )
    till = Till.open(
        tmp / "till.db",
        store="S1",
        till_id="S1-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=rules,
        hub=link,
        policy=TillPolicy(presence_for_redemption=False),
    )
    till.enrol("M9")
    till.top_up("M9", Money(10_000, "EUR"), payment_ref="P1")
    till.checkout(Basket("EUR", [Line("TV", 1, 50_000)]), till.identify("M9")).complete("R-0")
    Syncer(till, link).run_once()
    _Counting.trips = 0
    sale = till.checkout(Basket("EUR", [Line("X", 1, 2_000)]), till.identify("M9"))
    sale.redeem_points(300)
    sale.pay_wallet(Money(1_000, "EUR"))
    receipt = sale.complete("R-1")
    assert receipt.mode == "online"
    till.close()
    link.close()
    return _Counting.trips


if __name__ == "__main__":
    main()
