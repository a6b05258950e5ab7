# SPDX-License-Identifier: Apache-2.0
"""Counts that mean the same on a busy machine: statements, commits, fsyncs, WAL frames,
instructions; and a flush latency held fixed so time ratios do not follow the disk.

- `Counter(conn)`: SQL statements and commits seen by one SQLite connection
  (its trace callback), and WAL frames written (the WAL's growth, with the
  automatic checkpoint off while counting).
- `fsync_shim()`: builds (once, with gcc, into ``bench/.build``) a small
  ``LD_PRELOAD`` library that replaces every ``fsync`` and ``fdatasync`` by a
  sleep of a set time (``LOYALTY_FSYNC_REAL=1`` flushes as well) and counts
  them. `rerun_with_shim(delay_us)` runs this same
  benchmark in a child process with the shim loaded; `fsyncs()` reads the
  count in a process that has it.
- `window_instructions(args, n)`: callgrind's instruction count of one
  operation, from one run where callgrind counts only inside the
  benchmark's `counting()` block around its ``n`` operations (a callgrind
  client request), divided by ``n``: no start-up, imports or set-up in the
  figure at all, so nothing that differs between runs (a module compiled in
  one of them, say) can move it, whatever else the machine is doing.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUILD = HERE / ".build"
_SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_ns = -1;
static unsigned long count = 0;

static void pause_after_flush(void) {
    if (delay_ns < 0) {
        const char *text = getenv("LOYALTY_FSYNC_DELAY_US");
        delay_ns = text ? atol(text) * 1000L : 0;
    }
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    if (delay_ns > 0) {
        struct timespec wait = {delay_ns / 1000000000L, delay_ns % 1000000000L};
        while (nanosleep(&wait, &wait) != 0) {}
    }
}

/* The flush itself is replaced by the set delay (unless LOYALTY_FSYNC_REAL=1),
   so every run sees the same flush latency whatever the disk does. */
static int real_flush(void) {
    const char *text = getenv("LOYALTY_FSYNC_REAL");
    return text && text[0] == '1';
}

int fsync(int fd) {
    static int (*real)(int) = 0;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real_flush() ? real(fd) : 0;
    pause_after_flush();
    return rc;
}

int fdatasync(int fd) {
    static int (*real)(int) = 0;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real_flush() ? real(fd) : 0;
    pause_after_flush();
    return rc;
}

unsigned long loyalty_fsync_count(void) { return count; }
"""


def fsync_shim() -> Path:
    """The shim's path, built on first use (gcc is on every machine here)."""
    BUILD.mkdir(exist_ok=True)
    source, library = BUILD / "fsync_shim.c", BUILD / "fsync_shim.so"
    if not library.exists() or source.read_text() != _SHIM_SOURCE:
        source.write_text(_SHIM_SOURCE)
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"],
            check=True,
        )
    return library


def shim_loaded() -> bool:
    return "fsync_shim" in os.environ.get("LD_PRELOAD", "")


def fsyncs() -> int:
    """fsync + fdatasync calls so far in this process (0 without the shim)."""
    if not shim_loaded():
        return 0
    function = ctypes.CDLL(None).loyalty_fsync_count
    function.restype = ctypes.c_ulong
    return int(function())


def rerun_with_shim(delay_us: int, extra: list[str]) -> str:
    """Run this benchmark again with every flush followed by `delay_us`; its output."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(fsync_shim())
    env["LOYALTY_FSYNC_DELAY_US"] = str(delay_us)
    run = subprocess.run(
        [sys.executable, sys.argv[0], *extra],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


_WINDOW_SOURCE = r"""
#include <valgrind/callgrind.h>

/* Outside valgrind these do nothing. Nothing is counted before the first
   start (--instr-atstart=no), and windows add up. */
void loyalty_count_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void loyalty_count_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def _window_library() -> Path:
    BUILD.mkdir(exist_ok=True)
    source, library = BUILD / "count_window.c", BUILD / "count_window.so"
    if not library.exists() or source.read_text() != _WINDOW_SOURCE:
        source.write_text(_WINDOW_SOURCE)
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True
        )
    return library


@contextmanager
def counting() -> Iterator[None]:
    """Under `window_instructions`, callgrind counts what runs inside (every such block
    of the run, added up), and only that."""
    library = ctypes.CDLL(str(_window_library()))
    library.loyalty_count_start()
    try:
        yield
    finally:
        library.loyalty_count_stop()


def window_instructions(extra: list[str], n: int) -> float:
    """Callgrind instructions of one operation: those inside `counting()` / n."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is needed for instruction counts (apt install valgrind)")
    _window_library()  # built before the run, so building is not in it
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONHASHSEED="0", LOYALTY_BENCH_SEED="0")
        env.pop("LD_PRELOAD", None)
        subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                "--dump-line=no",
                sys.executable,
                sys.argv[0],
                *extra,
                "--count",
                str(n),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        # With collection toggled, "summary" is 0 and "totals" holds the count.
        match = re.search(r"^totals:\s*(\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError("no instruction total in callgrind's output")
        return int(match.group(1)) / n


class Counter:
    """Statements and commits on one SQLite connection, and WAL frames written."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        self.conn = conn
        self.path = path
        self.statements = 0
        self.commits = 0
        self.seen: list[str] = []
        self.keep = False
        self._wal_start = 0
        self._page = int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _trace(self, statement: str) -> None:
        self.statements += 1
        if statement.lstrip()[:6].upper() == "COMMIT":
            self.commits += 1
        if self.keep:
            self.seen.append(statement)

    def __enter__(self) -> Counter:
        if self.path is not None:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self._wal_start = self._wal_size()
        self.conn.set_trace_callback(self._trace)
        return self

    def __exit__(self, *_: Any) -> None:
        self.conn.set_trace_callback(None)
        if self.path is not None:
            self.frames = max(0, self._wal_size() - self._wal_start) // (self._page + 24)
            self.conn.execute("PRAGMA wal_autocheckpoint=1000")

    def _wal_size(self) -> int:
        assert self.path is not None
        wal = Path(f"{self.path}-wal")
        return wal.stat().st_size if wal.exists() else 0


def parse_phase(argv: list[str]) -> tuple[str | None, int | None, list[str]]:
    """Split ``--phase NAME`` and ``--count N`` (the child runs' options) from the rest."""
    phase = count = None
    rest: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--phase":
            phase = next(items)
        elif item == "--count":
            count = int(next(items))
        else:
            rest.append(item)
    return phase, count, rest


class PgCounter:
    """What one psycopg connection did on PostgreSQL: statements, round trips, commits,
    rows written per table, WAL, and CPU on both sides.

    Statements and round trips come from libpq's own protocol trace (a frontend
    ``Query`` or ``Execute`` message is a statement, a ``ReadyForQuery`` ends a
    round trip, a backend ``CommandComplete "COMMIT"`` is a commit), so nothing
    in the code under test is wrapped. Rows per table
    are the server's counters (``pg_stat_user_tables``) for `schema`; WAL bytes
    and flushes are cluster-wide (``pg_stat_wal``: another session writing at
    the same time adds to them). CPU: this process, and the server backend
    serving the connection (``/proc/<pid>/stat``, the server being local).
    """

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.statements = self.round_trips = self.commits = 0
        self.rows: dict[str, dict[str, int]] = {}
        self.wal_bytes = self.wal_syncs = 0
        self.client_cpu = self.server_cpu = 0.0
        self._pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])

    def _tables(self) -> dict[str, tuple[int, int, int]]:
        self.conn.execute("SELECT pg_stat_force_next_flush()")
        return {
            name: (int(ins), int(upd), int(dele))
            for name, ins, upd, dele in self.conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
                " WHERE schemaname = %s",
                (self.schema,),
            )
        }

    def _wal(self) -> tuple[int, int]:
        lsn, syncs = self.conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, wal_sync FROM pg_stat_wal"
        ).fetchone()
        return int(lsn), int(syncs)

    def _server_cpu(self) -> float:
        fields = Path(f"/proc/{self._pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> PgCounter:
        import psycopg

        self._before = self._tables()
        self._wal_before = self._wal()
        self._trace = tempfile.NamedTemporaryFile("w+", suffix=".trace")
        self.conn.pgconn.trace(self._trace.fileno())
        self.conn.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )
        self._cpu = (os.times().user + os.times().system, self._server_cpu())
        return self

    def __exit__(self, *_: Any) -> None:
        times = os.times()
        self.client_cpu = times.user + times.system - self._cpu[0]
        self.server_cpu = self._server_cpu() - self._cpu[1]
        self.conn.pgconn.untrace()
        self._trace.seek(0)
        for line in self._trace:
            parts = line.split("\t", 3)
            if len(parts) < 3:
                continue
            side, kind = parts[0], parts[2].strip()
            if side == "F" and kind in ("Query", "Execute"):
                self.statements += 1
            elif side == "B" and kind == "ReadyForQuery":
                self.round_trips += 1
            elif (
                side == "B"
                and kind == "CommandComplete"
                and parts[3].strip().strip('"').upper() == "COMMIT"
            ):
                # The server's word for a commit, sent alone or in a pipeline
                # (where the client's COMMIT is a Parse/Bind/Execute).
                self.commits += 1
        self._trace.close()
        after = self._tables()
        for name, (ins, upd, dele) in after.items():
            was = self._before.get(name, (0, 0, 0))
            moved = {"inserted": ins - was[0], "updated": upd - was[1], "deleted": dele - was[2]}
            if any(moved.values()):
                self.rows[name] = moved
        lsn, syncs = self._wal()
        self.wal_bytes, self.wal_syncs = lsn - self._wal_before[0], syncs - self._wal_before[1]

    def rows_written(self) -> int:
        return sum(sum(moved.values()) for moved in self.rows.values())

    def describe(self, per: int, what: str, batches: int = 1) -> str:
        """The counts, per `what` (``per`` of them) and per batch, in a few lines."""
        tables = ", ".join(
            f"{name} +{m['inserted']}" + (f" ~{m['updated']}" if m["updated"] else "")
            for name, m in sorted(self.rows.items())
        )
        return (
            f"  statements {self.statements} ({self.statements / batches:.3g}/batch),"
            f" round trips {self.round_trips} ({self.round_trips / batches:.3g}/batch),"
            f" commits {self.commits} ({self.commits / batches:.3g}/batch)\n"
            f"  rows written {self.rows_written()} ({self.rows_written() / per:.3g}/{what}):"
            f" {tables}  (+ inserted, ~ updated)\n"
            f"  WAL {self.wal_bytes / per:,.0f} B/{what}, WAL flushes {self.wal_syncs}"
            f" (cluster-wide); CPU client {self.client_cpu / per * 1e6:.1f} us/{what},"
            f" server {self.server_cpu / per * 1e6:.1f} us/{what}"
        )
