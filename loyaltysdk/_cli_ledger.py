# SPDX-License-Identifier: Apache-2.0
"""``loyalty ledger ...``: inspect and check a till's ledger file."""

from __future__ import annotations

from pathlib import Path

import click

from ._errors import LedgerError
from .ledger import Ledger

_PATH = click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def _open(path: Path) -> Ledger:
    # The origin only stamps new outbox records; inspection writes none.
    return Ledger.open(path, origin="loyalty-cli")


@click.group("ledger")
def ledger_group() -> None:
    """Inspect and check a ledger file."""


@ledger_group.command("check")
@_PATH
def check(path: Path) -> None:
    """Fold the journal and compare it with the stored balances.

    Exits 1 and lists every disagreement if the ledger is inconsistent.
    """
    with _open(path) as ledger:
        try:
            ledger.check()
        except LedgerError as error:
            raise click.ClickException(str(error)) from error
        accounts = len(ledger.balances())
        status = ledger.outbox_status()
    click.echo(f"ok: {accounts} accounts consistent; outbox {status.length} waiting")


@ledger_group.command("balance")
@_PATH
@click.argument("account", required=False)
def balance(path: Path, account: str | None) -> None:
    """Show posted, pending and available balances (one account, or all)."""
    with _open(path) as ledger:
        rows = [ledger.balance(account)] if account else ledger.balances()
    width = max((len(row.account) for row in rows), default=7)
    click.echo(f"{'account':<{width}}  {'posted':>16}  {'pending':>16}  {'available':>16}")
    for row in rows:
        amounts = "  ".join(
            f"{amount!s:>16}" for amount in (row.posted, row.pending, row.available)
        )
        click.echo(f"{row.account:<{width}}  {amounts}")


@ledger_group.command("history")
@_PATH
@click.argument("account")
@click.option("--limit", default=20, show_default=True, help="How many postings to show.")
def history(path: Path, account: str, limit: int) -> None:
    """Show an account's postings, newest first."""
    with _open(path) as ledger:
        entries = ledger.history(account, limit=limit)
    for entry in entries:
        pending = " (pending)" if entry.pending else ""
        click.echo(
            f"#{entry.seq:<7} {entry.created_at:%Y-%m-%d %H:%M:%S}  {entry.kind.value:<9}"
            f" {entry.side.value} {entry.amount!s:>14}  {entry.key}{pending}"
        )


@ledger_group.command("outbox")
@_PATH
def outbox(path: Path) -> None:
    """Show how many records wait for the hub, and since when."""
    with _open(path) as ledger:
        status = ledger.outbox_status()
    oldest = "-" if status.oldest_at is None else f"{status.oldest_at:%Y-%m-%d %H:%M:%S} UTC"
    click.echo(
        f"waiting: {status.length}  oldest: {oldest}  last seq: {status.last_seq}"
        f"  acknowledged through: {status.acked_seq}"
    )
