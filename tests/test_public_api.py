# SPDX-License-Identifier: Apache-2.0
"""The public surface stays small, sorted, documented and importable anywhere."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import loyaltysdk

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = [
    "loyaltysdk",
    "loyaltysdk.ledger",
    "loyaltysdk.cards",
    "loyaltysdk.cards.crypto",
    "loyaltysdk.cards.desfire",
    "loyaltysdk.cards.keystore",
    "loyaltysdk.cards.ntag424",
    "loyaltysdk.cards.purse",
    "loyaltysdk.hub",
    "loyaltysdk.reports",
    "loyaltysdk.rules",
    "loyaltysdk.service",
    "loyaltysdk.simulators",
    "loyaltysdk.sync",
    "loyaltysdk.till",
    "loyaltysdk.vouchers",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_sorted_and_resolvable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)

    # isort's order, as ruff keeps it: CONSTANTS, then Classes, then the rest.
    def order(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert names == sorted(names, key=order), f"{module_name}.__all__ is not sorted"
    for name in names:
        assert hasattr(module, name), f"{module_name}.{name} is exported but missing"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_show_under_a_public_module(module_name: str) -> None:
    """`loyaltysdk.Till`, not `loyaltysdk.till._till.Till`, in reprs, tracebacks and help()."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        if not (isinstance(value, type) or (callable(value) and hasattr(value, "__code__"))):
            continue
        shown = value.__module__
        assert not any(part.startswith("_") for part in shown.split(".")), f"{name}: {shown}"
        assert getattr(importlib.import_module(shown), value.__qualname__) is value, name


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_the_api_reference(module_name: str) -> None:
    reference = (ROOT / "docs" / "api.md").read_text()
    module = importlib.import_module(module_name)
    missing = [
        name
        for name in module.__all__
        if f"`{module_name}.{name}`" not in reference and f"`{module_name}.{name}(" not in reference
    ]
    assert not missing, f"docs/api.md does not mention: {missing}"


def test_every_package_directory_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    # loyaltysdk/drivers and loyaltysdk/simulators are links to the top-level
    # directories: walking loyaltysdk/ through them finds the installed shape.
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in _walk(ROOT / "loyaltysdk")
        if init.name == "__init__.py"
    }
    assert found == listed, (
        f"pyproject packages differ: missing {found - listed}, stale {listed - found}"
    )
    for link, target in (("drivers", "drivers"), ("simulators", "simulators")):
        path = ROOT / "loyaltysdk" / link
        assert path.is_symlink() and path.resolve() == (ROOT / target).resolve()


def _walk(base: Path) -> list[Path]:
    import os

    return [Path(d) / f for d, _, files in os.walk(base, followlinks=True) for f in files]


def test_import_needs_no_smartcard_library() -> None:
    code = "import sys, loyaltysdk, loyaltysdk.ledger, loyaltysdk.cli; print('smartcard' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_errors_have_one_root_and_shadow_no_builtin() -> None:
    import builtins

    for name in loyaltysdk.__all__:
        value = getattr(loyaltysdk, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, loyaltysdk.LoyaltyError), name
            assert not hasattr(builtins, name), f"{name} shadows a builtin"
