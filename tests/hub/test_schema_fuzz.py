# SPDX-License-Identifier: Apache-2.0
"""schemathesis against the hub's own OpenAPI schema: as head office, as a till and anonymous.

Every operation gets generated requests, valid and invalid by the schema;
no answer may be a 500, and every answer (status, content type, body) must
be one the schema declares. Bounded examples in CI (``LOYALTY_FUZZ_EXAMPLES``
raises them); SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loyaltysdk.hub import Hub, HubLimits, create_app

EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "20"))


class _HubOfThisTest:
    """The app is made once, at import (schemathesis reads its schema then); each test's hub
    (SQLite or PostgreSQL, from the `hub` fixture) answers through it."""

    hub: Hub | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "limits":
            return HubLimits()
        return getattr(self.hub, name)


_CURRENT = _HubOfThisTest()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_CURRENT))  # type: ignore[arg-type]


@pytest.fixture
def identities(hub: Hub) -> list[dict[str, str]]:
    """Head office, a till, and nobody: each generated request is sent as all three."""
    _CURRENT.hub = hub
    admin = hub.add_admin("fuzz")
    till = hub.register("T1", hub.create_till("T1"))
    return [{"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {till}"}, {}]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_hub_answers_every_request_as_its_schema_says(
    case: Any, identities: list[dict[str, str]]
) -> None:
    for headers in identities:
        case.call_and_validate(
            headers=headers,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )
