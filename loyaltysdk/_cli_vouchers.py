# SPDX-License-Identifier: Apache-2.0
"""``loyalty voucher keygen|issue|show|verify|revoke``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from ._errors import ConfigurationError, LoyaltyError
from ._money import Money
from .vouchers import (
    IssuedVoucher,
    IssuerKey,
    Keyring,
    VoucherIssuer,
    VoucherRegistry,
    VoucherTemplate,
    format_code,
    parse_code,
    read_payload,
)

_DB = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="vouchers.db",
    show_default=True,
    help="The voucher registry (SQLite).",
)


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(f"{type(error).__name__}: {error}")


@click.group("voucher")
def voucher_group() -> None:
    """Issue, show and verify e-vouchers."""


@voucher_group.command("keygen")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-id", required=True, help="The id payloads name the key by (rotate by id).")
@click.option(
    "--keyring",
    type=click.Path(dir_okay=False, path_type=Path),
    default="keyring.json",
    show_default=True,
    help="Public keys for tills; the new key is added.",
)
def keygen(key_file: Path, key_id: str, keyring: Path) -> None:
    """Create an issuer signing key and add its public half to the tills' keyring."""
    try:
        key = IssuerKey.generate(key_id)
        key.save(key_file)
        ring = Keyring.load(keyring) if keyring.exists() else Keyring()
    except (OSError, LoyaltyError) as error:
        raise _fail(error) from error
    ring.add(key_id, key.public_key)
    ring.save(keyring)
    click.echo(f"key {key_id} written to {key_file} (keep it secret); public key in {keyring}")


def _basis_points(text: str) -> int:
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        raise click.BadParameter(f"not a percentage: {text}") from None
    if value != value.to_integral_value() or not 0 < value <= 10_000:
        raise click.BadParameter(f"a percentage between 0.01 and 100: {text}")
    return int(value)


@voucher_group.command("issue")
@click.option("--key", "key_file", type=click.Path(exists=True, path_type=Path), required=True)
@_DB
@click.option("--value", help="A value voucher of this amount (e.g. 10.00).")
@click.option("--percent", help="A percent voucher (e.g. 15 or 12.5).")
@click.option("--currency", required=True, help="ISO 4217 code.")
@click.option("--min-spend", default="0", show_default=True, help="Minimum eligible spend.")
@click.option("--valid-days", type=int, default=30, show_default=True, help="Valid from now.")
@click.option("--partial", is_flag=True, help="A balance that can be spent in parts.")
@click.option("--store", "stores", multiple=True, help="Valid only in these stores.")
@click.option("--category", "categories", multiple=True, help="Only for these categories.")
@click.option("--count", type=int, default=1, show_default=True, help="How many to issue.")
@click.option("--campaign", default="", help="Campaign name for a batch.")
@click.option(
    "--qr-dir", type=click.Path(file_okay=False, path_type=Path), help="Write QR images here."
)
@click.option("--qr-format", type=click.Choice(["svg", "png"]), default="svg", show_default=True)
def issue(
    key_file: Path,
    db_path: Path,
    value: str | None,
    percent: str | None,
    currency: str,
    min_spend: str,
    valid_days: int,
    partial: bool,
    stores: tuple[str, ...],
    categories: tuple[str, ...],
    count: int,
    campaign: str,
    qr_dir: Path | None,
    qr_format: str,
) -> None:
    """Issue one voucher or a campaign batch into the registry, with progress."""
    from tqdm import tqdm

    if (value is None) == (percent is None):
        raise click.UsageError("give exactly one of --value and --percent")
    if count < 1:
        raise click.BadParameter("--count must be at least 1")
    try:
        key = IssuerKey.load(key_file)
        amount = (
            Money.parse(value, currency).minor if value is not None else _basis_points(str(percent))
        )
        now = datetime.now(UTC)
        template = VoucherTemplate(
            kind="value" if value is not None else "percent",
            amount=amount,
            currency=currency,
            valid_from=now,
            valid_until=now + timedelta(days=valid_days),
            min_spend=Money.parse(min_spend, currency).minor,
            mode="partial" if partial else "single",
            stores=stores,
            categories=categories,
            campaign=campaign,
        )
        issuer = VoucherIssuer(key)
        issuer.issue(template)  # check the terms before starting a batch
    except (LoyaltyError, ValueError) as error:
        raise _fail(error) from error
    registry = VoucherRegistry(db_path)
    shown: list[IssuedVoucher] = []
    with tqdm(total=count, unit="voucher", disable=count < 1000) as bar:

        def kept(vouchers: Iterable[IssuedVoucher]) -> Iterator[IssuedVoucher]:
            for voucher in vouchers:
                if len(shown) < 10:
                    shown.append(voucher)
                if qr_dir is not None:
                    _write_qr(voucher, qr_dir / f"{voucher.code}.{qr_format}")
                yield voucher

        stored = registry.add(kept(issuer.issue_batch(template, count, progress=bar.update)))
    registry.close()
    for voucher in shown:
        click.echo(format_code(voucher.code))
    if count > len(shown):
        click.echo(f"... {count - len(shown)} more")
    click.echo(f"issued {stored} voucher(s) into {db_path}")


def _write_qr(voucher: IssuedVoucher, path: Path) -> None:
    import segno

    path.parent.mkdir(parents=True, exist_ok=True)
    segno.make(voucher.payload, error="m").save(str(path), scale=4)


@voucher_group.command("show")
@click.argument("code")
@_DB
@click.option("--qr", "qr_file", type=click.Path(dir_okay=False, path_type=Path), help="SVG/PNG.")
def show(code: str, db_path: Path, qr_file: Path | None) -> None:
    """Show a voucher from the registry, and optionally write its QR image."""
    try:
        registry = VoucherRegistry(db_path)
        voucher = registry.get(parse_code(code))
        revoked = voucher.code in registry.revoked()
        registry.close()
    except LoyaltyError as error:
        raise _fail(error) from error
    _print_terms(voucher)
    if revoked:
        click.echo("status:   REVOKED")
    if qr_file is not None:
        _write_qr(voucher, qr_file)
        click.echo(f"QR image: {qr_file}")


def _print_terms(voucher: IssuedVoucher) -> None:
    terms = voucher.terms
    worth = (
        Money(terms.amount, terms.currency).format()
        if terms.kind == "value"
        else f"{Decimal(terms.amount) / 100}% off"
    )
    click.echo(f"code:     {format_code(terms.code)}")
    click.echo(
        f"worth:    {worth} ({'partial balance' if terms.mode == 'partial' else 'single use'})"
    )
    click.echo(f"valid:    {terms.valid_from.isoformat()} .. {terms.valid_until.isoformat()}")
    if terms.min_spend:
        click.echo(f"minimum:  {Money(terms.min_spend, terms.currency).format()}")
    if terms.stores:
        click.echo(f"stores:   {', '.join(sorted(terms.stores))}")
    if terms.categories:
        click.echo(f"on:       {', '.join(sorted(terms.categories))}")
    if terms.campaign:
        click.echo(f"campaign: {terms.campaign}")
    click.echo(f"issuer:   key {terms.key_id}")
    click.echo(f"payload:  {voucher.payload}")


@voucher_group.command("verify")
@click.argument("scanned")
@click.option(
    "--keyring",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="keyring.json",
    show_default=True,
)
def verify(scanned: str, keyring: Path) -> None:
    """Verify a scanned QR payload offline with the issuers' public keys (exit 1 if not genuine)."""
    try:
        ring = Keyring.load(keyring)
        terms = read_payload(scanned.strip(), ring.keys)
    except (LoyaltyError, ConfigurationError) as error:
        raise _fail(error) from error
    click.echo("genuine")
    _print_terms(IssuedVoucher(terms, scanned.strip()))


@voucher_group.command("revoke")
@click.argument("code")
@_DB
def revoke(code: str, db_path: Path) -> None:
    """Revoke a voucher; tills refuse it once they receive the revocation list."""
    try:
        registry = VoucherRegistry(db_path)
        registry.revoke(parse_code(code))
        registry.close()
    except LoyaltyError as error:
        raise _fail(error) from error
    click.echo(f"revoked {format_code(parse_code(code))}")
