# SPDX-License-Identifier: Apache-2.0
"""A member's own page: what the hub holds for whoever tapped the card, once per tap.

A tap makes the phone open the card's SUN URL (`GET /t?picc_data=...&cmac=...`).
The hub checks it with its SUN keys against the chain's counter for the tag
(`hub_sun`, the one every till's online identify advances), in one
transaction with reading the figures, so a URL shows the account once: a
second open, a copy opened elsewhere or a URL a till has already taken shows
the same neutral page as a forged one, a blocked or replaced card's, or an
unknown card's. That page says nothing about which check failed.

The page is server-rendered HTML with its CSS inline: no script, nothing
loaded from elsewhere, every value escaped, amounts formatted from integers.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import html
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any

import attrs

from .._errors import UnknownCurrency
from .._money import POINTS_UNIT, Money
from ..cards.ntag424 import CounterStore, SunError, SunVerifier
from ..rules import RuleSet, TierPolicy, load_rules, period_of
from ._book import HUB
from ._directory import Directory
from ._service import Hub

#: How many of the latest days with spend the page lists.
VISITS = 10
#: How far back visits are looked for: the two years a till's snapshot carries too.
_HORIZON_DAYS = 800
_DAY_US = 86_400_000_000
_EPOCH = date(1970, 1, 1).toordinal()
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ChainCounters:
    """The chain's SUN counters (`hub_sun`) as a `CounterStore`: call inside a store transaction.

    A verifier made on it refuses any counter a till or an earlier page
    already took for the tag, in whichever store or hub process.
    """

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def advance(self, uid: bytes, counter: int) -> bool:
        return self._directory.advance_sun(uid.hex().upper(), counter)


# -- what the page shows -----------------------------------------------------------------


@attrs.frozen
class TierStanding:
    """A member's tier as the chain's spend decides it, and what the next one needs.

    Attributes:
        tier: the tier's name.
        next_tier: the next one up, or None at the top.
        needs: goods spend (minor units of the rules' currency) still missing
            for `next_tier` within the rolling window.
        window_days: how far back spend counts.
    """

    tier: str
    next_tier: str | None
    needs: int
    window_days: int


@attrs.frozen
class MemberFigures:
    """Everything one member's page shows; amounts in minor units (points for PTS)."""

    member: str
    card: str
    as_of: datetime
    points: int
    pending: int
    #: (last day to use them, points), soonest first.
    expiring: tuple[tuple[date, int], ...]
    #: Points in lots that never expire.
    lasting: int
    #: (currency, available), by currency.
    wallets: tuple[tuple[str, int], ...]
    #: The tapped card's shadow per currency if it is a stored-value card, else None.
    card_value: tuple[tuple[str, int], ...] | None
    #: The currency spend is counted in (the rules'), None without rules.
    currency: str | None
    tier: TierStanding | None
    #: (day, spend, points earned), newest first.
    visits: tuple[tuple[date, int, int], ...]


def tier_standing(policy: TierPolicy, spend: Mapping[date, int], today: date) -> TierStanding:
    """Where the chain's goods spend puts a member, decided as a till decides it.

    A review, after each `policy.review` period, sets the tier from the
    rolling spend up to the period's last day, up or down; between reviews a
    tier only rises, as soon as the rolling spend reaches a threshold
    (`loyaltysdk/till/_members.py`). Only spend decides here: a tier given at
    enrolment lasts at a till until its first review, which the hub cannot
    date, so it is not counted.
    """
    days = sorted(spend)
    totals = [0, *accumulate(spend[day] for day in days)]

    def rolling(last: date) -> int:
        first = last - timedelta(days=policy.window_days - 1)
        return totals[bisect.bisect_right(days, last)] - totals[bisect.bisect_left(days, first)]

    reviewed = period_of(policy.review, today)[1] - timedelta(days=1)
    tier = policy.qualified(rolling(reviewed))
    for day in days[bisect.bisect_right(days, reviewed) : bisect.bisect_right(days, today)]:
        tier = policy.upgrade(tier, rolling(day))
    now = rolling(today)
    tier = policy.upgrade(tier, now)
    rank = policy.rank(tier)
    if rank + 1 == len(policy.levels):
        return TierStanding(tier, None, 0, policy.window_days)
    following = policy.levels[rank + 1]
    return TierStanding(tier, following.name, following.min_spend - now, policy.window_days)


def chain_rules(hub: Hub) -> RuleSet | None:
    """The rules the chain runs: the highest version published (a till takes only a newer one).

    A version a till would refuse (one an older hub let through) is passed
    over, as the tills keep what they had.
    """
    candidates: list[tuple[int, int, Any]] = []
    for cursor, text in hub.store.execute(
        "SELECT cursor, payload FROM hub_updates WHERE kind = 'rules'"
    ):
        document = json.loads(text)
        version = document.get("version") if isinstance(document, dict) else None
        if type(version) is int:
            candidates.append((-version, int(cursor), document))
    for _, _, document in sorted(candidates, key=lambda c: c[:2]):
        try:
            return load_rules(document)
        except (ValueError, TypeError):
            continue
    return None


def _last_day(expires_us: int) -> date:
    """The last day a lot's points can be spent, from the moment they expire.

    A till's points expire at the start of a local day, midnight in its
    store's zone. The UTC midnight nearest that moment is that very day for
    any zone from UTC-12 to UTC+12, so the hub, which knows no zone, finds it;
    the day before is the member's last day to use them.
    """
    day = _EPOCH + (expires_us + _DAY_US // 2) // _DAY_US - 1
    return date.fromordinal(min(day, date.max.toordinal()))


def member_figures(
    hub: Hub, sun: Callable[[CounterStore], SunVerifier], query: str
) -> MemberFigures | None:
    """Verify a tap's SUN query and read its member's figures, in one transaction.

    Returns None, having shown nothing, for a URL that is not a genuine tap
    now: replayed (its counter is not above the chain's), forged or garbled,
    or for a card the hub does not know as an active one.
    """
    if not query.isascii():  # a genuine query is hex and ASCII names; the MAC input is ASCII
        return None
    verifier = sun(ChainCounters(hub.directory))
    now = datetime.fromtimestamp(hub._clock(), UTC)  # the hub's clock: tests set it
    today = now.date()
    with hub.store.transaction():
        try:
            tap = verifier.verify(f"?{query}")
        except SunError:
            return None
        uid = tap.uid.hex().upper()
        card = hub.store.execute("SELECT member, kind, status FROM hub_cards WHERE uid = ?", (uid,))
        if not card or card[0][2] != "active":
            return None
        member, kind = str(card[0][0]), str(card[0][1])
        card_accounts = []
        if kind == "purse":
            card_accounts = [
                account
                for (account,) in hub.store.execute(
                    "SELECT account FROM hub_balances WHERE account LIKE ?", (f"card:{uid}:%",)
                )
            ]
        # Expired lots are booked first; holds of every till count against what is available.
        snapshot = hub.book.snapshot(HUB, member, card_accounts, 0)
        rules = chain_rules(hub)
        policy = rules.tiers if rules is not None else None
        since = today - timedelta(days=_HORIZON_DAYS)
        if policy is not None:
            reviewed = period_of(policy.review, today)[1] - timedelta(days=1)
            since = min(since, reviewed - timedelta(days=policy.window_days))
        days = {
            date.fromisoformat(day): figures
            for day, figures in hub.directory.days(member, since.isoformat()).items()
        }
    accounts = {
        name: (figure.unit, figure.posted - figure.held)
        for name, figure in snapshot.accounts.items()
    }
    points = f"member:{member}:points"
    expiring: dict[date, int] = {}
    lasting = 0
    for left, expires in snapshot.lots.get(points, ()):
        if expires is None:
            lasting += left
        else:
            last = _last_day(expires)
            expiring[last] = expiring.get(last, 0) + left
    wallet = f"member:{member}:wallet:"
    return MemberFigures(
        member=member,
        card=uid,
        as_of=now,
        points=accounts.get(points, (POINTS_UNIT, 0))[1],
        pending=accounts.get(f"member:{member}:points-pending", (POINTS_UNIT, 0))[1],
        expiring=tuple(sorted(expiring.items())),
        lasting=lasting,
        wallets=tuple(sorted(v for a, v in accounts.items() if a.startswith(wallet))),
        card_value=tuple(sorted(accounts[a] for a in card_accounts if a in accounts))
        if kind == "purse"
        else None,
        currency=rules.currency if rules is not None else None,
        tier=tier_standing(policy, {d: s for d, (s, _) in days.items()}, today)
        if policy is not None
        else None,
        visits=tuple(
            (day, spend, earned)
            for day, (spend, earned) in sorted(days.items(), reverse=True)
            if spend
        )[:VISITS],
    )


# -- formatting ----------------------------------------------------------------------------


def format_amount(minor: int, unit: str) -> str:
    """An amount for people: ``1,234.50 EUR``, ``1,235 JPY``, ``1.234 KWD``, ``40 points``.

    Integer arithmetic only (ISO 4217 exponents), so the largest amount is exact.
    """
    sign = "-" if minor < 0 else ""
    if unit == POINTS_UNIT:
        return f"{sign}{abs(minor):,} {'point' if abs(minor) == 1 else 'points'}"
    try:
        return f"{Money(minor, unit).format(grouped=True)} {unit}"
    except UnknownCurrency:  # the hub books only ISO 4217 codes; shown as stored if not
        return f"{sign}{abs(minor):,} {unit} (minor units)"


def _day(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(day: date) -> str:
    return f'<time datetime="{_e(day.isoformat())}">{_e(_day(day))}</time>'


def _figure(name: str, text: str) -> str:
    return f'<span class="figure" data-figure="{_e(name)}">{_e(text)}</span>'


_CSS = """\
:root{color-scheme:light dark;--ink:#1b1b1b;--soft:#595959;--line:#d8d8d8;--box:#f4f4f1;\
--bg:#fff;--mark:#0a5bab}
@media (prefers-color-scheme:dark){:root{--ink:#f1f1f1;--soft:#b4b4b4;--line:#3b3b3b;\
--box:#1d1d1d;--bg:#111;--mark:#82b8ff}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);\
font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:32rem;margin:0 auto;padding:1rem;overflow-wrap:anywhere}
h1{font-size:1.4rem;margin:.5rem 0 .25rem}
h2{font-size:.8rem;letter-spacing:.06em;text-transform:uppercase;color:var(--soft);\
margin:0 0 .3rem}
section{background:var(--box);border-radius:.75rem;padding:.8rem 1rem;margin:0 0 .75rem}
p{margin:.3rem 0}
.big{font-size:1.9rem;font-weight:700;line-height:1.2;color:var(--mark)}
.big small{font-size:1rem;font-weight:400;color:var(--ink)}
.soft{color:var(--soft);font-size:.9rem}
table{width:100%;border-collapse:collapse;margin-top:.3rem}
td{padding:.35rem 0;border-top:1px solid var(--line);vertical-align:top}
td+td{padding-left:.75rem}
.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
"""
# Inline CSS allowed by its hash: the page runs no script and loads nothing, whatever it holds.
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

#: Headers of every page: never cached (a second open must ask the hub again), no referrer
#: (the URL is the tap), nothing but the page's own CSS, never framed or indexed.
PAGE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; base-uri 'none';"
        " form-action 'none'; frame-ancestors 'none'"
    ),
}


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def used_page() -> str:
    """The neutral page: for a used, copied or forged link, or a card that shows nothing."""
    return _page(
        "Tap your card again",
        "<h1>This link has been used</h1>\n"
        "<section>\n<p>Each tap of your card opens your account once, so a link that was"
        " opened before, or copied, shows nothing.</p>\n"
        "<p><strong>Tap your card on your phone again</strong> to see your points and"
        " balances.</p>\n</section>\n"
        '<p class="soft">If this keeps happening, ask at any of our stores.</p>\n',
    )


def member_page(figures: MemberFigures) -> str:
    """The member's page for their figures."""
    parts = [
        "<h1>Your account</h1>\n",
        f'<p class="soft">Member {_e(figures.member)} · card ending {_e(figures.card[-4:])}</p>\n',
    ]
    parts.append(_points(figures))
    wallets = "".join(
        f'<p class="big">{_figure(f"wallet-{cur}", format_amount(minor, cur))}</p>\n'
        for cur, minor in figures.wallets
    )
    parts.append(
        "<section>\n<h2>Wallet</h2>\n"
        + (wallets or "<p>Nothing in your wallet.</p>\n")
        + "</section>\n"
    )
    if figures.card_value is not None:
        values = "".join(
            f'<p class="big">{_figure(f"card-{cur}", format_amount(minor, cur))}</p>\n'
            for cur, minor in figures.card_value
        )
        parts.append(
            "<section>\n<h2>On this card</h2>\n"
            + (values or "<p>Nothing loaded yet.</p>\n")
            + '<p class="soft">As the stores last reported it; the card itself holds the'
            " exact value.</p>\n</section>\n"
        )
    if figures.tier is not None and figures.currency is not None:  # tiers come with rules
        parts.append(_tier(figures.tier, figures.currency))
    parts.append(_visits(figures))
    stamp = f"{_day(figures.as_of.date())}, {figures.as_of:%H:%M} UTC"
    parts.append(
        f'<p class="soft">As of {_e(stamp)}. A purchase shows here once its store\'s till'
        " has synced. This link opened your account once: tap your card to see it again.</p>\n"
    )
    return _page("Your loyalty account", "".join(parts))


def _points(figures: MemberFigures) -> str:
    rows = "".join(
        f"<tr><td>{_figure(f'expiring-{day.isoformat()}', format_amount(left, POINTS_UNIT))}"
        f'</td><td class="n">usable until {_time(day)}</td></tr>\n'
        for day, left in figures.expiring
    )
    if figures.lasting and rows:
        rows += (
            f"<tr><td>{_e(format_amount(figures.lasting, POINTS_UNIT))}</td>"
            '<td class="n">do not expire</td></tr>\n'
        )
    text = [
        "<section>\n<h2>Points</h2>\n",
        f'<p class="big">{_figure("points", f"{figures.points:,}")} <small>available</small></p>\n',
    ]
    if figures.pending > 0:
        text.append(f"<p>{_e(format_amount(figures.pending, POINTS_UNIT))} on their way.</p>\n")
    if rows:
        text.append(f"<table>\n{rows}</table>\n")
    elif figures.points > 0:
        text.append("<p>Your points do not expire.</p>\n")
    text.append("</section>\n")
    return "".join(text)


def _tier(standing: TierStanding, currency: str) -> str:
    text = [
        "<section>\n<h2>Tier</h2>\n",
        f'<p class="big">{_figure("tier", standing.tier)}</p>\n',
    ]
    if standing.next_tier is None:
        text.append("<p>The top tier: nothing more to reach.</p>\n")
    else:
        text.append(
            f"<p>Spend {_figure('tier-needs', format_amount(standing.needs, currency))} more"
            f" to reach <strong>{_e(standing.next_tier)}</strong> (spend counts for"
            f" {_e(standing.window_days)} days).</p>\n"
        )
    text.append("</section>\n")
    return "".join(text)


def _visits(figures: MemberFigures) -> str:
    if not figures.visits:
        return "<section>\n<h2>Recent visits</h2>\n<p>No visits yet.</p>\n</section>\n"
    rows = []
    for day, spend, earned in figures.visits:
        # Spend is in the rules' currency; without rules the hub cannot say which.
        amount = (
            f'<td class="n">{_figure(f"spend-{day}", format_amount(spend, figures.currency))}</td>'
            if figures.currency
            else ""
        )
        rows.append(
            f'<tr><td>{_time(day)}</td>{amount}<td class="n">{_e(f"{earned:+,} pts")}</td></tr>\n'
        )
    return f"<section>\n<h2>Recent visits</h2>\n<table>\n{''.join(rows)}</table>\n</section>\n"
