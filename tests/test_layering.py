# SPDX-License-Identifier: Apache-2.0
"""Dependencies run one way: the contracts in pyproject.toml, checked by import-linter."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert report.count(" KEPT") >= 3 and "BROKEN" not in report, report
