# SPDX-License-Identifier: Apache-2.0
"""The HTML report opened in headless Chromium: every chart drawn, no script error, a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loyaltysdk.reports import connect, generate, html_report
from loyaltysdk.simulators.pcscd import in_ci

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def report(tmp_path: Path) -> Path:
    db = connect(str(tmp_path / "r.db"))
    generate(db, receipts=5_000, members=600, stores=4, seed=3)
    page = tmp_path / "report.html"
    page.write_text(html_report(db))
    db.close()
    return page


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if in_ci():
            pytest.fail("Chromium is required under CI=true (scripts/setup installs it)")
        pytest.skip("no Chromium")
    return subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_report_renders_its_charts_without_errors(report: Path) -> None:
    text = report.read_text()
    expected = int(re.search(r"<p hidden id='chart-count'>(\d+)</p>", text).group(1))  # type: ignore[union-attr]
    assert expected >= 5
    done = _chromium("--dump-dom", report.as_uri())
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None, done.stderr[-2000:]
    assert f'data-charts="{expected}"' in body.group(0), body.group(0)
    assert "data-errors" not in body.group(0), body.group(0)


def test_a_screenshot_for_the_docs(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _chromium("--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_the_report_needs_no_network(report: Path) -> None:
    text = report.read_text()
    # plotly.js is inlined (its source mentions its CDN in a string, harmlessly);
    # nothing in the page loads from elsewhere.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", text)
    assert "<script>" in text
