# SPDX-License-Identifier: Apache-2.0
"""Counts that mean the same on a busy machine: statements, commits, fsyncs, WAL frames,
instructions; and a flush latency held fixed so time ratios do not follow the disk.

- `Counter(conn)`: SQL statements and commits seen by one SQLite connection
  (its trace callback), and WAL frames written (the WAL's growth, with the
  automatic checkpoint off while counting).
- `fsync_shim()`: builds (once, with gcc, into ``bench/.build``) a small
  ``LD_PRELOAD`` library that sleeps a set time after every ``fsync`` and
  ``fdatasync`` and counts them. `rerun_with_shim(delay_us)` runs this same
  benchmark in a child process with the shim loaded; `fsyncs()` reads the
  count in a process that has it.
- `instructions(script, args, n)`: callgrind's instruction count of ``n``
  operations minus that of ``0`` (the same process start, imports and set-up),
  divided by ``n``: the work of one operation, repeatable to a fraction of a
  per cent whatever else the machine is doing.
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

int fsync(int fd) {
    static int (*real)(int) = 0;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real(fd);
    pause_after_flush();
    return rc;
}

int fdatasync(int fd) {
    static int (*real)(int) = 0;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real(fd);
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


def instructions(extra: list[str], n: int) -> float:
    """Callgrind instructions of one operation: (run of n - run of 0) / n."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is needed for instruction counts (apt install valgrind)")

    def total(count: int) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            env = dict(os.environ, PYTHONHASHSEED="0", LOYALTY_BENCH_SEED="0")
            env.pop("LD_PRELOAD", None)
            subprocess.run(
                [
                    valgrind,
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    "--dump-line=no",
                    "--compress-strings=no",
                    sys.executable,
                    sys.argv[0],
                    *extra,
                    "--count",
                    str(count),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            match = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.MULTILINE)
            if match is None:
                raise RuntimeError("no instruction total in callgrind's output")
            return int(match.group(1))

    return (total(n) - total(0)) / n


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
