# SPDX-License-Identifier: Apache-2.0
"""A missing optional extra is one clear line naming the pip install, never a raw ImportError."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from loyaltysdk import MissingExtra
from loyaltysdk.cli import main


def _hidden(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `modules` unimportable, as on a machine without the extra."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _create_app(tmp: Path) -> object:
    from loyaltysdk.hub import Hub, create_app, open_store

    return create_app(Hub(open_store(str(tmp / "hub.db"))))


def _html(tmp: Path) -> object:
    from loyaltysdk.reports import connect, html_report

    return html_report(connect(str(tmp / "r.db")))


def _pg_reports(tmp: Path) -> object:
    from loyaltysdk.reports import connect

    return connect("postgresql://127.0.0.1/test")


def _pg_hub(tmp: Path) -> object:
    from loyaltysdk.hub import open_store

    return open_store("postgresql://127.0.0.1/test")


def _http_link(tmp: Path) -> object:
    from loyaltysdk.sync import HttpLink

    return HttpLink("http://127.0.0.1:1", "S1-T1:secret")


@pytest.mark.parametrize(
    ("module", "extra", "call"),
    [
        ("fastapi", "hub", _create_app),
        ("plotly", "reports", _html),
        ("psycopg", "postgres", _pg_reports),
        ("psycopg", "postgres", _pg_hub),
        ("httpx", "hub", _http_link),
    ],
)
def test_missing_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    module: str,
    extra: str,
    call: Callable[[Path], object],
) -> None:
    _hidden(monkeypatch, module)
    with pytest.raises(MissingExtra) as caught:
        call(tmp_path)
    assert caught.value.extra == extra
    assert f"pip install 'loyaltysdk[{extra}]'" in str(caught.value)
    assert isinstance(caught.value, ImportError)  # code that caught ImportError still does


def test_hub_serve_without_uvicorn_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hidden(monkeypatch, "uvicorn")
    result = CliRunner().invoke(main, ["hub", "serve", "--db", str(tmp_path / "hub.db")])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines == [
        "Error: MissingExtra: loyalty hub serve needs the 'hub' extra"
        " (uvicorn is not installed): pip install 'loyaltysdk[hub]'"
    ]
