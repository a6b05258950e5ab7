# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared across the suite: the real PC/SC stack."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from loyaltysdk.simulators.pcscd import PcscdProcess, PcscdUnavailable, in_ci

# pcscd's socket path is fixed, so one pcscd serves the machine: test
# processes (xdist workers) take turns holding it, module by module.
_LOCK = Path(tempfile.gettempdir()) / "loyaltysdk-tests-pcscd.lock"


@pytest.fixture(scope="module")
def pcscd() -> Iterator[PcscdProcess]:
    """Our own pcscd with vpcd readers; stopped (only it) when the module is done.

    Under CI=true a stack that cannot start fails the tests; elsewhere they skip.
    """
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = PcscdProcess()
        try:
            process.start()
        except PcscdUnavailable as error:
            if in_ci():
                pytest.fail(f"the PC/SC stack is required under CI=true: {error}")
            pytest.skip(f"PC/SC stack unavailable: {error}")
        try:
            yield process
        finally:
            process.stop()
