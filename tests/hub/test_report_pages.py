# SPDX-License-Identifier: Apache-2.0
"""Head office's reports served by the hub (`GET /v1/admin/report`), filtered by days and store.

Receipt records are filed into the hub as tills send them (`push_events`);
the page is checked for who may see it, for figures that follow the
filters (against `revenue_breakdowns` and `stores` on the hub's database),
and once in headless Chromium: charts drawn, no script error, and the
filter form re-rendering the page for one store.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from loyaltysdk import Money
from loyaltysdk.hub import Hub, create_app
from loyaltysdk.hub._reports_page import HubReportDb
from loyaltysdk.reports._data import PostgresDb, SQLiteDb, generated_records
from loyaltysdk.reports._reports import revenue_breakdowns

from .test_member_page import Phone

START = date(2026, 1, 1)
DAYS = 90
LAST = date(2026, 3, 31)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def file_receipts(hub: Hub) -> None:
    """Three stores' receipts over 90 days, each till sending its own."""
    records = generated_records(
        random.Random(7), 600, 80, 3, START, DAYS, 1, ("EUR",), ("XMAS", "SPRING")
    )
    per_till: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        per_till[record["till"]].append(record)
    for till_id, mine in sorted(per_till.items()):
        hub.register(till_id, hub.create_till(till_id))
        events = [(seq, "receipt", r) for seq, r in enumerate(mine, start=1)]
        assert hub.push_events(till_id, events) == len(mine)


@pytest.fixture
def served(hub: Hub) -> tuple[Hub, TestClient, str]:
    file_receipts(hub)
    return hub, TestClient(create_app(hub)), hub.add_admin("ops")


def db_of(hub: Hub) -> SQLiteDb | PostgresDb:
    return cast(SQLiteDb | PostgresDb, HubReportDb(hub.store))


def net_revenue(hub: Hub, start: date, end: date, store: str | None = None) -> str:
    rows = revenue_breakdowns(db_of(hub), start, end, store=store)["store"]
    return Money(sum(r.revenue for r in rows if r.currency == "EUR"), "EUR").format()


def shown_revenue(page: str) -> str:
    return html.unescape(re.search(r"data-figure='revenue'>([^<]*)<", page).group(1))  # type: ignore[union-attr]


def store_rows(page: str) -> list[str]:
    """The stores of the page's Stores table, in order."""
    section = page.split("<h2>Stores</h2>", 1)[1]
    table = section[section.index("<table>") : section.index("</table>")]
    return re.findall(r"<tr><td>([^<]*)</td>", table)


def test_only_head_office_sees_the_reports(served: tuple[Hub, TestClient, str]) -> None:
    hub, api, _ = served
    is_problem(api.get("/v1/admin/report"), 401)
    is_problem(api.get("/v1/admin/report", headers={"Authorization": "Bearer nonsense"}), 401)
    till = hub.register("S9-T1", hub.create_till("S9-T1"))
    body = is_problem(api.get("/v1/admin/report", headers=bearer(till)), 403)
    assert "head office" in body["detail"]
    # Nor does a credential in the URL count.
    is_problem(api.get("/v1/admin/report", params={"token": till}), 401)


def test_malformed_filters_are_422_problems(served: tuple[Hub, TestClient, str]) -> None:
    _, api, admin = served
    for params in (
        {"from": "2026-02-30"},
        {"from": "01/02/2026"},
        {"to": "0001-01-01"},
        {"from": "2026-03-01", "to": "2026-02-01"},
        {"store": "S 1"},
        {"store": "<b>"},
        {"currency": "eur"},
        {"currency": "AAA"},
    ):
        is_problem(api.get("/v1/admin/report", params=params, headers=bearer(admin)), 422)


def test_head_office_gets_the_whole_report(served: tuple[Hub, TestClient, str]) -> None:
    hub, api, admin = served
    response = api.get("/v1/admin/report", headers=bearer(admin))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert store_rows(page) == ["S000", "S001", "S002"]
    assert shown_revenue(page) == net_revenue(hub, START, LAST)
    assert "<h2>Net revenue by weekday and hour</h2>" in page
    assert int(re.search(r"<p hidden id='chart-count'>(\d+)</p>", page).group(1)) >= 6  # type: ignore[union-attr]
    # The form offers every store, and sends the same page its filters.
    form = re.search(r"<form id='filters' method='get'>.*?</form>", page).group(0)  # type: ignore[union-attr]
    assert re.findall(r"<option value='([^']*)'", form) == ["", "S000", "S001", "S002"]
    assert {"from", "to", "store"} <= set(re.findall(r"name='([^']+)'", form))
    # The form's empty fields mean "everything": the same figures.
    again = api.get("/v1/admin/report?from=&to=&store=&currency=", headers=bearer(admin)).text
    assert shown_revenue(again) == shown_revenue(page)


def test_a_store_and_days_filter_every_figure(served: tuple[Hub, TestClient, str]) -> None:
    hub, api, admin = served
    whole = api.get("/v1/admin/report", headers=bearer(admin)).text
    page = api.get("/v1/admin/report", params={"store": "S001"}, headers=bearer(admin)).text
    assert store_rows(page) == ["S001"]
    assert shown_revenue(page) == net_revenue(hub, START, LAST, "S001")
    assert shown_revenue(page) != shown_revenue(whole)
    assert "<option value='S001' selected>" in page
    # The revisit table has that store and the chain's line (its chain is the store).
    growth = page.split("<h2>Growth</h2>", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<tr><td>([^<]*)</td>", growth) == ["*", "S001"]
    window = {"from": "2026-02-01", "to": "2026-02-28", "store": "S002"}
    february = api.get("/v1/admin/report", params=window, headers=bearer(admin)).text
    assert store_rows(february) == ["S002"]
    assert shown_revenue(february) == net_revenue(hub, date(2026, 2, 1), date(2026, 2, 28), "S002")
    assert "Receipts from 2026-02-01 to 2026-02-28 in EUR, S002" in february
    assert "value='2026-02-01'" in february
    # A window without receipts, or a store that has none: an empty report, not a failure.
    later = api.get("/v1/admin/report", params={"from": "2027-01-01"}, headers=bearer(admin))
    assert later.status_code == 200 and store_rows(later.text) == []
    assert shown_revenue(later.text) == Money(0, "EUR").format()
    nowhere = api.get("/v1/admin/report", params={"store": "S999"}, headers=bearer(admin))
    assert nowhere.status_code == 200 and store_rows(nowhere.text) == []


# -- in a browser ------------------------------------------------------------------------------


class Browser(Phone):
    """Headless Chromium (`Phone`'s DevTools pipe) at a desktop size, sending head office's
    credential with every request of the tab (`Network.setExtraHTTPHeaders`)."""

    def tab(self, headers: dict[str, str]) -> str:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        tab = str(self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"])
        self.call(
            "Emulation.setDeviceMetricsOverride",
            tab,
            width=1280,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Network.enable", tab)
        self.call("Network.setExtraHTTPHeaders", tab, headers=headers)
        self.call("Page.enable", tab)
        return tab

    def loaded(self) -> None:
        deadline = time.monotonic() + 60
        while self._next(deadline).get("method") != "Page.loadEventFired":
            pass

    def evaluate(self, tab: str, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", tab, expression=expression, returnByValue=True)
        return answer["result"].get("value")

    def checked(self, tab: str) -> dict[str, Any]:
        """Once the page's self-check ran: what it found and the figures shown."""
        probe = """JSON.stringify({
          charts: document.body.dataset.charts === undefined ? null : +document.body.dataset.charts,
          errors: document.body.dataset.errors || "",
          expected: +document.getElementById("chart-count").textContent,
          revenue: document.querySelector("[data-figure=revenue]").textContent,
          search: location.search,
          title: document.title,
        })"""
        deadline = time.monotonic() + 60
        while True:
            found: dict[str, Any] = json.loads(self.evaluate(tab, probe))
            if found["charts"] is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.fixture
def server(served: tuple[Hub, TestClient, str]) -> Iterator[tuple[Hub, str, str]]:
    """The hub's app on a loopback port, for the browser."""
    import uvicorn

    hub, _, admin = served
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(hub), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the hub did not start"
        time.sleep(0.05)
    yield hub, f"http://127.0.0.1:{port}", admin
    running.should_exit = True
    thread.join(30)


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
def test_the_page_draws_in_a_browser_and_its_form_filters(
    server: tuple[Hub, str, str], tmp_path: Path
) -> None:
    hub, base, admin = server
    browser = Browser(tmp_path / "profile")
    try:
        tab = browser.tab(bearer(admin))
        browser.call("Page.navigate", tab, url=f"{base}/v1/admin/report")
        browser.loaded()
        whole = browser.checked(tab)
        browser.evaluate(
            tab,
            "document.querySelector('select[name=store]').value = 'S001';"
            " document.getElementById('filters').requestSubmit(); true",
        )
        browser.loaded()
        one = browser.checked(tab)
        shot = browser.call("Page.captureScreenshot", tab)
    finally:
        browser.close()
    assert whole["title"] == "Head office report", whole
    assert whole["charts"] == whole["expected"] >= 6 and whole["errors"] == "", whole
    assert whole["revenue"] == net_revenue(hub, START, LAST)
    assert "store=S001" in one["search"], one
    assert one["charts"] == one["expected"] >= 6 and one["errors"] == "", one
    assert one["revenue"] == net_revenue(hub, START, LAST, "S001") != whole["revenue"]
    (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
