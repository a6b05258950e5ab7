# SPDX-License-Identifier: Apache-2.0
"""The till as a local HTTP service: the checkout API one to one, idempotent, typed refusals."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from loyaltysdk import Money, Till
from loyaltysdk._cli_demo import demo_rules
from loyaltysdk.service import create_service_app

TOKEN = "test-token-" + "x" * 20
UID = "04A1B2C3D4E5F6"
HERE = Path(__file__).resolve().parent


def _till(path: Path) -> Till:
    till = Till.open(
        path, store="S1", till_id="S1-T1", currency="EUR", timezone="UTC", rules=demo_rules()
    )
    till.enrol("M-1", card_uid=bytes.fromhex(UID))
    till.top_up("M-1", Money(1_000, "EUR"), payment_ref="P-0")
    return till


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[TestClient, Till]]:
    till = _till(tmp_path / "till.db")
    client = TestClient(create_service_app(till, TOKEN))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    yield client, till
    till.close()


def eur(minor: int) -> dict[str, Any]:
    """Money as the service's JSON has it."""
    return {"minor": minor, "currency": "EUR"}


def _post(client: TestClient, path: str, body: Any, key: str) -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def test_a_sale_refund_and_void_over_http(service: tuple[TestClient, Till]) -> None:
    client, till = service
    opened = _post(
        client,
        "/v1/checkouts",
        {
            "lines": [{"sku": "A", "quantity": 2, "unit_price": eur(1_000)}],
            "member": {"card_uid": UID},
        },
        "k-open",
    )
    assert opened.status_code == 200, opened.text
    checkout = opened.json()["checkout_id"]
    assert opened.json()["quote"]["due"] == eur(2_000)
    paid = _post(client, f"/v1/checkouts/{checkout}/wallet", {"amount": eur(500)}, "k-w")
    assert paid.json()["due"] == eur(1_500)
    done = _post(client, f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "R-1"}, "k-done")
    assert done.status_code == 200 and done.json()["to_pay"] == eur(1_500)
    again = _post(client, f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "R-1"}, "k-done")
    assert again.json() == done.json()  # a retry after a lost answer: the same answer
    refunded = _post(
        client, "/v1/receipts/R-1/refunds", {"refund_ref": "F-1", "lines": {"0": 1}}, "k-f"
    )
    assert refunded.status_code == 200, refunded.text
    balance = client.get("/v1/members/M-1/balance").json()
    assert balance["member"] == "M-1"
    assert till.balance("M-1").points_posted == balance["points_posted"]
    # A second sale, voided.
    second = _post(
        client,
        "/v1/checkouts",
        {"lines": [{"sku": "B", "quantity": 1, "unit_price": eur(300)}]},
        "k-2",
    )
    cid = second.json()["checkout_id"]
    _post(client, f"/v1/checkouts/{cid}/complete", {"receipt_ref": "R-2"}, "k-2c")
    voided = _post(client, "/v1/receipts/R-2/void", None, "k-v")
    assert voided.status_code == 200, voided.text
    till.ledger.check()


def test_refusals_are_problem_documents(service: tuple[TestClient, Till]) -> None:
    client, _ = service
    opened = _post(
        client,
        "/v1/checkouts",
        {
            "lines": [{"sku": "A", "quantity": 1, "unit_price": eur(1_000)}],
            "member": {"card_uid": UID},
        },
        "k-1",
    )
    cid = opened.json()["checkout_id"]
    short = _post(client, f"/v1/checkouts/{cid}/wallet", {"amount": eur(900)}, "k-2")
    assert short.status_code == 200
    too_much = _post(client, f"/v1/checkouts/{cid}/wallet", {"amount": eur(5_000)}, "k-3")
    assert too_much.status_code == 409
    assert too_much.headers["content-type"].startswith("application/problem+json")
    assert too_much.json()["title"] == "OverPayment"
    unknown = _post(client, "/v1/identify", {"text": "M-404"}, "k-4")
    assert unknown.status_code == 404 and unknown.json()["title"] == "UnknownMember"
    bad = _post(
        client,
        "/v1/checkouts",
        {"lines": [{"sku": "A", "quantity": -1, "unit_price": eur(1)}]},
        "k-5",
    )
    assert bad.status_code == 422 and bad.json()["title"] == "WrongType"
    no_key = client.post("/v1/identify", json={"text": "M-1"})
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["detail"]
    reused = _post(client, "/v1/identify", {"text": "M-1"}, "k-1")  # the open's key
    assert reused.status_code == 422 and "another request" in reused.json()["detail"]
    anonymous = TestClient(client.app).get(f"/v1/checkouts/{cid}")
    assert anonymous.status_code == 401


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_node_pos_client_drives_a_sale_refund_and_void(tmp_path: Path) -> None:
    """A POS written in another language (Node.js), over real HTTP."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required under CI=true")
        pytest.skip("no node")
    till = _till(tmp_path / "till.db")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_service_app(till, TOKEN), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        give_up = time.monotonic() + 60  # a guard only: the server's own flag decides
        while not server.started and time.monotonic() < give_up:
            time.sleep(0.01)
        assert server.started
        run = subprocess.run(
            [node, str(HERE / "pos_client.mjs"), f"http://127.0.0.1:{port}", TOKEN, UID],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "sale R-N1 paid" in run.stdout and "refund F-N1 ok" in run.stdout
        assert "void R-N2 ok" in run.stdout
        till.ledger.check()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        till.close()


def test_loyalty_till_serve_makes_a_token_and_serves(tmp_path: Path) -> None:
    """The command a POS vendor runs: config in, token file out (0600), the API behind it."""
    import json
    import sys

    import httpx

    (tmp_path / "rules.json").write_text(json.dumps({k: v for k, v in _rules().items()}))
    port = _free_port()
    config = tmp_path / "till.toml"
    config.write_text(
        'db = "till.db"\nstore = "S1"\ntill_id = "S1-T1"\ncurrency = "EUR"\n'
        'timezone = "UTC"\nrules = "rules.json"\ntoken_file = "till.token"\n'
        'reader = "sim:desfire"\n'  # a reader attached to the service: a virtual card on it
    )
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loyaltysdk",
            "till",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        for line in serve.stdout:  # decided by what it prints, not by a time
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        token_file = tmp_path / "till.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        answer = httpx.get(
            f"http://127.0.0.1:{port}/v1/members/M-404/balance",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 404 and answer.json()["title"] == "UnknownMember"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/members/M-1/balance").status_code == 401
        tap = httpx.post(
            f"http://127.0.0.1:{port}/v1/identify",
            json={"tap": True, "wait_seconds": 1},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "tap-1"},
        )
        assert tap.status_code == 404 and tap.json()["title"] == "UnknownCard"  # read, unknown
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def _rules() -> dict[str, Any]:
    from loyaltysdk._cli_demo import DEMO_RULES

    return {k: v for k, v in DEMO_RULES.items() if not k.startswith("_")}
