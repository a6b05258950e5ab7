# SPDX-License-Identifier: Apache-2.0
"""Hub fixtures: the same tests on SQLite and on the machine's PostgreSQL (a schema per test)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from loyaltysdk.simulators.pcscd import in_ci

from loyaltysdk.hub import Hub, PostgresHubStore, SQLiteHubStore

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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    if request.param == "sqlite":
        store = SQLiteHubStore(tmp_path / "hub.db")
    else:
        store = PostgresHubStore(request.getfixturevalue("pg_dsn"))
    yield Hub(store)
    store.close()
