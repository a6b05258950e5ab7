# SPDX-License-Identifier: Apache-2.0
"""A user's `mypy --strict` sees the SDK's types, from an editable and from a regular install.

A typo like `sale.redem_points(5)` must fail the user's type check, not
pass as `Any`; `examples/till.py` must pass it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USER_SCRIPT = """\
from loyaltysdk import Basket, Line, Money, Till
from loyaltysdk.cards import MockTransport
from loyaltysdk.simulators import VirtualDesfire

till = Till.in_memory()
till.enrol("M-1")
sale = till.checkout(Basket("EUR", [Line("A", 1, 100)]), till.identify("M-1"))
sale.pay_wallet(Money(50, "EUR"))
card: VirtualDesfire = VirtualDesfire()
transport: MockTransport | None = None
sale.redem_points(5)
"""


def _mypy(python: str, cache: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(cache),
            "--python-executable",
            python,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=cache.parent,  # outside the repository: nothing found by accident
        env={**os.environ, "MYPYPATH": ""},
        timeout=600,
    )


def _check(result: subprocess.CompletedProcess[str], user: Path) -> None:
    out = result.stdout
    assert "import-not-found" not in out and "import-untyped" not in out, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out  # the typo, and nothing else (examples/till.py is clean)
    assert errors[0].startswith(f"{user.name}:11:") and '"redem_points"' in errors[0], out


def test_editable_install(tmp_path: Path) -> None:
    """The install `scripts/setup` and `./loyalty` make (this test's own interpreter)."""
    user = tmp_path / "pos.py"
    user.write_text(USER_SCRIPT)
    _check(_mypy(sys.executable, tmp_path / "cache", user, ROOT / "examples" / "till.py"), user)


def test_regular_install(tmp_path: Path) -> None:
    """A wheel installed into a fresh environment, its dependencies from this one."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    site = next((env / "lib").glob("python*/site-packages"))
    wheel = next(wheels.glob("loyaltysdk-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # Its dependencies (attrs, cryptography, ...) come from this environment's
    # site-packages, listed after the fresh one, so loyaltysdk is the wheel's.
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    (site / "zz-dependencies.pth").write_text(ours + "\n")
    python = str(env / "bin" / "python")
    shown = subprocess.run(
        [python, "-c", "import loyaltysdk; print(loyaltysdk.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the repository, whose loyaltysdk/ would come first
    )
    assert shown.stdout.startswith(str(site)), shown.stdout
    user = tmp_path / "pos.py"
    user.write_text(USER_SCRIPT)
    _check(_mypy(python, tmp_path / "cache", user, ROOT / "examples" / "till.py"), user)
