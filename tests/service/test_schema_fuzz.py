# SPDX-License-Identifier: Apache-2.0
"""schemathesis against the till service's own OpenAPI schema, with and without the token:
no 500, and every answer (status, content type, body) one the schema declares. Bounded in
CI (``LOYALTY_FUZZ_EXAMPLES``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loyaltysdk import Money, Till
from loyaltysdk._cli_demo import demo_rules
from loyaltysdk.service import create_service_app

EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "20"))
TOKEN = "fuzz-token-" + "y" * 20

_till = Till.open(
    Path(tempfile.mkdtemp(prefix="loyalty-service-fuzz-")) / "till.db",
    store="S1",
    till_id="S1-T1",
    currency="EUR",
    timezone="UTC",
    rules=demo_rules(),
)
_till.enrol("M-1", card_uid=bytes.fromhex("04A1B2C3D4E5F6"))
_till.top_up("M-1", Money(1_000, "EUR"), payment_ref="P-0")
schema = schemathesis.openapi.from_asgi("/openapi.json", create_service_app(_till, TOKEN))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_the_till_service_answers_as_its_schema_says(case: Any) -> None:
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
        case.call_and_validate(
            headers=headers,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )
