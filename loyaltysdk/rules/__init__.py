# SPDX-License-Identifier: Apache-2.0
"""Earning rules as data, evaluated as a pure function; tiers from rolling spend.

    rules = load_rules("rules.json")
    result = evaluate(rules, basket, member, context)
    result.points, result.explain()

The document schema is in docs/rules.md.
"""

from ._engine import RulesEngine, evaluate
from ._model import (
    Basket,
    BasketError,
    Context,
    Contribution,
    EarnResult,
    Line,
    LineResult,
    Member,
)
from ._schema import (
    SCHEMA,
    Period,
    RuleError,
    RuleSet,
    TierLevel,
    TierPolicy,
    load_rules,
    period_of,
)

__all__ = [
    "SCHEMA",
    "Basket",
    "BasketError",
    "Context",
    "Contribution",
    "EarnResult",
    "Line",
    "LineResult",
    "Member",
    "Period",
    "RuleError",
    "RuleSet",
    "RulesEngine",
    "TierLevel",
    "TierPolicy",
    "evaluate",
    "load_rules",
    "period_of",
]

from .._public import present

present(__name__, globals())
