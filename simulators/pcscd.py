# SPDX-License-Identifier: Apache-2.0
"""Run a private pcscd with vpcd readers, for tests and `loyalty sim card`.

pcscd's socket path is fixed (/run/pcscd/pcscd.comm), so one pcscd serves
the machine; `PcscdProcess` starts one with its own reader configuration
(vpcd on a port of our choosing) and stops that process, and only that one.
If another pcscd already runs, it refuses rather than disturb it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from loyaltysdk._errors import ReaderError

PCSCD = "/usr/sbin/pcscd"
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
SOCKET = Path("/run/pcscd/pcscd.comm")


class PcscdUnavailable(ReaderError):
    """pcscd or vpcd is not installed, or another pcscd owns the socket."""


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise PcscdUnavailable("no free pair of TCP ports for vpcd")


def _socket_alive() -> bool:
    if not SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(SOCKET))
        except OSError:
            return False
    return True


class PcscdProcess:
    """A pcscd in the foreground with vpcd readers on `port` and `port + 1`.

    Use as a context manager. The readers appear to PC/SC as
    "Virtual PCD 00 00" and "Virtual PCD 00 01".
    """

    reader_name = "Virtual PCD 00 00"

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else _free_port_pair()
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start pcscd and wait until its vpcd reader is listed.

        Raises:
            PcscdUnavailable: pcscd or vpcd is missing, or another pcscd runs.
        """
        for path in (PCSCD, VPCD_DRIVER):
            if not Path(path).exists():
                raise PcscdUnavailable(f"{path} is missing (scripts/setup installs it)")
        if _socket_alive():
            raise PcscdUnavailable(f"another pcscd already serves {SOCKET}; stop it first")
        self._dir = Path(tempfile.mkdtemp(prefix="loyaltysdk-pcscd-"))
        conf = self._dir / "reader.conf.d"
        conf.mkdir()
        (conf / "vpcd").write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.port:04X}\n"
        )
        SOCKET.parent.mkdir(parents=True, exist_ok=True)
        log = (self._dir / "pcscd.log").open("wb")
        self._process = subprocess.Popen(
            [PCSCD, "--foreground", "--config", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PcscdUnavailable(f"pcscd exited early; see {self._dir / 'pcscd.log'}")
            if _socket_alive() and self._vpcd_listening():
                return
            time.sleep(0.05)
        self.stop()
        raise PcscdUnavailable(f"pcscd did not come up within {timeout} s")

    def _vpcd_listening(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            # vpcd accepts one card connection; probing it would insert a
            # card, so check the port is bound instead.
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                return True
        return False

    def stop(self) -> None:
        """Stop our pcscd (SIGTERM, then SIGKILL) and remove its files."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def in_ci() -> bool:
    """Whether missing devices must fail rather than skip (CI=true)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
