# SPDX-License-Identifier: Apache-2.0
"""Kill a forked till at a chosen point of its progress, never after a chosen time.

A child process runs a body that acknowledges each finished operation on a
pipe. It dies by SIGKILL in one of three ways, each decided by progress so
the same plan kills at the same point on an idle laptop and on a loaded CI
machine:

- ``Kill.after_acks(n)``: the parent kills as soon as it has read ``n``
  acknowledgements; the child is then somewhere inside later work;
- ``Kill.at_statement(k)``: the child kills itself when SQLite starts its
  ``k``-th statement after it is ready (``COMMIT`` included, so a kill can
  land just before a commit);
- ``Kill.at_commit(k)``: ... when SQLite starts its ``k``-th ``COMMIT``
  after it is ready: a kill just before a commit, whatever the statements
  before it (which depend on where an earlier, timed kill left the stream);
- ``Kill.before_ack(n)``: the child kills itself after its ``n``-th
  operation returned and before acknowledging it (committed, unacknowledged).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable

import attrs


@attrs.frozen
class Kill:
    mode: str
    at: int

    @classmethod
    def after_acks(cls, n: int) -> Kill:
        return cls("after_acks", n)

    @classmethod
    def at_statement(cls, k: int) -> Kill:
        return cls("at_statement", k)

    @classmethod
    def at_commit(cls, k: int) -> Kill:
        return cls("at_commit", k)

    @classmethod
    def before_ack(cls, n: int) -> Kill:
        return cls("before_ack", n)

    @classmethod
    def never(cls) -> Kill:
        return cls("never", 0)


class Child:
    """What the body in the child uses: acknowledge work, and arm the self-kills."""

    def __init__(self, pipe: int, kill: Kill) -> None:
        self._pipe = pipe
        self._kill = kill
        self._acks = 0
        self._statements = 0

    def watch(self, connection: sqlite3.Connection) -> None:
        """Count this connection's statements (for ``at_statement``)."""
        if self._kill.mode not in ("at_statement", "at_commit"):
            return
        commits_only = self._kill.mode == "at_commit"

        def traced(sql: str) -> None:
            if commits_only and not sql.lstrip().upper().startswith("COMMIT"):
                return
            self._statements += 1
            if self._statements >= self._kill.at:
                self._say(f"killed-at {sql.split()[0].upper() if sql.split() else '?'}")
                os.kill(os.getpid(), signal.SIGKILL)

        connection.set_trace_callback(traced)

    def ready(self) -> None:
        self._say("ready")

    def ack(self, line: str) -> None:
        """Acknowledge one finished operation (its outcome as one line of text)."""
        self._acks += 1
        if self._kill.mode == "before_ack" and self._acks >= self._kill.at:
            self._say("killed-before-ack")
            os.kill(os.getpid(), signal.SIGKILL)
        self._say(f"ack {line}")

    def _say(self, line: str) -> None:
        os.write(self._pipe, (line + "\n").encode())


@attrs.frozen
class Outcome:
    acks: list[str]
    killed: bool
    killed_at: str | None  # the statement keyword, "before-ack", "after-acks" or None
    ready: bool


def run(body: Callable[[Child], None], kill: Kill) -> Outcome:
    """Fork, run `body` in the child until it returns or is killed, collect what it said."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves only by _exit or SIGKILL
        code = 0
        try:
            os.close(read_end)
            body(Child(write_end, kill))
        except BaseException as error:  # report, so the parent's assertion says why
            os.write(write_end, f"error {type(error).__name__}: {error}\n".encode())
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    lines: list[str] = []
    killed_by_parent = False
    with os.fdopen(read_end, "rb", buffering=0) as reader:
        buffered = b""
        while True:
            chunk = reader.read(4096)
            if not chunk:
                break
            buffered += chunk
            *complete, buffered = buffered.split(b"\n")
            lines.extend(line.decode() for line in complete)
            if (
                kill.mode == "after_acks"
                and not killed_by_parent
                and sum(line.startswith("ack ") for line in lines) >= kill.at
            ):
                os.kill(pid, signal.SIGKILL)
                killed_by_parent = True
    _, status = os.waitpid(pid, 0)
    errors = [line for line in lines if line.startswith("error ")]
    assert not errors, errors
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    killed_at = None
    for line in lines:
        if line.startswith("killed-at "):
            killed_at = line.removeprefix("killed-at ")
        elif line == "killed-before-ack":
            killed_at = "before-ack"
    if killed_by_parent:
        killed_at = "after-acks"
    return Outcome(
        [line.removeprefix("ack ") for line in lines if line.startswith("ack ")],
        killed,
        killed_at,
        "ready" in lines,
    )
