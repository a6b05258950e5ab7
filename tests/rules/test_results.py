# SPDX-License-Identifier: Apache-2.0
"""`Contribution` and `LineResult` behave as the attrs classes they were (issue 17).

They became tuples underneath so the engine can build them without a frame
per object; what a caller sees must not change: attributes, equality (a
contribution's `exact` takes no part), hashing, repr, immutability, no
ordering, keyword construction, pickling and copying. The expected reprs
are the ones attrs printed for the old classes.
"""

from __future__ import annotations

import copy
import operator
import pickle
from fractions import Fraction

import attrs
import pytest

from loyaltysdk.rules import Contribution, LineResult

BASE = Contribution("base", "1 point per EUR 1", 12, 4_950, 400)


def test_attributes_and_exact() -> None:
    assert (BASE.rule, BASE.description, BASE.points) == ("base", "1 point per EUR 1", 12)
    assert BASE.exact == Fraction(99, 8)
    line = LineResult(3, "SKU1", 1_250, 12, (BASE,))
    assert (line.index, line.sku, line.net, line.points) == (3, "SKU1", 1_250, 12)
    assert line.contributions == (BASE,)
    assert line.excluded is None
    assert LineResult(0, "GC", 500, 0, (), "gift-card earns no points").excluded == (
        "gift-card earns no points"
    )


def test_keywords_as_before() -> None:
    made = Contribution(
        rule="base", description="1 point per EUR 1", points=12, scaled=4_950, denominator=400
    )
    assert made == BASE
    assert made.exact == BASE.exact
    line = LineResult(
        index=0, sku="A", net=1, points=0, contributions=(), excluded="this item earns no points"
    )
    assert line.excluded == "this item earns no points"


def test_equality_and_hash_ignore_exact() -> None:
    # Same rule, description and points, another exact value: equal, as attrs' eq=False made it.
    other = Contribution("base", "1 point per EUR 1", 12, 4_900, 400)
    assert operator.eq(other, BASE)
    assert not operator.ne(other, BASE)
    assert hash(other) == hash(BASE)
    assert Contribution("base", "1 point per EUR 1", 13, 4_950, 400) != BASE
    assert Contribution("r1", "1 point per EUR 1", 12, 4_950, 400) != BASE
    line = LineResult(0, "A", 1_250, 12, (BASE,))
    assert line == LineResult(0, "A", 1_250, 12, (other,))
    assert hash(line) == hash(LineResult(0, "A", 1_250, 12, (other,)))
    assert line != LineResult(0, "A", 1_250, 12, (BASE,), "excluded")
    assert line != LineResult(1, "A", 1_250, 12, (BASE,))
    assert len({BASE, other, line}) == 2


def test_never_equal_to_a_plain_tuple_or_another_type() -> None:
    fields = ("base", "1 point per EUR 1", 12, 4_950, 400)
    line = LineResult(0, "A", 1_250, 12, (BASE,))
    # Both operators, both ways round (a tuple's own comparison must not decide).
    for left, right in (
        (BASE, fields),
        (fields, BASE),
        (BASE, "base"),
        (line, (0, "A", 1_250, 12, (BASE,), None)),
        (line, BASE),
    ):
        assert not operator.eq(left, right)
        assert operator.ne(left, right)
        assert not operator.eq(right, left)
        assert operator.ne(right, left)


def test_repr_as_attrs_printed_it() -> None:
    assert repr(BASE) == "Contribution(rule='base', description='1 point per EUR 1', points=12)"
    assert repr(LineResult(2, "SKU1", 1_250, 12, (BASE,), None)) == (
        "LineResult(index=2, sku='SKU1', net=1250, points=12, contributions=("
        "Contribution(rule='base', description='1 point per EUR 1', points=12),), excluded=None)"
    )


def test_frozen_and_unordered() -> None:
    line = LineResult(0, "A", 1_250, 12, (BASE,))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        BASE.points = 13  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        line.points = 13  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del line.sku
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        BASE.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        assert BASE < BASE
    with pytest.raises(TypeError):
        assert line >= line


def test_pickle_and_copy_keep_everything() -> None:
    line = LineResult(0, "A", 1_250, 12, (BASE,))
    for again in (pickle.loads(pickle.dumps(line)), copy.copy(line), copy.deepcopy(line)):
        assert again == line
        assert type(again) is LineResult
        assert type(again.contributions[0]) is Contribution
        assert again.contributions[0].exact == BASE.exact


def test_match_by_attribute_and_position() -> None:
    match BASE:
        case Contribution("base", _, points):
            assert points == 12
        case _:
            pytest.fail("no match")
    match LineResult(0, "A", 1_250, 12, (BASE,)):
        case LineResult(sku="A", contributions=(Contribution(rule="base"),)):
            pass
        case _:
            pytest.fail("no match")
