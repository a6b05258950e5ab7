# SPDX-License-Identifier: Apache-2.0
"""The loyalty command: every command documented, the demo and ledger tools run."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from loyaltysdk.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 10, f"{' '.join(path)} lacks help"


def test_every_command_is_in_the_cli_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    missing = [
        " ".join(path) for path in _commands(main) if f"loyalty {' '.join(path)}" not in reference
    ]
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_demo_runs_checks_and_repeats_with_a_seed(tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = []
    for name in ("a.db", "b.db"):
        db = tmp_path / name
        result = runner.invoke(
            main, ["demo", "--receipts", "300", "--members", "40", "--seed", "7", "--db", str(db)]
        )
        assert result.exit_code == 0, result.output
        assert "ledger check: ok" in result.output
        outputs.append(result.output.replace(str(db), "DB"))
    assert outputs[0] == outputs[1]

    check = runner.invoke(main, ["ledger", "check", str(tmp_path / "a.db")])
    assert check.exit_code == 0 and check.output.startswith("ok:")
    balance = runner.invoke(
        main, ["ledger", "balance", str(tmp_path / "a.db"), "sys:points:issued"]
    )
    assert balance.exit_code == 0 and "PTS" in balance.output
    history = runner.invoke(
        main, ["ledger", "history", str(tmp_path / "a.db"), "sys:points:issued", "--limit", "3"]
    )
    assert history.exit_code == 0 and len(history.output.splitlines()) == 3
    outbox = runner.invoke(main, ["ledger", "outbox", str(tmp_path / "a.db")])
    assert outbox.exit_code == 0 and "waiting:" in outbox.output


def test_ledger_check_fails_loudly_on_a_tampered_file(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "a.db"
    CliRunner().invoke(main, ["demo", "--receipts", "50", "--members", "5", "--db", str(db)])
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'sys:points:issued'"
        )
    result = CliRunner().invoke(main, ["ledger", "check", str(db)])
    assert result.exit_code == 1
    assert "sys:points:issued" in result.output


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "loyaltysdk", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "loyalty" in result.stdout


def test_card_info_on_a_simulated_reader() -> None:
    result = CliRunner().invoke(main, ["card", "info", "--reader", "sim:desfire", "--wait", "1"])
    assert result.exit_code == 0, result.output
    assert "MIFARE DESFire EV2" in result.output and "--keystore" in result.output
    result = CliRunner().invoke(main, ["card", "info", "--reader", "sim:ntag424", "--wait", "1"])
    assert result.exit_code == 0, result.output
    assert "picc_data=" in result.output


@pytest.mark.pcsc
def test_sim_card_through_pcscd_then_readers_and_card_info(pcscd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {**os.environ, "LOYALTY_KEYSTORE_PASSPHRASE": "test passphrase"}
    keys = tmp_path / "keys.json"
    runner = CliRunner(env=env)
    created = runner.invoke(main, ["keystore", "create", str(keys), "--system-id", "TEST"])
    assert created.exit_code == 0, created.output
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loyaltysdk",
            "sim",
            "card",
            "--type",
            "desfire",
            "--issue",
            "--keystore",
            str(keys),
            "--file",
            str(tmp_path / "card.json"),
            "--port",
            str(pcscd.port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert sim.stdout is not None
        assert "issued" in sim.stdout.readline()
        assert "inserted in vpcd" in sim.stdout.readline()
        listed = runner.invoke(main, ["readers"])
        assert "Virtual PCD 00 00: mifare-desfire" in listed.output, listed.output
        info = runner.invoke(
            main, ["card", "info", "--reader", "pcsc:Virtual PCD 00 00", "--keystore", str(keys)]
        )
        assert info.exit_code == 0, info.output
        assert "balance: 0" in info.output and "issue" in info.output
    finally:
        assert sim.stdin is not None
        sim.stdin.write("quit\n")
        sim.stdin.flush()
        sim.wait(timeout=10)


@pytest.mark.pcsc
def test_sim_card_serves_after_its_input_ends_until_sigterm(pcscd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`loyalty sim card ... &` in a script: no standard input, the card stays in."""
    import signal
    import subprocess
    import sys

    command = ["sim", "card", "--type", "ntag424", "--port", str(pcscd.port)]
    sim = subprocess.Popen(
        [sys.executable, "-m", "loyaltysdk", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None and sim.stderr is not None
        assert "inserted in vpcd" in sim.stdout.readline()
        # Decided by the event, not by a time: the card says its input ended...
        assert "serving until SIGINT or SIGTERM" in sim.stderr.readline()
        # ...and still answers afterwards.
        listed = CliRunner().invoke(main, ["readers"])
        assert "Virtual PCD 00 00: mifare-desfire, ATR" in listed.output, listed.output
        assert sim.poll() is None
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=30) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()


def test_voucher_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    key, ring, db = tmp_path / "hq.key", tmp_path / "keyring.json", tmp_path / "v.db"
    made = runner.invoke(
        main, ["voucher", "keygen", str(key), "--key-id", "HQ-1", "--keyring", str(ring)]
    )
    assert made.exit_code == 0, made.output
    issued = runner.invoke(
        main,
        [
            "voucher",
            "issue",
            "--key",
            str(key),
            "--db",
            str(db),
            "--value",
            "10.00",
            "--currency",
            "EUR",
            "--count",
            "3",
            "--campaign",
            "TEST",
            "--qr-dir",
            str(tmp_path / "qr"),
        ],
    )
    assert issued.exit_code == 0, issued.output
    code = issued.output.splitlines()[0]
    assert len(code) == 19 and (tmp_path / "qr" / f"{code.replace('-', '')}.svg").exists()
    shown = runner.invoke(
        main, ["voucher", "show", code.lower(), "--db", str(db), "--qr", str(tmp_path / "v.png")]
    )
    assert shown.exit_code == 0 and "10.00" in shown.output, shown.output
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    payload = next(
        line for line in shown.output.splitlines() if line.startswith("payload:")
    ).split()[1]
    ok = runner.invoke(main, ["voucher", "verify", payload, "--keyring", str(ring)])
    assert ok.exit_code == 0 and "genuine" in ok.output
    # Flip a signature character in the middle: the last one carries padding bits only.
    middle = len(payload) - 20
    flipped = payload[:middle] + ("B" if payload[middle] != "B" else "C") + payload[middle + 1 :]
    forged = runner.invoke(main, ["voucher", "verify", flipped, "--keyring", str(ring)])
    assert forged.exit_code == 1 and "VoucherForged" in forged.output
    typo = runner.invoke(
        main, ["voucher", "show", code[:-1] + ("2" if code[-1] != "2" else "3"), "--db", str(db)]
    )
    assert typo.exit_code == 1 and "VoucherCodeInvalid" in typo.output
    revoked = runner.invoke(main, ["voucher", "revoke", code, "--db", str(db)])
    assert revoked.exit_code == 0
    assert "REVOKED" in runner.invoke(main, ["voucher", "show", code, "--db", str(db)]).output


def test_the_worked_till_example_runs() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "till.py"), "--script"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Loyalty receipt R-1002" in done.stdout and "refused" not in done.stdout


def test_hub_serve_register_sync_status(tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = CliRunner()
    hub_db = str(tmp_path / "hub.db")
    token = runner.invoke(main, ["hub", "add-till", "S1-T1", "--db", hub_db]).output.strip()
    server = subprocess.Popen(
        [sys.executable, "-m", "loyaltysdk", "hub", "serve", "--db", hub_db, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        rules = tmp_path / "rules.json"
        rules.write_text(
            json.dumps(
                {
                    "schema": 1,
                    "version": 1,
                    "currency": "EUR",
                    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
                }
            )
        )
        config = tmp_path / "till.toml"
        config.write_text(
            'db = "till.db"\nstore = "S1"\ntill_id = "S1-T1"\ncurrency = "EUR"\n'
            f'timezone = "Europe/Berlin"\nrules = "rules.json"\nhub_url = "http://127.0.0.1:{port}"\n'
            'credential_file = "credential"\n'
        )
        # Wait for the server by what it does, not for a set time (a busy
        # machine takes long to import it); the bound only stops a hang.
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        registered = runner.invoke(
            main, ["till", "register", "--config", str(config), "--token", token]
        )
        assert registered.exit_code == 0, registered.output
        from loyaltysdk import Basket, Line, Till, load_rules

        till = Till.open(
            tmp_path / "till.db",
            store="S1",
            till_id="S1-T1",
            currency="EUR",
            timezone="Europe/Berlin",
            rules=load_rules(str(rules)),
        )
        till.enrol("M1")
        till.checkout(Basket("EUR", [Line("A", 1, 500)]), till.identify("M1")).complete("R-1")
        till.close()
        before = runner.invoke(main, ["status", str(tmp_path / "till.db"), "--json"])
        assert json.loads(before.output)["waiting"] > 0
        synced = runner.invoke(main, ["sync", "--config", str(config)])
        assert synced.exit_code == 0 and "0 waiting" in synced.output, synced.output
        after = runner.invoke(main, ["status", str(tmp_path / "till.db")])
        assert "0 waiting" in after.output
    finally:
        server.terminate()
        server.wait(timeout=10)
