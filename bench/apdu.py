# SPDX-License-Identifier: Apache-2.0
"""APDU round trips through the real PC/SC stack against in process, and APDUs per payment.

Starts its own pcscd with vpcd (as the tests do; it refuses if another pcscd
runs), puts a virtual DESFire card behind the bridge, and measures in one
run: the round trip of one APDU through pyscard -> pcscd -> vpcd -> bridge
-> card, the same APDU through the in-process virtual reader (the baseline:
what the card simulation itself costs), a naive bridge without TCP_NODELAY
and TCP_QUICKACK for comparison, and a stored-value debit (APDUs and time)
both ways. Target: p50 under 1 ms per APDU through the real stack.

    python bench/apdu.py          # quick: 2,000 APDUs, 50 payments
    python bench/apdu.py --full   # 20,000 APDUs, 500 payments
"""

from __future__ import annotations

import time

from _common import parse_args, percentile, result

from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import CardIntent, Kind, Purse
from loyaltysdk.cards.reader import Reader
from loyaltysdk.drivers.pcsc import PcscReader
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.pcscd import PcscdProcess
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.simulators.vpcd import VpcdBridge

GET_VERSION = bytes.fromhex("9060000000")


def round_trips(reader: Reader, count: int) -> list[float]:
    transport = reader.connect()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        transport.transmit(GET_VERSION)
        times.append(time.perf_counter() - start)
    return times


def payments(reader: Reader, purse: Purse, uid: bytes, count: int) -> tuple[list[float], int]:
    transport = reader.connect()
    times = []
    before = transport.apdu_count
    for n in range(count):
        intent = CardIntent.new(Kind.DEBIT, 1, receipt=f"B-{n}", till="BENCH")
        start = time.perf_counter()
        purse.debit(transport, uid, intent)
        times.append(time.perf_counter() - start)
    return times, (transport.apdu_count - before) // count


def main() -> None:
    args = parse_args(__doc__ or "")
    count, paid = (20_000, 500) if args.full else (2_000, 50)
    keys = SoftwareKeyStore.generate(b"BENCH")
    purse = Purse(keys)
    card = VirtualDesfire()
    memory = VirtualReader()
    memory.insert(card)
    purse.issue(memory.connect(), card.uid, initial=purse.layout.upper_limit)
    in_process = round_trips(memory, count)
    mem_pay, mem_apdus = payments(memory, purse, card.uid, paid)
    memory.remove()

    with PcscdProcess() as pcscd:
        reader = PcscReader(pcscd.reader_name)
        naive = VpcdBridge(card, port=pcscd.port, prompt=False)
        naive.insert()
        reader.wait_for_card(10)
        naive_times = round_trips(reader, 20)
        naive.remove()
        while reader.next_event(0.5) is not None:
            pass
        bridge = VpcdBridge(card, port=pcscd.port)
        bridge.insert()
        while (event := reader.next_event(10)) is not None and event.kind != "inserted":
            pass
        real = round_trips(reader, count)
        real_pay, real_apdus = payments(reader, purse, card.uid, paid)
        bridge.remove()
        reader.close()

    def ms(samples: list[float], q: float) -> float:
        return percentile(samples, q) * 1e3

    print(f"APDUs: {count} each way; payments: {paid} each way")
    print(
        f"in process          p50 {ms(in_process, 0.5):7.3f} ms  p99 {ms(in_process, 0.99):7.3f} ms"
    )
    print(f"pyscard->pcscd->vpcd p50 {ms(real, 0.5):7.3f} ms  p99 {ms(real, 0.99):7.3f} ms")
    print(f"  naive bridge      p50 {ms(naive_times, 0.5):7.3f} ms  (no TCP_NODELAY/QUICKACK)")
    print(f"  stack overhead    p50 {ms(real, 0.5) - ms(in_process, 0.5):7.3f} ms per APDU")
    print(f"debit, in process   {mem_apdus} APDUs, p50 {ms(mem_pay, 0.5):7.3f} ms")
    print(f"debit, real stack   {real_apdus} APDUs, p50 {ms(real_pay, 0.5):7.3f} ms")
    p50 = ms(real, 0.5)
    result("apdu", p50, 1.0, p50 < 1.0)


if __name__ == "__main__":
    main()
