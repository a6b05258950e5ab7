# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared across the suite: the real PC/SC stack."""

from __future__ import annotations

import fcntl
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyaltysdk.simulators.pcscd import PcscdProcess, PcscdUnavailable, in_ci

PG = os.environ.get("LOYALTY_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        if in_ci():
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"no PostgreSQL: {error}")
    schema = f"hub_test_{secrets.token_hex(6)}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG} options='-c search_path={schema}'"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


# pcscd's socket path is fixed, so one pcscd serves the machine: test
# processes (xdist workers) take turns holding it, module by module.
_LOCK = Path(tempfile.gettempdir()) / "loyaltysdk-tests-pcscd.lock"


@pytest.fixture(scope="module")
def pcscd() -> Iterator[PcscdProcess]:
    """Our own pcscd with vpcd readers; stopped (only it) when the module is done.

    Under CI=true a stack that cannot start fails the tests; elsewhere they skip.
    """
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = PcscdProcess()
        try:
            process.start()
        except PcscdUnavailable as error:
            if in_ci():
                pytest.fail(f"the PC/SC stack is required under CI=true: {error}")
            pytest.skip(f"PC/SC stack unavailable: {error}")
        try:
            yield process
        finally:
            process.stop()
