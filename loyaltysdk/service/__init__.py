# SPDX-License-Identifier: Apache-2.0
"""The till as a local HTTP service, for POS software in any language.

    app = create_service_app(till, token)     # serve with uvicorn: `loyalty till serve`

The checkout API one to one: identify (by a tap on the service's reader
too), checkout sessions (quote, points, vouchers, wallet, card, complete,
cancel), refunds, voids and balances. Every POST
takes an ``Idempotency-Key`` header, remembered in the till's own file, so a
retried request gets the first answer; refusals are RFC 9457 problem
documents naming the SDK's error class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..cards import Reader
    from ..till import Till

__all__ = ["create_service_app"]


def create_service_app(till: Till, token: str, reader: Reader | None = None) -> FastAPI:
    """The ASGI app of the till service (imports FastAPI only when asked).

    With a `reader`, the service identifies members by a tap on it and
    takes card payments from the stored-value card in its field.
    """
    from .._extras import require

    require("fastapi", extra="hub", feature="the till service")
    from ._app import create_app

    return create_app(till, token, reader)


from .._public import present  # noqa: E402

present(__name__, globals())
