# SPDX-License-Identifier: Apache-2.0
"""``loyalty readers``, ``loyalty card info``, ``loyalty keystore``, ``loyalty sim card``."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from ._errors import CardError, LoyaltyError, ReaderError
from .cards.keystore import KeyRole, SoftwareKeyStore
from .cards.reader import Reader, open_reader
from .cards.transport import CardInfo, Transport

_PASSPHRASE_ENV = "LOYALTY_KEYSTORE_PASSPHRASE"  # noqa: S105 - the variable name, not a secret


def _passphrase(confirm: bool = False) -> str:
    value = os.environ.get(_PASSPHRASE_ENV)
    if value:
        return value
    return str(click.prompt("keystore passphrase", hide_input=True, confirmation_prompt=confirm))


def _open_keystore(path: Path | None) -> SoftwareKeyStore | None:
    if path is None:
        return None
    try:
        return SoftwareKeyStore.open(path, _passphrase())
    except LoyaltyError as error:
        raise click.ClickException(str(error)) from error


_KEYSTORE = click.option(
    "--keystore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Keystore file for reading our applications (passphrase from ${_PASSPHRASE_ENV}).",
)


@click.command("readers")
def readers() -> None:
    """List the PC/SC readers and the card in each, if any."""
    try:
        from .drivers import pcsc
    except ImportError as error:
        raise click.ClickException(f"PC/SC needs loyaltysdk[pcsc]: {error}") from error
    try:
        names = pcsc.list_readers()
    except ReaderError as error:
        raise click.ClickException(str(error)) from error
    if not names:
        click.echo("no readers")
        return
    for name in names:
        reader = pcsc.PcscReader(name)
        try:
            info = reader.wait_for_card(0.5)
            card = f"{pcsc.identify_atr(info.atr)}, ATR {info.atr.hex().upper()}"
        except ReaderError:
            card = "no card"
        finally:
            reader.close()
        click.echo(f"{name}: {card}")


@click.group("card")
def card_group() -> None:
    """Look at the card on a reader."""


@card_group.command("info")
@click.option(
    "--reader",
    "reader_path",
    default="pcsc:",
    show_default=True,
    help="Reader path: pcsc:NAME-PART, or sim:desfire / sim:ntag424.",
)
@click.option("--wait", type=float, default=10.0, show_default=True, help="Seconds to wait.")
@click.option("--records", type=int, default=5, show_default=True, help="Log records to show.")
@_KEYSTORE
def card_info(reader_path: str, wait: float, records: int, keystore: Path | None) -> None:
    """Show a tapped card's type and UID, and for our applications balance and log."""
    keys = _open_keystore(keystore)
    try:
        reader = open_reader(reader_path)
    except LoyaltyError as error:
        raise click.ClickException(str(error)) from error
    try:
        info = reader.wait_for_card(wait)
        transport = reader.connect()
        info = reader.wait_for_card(0)
        _describe(reader, info, transport, keys, records)
    except LoyaltyError as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from error
    finally:
        reader.close()


def _describe(
    reader: Reader,
    info: CardInfo,
    transport: Transport,
    keys: SoftwareKeyStore | None,
    records: int,
) -> None:
    from .cards.desfire import DesfireClient
    from .cards.ntag424 import MemoryCounterStore, SunVerifier, read_sun_url
    from .cards.purse import Purse

    click.echo(f"reader: {reader.name}")
    click.echo(f"ATR:    {info.atr.hex().upper()}")
    uid = info.uid
    click.echo(f"UID:    {uid.hex().upper() if uid else 'unknown'}")
    try:
        version = DesfireClient(transport).get_version()
    except CardError:
        version = None
    # An NTAG 424 DNA answers GetVersion too, as hardware type 04 (DESFire is 01).
    if version is not None and version.hardware_type == 0x01:
        click.echo(
            f"type:   MIFARE DESFire {version.generation} ({version.storage_size:#x} storage)"
        )
        uid = uid or version.uid
        if keys is None:
            click.echo("(give --keystore to read the loyalty application)")
            return
        state = Purse(keys).read(transport, uid, records=records)
        click.echo(f"balance: {state.balance} (minor units)")
        for record in state.records:
            click.echo(
                f"  {record.kind.name.lower():15} {record.amount:>8} -> {record.balance_after:>8}"
                f"  till {record.till:8} receipt {record.receipt} at {record.at}"
            )
        return
    url = read_sun_url(transport)
    click.echo("type:   NTAG 424 DNA (or another Type 4 tag)")
    click.echo(f"URL:    {url}")
    if keys is not None:

        def file_key(tag_uid: bytes) -> bytes:
            return keys.card_key(KeyRole.SUN, tag_uid, b"")

        meta = keys.card_key(KeyRole.SUN, b"", b"")
        tap = SunVerifier(meta, file_key, MemoryCounterStore()).verify(url)
        click.echo(f"SUN:    genuine; UID {tap.uid.hex().upper()}, read counter {tap.counter}")


@click.group("keystore")
def keystore_group() -> None:
    """Create the encrypted keystore that card keys are derived from."""


@keystore_group.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--system-id", required=True, help="The chain's system identifier (ASCII).")
def keystore_create(path: Path, system_id: str) -> None:
    """Create a keystore with fresh random master keys (refuses to overwrite)."""
    if path.exists():
        raise click.ClickException(f"{path} exists; refusing to overwrite keys")
    SoftwareKeyStore.generate(system_id.encode("ascii")).save(path, _passphrase(confirm=True))
    click.echo(f"created {path} with master keys for: {', '.join(r.value for r in KeyRole)}")


@click.group("sim")
def sim_group() -> None:
    """Simulated cards for testing without hardware."""


@sim_group.command("card")
@click.option("--type", "card_type", type=click.Choice(["desfire", "ntag424"]), required=True)
@click.option(
    "--file",
    "card_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the card in this JSON file (created if missing, saved after each change).",
)
@click.option("--port", type=int, default=35963, show_default=True, help="vpcd's TCP port.")
@click.option("--issue", is_flag=True, help="Personalise a new DESFire card (needs --keystore).")
@_KEYSTORE
def sim_card(
    card_type: str, card_file: Path | None, port: int, issue: bool, keystore: Path | None
) -> None:
    """Serve a simulated card to vsmartcard's vpcd, so pcscd and pyscard see a reader.

    Reads commands on standard input: `remove`, `insert`, `tear N` (tear the
    card away at its N-th next APDU), `quit`. The end of input means no more
    commands: the card stays in until `quit`, SIGINT or SIGTERM, so
    `loyalty sim card --type desfire &` serves a script's tests.
    """
    from .simulators.desfire import VirtualDesfire
    from .simulators.ntag424 import VirtualNtag424
    from .simulators.vpcd import VpcdBridge

    keys = _open_keystore(keystore)
    card: VirtualDesfire | VirtualNtag424
    if card_type == "desfire":
        if card_file is not None and card_file.exists():
            card = VirtualDesfire.load(card_file, autosave=True)
        else:
            card = VirtualDesfire()
            if card_file is not None:
                card.path = card_file
                card.save(card_file)
    elif card_file is not None and card_file.exists():
        card = VirtualNtag424.load(card_file)
    else:
        if keys is not None:
            uid = b"\x04" + os.urandom(6)
            card = VirtualNtag424(
                uid,
                meta_read_key=keys.card_key(KeyRole.SUN, b"", b""),
                file_read_key=keys.card_key(KeyRole.SUN, uid, b""),
            )
        else:
            card = VirtualNtag424()
        if card_file is not None:
            card.save(card_file)
    if issue:
        _issue_in_process(card, keys)
    bridge = VpcdBridge(card, port=port)
    try:
        bridge.insert()
    except ReaderError as error:
        raise click.ClickException(f"{error} (start pcscd with the vpcd driver)") from error
    click.echo(f"{card_type} card {card.uid.hex().upper()} inserted in vpcd on port {port}")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] == "remove":
                bridge.remove()
                click.echo("removed")
            elif words[0] == "insert":
                bridge.insert()
                click.echo("inserted")
            elif words[0] == "tear" and len(words) == 2 and isinstance(card, VirtualDesfire):
                card.faults.tear_before = card.apdu_count + int(words[1])
                click.echo(f"will tear at APDU {card.faults.tear_before}")
            else:
                click.echo("commands: remove, insert, tear N, quit")
            if isinstance(card, VirtualNtag424) and card_file is not None:
                card.save(card_file)
        else:  # end of input, not `quit`: serve until a signal
            click.echo("no more commands; serving until SIGINT or SIGTERM", err=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        bridge.remove()
        if isinstance(card, VirtualNtag424) and card_file is not None:
            card.save(card_file)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the card's service as Ctrl-C does


def _issue_in_process(card: object, keys: SoftwareKeyStore | None) -> None:
    from .cards.purse import Purse
    from .simulators.desfire import VirtualDesfire
    from .simulators.reader import VirtualReader

    if not isinstance(card, VirtualDesfire) or keys is None:
        raise click.ClickException("--issue personalises a DESFire card and needs --keystore")
    reader = VirtualReader()
    reader.insert(card)
    try:
        Purse(keys).issue(reader.connect(), card.uid)
    except LoyaltyError as error:
        raise click.ClickException(f"cannot issue: {error}") from error
    finally:
        reader.remove()
    click.echo(f"issued loyalty application on {card.uid.hex().upper()}")
