# SPDX-License-Identifier: Apache-2.0
"""``python -m loyaltysdk`` runs the ``loyalty`` command."""

from .cli import main

main()
