# SPDX-License-Identifier: Apache-2.0
"""``loyalty hub serve|admin-token|add-till``, ``loyalty till register``, ``sync``, ``status``."""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ._errors import LoyaltyError
from ._extras import require

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The till's TOML config: db, store, till_id, currency, timezone, rules, hub_url,"
    " credential_file; for cards keystore (passphrase from $LOYALTY_KEYSTORE_PASSPHRASE)"
    " and, for `till serve`, reader.",
)


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(f"{type(error).__name__}: {error}")


@click.group("hub")
def hub_group() -> None:
    """Run and administer the hub (head office's service)."""


def _open_hub(db: str) -> Any:
    from .hub import Hub, open_store

    try:
        return Hub(open_store(db))
    except LoyaltyError as error:
        raise _fail(error) from error


_DB = click.option(
    "--db",
    default=lambda: os.environ.get("LOYALTY_HUB_DB", "hub.db"),
    show_default="hub.db or $LOYALTY_HUB_DB",
    help="A SQLite path or a postgresql:// URL.",
)


@hub_group.command("serve")
@_DB
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Processes (PostgreSQL).")
def serve(db: str, host: str, port: int, workers: int) -> None:
    """Serve the hub's HTTP API (OpenAPI schema at /openapi.json, docs at /docs)."""
    uvicorn = require("uvicorn", extra="hub", feature="loyalty hub serve")

    from .hub import create_app

    if workers > 1:
        os.environ["LOYALTY_HUB_DB"] = db
        uvicorn.run(
            "loyaltysdk._cli_hub:_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
        )
        return
    # Access logs are off: request lines are harmless, but nothing near a
    # credential is ever written out.
    uvicorn.run(create_app(_open_hub(db)), host=host, port=port, access_log=False)


def _app_from_env() -> Any:
    from .hub import create_app

    return create_app(_open_hub(os.environ["LOYALTY_HUB_DB"]))


@hub_group.command("admin-token")
@_DB
@click.option("--name", default="head-office", show_default=True)
def admin_token(db: str, name: str) -> None:
    """Create a head-office credential (printed once)."""
    click.echo(_open_hub(db).add_admin(name))


@hub_group.command("add-till")
@click.argument("till_id")
@_DB
def add_till(till_id: str, db: str) -> None:
    """Allow a till to register; prints its one-time enrolment token."""
    try:
        click.echo(_open_hub(db).create_till(till_id))
    except LoyaltyError as error:
        raise _fail(error) from error


@hub_group.command("tills")
@_DB
@click.option(
    "--offline-after",
    type=int,
    default=900,
    show_default=True,
    help="Seconds without a sync after which a till counts as offline.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tills(db: str, offline_after: int, as_json: bool) -> None:
    """Every till: last sync, acknowledged sequence, outbox lag, offline since, exceptions."""
    import attrs

    rows = _open_hub(db).tills(offline_after=offline_after)
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo("no tills (add one with `loyalty hub add-till`)")
        return
    header = ("till", "last sync (UTC)", "acked", "lag", "offline since", "exceptions")
    table = [
        (
            r.till_id,
            (r.last_sync or "never")[:19],
            str(r.acked),
            str(r.lag),
            (r.offline_since or "-")[:19] if r.registered_at else "not registered",
            str(r.exceptions),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    for row in (header, *table):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _config(path: Path) -> dict[str, Any]:
    data = tomllib.loads(path.read_text())
    base = path.parent
    for key in ("db", "rules", "credential_file", "keystore"):
        if key in data and not Path(data[key]).is_absolute():
            data[key] = str(base / data[key])
    return data


def _till(config: dict[str, Any]) -> Any:
    from . import Till, load_rules

    try:
        purse = None
        if "keystore" in config:  # the chain's card keys: stored-value cards at this till
            from ._cli_cards import _passphrase
            from .cards.keystore import SoftwareKeyStore
            from .cards.purse import Purse

            purse = Purse(SoftwareKeyStore.open(config["keystore"], _passphrase()))
        return Till.open(
            config["db"],
            store=config["store"],
            till_id=config["till_id"],
            currency=config["currency"],
            timezone=config["timezone"],
            rules=load_rules(config["rules"]),
            purse=purse,
        )
    except KeyError as error:
        raise click.ClickException(f"the till config lacks {error}") from error
    except LoyaltyError as error:
        raise _fail(error) from error


@click.group("till")
def till_group() -> None:
    """Till set-up."""


@till_group.command("serve")
@_CONFIG
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback unless you mean it.")
@click.option("--port", type=int, default=8765, show_default=True)
def till_serve(config_path: Path, host: str, port: int) -> None:
    """Serve this till's checkout API over HTTP (OpenAPI at /openapi.json).

    Clients send `Authorization: Bearer <token>`, the token read from the
    config's token_file (made, mode 0600, on first start if missing).
    """
    import secrets

    uvicorn = require("uvicorn", extra="hub", feature="loyalty till serve")
    from .service import create_service_app

    config = _config(config_path)
    token_file = Path(config.get("token_file") or config_path.with_suffix(".token"))
    if not token_file.is_absolute():
        token_file = config_path.parent / token_file
    if not token_file.exists():
        token_file.touch(mode=0o600)
        token_file.write_text(secrets.token_urlsafe(32) + "\n")
        click.echo(f"made a token in {token_file}", err=True)
    token = token_file.read_text().strip()
    reader = None
    if config.get("reader"):
        from .cards import open_reader

        try:
            reader = open_reader(config["reader"])
        except LoyaltyError as error:
            raise _fail(error) from error
    till = _till(config)
    try:
        app = create_service_app(till, token, reader)
        uvicorn.run(app, host=host, port=port, access_log=False)
    finally:
        till.close()
        if reader is not None:
            reader.close()


@till_group.command("register")
@_CONFIG
@click.option("--token", required=True, help="The enrolment token from `loyalty hub add-till`.")
def till_register(config_path: Path, token: str) -> None:
    """Register this till with the hub: keep its credential (mode 0600) and the hub's update key."""
    from .sync import register

    config = _config(config_path)
    try:
        registration = register(config["hub_url"], config["till_id"], token)
    except LoyaltyError as error:
        raise _fail(error) from error
    path = Path(config["credential_file"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(registration.credential)
    till = _till(config)
    try:  # the key every later update must be signed with
        till.trust_hub(registration.update_key)
    finally:
        till.close()
    click.echo(f"registered {config['till_id']}; credential in {path}")


@click.command("sync")
@_CONFIG
def sync(config_path: Path) -> None:
    """Run one sync round: push the outbox, pull updates."""
    from .sync import HttpLink, Syncer

    config = _config(config_path)
    till = _till(config)
    try:
        credential = Path(config["credential_file"]).read_text().strip()
        report = Syncer(till, HttpLink(config["hub_url"], credential)).run_once()
    except (LoyaltyError, OSError) as error:
        raise _fail(error) from error
    finally:
        till.close()
    click.echo(
        f"pushed {report.pushed}, hub acknowledged up to {report.acked}, pulled {report.pulled}"
        f" update(s); {report.waiting} waiting"
    )


def _is_hub_file(path: Path) -> bool:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return bool(
                conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'hub_tills'").fetchone()
            )
    except sqlite3.DatabaseError:
        return False


@click.command("status")
@click.argument("db", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(db: Path, as_json: bool) -> None:
    """The outbox: how many records wait for the hub and how old the oldest is."""
    from .till import sync_status_of

    if _is_hub_file(db):
        raise click.ClickException(
            f"{db} is a hub's database, not a till's: see its tills with"
            f" `loyalty hub tills --db {db}`"
        )
    try:
        found = sync_status_of(db)
    except LoyaltyError as error:
        raise _fail(error) from error
    oldest_at = datetime.fromisoformat(found["oldest_at"]) if found["oldest_at"] else None
    age = (datetime.now(UTC) - oldest_at).total_seconds() if oldest_at else None
    data = {
        "waiting": found["waiting"],
        "oldest_age_seconds": round(age, 1) if age is not None else None,
        "last_seq": found["last_seq"],
        "acked_seq": found["acked_seq"],
        "pull_cursor": found["pull_cursor"],
        "last_ok": found["last_ok"],
        "update_problems": found["update_problems"],
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    oldest = f", oldest {data['oldest_age_seconds']} s old" if age is not None else ""
    click.echo(f"outbox: {data['waiting']} waiting{oldest}")
    click.echo(f"sequence: last {data['last_seq']}, acknowledged by the hub {data['acked_seq']}")
    click.echo(f"updates: pulled up to cursor {data['pull_cursor']}")
    if data["update_problems"]:
        click.echo(
            f"updates not applied: {data['update_problems']} (see the till's update_problems)"
        )
