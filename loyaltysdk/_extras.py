# SPDX-License-Identifier: Apache-2.0
"""Optional extras: import a module of one, or say in one line what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from ._errors import MissingExtra


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """`module` imported, or `MissingExtra` naming the ``pip install`` that provides it.

    Only a missing module (or one of its own imports) is turned into
    `MissingExtra`; an error raised while importing an installed module
    propagates as it is.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise MissingExtra(feature, extra, error.name or module) from error
