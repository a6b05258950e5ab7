# SPDX-License-Identifier: Apache-2.0
"""The README's snippets run as written, from a clone, with the files the repository ships."""

from __future__ import annotations

import json
import re
import runpy
import shutil
from pathlib import Path

import pytest

from loyaltysdk import load_rules
from loyaltysdk._cli_demo import DEMO_RULES

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text())


@pytest.mark.parametrize("index", range(len(_snippets(ROOT / "README.md"))))
def test_readme_snippet_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fresh clone's layout: the snippet runs from the repository root.
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "rules.json", tmp_path / "examples" / "rules.json")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "snippet.py"
    script.write_text(_snippets(ROOT / "README.md")[index])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip(), "each snippet prints what it shows"


def test_the_readme_has_snippets() -> None:
    assert len(_snippets(ROOT / "README.md")) >= 2


def test_sample_rules_are_the_demo_chains() -> None:
    """examples/rules.json is what `loyalty demo` runs, so the README shows real rules."""
    shipped = json.loads((ROOT / "examples" / "rules.json").read_text())
    assert shipped == {k: v for k, v in DEMO_RULES.items() if not k.startswith("_")}
    assert load_rules(ROOT / "examples" / "rules.json").rules


def test_docs_name_only_shipped_rules_files() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in re.findall(r"load_rules\(\"([^\"]+)\"\)", path.read_text()):
            assert (ROOT / name).is_file(), f"{path.name} loads {name}, which is not shipped"
