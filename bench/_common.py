# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the benchmarks: percentiles and the RESULT line."""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--full", action="store_true", help="the large run (default: quick)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to put the files (default: a temp dir)"
    )
    return parser.parse_args()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def result(name: str, metric: float, target: float, ok: bool) -> None:
    print(f"RESULT {name} metric={metric:.4g} target={target:g} {'ok' if ok else 'missed'}")


class BareCommit:
    """The physical baseline: one row, one durable WAL commit, synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, key TEXT, amount INTEGER)"
        )
        self.n = 0

    def once(self) -> float:
        self.n += 1
        start = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO t (key, amount) VALUES (?, ?)", (f"k-{self.n}", self.n))
        self.conn.execute("COMMIT")
        return time.perf_counter() - start

    def close(self) -> None:
        self.conn.close()
