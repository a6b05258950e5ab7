# SPDX-License-Identifier: Apache-2.0
"""Online identify and holds at a hub in its own processes, against a bare round trip, in one run.

The hub runs as head office runs it, ``python -m loyaltysdk hub serve
--workers N`` (uvicorn, N worker processes; N from $LOYALTY_BENCH_WORKERS,
default 2), on PostgreSQL (a database made for the run and dropped after)
and on SQLite (one file that the workers share), each in turn
($LOYALTY_BENCH_ENGINES, default ``postgres,sqlite``). This process is the
client only: it waits for every worker's "Application startup complete."
on the server's output and for a first answer on the port, registers two
tills over HTTP as a till does (the hub's update key with its proof), funds
a member, and then measures, request by request on one keep-alive
connection (so one worker serves them; the others idle), a till's snapshot
of a member (POST /v1/snapshot: what identify asks), a hold (POST
/v1/holds, durable) and its release, and as the baseline an authenticated
GET of the till's cursor from the same server. Then a full online checkout
through a real till (identify, redeem points, pay from the wallet,
complete) and how many round trips it made.

Counts beside the times: the requests made, the holds the hub's database
holds afterwards (read from it), the store's statements and commits per
request kind (the same app driven in this process, for counting only:
every call into the hub's store, and each outermost transaction as one
commit; reads outside a transaction are single statements), and on
PostgreSQL the transactions the served hub committed over its life
(``pg_stat_database``, read once its connections are gone).

Target: snapshot and hold p50 at most 2 ms each on every engine, and the
online checkout in at most 3 round trips (the RESULT is the slower engine).

    python bench/hub_holds.py          # quick: 500 holds per engine
    python bench/hub_holds.py --full   # 5,000 holds per engine
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import parse_args, percentile, result

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk.hub import Hub, create_app, open_store
from loyaltysdk.sync import HttpLink, Syncer, register
from loyaltysdk.till import TillPolicy

DSN = os.environ.get("LOYALTY_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
PG_URL = os.environ.get("LOYALTY_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/{db}")
WORKERS = int(os.environ.get("LOYALTY_BENCH_WORKERS", "2"))
WARM_UP = 50
WALLET = "member:M1:wallet:EUR"
FUNDING = json.dumps(
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
            [WALLET, "C", 10**12, "EUR", None],
            ["sys:points:issued", "D", 5_000, "PTS", None],
            ["member:M1:points", "C", 5_000, "PTS", 4_102_444_800_000_000],
        ],
    }
)


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 5_000 if args.full else 500
    engines = os.environ.get("LOYALTY_BENCH_ENGINES", "postgres,sqlite").split(",")
    worst: dict[str, float] = {}
    most_trips = 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for engine in engines:
            with _database(engine, Path(tmp)) as (url, committed):
                figures = _run(url, Path(tmp) / engine, count, committed)
            _report(engine, count, figures)
            worst[engine] = max(figures["p50 snapshot"], figures["p50 hold"])
            most_trips = max(most_trips, figures["trips"])
    slowest = max(worst.values())
    result("hub_holds", slowest, 2.0, slowest <= 2.0 and most_trips <= 3)


@contextmanager
def _database(engine: str, tmp: Path) -> Iterator[tuple[str, Callable[[], int | None]]]:
    """The hub's database for one engine, and how to read its commits once the hub is gone."""
    if engine == "sqlite":
        yield str(tmp / "hub.db"), lambda: None
        return
    name = f"bench_holds_{secrets.token_hex(4)}"
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:

            def committed() -> int:
                # A backend hands in its counts as it exits: wait until the
                # hub's connections are gone, then read them.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
                    ).fetchone()
                    if row is not None and row[0] == 0:
                        break
                    time.sleep(0.05)
                time.sleep(0.1)
                admin.execute("SELECT pg_stat_clear_snapshot()")
                row = admin.execute(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
                ).fetchone()
                return int(row[0]) if row else 0

            yield PG_URL.format(db=name), committed
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run(url: str, tmp: Path, count: int, committed: Callable[[], int | None]) -> dict[str, Any]:
    tmp.mkdir()
    hub = Hub(open_store(url))  # head office's set-up, before the server starts
    tokens = {till: hub.create_till(till) for till in ("T1", "S1-T1")}
    hub.store.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = _Server(url, port, WORKERS)
    sent = [0]

    def count_request(request: httpx.Request) -> None:
        sent[0] += 1

    try:
        registration = register(base, "T1", tokens["T1"])
        link = HttpLink(base, registration.credential, update_key=registration.update_key)
        link._client.event_hooks["request"] = [count_request]
        link.push([(1, FUNDING)])
        client = link._client
        baseline, snapshots, holds, releases = [], [], [], []
        for n in range(count + WARM_UP):
            start = time.perf_counter()
            client.get("/v1/sync/cursor").raise_for_status()
            t1 = time.perf_counter()
            link.snapshot("M1")
            t2 = time.perf_counter()
            link.take_hold(f"h{n}", WALLET, "EUR", 100)
            t3 = time.perf_counter()
            link.release_hold(f"h{n}")
            t4 = time.perf_counter()
            if n >= WARM_UP:
                baseline.append(t1 - start)
                snapshots.append(t2 - t1)
                holds.append(t3 - t2)
                releases.append(t4 - t3)
        link.close()
        trips, checkout_requests = _checkout_round_trips(tmp, base, tokens["S1-T1"])
    finally:
        server.stop()
    return {
        "workers": server.workers,
        "committed": committed(),  # before this process opens the database again
        "sent": sent[0] + checkout_requests + 2,  # and the two registrations
        "timed": count,
        "baseline": baseline,
        "snapshots": snapshots,
        "holds": holds,
        "releases": releases,
        "p50 snapshot": percentile(snapshots, 0.5) * 1e3,
        "p50 hold": percentile(holds, 0.5) * 1e3,
        "trips": trips,
        "holds kept": _holds_kept(url),
        "per request": _store_work(url),
    }


class _Server:
    """``loyalty hub serve --workers N`` as a child process, ready once every worker says so."""

    def __init__(self, url: str, port: int, workers: int) -> None:
        self.workers = workers
        self.lines: list[str] = []
        self._ready: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loyaltysdk",
                "hub",
                "serve",
                "--db",
                url,
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a ^C here reaches the hub through stop(), once
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        started = 0
        while started < workers:
            try:
                line = self._ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("the hub did not start:\n" + "".join(self.lines[-30:]))
            started += "Application startup complete" in line
        # Every worker has started; the port answers (401 without a credential).
        while httpx.get(f"http://127.0.0.1:{port}/v1/sync/cursor").status_code != 401:
            time.sleep(0.01)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # read to the end, so the pipe never fills
            self.lines.append(line)
            self._ready.put(line)
        self._ready.put(None)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Counting(HttpLink):
    trips = 0

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        _Counting.trips += 1
        return super()._call(method, path, **kwargs)


def _checkout_round_trips(tmp: Path, base: str, token: str) -> tuple[int, int]:
    """A real till's full online checkout: how many times it called the hub (and all calls)."""
    registration = register(base, "S1-T1", token)
    link = _Counting(base, registration.credential)
    _Counting.trips = 0
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
    till.trust_hub(registration.update_key)
    till.enrol("M9")
    till.top_up("M9", Money(10_000, "EUR"), payment_ref="P1")
    till.checkout(Basket("EUR", [Line("TV", 1, 50_000)]), till.identify("M9")).complete("R-0")
    Syncer(till, link).run_once()
    before = _Counting.trips
    sale = till.checkout(Basket("EUR", [Line("X", 1, 2_000)]), till.identify("M9"))
    sale.redeem_points(300)
    sale.pay_wallet(Money(1_000, "EUR"))
    receipt = sale.complete("R-1")
    assert receipt.mode == "online"
    till.close()
    link.close()
    return _Counting.trips - before, _Counting.trips


def _holds_kept(url: str) -> dict[str, int]:
    """The hub's holds by till and status, read from its database after the run."""
    sql = "SELECT till || ' ' || status, count(*) FROM hub_holds GROUP BY till, status"
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn:
            rows = conn.execute(sql).fetchall()
    else:
        conn = sqlite3.connect(url)
        rows = conn.execute(sql).fetchall()
        conn.close()
    return {str(status): int(n) for status, n in rows}


def _store_work(url: str) -> dict[str, tuple[float, float]]:
    """Store statements and commits per request, the same app driven in this process.

    Only for counting: the timed figures come from the served hub. Every call
    into the store (`execute`, `executemany`, `insert_rows`, `copy_rows`) is a
    statement; each outermost `transaction()` a commit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient asks for httpx2
        from fastapi.testclient import TestClient

    hub = Hub(open_store(url))
    counts = {"statements": 0, "commits": 0}
    store: Any = hub.store
    depth = 0
    opened = store.transaction

    @contextmanager
    def transaction(**kwargs: Any) -> Iterator[None]:
        nonlocal depth
        depth += 1
        try:
            with opened(**kwargs):
                yield
        finally:
            depth -= 1
            counts["commits"] += depth == 0

    def counted(call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts["statements"] += 1
            return call(*args, **kwargs)

        return wrapper

    store.transaction = transaction
    for method in ("execute", "executemany", "insert_rows", "copy_rows"):
        setattr(store, method, counted(getattr(store, method)))
    credential = hub.register("C1", hub.create_till("C1"))
    client = TestClient(create_app(hub))
    link = HttpLink("http://hub", credential, client=client)
    kinds: dict[str, Callable[[int], Any]] = {
        "GET cursor": lambda n: client.get("/v1/sync/cursor").raise_for_status(),
        "snapshot": lambda n: link.snapshot("M1"),
        "take hold": lambda n: link.take_hold(f"c{n}", WALLET, "EUR", 100),
        "release": lambda n: link.release_hold(f"c{n}"),
    }
    work: dict[str, tuple[float, float]] = {}
    rounds = 20
    for n in range(rounds + 1):
        for kind, call in kinds.items():
            before = dict(counts)
            call(n)
            if n:  # the first round warms caches (prepared statements, the credential)
                statements, commits = work.get(kind, (0.0, 0.0))
                work[kind] = (
                    statements + (counts["statements"] - before["statements"]) / rounds,
                    commits + (counts["commits"] - before["commits"]) / rounds,
                )
    client.close()
    hub.store.close()
    return work


def _report(engine: str, count: int, f: dict[str, Any]) -> None:
    print(
        f"{engine}: hub in its own processes ({f['workers']} uvicorn workers), client here;"
        f" {count} timed requests of each kind after {WARM_UP} of warm-up;"
        f" {f['sent']:,} requests sent in all"
    )
    rows = [
        ("authenticated GET", f["baseline"], "GET cursor"),
        ("snapshot (identify)", f["snapshots"], "snapshot"),
        ("take hold", f["holds"], "take hold"),
        ("release hold", f["releases"], "release"),
    ]
    for label, samples, kind in rows:
        statements, commits = f["per request"][kind]
        print(
            f"  {label:<20} p50 {percentile(samples, 0.5) * 1e3:6.2f} ms"
            f"  p99 {percentile(samples, 0.99) * 1e3:6.2f} ms"
            f"   store: {statements:4.1f} statements, {commits:3.1f} commits per request"
        )
    kept = ", ".join(f"{status} {n}" for status, n in sorted(f["holds kept"].items()))
    print(f"  holds taken {count + WARM_UP} (timed {count}); the hub's database holds: {kept}")
    if f["committed"] is not None:
        print(
            f"  PostgreSQL transactions committed in the hub's database: {f['committed']:,}"
            f" (set-up and the start-up of {f['workers']} workers included)"
        )
    print(f"  full online checkout (identify, points, wallet, complete): {f['trips']} round trips")


if __name__ == "__main__":
    main()
