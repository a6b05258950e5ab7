# SPDX-License-Identifier: Apache-2.0
"""NTAG 424 DNA SUN: the verifier, replay refusal, and reading a tag through a reader."""

from __future__ import annotations

import sqlite3

import pytest

from loyaltysdk._errors import MalformedResponse
from loyaltysdk.cards.ntag424 import (
    MemoryCounterStore,
    SQLiteCounterStore,
    SunInvalid,
    SunReplayed,
    SunUrlFormat,
    SunVerifier,
    parse_uri_record,
    read_sun_url,
    uri_record,
)
from loyaltysdk.cards.transport import MockTransport
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.reader import VirtualReader

META, FILE = b"M" * 16, b"F" * 16


def _tap(tag: VirtualNtag424) -> str:
    reader = VirtualReader()
    reader.insert(tag)
    return read_sun_url(reader.connect())


def test_an12196_url_verifies_once() -> None:
    # AN12196 section 3.4 example URL, zero keys, empty MAC input.
    url = "https://choose.url.com/ntag424?picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086"
    verifier = SunVerifier(bytes(16), bytes(16), MemoryCounterStore())
    tap = verifier.verify(url)
    assert (tap.uid.hex().upper(), tap.counter) == ("04DE5F1EACC040", 61)
    with pytest.raises(SunReplayed):
        verifier.verify(url)


def test_an12196_url_with_file_data() -> None:
    url = (
        "https://choose.url.com/ntag424?picc_data=FD91EC264309878BE6345CBE53BADF40"
        "&enc=CEE9A53E3E463EF1F459635736738962&cmac=ECC1E7F6C6C73BF6"
    )
    fmt = SunUrlFormat(enc_param="enc", mac_from="enc")
    tap = SunVerifier(bytes(16), bytes(16), MemoryCounterStore(), fmt).verify(url)
    assert tap.file_data == b"x" * 16 and tap.counter == 8


def test_virtual_tag_taps_with_rising_counters(slot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tag = VirtualNtag424(meta_read_key=META, file_read_key=FILE)

    def _tap(tag: VirtualNtag424) -> str:  # each tap a fresh field entry, in this slot
        slot.insert(tag)
        try:
            return read_sun_url(slot.connect())
        finally:
            slot.remove()

    store = SQLiteCounterStore(sqlite3.connect(tmp_path / "till.db"))
    verifier = SunVerifier(META, lambda uid: FILE, store)
    first, second = _tap(tag), _tap(tag)
    assert verifier.verify(first).counter == 1
    assert verifier.verify(second).counter == 2
    with pytest.raises(SunReplayed):
        verifier.verify(first)  # an old URL, replayed after a newer one
    # The counters survive a restart of the till.
    again = SunVerifier(META, FILE, SQLiteCounterStore(sqlite3.connect(tmp_path / "till.db")))
    with pytest.raises(SunReplayed):
        again.verify(second)
    tag.save(tmp_path / "tag.json")
    assert again.verify(_tap(VirtualNtag424.load(tmp_path / "tag.json"))).counter == 3


@pytest.mark.parametrize(
    "mutate",
    [
        lambda u: u.replace("cmac=", "cmac=0")[:-1],  # MAC shifted by one digit
        lambda u: u[:-1] + ("0" if u[-1] != "0" else "1"),  # MAC changed
        lambda u: u.replace("picc_data=", "picc_data=00")[:-2],  # PICC data off
        lambda u: u.split("&cmac")[0],  # MAC missing
        lambda u: u.replace("picc_data=", "picc_data=ZZ"),  # not hex
        lambda u: u + "&cmac=0000000000000000",  # parameter twice
    ],
    ids=["shifted", "changed MAC", "PICC data", "no MAC", "not hex", "duplicated"],
)
def test_forged_urls_are_invalid(mutate) -> None:  # type: ignore[no-untyped-def]
    url = _tap(VirtualNtag424(meta_read_key=META, file_read_key=FILE))
    verifier = SunVerifier(META, FILE, MemoryCounterStore())
    with pytest.raises(SunInvalid):
        verifier.verify(mutate(url))


def test_other_keys_are_invalid() -> None:
    url = _tap(VirtualNtag424(meta_read_key=META, file_read_key=FILE))
    with pytest.raises(SunInvalid):
        SunVerifier(META, b"G" * 16, MemoryCounterStore()).verify(url)
    with pytest.raises(SunInvalid):
        SunVerifier(b"N" * 16, FILE, MemoryCounterStore()).verify(url)


def test_ndef_records_round_trip_and_reject_garbage() -> None:
    assert parse_uri_record(uri_record("https://a.example/t?x=1")) == "https://a.example/t?x=1"
    for bad in (
        b"",
        b"\xd1\x01",
        b"\xd1\x01\x05U\x04ab",
        b"\xd1\x01\x02T\x04a",
        b"\xd1\x01\x02U\x99a",
    ):
        with pytest.raises(MalformedResponse):
            parse_uri_record(bad)


def test_bad_ndef_length_from_the_tag() -> None:
    answers = [b"\x90\x00", b"\x90\x00", b"\xff\xff\x90\x00"]
    with pytest.raises(MalformedResponse):
        read_sun_url(MockTransport(lambda apdu: answers.pop(0)))
