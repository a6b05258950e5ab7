# SPDX-License-Identifier: Apache-2.0
"""`_json.compact` means what the standard encoder's text means, for every value it takes."""

from __future__ import annotations

import json
from collections import namedtuple
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk._json import compact, parse_texts

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson refuses those
    | st.text()  # lone surrogates too: orjson refuses those
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)
#: What ids, references and amounts are made of (the standard encoder escapes DEL and up).
_printable_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@given(_values)
def test_the_text_parses_to_what_the_standard_encoders_does(value: Any) -> None:
    assert json.loads(compact(value)) == json.loads(json.dumps(value))


@given(st.dictionaries(_printable_ascii, _printable_ascii | st.integers() | st.none(), max_size=6))
def test_printable_ascii_is_byte_for_byte_the_standard_compact_form(value: dict[str, Any]) -> None:
    if all(not isinstance(v, int) or abs(v) < 2**63 for v in value.values()):
        assert compact(value) == json.dumps(value, separators=(",", ":"))


def test_a_tuple_subclass_is_written_as_the_standard_encoder_writes_it() -> None:
    Pair = namedtuple("Pair", "a b")
    assert compact({"p": Pair(1, "x")}) == '{"p":[1,"x"]}'


def test_what_neither_encoder_takes_is_refused_as_the_standard_one_refuses_it() -> None:
    for value in (object(), {1.5j: 1}, {(1, 2): 3}):
        try:
            json.dumps(value)
        except TypeError:
            pass
        else:  # pragma: no cover - the premise
            raise AssertionError(value)
        try:
            compact(value)
        except TypeError:
            continue
        raise AssertionError(f"compact took {value!r}")


_texts = st.recursive(
    st.text(),  # lone surrogates too: orjson refuses those
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_texts)
def test_parse_texts_reads_what_the_standard_decoder_reads(value: Any) -> None:
    """orjson first, the standard decoder for what orjson refuses: the same strings."""
    text = json.dumps(value)
    assert parse_texts(text) == json.loads(text)


@given(st.text(max_size=8))
def test_parse_texts_refuses_what_the_standard_decoder_refuses(text: str) -> None:
    try:
        want: Any = json.loads(text)
    except ValueError:
        try:
            parse_texts(text)
        except ValueError:
            return
        raise AssertionError(f"parse_texts took {text!r}") from None
    assert json.dumps(parse_texts(text)) == json.dumps(want)
