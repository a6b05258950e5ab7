# SPDX-License-Identifier: Apache-2.0
"""What the hub's and the till service's OpenAPI schemas share (FastAPI apps only)."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def problems_as_problem_json(app: Any) -> None:
    """Make `app` declare its refusals as application/problem+json, which they are
    (FastAPI would call them application/json); the schema is built once."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for operations in schema["paths"].values():
                for operation in operations.values():
                    for code, response in operation["responses"].items():
                        content = response.get("content", {})
                        if code != "200" and "application/json" in content:
                            response["content"] = {PROBLEM: content.pop("application/json")}
            app.openapi_schema = schema
        schema_: dict[str, Any] = app.openapi_schema
        return schema_

    app.openapi = openapi
