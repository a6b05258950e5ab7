# SPDX-License-Identifier: Apache-2.0
"""Public names show under the module a user imports them from."""

from __future__ import annotations

from typing import Any


def present(module: str, namespace: dict[str, Any]) -> None:
    """Give each class and function of `namespace["__all__"]` that is defined below
    `module` the ``__module__`` `module`, so reprs, tracebacks and help() say
    ``loyaltysdk.Till``, not ``loyaltysdk.till._till.Till``. Packages run this as
    they are imported, the top level last, so a name exported at several levels
    shows at the shortest."""
    for name in namespace["__all__"]:
        value = namespace[name]
        if not (isinstance(value, type) or (callable(value) and hasattr(value, "__code__"))):
            continue
        if str(getattr(value, "__module__", "")).startswith(module + "."):
            value.__module__ = module
