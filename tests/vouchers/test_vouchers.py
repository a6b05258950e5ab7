# SPDX-License-Identifier: Apache-2.0
"""E-vouchers: codes, signed payloads, redemption rules, and fuzzing of both parsers."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk import Money, VoucherError
from loyaltysdk.ledger import Ledger
from loyaltysdk.rules import Basket, Line
from loyaltysdk.vouchers import (
    ALPHABET,
    BelowMinimumSpend,
    IssuerKey,
    Keyring,
    NothingEligible,
    OfflineAcceptanceRefused,
    RedemptionPolicy,
    UnknownIssuerKey,
    VoucherBook,
    VoucherCodeInvalid,
    VoucherExhausted,
    VoucherExpired,
    VoucherForged,
    VoucherIssuer,
    VoucherMalformed,
    VoucherNotFound,
    VoucherNotYetValid,
    VoucherRegistry,
    VoucherRevoked,
    VoucherTemplate,
    VoucherUsed,
    VoucherWrongCurrency,
    VoucherWrongStore,
    format_code,
    new_code,
    parse_code,
    read_payload,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = IssuerKey.generate("HQ-1")
KEYRING = Keyring({"HQ-1": KEY.public_key})


def template(**changes: Any) -> VoucherTemplate:
    base: dict[str, Any] = {
        "kind": "value",
        "amount": 1_000,
        "currency": "EUR",
        "valid_from": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=30),
    }
    return VoucherTemplate(**{**base, **changes})


def basket(*lines: Line, currency: str = "EUR") -> Basket:
    return Basket(currency, lines or (Line("A", 1, 2_500, category="food"),))


def book(ledger: Ledger, **options: Any) -> VoucherBook:
    return VoucherBook(ledger, KEYRING, clock=lambda: NOW, **options)


def snapshot(ledger: Ledger) -> Any:
    return [(b.account, b.posted, b.pending) for b in ledger.balances()], ledger.outbox_status()


# -- codes ---------------------------------------------------------------------------


def test_codes_are_grouped_case_insensitive_and_normalised() -> None:
    code = new_code()
    assert len(code) == 16 and set(code) <= set(ALPHABET)
    pretty = format_code(code)
    assert pretty.count("-") == 3
    assert parse_code(pretty.lower()) == code
    assert parse_code(" " + pretty.replace("-", " ") + " ") == code
    assert not set("01IOU") & set(ALPHABET)


@pytest.mark.parametrize("seed", range(5))
def test_every_single_substitution_and_adjacent_swap_is_rejected(seed: int) -> None:
    code = new_code()
    for position, original in enumerate(code):
        for symbol in ALPHABET:
            if symbol != original:
                typo = code[:position] + symbol + code[position + 1 :]
                with pytest.raises(VoucherCodeInvalid):
                    parse_code(typo)
    for position in range(len(code) - 1):
        a, b = code[position], code[position + 1]
        if a != b:
            swapped = code[:position] + b + a + code[position + 2 :]
            with pytest.raises(VoucherCodeInvalid):
                parse_code(swapped)


@given(st.text(max_size=40))
def test_code_parser_fuzz_raises_only_its_typed_error(text: str) -> None:
    with contextlib.suppress(VoucherCodeInvalid):
        parse_code(text)


# -- signed payloads -------------------------------------------------------------------


def test_payload_round_trip_and_forgeries() -> None:
    voucher = VoucherIssuer(KEY).issue(template(categories={"food"}, stores={"S1"}))
    assert read_payload(voucher.payload, KEYRING.keys) == voucher.terms
    body, _, signature = voucher.payload.rpartition(".")
    # Altered terms: the amount raised in the signed JSON.
    data = json.loads(base64.urlsafe_b64decode(body[4:] + "=" * (-len(body[4:]) % 4)))
    data["a"] = 100_000
    altered = "LV1." + base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(VoucherForged):
        read_payload(altered + "." + signature, KEYRING.keys)
    # A signature by another key claiming our key id.
    impostor = IssuerKey("HQ-1", IssuerKey.generate("X").private_key)
    with pytest.raises(VoucherForged):
        read_payload(VoucherIssuer(impostor).issue(template()).payload, KEYRING.keys)
    with pytest.raises(UnknownIssuerKey):
        read_payload(
            VoucherIssuer(IssuerKey.generate("HQ-2")).issue(template()).payload, KEYRING.keys
        )
    for junk in ("", "LV1.", "LV1.x.y.z", "LV2.abc.def", "LV1.!!!.???", "LV1.e30." + "A" * 86):
        with pytest.raises(VoucherError):
            read_payload(junk, KEYRING.keys)


@given(st.text(max_size=300))
def test_payload_parser_fuzz_raises_only_typed_errors(text: str) -> None:
    for candidate in (text, "LV1." + text):
        with contextlib.suppress(VoucherMalformed, UnknownIssuerKey, VoucherForged):
            read_payload(candidate, KEYRING.keys)


@given(st.binary(max_size=200))
def test_payload_parser_fuzz_with_encoded_bytes(raw: bytes) -> None:
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with contextlib.suppress(VoucherMalformed, UnknownIssuerKey, VoucherForged):
        read_payload(f"LV1.{encoded}.{encoded}", KEYRING.keys)


# -- redemption ----------------------------------------------------------------------------


@pytest.fixture
def ledger() -> Ledger:
    return Ledger.in_memory(origin="S1-T1")


def test_partial_voucher_leaves_the_rest_and_is_idempotent_per_receipt(ledger: Ledger) -> None:
    gift = VoucherIssuer(KEY).issue(template(mode="partial", amount=5_000))
    vouchers = book(ledger, policy=RedemptionPolicy(offline_max_value=10_000))
    first = vouchers.redeem(gift.payload, basket(), receipt="R-1", store="S1")
    assert (first.amount, first.remaining, first.offline) == (2_500, 2_500, True)
    again = vouchers.redeem(gift.payload, basket(), receipt="R-1", store="S1")
    assert again.transaction.seq == first.transaction.seq and again.amount == 2_500
    second = vouchers.redeem(gift.payload, basket(), receipt="R-2", store="S1", amount=1_000)
    assert (second.amount, second.remaining) == (1_000, 1_500)
    last = vouchers.redeem(gift.payload, basket(), receipt="R-3", store="S1")
    assert (last.amount, last.remaining) == (1_500, 0)
    before = snapshot(ledger)
    with pytest.raises(VoucherExhausted):
        vouchers.redeem(gift.payload, basket(), receipt="R-4", store="S1")
    assert snapshot(ledger) == before
    ledger.check()


def test_single_use_forfeits_the_rest_and_cannot_be_used_twice(ledger: Ledger) -> None:
    registry_voucher = VoucherIssuer(KEY).issue(template(amount=4_000))
    vouchers = book(ledger)
    vouchers.register(registry_voucher.terms)  # the hub told this till about it
    used = vouchers.redeem(registry_voucher.payload, basket(), receipt="R-1", store="S1")
    assert (used.amount, used.forfeited, used.remaining, used.offline) == (2_500, 1_500, 0, False)
    before = snapshot(ledger)
    with pytest.raises(VoucherUsed):
        vouchers.redeem(registry_voucher.payload, basket(), receipt="R-2", store="S1")
    assert snapshot(ledger) == before
    assert vouchers.redeem(registry_voucher.payload, basket(), receipt="R-1", store="S1") == used
    balances = {b.account: b.posted for b in ledger.balances()}
    assert balances["sys:vouchers:breakage:EUR"] == Money(1_500, "EUR")
    assert balances["sys:vouchers:tender:EUR"] == Money(2_500, "EUR")
    assert balances[f"voucher:{registry_voucher.code}"] == Money(0, "EUR")
    ledger.check()


def test_percent_voucher_on_eligible_categories(ledger: Ledger) -> None:
    coupon = VoucherIssuer(KEY).issue(
        template(kind="percent", amount=1_500, categories={"food"}, min_spend=1_000)
    )
    vouchers = book(ledger, policy=RedemptionPolicy(offline_max_value=1_000))
    shopping = basket(Line("A", 2, 1_000, category="food"), Line("B", 1, 5_000, category="toys"))
    result = vouchers.redeem(coupon.payload, shopping, receipt="R-1", store="S1")
    assert result.amount == 300 and result.offline  # 15 % of 2,000 food only


def test_human_code_needs_the_registry(ledger: Ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = VoucherRegistry(tmp_path / "vouchers.db")
    voucher = VoucherIssuer(KEY).issue(template())
    registry.add([voucher])
    with pytest.raises(VoucherNotFound):
        book(ledger).redeem(format_code(voucher.code), basket(), receipt="R-1", store="S1")
    vouchers = book(ledger, registry=registry)
    result = vouchers.redeem(format_code(voucher.code).lower(), basket(), receipt="R-1", store="S1")
    assert result.amount == 1_000 and not result.offline
    registry.revoke(voucher.code)
    assert registry.revoked() == {voucher.code}


def _refusals() -> list[tuple[str, dict[str, Any], dict[str, Any], type[Exception]]]:
    return [
        ("expired", {"valid_until": NOW}, {}, VoucherExpired),
        ("not yet valid", {"valid_from": NOW + timedelta(seconds=1)}, {}, VoucherNotYetValid),
        ("revoked", {}, {"revoked": True}, VoucherRevoked),
        ("wrong store", {"stores": {"S9"}}, {}, VoucherWrongStore),
        ("wrong currency", {"currency": "USD"}, {}, VoucherWrongCurrency),
        ("below minimum", {"min_spend": 2_501}, {}, BelowMinimumSpend),
        ("no eligible line", {"categories": {"toys"}}, {}, NothingEligible),
        (
            "unknown offline",
            {},
            {"policy": RedemptionPolicy(offline_max_value=999)},
            OfflineAcceptanceRefused,
        ),
        ("unknown key", {}, {"key": IssuerKey.generate("HQ-9")}, UnknownIssuerKey),
        ("forged", {}, {"forge": True}, VoucherForged),
        ("garbage", {}, {"payload": "LV1.garbage"}, VoucherMalformed),
        ("typo in code", {}, {"payload": "ABCD-EFGH-JKLM-NPQR"}, VoucherCodeInvalid),
    ]


@pytest.mark.parametrize(
    ("name", "terms", "setup", "error"), _refusals(), ids=[r[0] for r in _refusals()]
)
def test_refusals_are_typed_and_leave_the_ledger_unchanged(
    ledger: Ledger, name: str, terms: dict[str, Any], setup: dict[str, Any], error: type[Exception]
) -> None:
    issuer = VoucherIssuer(setup.get("key", KEY))
    voucher = issuer.issue(template(**terms))
    payload = setup.get("payload", voucher.payload)
    if setup.get("forge"):
        middle = len(payload) - 20  # inside the signature, away from its padding bits
        payload = (
            payload[:middle] + ("B" if payload[middle] != "B" else "C") + payload[middle + 1 :]
        )
    vouchers = book(
        ledger,
        policy=setup.get("policy", RedemptionPolicy(offline_max_value=10_000)),
        revoked={voucher.code} if setup.get("revoked") else (),
    )
    before = snapshot(ledger)
    with pytest.raises(error):
        vouchers.redeem(payload, basket(), receipt="R-1", store="S1")
    assert snapshot(ledger) == before


def test_batch_issue_into_the_registry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = VoucherRegistry(tmp_path / "vouchers.db")
    steps: list[int] = []
    issued = VoucherIssuer(KEY).issue_batch(template(campaign="XMAS"), 2_500, progress=steps.append)
    assert registry.add(issued) == 2_500
    assert sum(steps) == 2_500 and registry.count("XMAS") == 2_500
    code = registry.db.execute("SELECT code FROM vouchers LIMIT 1").fetchone()[0]
    assert read_payload(registry.get(code).payload, KEYRING.keys).campaign == "XMAS"
