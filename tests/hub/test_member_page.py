# SPDX-License-Identifier: Apache-2.0
"""A member's own page (`GET /t`): a real tap shows the chain's figures, once, anywhere.

Taps are read from the virtual NTAG 424 DNA through the virtual reader; the
member shops at a till synced to the hub (`Till` + `DirectLink` + `Syncer`).
A URL opened twice, used at a till, forged, or a blocked or replaced card's,
shows the same neutral page. On SQLite and PostgreSQL; one test renders the
page in headless Chromium at a phone's viewport.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import select
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.ntag424 import MemoryCounterStore, SunReplayed, SunVerifier, read_sun_url
from loyaltysdk.cards.purse import Purse
from loyaltysdk.hub import Hub, create_app
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.pcscd import in_ci
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.sync import DirectLink, Syncer, UpdateKind

from .test_hub import payload, registered

META, FILE = b"M" * 16, b"F" * 16
#: A DESFire EV3 does SUN as an NTAG 424 does: one card, the stored value and the tap.
UID = bytes.fromhex("04C0FFEE00A001")
EUR = "EUR"
RULES: dict[str, Any] = {
    "schema": 1,
    "version": 1,
    "currency": EUR,
    "points": {"expiry_days": 365},
    # A tier name is the rules' text: the page escapes it.
    "tiers": {
        "window_days": 365,
        "review": "year",
        "levels": [
            {"name": "Basic", "min_spend": 0},
            {"name": "Silver", "min_spend": 25_000},
            {"name": "Gold & <VIP>", "min_spend": 100_000},
        ],
    },
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}
KEYSTORE = SoftwareKeyStore.generate(b"PAGE")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
USED = "This link has been used"


class Clock:
    """The chain's one clock: the till's and the hub's."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@attrs.define
class Chain:
    hub: Hub
    api: TestClient
    till: Till
    syncer: Syncer
    tag: VirtualNtag424
    clock: Clock

    def tap(self, tag: VirtualNtag424 | None = None) -> str:
        """A fresh field entry of the tag: the query of the URL the phone opens."""
        reader = VirtualReader()
        reader.insert(tag or self.tag)
        return urlsplit(read_sun_url(reader.connect())).query

    def open(self, query: str) -> Any:
        return self.api.get(f"/t?{query}")


def figures(page: str) -> dict[str, str]:
    """What the page shows, by figure."""
    return dict(re.findall(r'data-figure="([^"]+)">([^<]*)<', page))


def shows_nothing_personal(response: Any) -> str:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    page: str = response.text
    assert USED in page
    assert "data-figure" not in page
    for personal in ("M1", "A001", "305", "25.00", "15.00", "Silver", "Gold", "Apr", "Mar"):
        assert personal not in page, personal
    return page


@pytest.fixture
def chain(hub: Hub, tmp_path: Path) -> Iterator[Chain]:
    """Member M1 shops at store S1 over six weeks: points earned on three days, a wallet
    topped up, a stored-value card loaded; then the till syncs and the member taps."""
    clock = Clock()
    keyed = Hub(
        hub.store,
        clock=lambda: clock().timestamp(),
        sun=functools.partial(SunVerifier, META, FILE),
    )
    keyed.publish(UpdateKind.RULES, RULES)
    link = DirectLink(keyed, registered(keyed, "S1-T1"))
    till = Till.open(
        tmp_path / "s1.db",
        store="S1",
        till_id="S1-T1",
        currency=EUR,
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        clock=clock,
        purse=Purse(KEYSTORE, clock=lambda: clock().timestamp()),
        # The till checks taps too: its own counters, and the chain's with its identify.
        sun=SunVerifier(META, FILE, MemoryCounterStore()),
        hub=link,
    )
    till.enrol("M1")
    desfire, reader = VirtualDesfire(UID), VirtualReader()
    reader.insert(desfire)
    till.issue_card(reader.connect(), UID, "M1")
    till.top_up_card(reader.connect(), UID, Money(1_500, EUR), payment_ref="LOAD-1")

    def buy(ref: str, price: int) -> None:
        sale = till.checkout(Basket(EUR, [Line(ref, 1, price)]), till.identify("M1"))
        sale.complete(ref)

    buy("R1", 10_000)  # 10 Mar: 100 + 50 points, one expiry date
    buy("R2", 5_000)
    clock.now = datetime(2026, 4, 20, 13, 0, tzinfo=UTC)
    buy("R3", 12_550)  # 125 points
    clock.now = datetime(2026, 4, 21, 16, 30, tzinfo=UTC)
    till.top_up("M1", Money(2_500, EUR), payment_ref="P1")
    buy("R4", 3_000)  # 30 points
    clock.now = datetime(2026, 4, 22, 8, 0, tzinfo=UTC)
    syncer = Syncer(till, link)
    syncer.run_once()
    tag = VirtualNtag424(UID, meta_read_key=META, file_read_key=FILE)
    yield Chain(keyed, TestClient(create_app(keyed)), till, syncer, tag, clock)
    till.close()


def test_a_tap_shows_the_members_own_figures(chain: Chain) -> None:
    response = chain.open(chain.tap())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.text
    # No script may run and nothing loads; the inline CSS is allowed by its very hash.
    policy = response.headers["content-security-policy"]
    assert policy.startswith("default-src 'none';")
    css = re.search(r"<style>(.*?)</style>", page, re.DOTALL).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}';" in policy
    shown = figures(page)
    assert shown.pop("points") == "305"
    # Lots expire at the start of a Berlin day a year on; the day before is the last to use them.
    assert shown.pop("expiring-2027-03-09") == "150 points"  # two sales of one day, together
    assert shown.pop("expiring-2027-04-19") == "125 points"
    assert shown.pop("expiring-2027-04-20") == "30 points"
    assert re.findall(r"usable until <time[^>]*>([^<]*)<", page) == [
        "9 Mar 2027",
        "19 Apr 2027",
        "20 Apr 2027",
    ]
    assert shown.pop("wallet-EUR") == "25.00 EUR"
    assert shown.pop("card-EUR") == "15.00 EUR"
    # 305.50 spent in the rolling year: Silver, and 694.50 short of the next tier.
    assert shown.pop("tier") == "Silver"
    assert shown.pop("tier-needs") == "694.50 EUR"
    assert "to reach <strong>Gold &amp; &lt;VIP&gt;</strong>" in page
    assert "<VIP>" not in page
    visits = [(k, shown.pop(k)) for k in sorted(shown, reverse=True) if k.startswith("spend-")]
    assert visits == [
        ("spend-2026-04-21", "30.00 EUR"),
        ("spend-2026-04-20", "125.50 EUR"),
        ("spend-2026-03-10", "150.00 EUR"),
    ]
    assert not shown
    assert "Member M1" in page and "card ending A001" in page
    # Self-contained: no script, nothing loaded from elsewhere.
    assert "<script" not in page
    assert not re.search(r"\b(src|href|url)\s*[=(]", page)


def test_a_url_shows_the_account_once_anywhere(chain: Chain) -> None:
    first = chain.tap()
    assert figures(chain.open(first).text)["points"] == "305"
    shows_nothing_personal(chain.open(first))  # the same URL opened again
    with pytest.raises(SunReplayed):  # the page took its counter for the whole chain
        chain.till.identify(f"https://loyalty.example/t?{first}")
    at_till = chain.tap()
    assert chain.till.identify(f"https://loyalty.example/t?{at_till}").member.id == "M1"
    shows_nothing_personal(chain.open(at_till))  # a URL a till took first
    older, newer = chain.tap(), chain.tap()
    assert figures(chain.open(newer).text)["points"] == "305"
    shows_nothing_personal(chain.open(older))  # an older URL after a newer one


def test_a_tampered_url_shows_nothing_and_burns_nothing(chain: Chain) -> None:
    query = chain.tap()
    mac = query.rsplit("=", 1)[1]
    wrong_mac = query[: -len(mac)] + mac[:-1] + ("0" if mac[-1] != "0" else "1")
    picc = re.search(r"picc_data=([0-9A-F]{32})", query).group(1)  # type: ignore[union-attr]
    wrong_picc = query.replace(picc, picc[::-1])
    pages = {shows_nothing_personal(chain.open(forged)) for forged in (wrong_mac, wrong_picc)}
    pages.add(shows_nothing_personal(chain.open(f"{query}&picc_data={picc}")))  # twice
    assert len(pages) == 1  # one neutral page, whatever was wrong
    assert figures(chain.open(query).text)["points"] == "305"  # the genuine tap still opens
    assert shows_nothing_personal(chain.open(query)) in pages  # and a replay says the same


@pytest.mark.parametrize("how", ["blocked", "replaced", "unknown"])
def test_a_card_that_is_not_active_shows_nothing(chain: Chain, how: str) -> None:
    tag = chain.tag
    if how == "blocked":
        chain.hub.publish(UpdateKind.HOTLIST, {"block": [UID.hex().upper()]})
    elif how == "replaced":
        chain.till.replace_card(UID, bytes.fromhex("04C0FFEE00A002"))
        chain.syncer.run_once()
    else:
        tag = VirtualNtag424(
            bytes.fromhex("04C0FFEE00A0FF"), meta_read_key=META, file_read_key=FILE
        )
    shows_nothing_personal(chain.open(chain.tap(tag)))


def test_without_sun_keys_the_page_is_a_404_problem(hub: Hub) -> None:
    api = TestClient(create_app(hub))
    tag = VirtualNtag424(UID, meta_read_key=META, file_read_key=FILE)
    for query in (urlsplit(tag.sun_url(1)).query, "", "picc_data=zz"):
        response = api.get(f"/t?{query}")
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 404 and "SUN keys" in problem["detail"]


def test_amounts_in_their_currencies_and_no_tiers_without_them(hub: Hub) -> None:
    keyed = Hub(hub.store, sun=functools.partial(SunVerifier, META, FILE))
    no_tiers = {name: value for name, value in RULES.items() if name != "tiers"}
    keyed.publish(UpdateKind.RULES, no_tiers)
    keyed.publish(
        UpdateKind.MEMBERS,
        {"members": [{"id": "M1", "cards": [{"uid": UID.hex().upper(), "kind": "identity"}]}]},
    )
    registered(keyed, "T1")
    amounts = {"JPY": 1_234_567, "KWD": 1_234, "EUR": 2**53 - 1, "CLF": 5}
    keyed.push(
        "T1",
        [
            (
                n,
                payload(
                    f"t{n}",
                    [
                        [f"sys:float:{cur}", "D", minor, cur, None],
                        [f"member:M1:wallet:{cur}", "C", minor, cur, None],
                    ],
                ),
            )
            for n, (cur, minor) in enumerate(sorted(amounts.items()), start=1)
        ],
    )
    tag = VirtualNtag424(UID, meta_read_key=META, file_read_key=FILE)
    reader = VirtualReader()
    reader.insert(tag)
    page = TestClient(create_app(keyed)).get(f"/t?{urlsplit(read_sun_url(reader.connect())).query}")
    shown = figures(page.text)
    assert shown == {
        "points": "0",
        "wallet-CLF": "0.0005 CLF",
        "wallet-EUR": "90,071,992,547,409.91 EUR",  # 2**53 - 1 cents, exactly
        "wallet-JPY": "1,234,567 JPY",
        "wallet-KWD": "1.234 KWD",
    }
    assert "tier" not in page.text.lower()
    assert "On this card" not in page.text  # an identity card holds no value


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    params=st.dictionaries(
        st.sampled_from(["picc_data", "cmac", "enc", "x"]),
        st.text(max_size=40) | st.text("0123456789ABCDEFabcdef", min_size=16, max_size=32),
        max_size=4,
    ),
)
def test_no_query_breaks_the_page(chain: Chain, params: dict[str, str]) -> None:
    response = chain.api.get("/t", params=params)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        shows_nothing_personal(response)
    else:
        assert response.headers["content-type"] == "application/problem+json"


# -- on a phone ------------------------------------------------------------------------------

#: Measured in the page once it has loaded: the viewport, the widest content, and every
#: figure that is not wholly on screen in a readable size.
_MEASURE = """JSON.stringify((() => {
  const figures = [...document.querySelectorAll("[data-figure]")];
  const unseen = figures.filter((f) => {
    const r = f.getBoundingClientRect(), s = getComputedStyle(f);
    return !(r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= innerWidth
      && s.visibility === "visible" && parseFloat(s.fontSize) >= 14 && f.textContent.trim());
  });
  return {
    viewport: innerWidth,
    widest: document.documentElement.scrollWidth,
    figures: figures.length,
    unseen: unseen.map((f) => f.dataset.figure),
    scripts: document.scripts.length,
  };
})())"""


class Phone:
    """Headless Chromium as a phone, driven over the DevTools protocol on a pipe.

    The new headless mode will not make a window narrower than 500 pixels
    (`--window-size=390,844` gives 500), so the phone is device emulation,
    as DevTools' device toolbar does it (the page's viewport meta applies).
    With `--remote-debugging-pipe` Chromium reads commands on fd 3 and
    answers on fd 4, NUL-terminated JSON: no client library needed.
    """

    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            if in_ci():
                pytest.fail("Chromium is required under CI=true (scripts/setup installs it)")
            pytest.skip("no Chromium")
        commands, self._to_chrome = os.pipe()
        self._from_chrome, answers = os.pipe()
        quiet = os.open(os.devnull, os.O_WRONLY)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe"]
        self.pid = os.posix_spawn(
            CHROMIUM,
            [CHROMIUM, *args, f"--user-data-dir={profile}", "about:blank"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, commands, 3),
                (os.POSIX_SPAWN_DUP2, answers, 4),
                (os.POSIX_SPAWN_DUP2, quiet, 1),
                (os.POSIX_SPAWN_DUP2, quiet, 2),
            ],
        )
        for fd in (commands, answers, quiet):
            os.close(fd)
        self._sent = 0
        self._buffer = b""

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            chunk = os.read(self._from_chrome, 1 << 16) if ready else b""
            assert chunk, "Chromium stopped answering"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        found: dict[str, Any] = json.loads(message)
        return found

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._sent += 1
        message = {"id": self._sent, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:  # events in between are not for us
            answer = self._next(deadline)
            if answer.get("id") == self._sent:
                assert "error" not in answer, answer
                result: dict[str, Any] = answer["result"]
                return result

    def open(self, url: str, width: int, height: int) -> str:
        """A tab at a phone's size (CSS pixels, 3 device pixels each) with `url` loaded."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        tab = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            tab,
            width=width,
            height=height,
            deviceScaleFactor=3,
            mobile=True,
        )
        self.call("Page.enable", tab)
        self.call("Page.navigate", tab, url=url)
        deadline = time.monotonic() + 60
        while self._next(deadline).get("method") != "Page.loadEventFired":
            pass
        return str(tab)

    def close(self) -> None:
        with contextlib.suppress(OSError, AssertionError):
            self.call("Browser.close")
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # only the browser this test started
        os.waitpid(self.pid, 0)


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
def test_the_page_fits_a_phone(chain: Chain, tmp_path: Path) -> None:
    page = chain.open(chain.tap()).text
    shown = figures(page)
    assert len(shown) == 11
    served = tmp_path / "page.html"  # the page as the hub served it
    served.write_text(page)
    phone = Phone(tmp_path / "profile")
    try:
        tab = phone.open(served.as_uri(), 390, 844)
        answer = phone.call("Runtime.evaluate", tab, expression=_MEASURE, returnByValue=True)
        measured = json.loads(answer["result"]["value"])
        shot = phone.call("Page.captureScreenshot", tab, captureBeyondViewport=True)
    finally:
        phone.close()
    assert measured["viewport"] == 390, measured
    assert measured["widest"] <= 390, measured  # no horizontal scrolling
    assert measured["figures"] == 11 and measured["unseen"] == [], measured
    assert measured["scripts"] == 0
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "phone.png").write_bytes(png)  # 1170 pixels wide: 390 at 3x


def test_the_chains_counter_is_the_one_that_moves(chain: Chain) -> None:
    chain.open(chain.tap())
    rows = chain.hub.store.execute(
        "SELECT counter FROM hub_sun WHERE uid = ?", (UID.hex().upper(),)
    )
    assert [int(counter) for (counter,) in rows] == [chain.tag.counter]
