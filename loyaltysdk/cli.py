# SPDX-License-Identifier: Apache-2.0
"""The ``loyalty`` command: a thin client of the public API.

Each area keeps its commands in its own private module (``_cli_*.py``) and is
registered here, so this file stays an index.
"""

from __future__ import annotations

from typing import Any

import click

from . import __version__
from ._errors import LoyaltyError


class _Commands(click.Group):
    """Commands whose SDK errors end in one line on stderr and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LoyaltyError as error:
            raise click.ClickException(f"{type(error).__name__}: {error}") from error


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """Loyalty cards, points, e-vouchers and stored value for POS tills."""


def _register() -> None:
    # Imported here so that `loyalty --help` stays fast and a missing optional
    # extra only breaks the command that needs it.
    from ._cli_cards import card_group, keystore_group, readers, sim_group
    from ._cli_demo import demo
    from ._cli_hub import hub_group, status, sync, till_group
    from ._cli_ledger import ledger_group
    from ._cli_reports import report_group
    from ._cli_vouchers import voucher_group

    main.add_command(demo)
    main.add_command(ledger_group)
    main.add_command(readers)
    main.add_command(card_group)
    main.add_command(keystore_group)
    main.add_command(sim_group)
    main.add_command(voucher_group)
    main.add_command(hub_group)
    main.add_command(till_group)
    main.add_command(sync)
    main.add_command(status)
    main.add_command(report_group)


_register()
