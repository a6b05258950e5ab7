# SPDX-License-Identifier: Apache-2.0
"""Hub fixtures: the same tests on SQLite and on the machine's PostgreSQL (a schema per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyaltysdk.hub import Hub, PostgresHubStore, SQLiteHubStore

PG = os.environ.get("LOYALTY_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    if request.param == "sqlite":
        store = SQLiteHubStore(tmp_path / "hub.db")
    else:
        store = PostgresHubStore(request.getfixturevalue("pg_dsn"))
    yield Hub(store)
    store.close()
