# SPDX-License-Identifier: Apache-2.0
"""APDU round trips through the real PC/SC stack against in process, and APDUs per operation.

Starts its own pcscd with vpcd (as the tests do; it refuses if another pcscd
runs), puts virtual cards behind the bridge, and measures in one run:

- the round trip of one APDU (DESFire GetVersion, first frame) through
  pyscard -> pcscd -> vpcd -> bridge -> card, the same APDU through the
  in-process virtual reader (the baseline: what the card simulation itself
  costs), and a naive bridge without TCP_NODELAY and TCP_QUICKACK;
- the stored-value operations with their APDU counts, both ways: a debit
  (`Purse.debit`) and a balance read (`Purse.read`);
- an NTAG 424 DNA tap, both ways: the till's read (`read_sun_url`) and the
  NFC Forum Type 4 Tag procedure a phone follows (CC first), each followed
  by `SunVerifier.verify`; a fresh SUN each time (the tag is powered off
  between taps, as a new field entry would);
- field entry to a verified tap through the real stack: the card enters
  the bridge, the reader's monitor sees SCardGetStatusChange report it,
  then connect, NFC Forum read and verify. Twice: entering at a random
  moment (as a customer's tap does), and entering as soon as the removal of
  the last card was reported (as a loop of tests does). pcscd looks at vpcd
  every 400 ms (PCSCLITE_STATUS_POLL_RATE; see docs/cards.md), so the
  first is that poll's phase, 0 to 400 ms, and the second about 400 ms.

The RESULT line is the GetVersion round trip through the real stack, p50,
against 1 ms; the rest are printed beside it and are not in that figure.

    python bench/apdu.py          # quick: 2,000 APDUs, 50 operations, 10 field entries
    python bench/apdu.py --full   # 20,000 APDUs, 500 operations, 50 field entries
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from _common import parse_args, percentile, result

from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.ntag424 import MemoryCounterStore, SunVerifier, parse_uri_record, read_sun_url
from loyaltysdk.cards.purse import CardIntent, Kind, Purse
from loyaltysdk.cards.reader import Reader
from loyaltysdk.cards.transport import Transport
from loyaltysdk.drivers.pcsc import PcscReader
from loyaltysdk.simulators.card import VirtualCard
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.pcscd import PcscdProcess
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.simulators.vpcd import VpcdBridge

GET_VERSION = bytes.fromhex("9060000000")
META, FILE = b"M" * 16, b"F" * 16
POLL_S = 0.4  # pcsc-lite's PCSCLITE_STATUS_POLL_RATE, for the random entry phase


def round_trips(reader: Reader, count: int) -> list[float]:
    transport = reader.connect()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        transport.transmit(GET_VERSION)
        times.append(time.perf_counter() - start)
    return times


def timed(
    transport: Transport, count: int, operation: Callable[[int], object]
) -> tuple[list[float], int]:
    """Times of `count` runs of `operation(n)`, and APDUs per run."""
    times = []
    before = transport.apdu_count
    for n in range(count):
        start = time.perf_counter()
        operation(n)
        times.append(time.perf_counter() - start)
    return times, (transport.apdu_count - before) // count


def _ok(transport: Transport, apdu: bytes) -> bytes:
    data, sw = transport.transmit(apdu)
    if sw != 0x9000:
        raise RuntimeError(f"{apdu.hex()}: {sw:04X}")
    return data


def forum_read(transport: Transport) -> str:
    """The NFC Forum Type 4 Tag NDEF read, as a phone does it: 6 APDUs."""
    _ok(transport, bytes.fromhex("00A4040007D276000085010100"))  # SELECT NDEF Tag Application
    _ok(transport, bytes.fromhex("00A4000C02E103"))  # SELECT capability container
    cc = _ok(transport, bytes.fromhex("00B000000F"))  # READ BINARY CC up to the NDEF TLV
    mle = int.from_bytes(cc[3:5], "big")
    _ok(transport, bytes.fromhex("00A4000C02") + cc[9:11])  # SELECT the NDEF file it names
    nlen = int.from_bytes(_ok(transport, bytes.fromhex("00B0000002")), "big")  # READ NLEN
    if nlen > min(mle, 0xFF):
        raise RuntimeError("the bench reads the message in one piece")
    return parse_uri_record(_ok(transport, bytes.fromhex("00B00002") + bytes([nlen])))


def taps(
    transport: Transport, tag: VirtualNtag424, count: int, read: Callable[[Transport], str]
) -> tuple[list[float], int]:
    verifier = SunVerifier(META, FILE, MemoryCounterStore())

    def tap(_: int) -> None:
        tag.power_off()  # a new field entry for the tag: a fresh counter and SUN
        verifier.verify(read(transport))

    return timed(transport, count, tap)


def payments(purse: Purse, transport: Transport, uid: bytes, count: int) -> tuple[list[float], int]:
    def debit(n: int) -> None:
        purse.debit(transport, uid, CardIntent.new(Kind.DEBIT, 1, receipt=f"B-{n}", till="BENCH"))

    return timed(transport, count, debit)


def balances(purse: Purse, transport: Transport, uid: bytes, count: int) -> tuple[list[float], int]:
    return timed(transport, count, lambda _: purse.read(transport, uid))


def _await(reader: PcscReader, kind: str) -> None:
    while (event := reader.next_event(10)) is not None:
        if event.kind == kind:
            return
    raise RuntimeError(f"no {kind} event from {reader.name}")


def field_entries(
    reader: PcscReader, port: int, count: int, *, random_phase: bool
) -> tuple[list[float], list[float]]:
    """(field entry to the inserted event, field entry to a verified tap) for `count` taps."""
    tag = VirtualNtag424(meta_read_key=META, file_read_key=FILE)
    verifier = SunVerifier(META, FILE, MemoryCounterStore())
    seen, verified = [], []
    for _ in range(count):
        if random_phase:
            time.sleep(random.uniform(0, POLL_S))
        bridge = VpcdBridge(tag, port=port)
        start = time.perf_counter()
        bridge.insert()
        _await(reader, "inserted")
        seen.append(time.perf_counter() - start)
        with reader.connect() as transport:
            verifier.verify(forum_read(transport))
        verified.append(time.perf_counter() - start)
        bridge.remove()
        _await(reader, "removed")
    return seen, verified


def _in_process(card: VirtualCard) -> tuple[VirtualReader, Transport]:
    reader = VirtualReader()
    reader.insert(card)
    return reader, reader.connect()


def main() -> None:
    args = parse_args(__doc__ or "")
    count, ops, entries = (20_000, 500, 50) if args.full else (2_000, 50, 10)
    keys = SoftwareKeyStore.generate(b"BENCH")
    purse = Purse(keys)
    card = VirtualDesfire()
    tag = VirtualNtag424(meta_read_key=META, file_read_key=FILE)
    rows: dict[str, tuple[int, list[float], list[float]]] = {}

    memory, transport = _in_process(card)
    purse.issue(transport, card.uid, initial=purse.layout.upper_limit)
    in_process = round_trips(memory, count)
    mem_pay, pay_apdus = payments(purse, transport, card.uid, ops)
    mem_bal, bal_apdus = balances(purse, transport, card.uid, ops)
    memory.remove()
    tag_reader, tag_transport = _in_process(tag)
    mem_tap, tap_apdus = taps(tag_transport, tag, ops, read_sun_url)
    mem_forum, forum_apdus = taps(tag_transport, tag, ops, forum_read)
    tag_reader.remove()

    with PcscdProcess() as pcscd:
        reader = PcscReader(pcscd.reader_name)
        naive = VpcdBridge(card, port=pcscd.port, prompt=False)
        naive.insert()
        reader.wait_for_card(10)
        naive_times = round_trips(reader, 20)
        naive.remove()
        _await(reader, "removed")
        bridge = VpcdBridge(card, port=pcscd.port)
        bridge.insert()
        _await(reader, "inserted")
        real = round_trips(reader, count)
        with reader.connect() as stack:
            real_pay, stack_pay_apdus = payments(purse, stack, card.uid, ops)
            real_bal, stack_bal_apdus = balances(purse, stack, card.uid, ops)
        bridge.remove()
        _await(reader, "removed")
        bridge = VpcdBridge(tag, port=pcscd.port)
        bridge.insert()
        _await(reader, "inserted")
        with reader.connect() as stack:
            real_tap, _ = taps(stack, tag, ops, read_sun_url)
            real_forum, _ = taps(stack, tag, ops, forum_read)
        bridge.remove()
        _await(reader, "removed")
        seen_random, tap_random = field_entries(reader, pcscd.port, entries, random_phase=True)
        seen_next, tap_next = field_entries(reader, pcscd.port, entries, random_phase=False)
        reader.close()
    assert (stack_pay_apdus, stack_bal_apdus) == (pay_apdus, bal_apdus)
    rows["debit"] = (pay_apdus, mem_pay, real_pay)
    rows["balance read"] = (bal_apdus, mem_bal, real_bal)
    rows["tap, till read_sun_url"] = (tap_apdus, mem_tap, real_tap)
    rows["tap, NFC Forum read"] = (forum_apdus, mem_forum, real_forum)

    def ms(samples: list[float], q: float) -> float:
        return percentile(samples, q) * 1e3

    print(f"APDUs: {count} each way; operations: {ops} each way; field entries: {entries} each")
    print(
        f"in process          p50 {ms(in_process, 0.5):7.3f} ms  p99 {ms(in_process, 0.99):7.3f} ms"
    )
    print(f"pyscard->pcscd->vpcd p50 {ms(real, 0.5):7.3f} ms  p99 {ms(real, 0.99):7.3f} ms")
    print(f"  naive bridge      p50 {ms(naive_times, 0.5):7.3f} ms  (no TCP_NODELAY/QUICKACK)")
    print(f"  stack overhead    p50 {ms(real, 0.5) - ms(in_process, 0.5):7.3f} ms per APDU")
    print("operation (verify included)  APDUs  in process p50   real stack p50 / p99")
    for name, (apdus, mem, stack_times) in rows.items():
        print(
            f"  {name:26} {apdus:5}  {ms(mem, 0.5):10.3f} ms"
            f"  {ms(stack_times, 0.5):9.3f} / {ms(stack_times, 0.99):7.3f} ms"
        )
    print("field entry -> inserted event / verified tap (NFC Forum read), real stack:")
    for name, seen, tapped in (
        ("at a random moment", seen_random, tap_random),
        ("right after a removal", seen_next, tap_next),
    ):
        print(
            f"  {name:22} p50 {ms(seen, 0.5):6.1f} / {ms(tapped, 0.5):6.1f} ms"
            f"  min {ms(seen, 0):6.1f}  max {ms(seen, 1):6.1f} / {ms(tapped, 1):6.1f} ms"
        )
    p50 = ms(real, 0.5)
    result("apdu", p50, 1.0, p50 < 1.0)


if __name__ == "__main__":
    main()
