# SPDX-License-Identifier: Apache-2.0
"""The ``loyalty`` command: a thin client of the public API."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """Loyalty cards, points, e-vouchers and stored value for POS tills."""
