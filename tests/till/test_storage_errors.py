# SPDX-License-Identifier: Apache-2.0
"""Storage trouble is typed: a full disk, a file that is not a till's, damaged pages, a
closed till. Each is a `StorageError` (or `StorageClosed`), never a raw sqlite3 error, and
nothing already committed is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from loyaltysdk import (
    Basket,
    Line,
    NotATillFile,
    StorageClosed,
    StorageError,
    StorageFull,
    Till,
    load_rules,
)
from loyaltysdk.cli import main
from loyaltysdk.ledger import LedgerCorrupted

RULES = load_rules(
    {
        "schema": 1,
        "version": 1,
        "currency": "EUR",
        "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
    }
)


def _open(path: Path, **options: object) -> Till:
    return Till.open(
        path,
        store="S1",
        till_id="S1-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=RULES,
        **options,  # type: ignore[arg-type]
    )


def _sale(till: Till, ref: str) -> None:
    till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify("M-1")).complete(ref)


def test_an_empty_file_is_refused_unless_asked_to_create(tmp_path: Path) -> None:
    path = tmp_path / "till.db"
    path.write_bytes(b"")
    with pytest.raises(NotATillFile, match="empty file"):
        _open(path)
    assert path.stat().st_size == 0  # nothing written into it
    till = _open(path, create=True)
    till.enrol("M-1")
    till.close()
    _open(path).close()  # now a till file: opens without the flag


def test_garbage_and_truncated_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all, just text\n" * 100)
    with pytest.raises(NotATillFile, match="not a SQLite database"):
        _open(garbage)
    good = tmp_path / "good.db"
    till = _open(good)
    till.enrol("M-1")
    _sale(till, "R-1")
    till.close()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(good.read_bytes()[:1500])  # the header survives, the rest is cut
    with pytest.raises(StorageError):
        till = _open(truncated)
        till.ledger.check()
    result = CliRunner().invoke(main, ["ledger", "check", str(garbage)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: NotATillFile:")


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "hub.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE hub_tills (id TEXT PRIMARY KEY)")
    with pytest.raises(NotATillFile, match="another program's database"):
        _open(other)
    with sqlite3.connect(other) as conn:  # untouched: no ledger tables added
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"hub_tills", "sqlite_autoindex_hub_tills_1"}


def test_damaged_pages_are_ledger_corrupted_from_check(tmp_path: Path) -> None:
    path = tmp_path / "till.db"
    till = _open(path)
    till.enrol("M-1")
    for n in range(40):
        _sale(till, f"R-{n}")
    till.close()
    data = bytearray(path.read_bytes())
    page = 1024
    middle = (len(data) // page // 2) * page
    data[middle : middle + page] = b"\xa5" * page  # one whole page overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerCorrupted):
        damaged = _open(path)
        damaged.ledger.check()
    result = CliRunner().invoke(main, ["ledger", "check", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_full_disk_is_storage_full_and_loses_nothing(tmp_path: Path) -> None:
    till = _open(tmp_path / "till.db")
    till.enrol("M-1")
    _sale(till, "R-0")
    before = till.balance("M-1")
    conn = till.ledger.store.connection  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here
    with pytest.raises(StorageFull) as caught:
        for n in range(1, 50):  # the WAL has room for a few; then the file must grow
            _sale(till, f"R-{n}")
    assert caught.value.should_retry
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    done = [r for r in range(1, 50) if _completed(till, f"R-{r}")]
    assert done == list(range(1, len(done) + 1))  # the refused one left no trace
    _sale(till, f"R-{len(done) + 1}")  # the failed sale, retried, goes through
    after = till.balance("M-1")
    assert after.points_posted == before.points_posted + 10 * (len(done) + 1)
    till.ledger.check()
    till.close()


def _completed(till: Till, ref: str) -> bool:
    try:
        till.receipt(ref)
    except LookupError:
        return False
    return True


def test_calls_after_close_raise_storage_closed(tmp_path: Path) -> None:
    till = _open(tmp_path / "till.db")
    till.enrol("M-1")
    sale = till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify("M-1"))
    till.close()
    for call in (
        lambda: till.balance("M-1"),
        lambda: till.identify("M-1"),
        lambda: till.enrol("M-2"),
        lambda: sale.complete("R-1"),
        lambda: till.ledger.check(),
    ):
        with pytest.raises(StorageClosed):
            call()


def test_till_and_checkout_are_context_managers_and_in_memory_works() -> None:
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    with Till.in_memory() as till:
        till.enrol("M-1", card_uid=uid)
        with till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify("M-1")) as sale:
            receipt = sale.complete("R-1")
        assert receipt.points_earned == 10
        _sale(till, "R-2")
        with (
            pytest.raises(RuntimeError, match="the POS changed its mind"),
            till.checkout(Basket("EUR", [Line("A", 1, 1_000)]), till.identify(uid)) as left,
        ):
            left.redeem_points(5)
            raise RuntimeError("the POS changed its mind")
        assert till.balance("M-1").points_pending == 0  # the hold was let go at once
    with pytest.raises(StorageClosed):
        till.balance("M-1")
