# SPDX-License-Identifier: Apache-2.0
"""Online holds at the hub over loopback HTTP, against a bare HTTP round trip, in one run.

Starts the hub (uvicorn, SQLite backend) on a free port; measures a till's
hold (POST /v1/holds, durable) and release, and as the baseline an
authenticated GET of the till's cursor through the same client. Target:
hold p50 at most 2 ms.

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

import uvicorn
from _common import parse_args, percentile, result

from loyaltysdk.hub import Hub, SQLiteHubStore, create_app
from loyaltysdk.sync import HttpLink


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
        baseline, holds, releases = [], [], []
        for n in range(count + 50):
            start = time.perf_counter()
            client.get("/v1/sync/cursor")
            mid = time.perf_counter()
            link.take_hold(f"h{n}", "member:M1:wallet:EUR", "EUR", 100)
            end = time.perf_counter()
            link.release_hold(f"h{n}")
            done = time.perf_counter()
            if n >= 50:  # warm-up
                baseline.append(mid - start)
                holds.append(end - mid)
                releases.append(done - end)
        server.should_exit = True
        thread.join(timeout=5)
        link.close()
        hub.store.close()
    p50 = percentile(holds, 0.5) * 1e3
    print(f"holds: {count} over loopback HTTP (SQLite hub)")
    print(f"authenticated GET    p50 {percentile(baseline, 0.5) * 1e3:6.2f} ms")
    print(f"take hold            p50 {p50:6.2f} ms  p99 {percentile(holds, 0.99) * 1e3:6.2f} ms")
    print(f"release hold         p50 {percentile(releases, 0.5) * 1e3:6.2f} ms")
    result("hub_holds", p50, 2.0, p50 <= 2.0)


if __name__ == "__main__":
    main()
