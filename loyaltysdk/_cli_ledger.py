# SPDX-License-Identifier: Apache-2.0
"""``loyalty ledger ...``: inspect a till's ledger file."""

from __future__ import annotations

import click


@click.group("ledger")
def ledger_group() -> None:
    """Inspect and check a ledger file."""
