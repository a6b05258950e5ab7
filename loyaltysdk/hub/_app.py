# SPDX-License-Identifier: Apache-2.0
"""The hub's HTTP API (FastAPI: request validation and the OpenAPI schema come with it).

Tills authenticate with their own bearer credential and the till id comes
from the credential, never from the request, so a till can only push, pull
and hold as itself. Head-office calls need an admin credential. Request
bodies are strict (a JSON integer is an integer: no ``"5"``, ``true`` or
``1.9``; no unknown fields), bounded in size, and every string is checked
against the rule storage and the wire share (`loyaltysdk._ids`). Every
refusal is an RFC 9457 problem document with nothing changed, and every one
a route can give is declared in the schema. Credentials are never logged.
A member's own page (`GET /t`, HTML) needs none: the tap's SUN URL is the credential.
Head office's reports (`GET /v1/admin/report`, HTML) need the admin credential.
"""

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import date
from typing import Annotated, Any

import attrs
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from .._errors import UnknownCurrency
from .._ids import NAME_PATTERN, is_id, is_text
from .._money import exponent
from .._openapi import PROBLEM, problems_as_problem_json
from .._version import __version__
from ..cards.ntag424 import CounterStore, SunVerifier
from ..sync import (
    UID_PATTERN,
    AuthError,
    BadRecord,
    Forbidden,
    InsufficientOnline,
    TooLarge,
    UnknownUpdate,
)
from ._member_page import PAGE_HEADERS, member_figures, member_page, used_page
from ._reports_page import report_page
from ._service import Hub, Principal

_log = logging.getLogger("loyaltysdk.hub")


def _id(value: str) -> str:
    if not is_id(value):
        raise ValueError("1-200 printable characters (no control characters or NUL)")
    return value


def _text(value: str) -> str:
    if not is_text(value, len(value)):  # lengths are each field's own bound
        raise ValueError("text without NUL or lone surrogates")
    return value


#: An identifier: an account, a key, a hold id, a code.
Id = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_id)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Uid = Annotated[str, Field(pattern=UID_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem document: every refusal the hub makes."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    #: Where a request failed validation: the field's path and why.
    errors: list[dict[str, Any]] | None = None


class RegisterBody(_Body):
    #: HMAC-SHA256 keyed by the enrolment token's SHA-256 (`loyaltysdk._enrolment`), in hex.
    proof: str = Field(pattern=r"^[0-9a-f]{64}$")


class Record(_Body):
    seq: int = Field(ge=1, le=2**62)
    payload: Annotated[str, Field(min_length=2, max_length=262_144), AfterValidator(_text)]


class PushBody(_Body):
    records: list[Record]  # how many: `HubLimits.records_per_push` (413 beyond)
    # The newest record the till's outbox holds (head office sees the lag).
    head: int | None = Field(default=None, ge=0, le=2**53 - 1)


class HoldBody(_Body):
    hold_id: Id
    account: Id
    unit: str = Field(pattern=r"^[A-Z]{3}$")
    amount: int = Field(ge=1, le=2**53 - 1)
    ttl: int = Field(default=1800, ge=1, le=86_400)
    records: list[Record] = Field(default_factory=list, max_length=500)


class SunBody(_Body):
    uid: Uid
    counter: int = Field(ge=0, le=2**24 - 1)


class SnapshotBody(_Body):
    member: Name | None = None
    accounts: list[Id] = Field(default_factory=list, max_length=50)
    sun: SunBody | None = None


class Event(_Body):
    seq: int = Field(ge=1, le=2**62)
    kind: str = Field(pattern=r"^[a-z]{1,20}$")
    payload: dict[str, Any]


class EventsBody(_Body):
    events: list[Event] = Field(max_length=5_000)


class TillBody(_Body):
    till_id: Name


class UpdateBody(_Body):
    kind: str = Field(pattern=r"^(rules|hotlist|revocations|keys|vouchers|members|allowance)$")
    payload: Any


class CardBody(_Body):
    uid: Uid
    kind: str = Field(default="identity", pattern=r"^(identity|purse)$")


class MemberBody(_Body):
    id: Name
    tier: Annotated[str, Field(max_length=32), AfterValidator(_text)] = ""
    segments: list[Annotated[str, Field(max_length=64), AfterValidator(_id)]] = Field(
        default_factory=list, max_length=50
    )
    birthday: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    cards: list[CardBody] = Field(default_factory=list, max_length=20)


class UidsBody(_Body):
    uids: list[Uid] = Field(min_length=1, max_length=100_000)


class CodesBody(_Body):
    codes: list[Annotated[str, Field(max_length=64), AfterValidator(_id)]] = Field(
        min_length=1, max_length=100_000
    )


class VouchersBody(_Body):
    terms: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)


class TillRow(BaseModel):
    till_id: str
    registered_at: str | None
    last_sync: str | None
    acked: int
    head: int
    lag: int
    events_acked: int
    offline_since: str | None
    exceptions: int


class Pushed(BaseModel):
    acked: int
    applied: int
    duplicates: int
    held: int


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    titles = {
        400: "The body is not JSON",
        401: "No or a wrong credential",
        403: "A valid credential for something else",
        404: "Not found",
        409: "Not enough available",
        413: "Beyond the hub's limits",
        422: "The request or a record in it is malformed",
    }
    return {code: {"model": Problem, "description": titles[code]} for code in codes}


_TILL = _responses(400, 401, 403, 413, 422)
_ADMIN = _responses(400, 401, 403, 413, 422)


def _html_responses(description: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """A text/html 200 and problems by reference (a model here would be filed under text/html)."""
    return {
        200: {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}},
        **{
            code: {
                "description": declared["description"],
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            for code, declared in _responses(*codes).items()
        },
    }


#: A day of a report's window (years 1000-2999), or empty (the form sends empty fields).
_DAY = r"^(?:[12][0-9]{3}-[0-9]{2}-[0-9]{2})?$"
_REPORT_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "frame-ancestors 'none'; form-action 'self'",
}


def _day(name: str, value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRecord(f"{name}: {value!r} is not a day (YYYY-MM-DD)") from None


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail[:1000], **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status, media_type=PROBLEM)


class _BodyLimit:
    """Refuse a request body beyond `limit` bytes with 413, before anyone reads it whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        response = _problem(413, "Beyond the hub's limits", f"a body is at most {self.limit} bytes")
        await response(scope, receive, send)


def create_app(hub: Hub) -> FastAPI:
    """The ASGI app serving `hub`."""
    app = FastAPI(
        title="loyaltysdk hub",
        version=__version__,
        description="Head office's hub: the chain's book of record. Every refusal is an"
        " RFC 9457 problem document (application/problem+json).",
    )
    app.add_middleware(_BodyLimit, limit=hub.limits.body_bytes)

    refusals: dict[type[Exception], tuple[int, str]] = {
        AuthError: (401, "No or a wrong credential"),
        Forbidden: (403, "A valid credential for something else"),
        InsufficientOnline: (409, "Not enough available"),
        TooLarge: (413, "Beyond the hub's limits"),
        BadRecord: (422, "The request or a record in it is malformed"),
        UnknownUpdate: (422, "The request or a record in it is malformed"),
    }
    for error_type, (status, title) in refusals.items():

        def handler(_: Request, error: Exception, status: int = status, title: str = title) -> Any:
            return _problem(status, title, str(error))

        app.add_exception_handler(error_type, handler)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        found = error.errors()
        if any(e.get("type") == "json_invalid" for e in found):
            return _problem(400, "The body is not JSON", "the request body is not valid JSON")
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in found[:20]
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return _problem(422, "The request is malformed", detail, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        return _problem(error.status_code, str(error.detail), str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        _log.exception("hub request failed")  # the request's details stay out of the log
        return _problem(500, "Internal error", "the hub failed; nothing was changed")

    def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            raise AuthError("a bearer credential is required")
        return hub.authenticate(token.strip())

    def till(who: Annotated[Principal, Depends(principal)]) -> str:
        if who.kind != "till":
            raise Forbidden("this endpoint is for tills")
        return who.id

    def admin(who: Annotated[Principal, Depends(principal)]) -> str:
        if who.kind != "admin":
            raise Forbidden("this endpoint is for head office")
        return who.id

    @app.post("/v1/tills/{till_id}/register", responses=_responses(400, 401, 413, 422))
    def register(
        till_id: Annotated[str, PathParam(pattern=NAME_PATTERN)], body: RegisterBody
    ) -> dict[str, str]:
        """Exchange proof of the one-time enrolment token for the till's credential.

        The answer carries the hub's update key and its proof under the same
        token: the till keeps the key and checks every update against it.
        """
        credential, key_proof = hub.register_proven(till_id, bytes.fromhex(body.proof))
        return {
            "credential": credential,
            "update_key": hub.update_key.hex(),
            "key_proof": key_proof.hex(),
        }

    @app.post("/v1/sync/push", responses=_TILL)
    def push(body: PushBody, till_id: Annotated[str, Depends(till)]) -> Pushed:
        """Upload outbox records; applied exactly once per (till, seq), all or none."""
        result = hub.push(till_id, [(r.seq, r.payload) for r in body.records], head=body.head)
        return Pushed(
            acked=result.acked,
            applied=result.applied,
            duplicates=result.duplicates,
            held=result.held,
        )

    @app.get("/v1/sync/pull", responses=_responses(401, 403, 422))
    def pull(
        till_id: Annotated[str, Depends(till)],
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=5_000)] = 500,
    ) -> dict[str, Any]:
        """Updates after a cursor, each signed by head office's key (hex Ed25519)."""
        updates = hub.pull(after, limit)
        return {
            "updates": [
                {
                    "cursor": u.cursor,
                    "kind": u.kind,
                    "payload": u.payload,
                    "signature": u.signature.hex() if u.signature else None,
                }
                for u in updates
            ],
            "cursor": updates[-1].cursor if updates else after,
        }

    @app.get("/v1/sync/cursor", responses=_responses(401, 403, 422))
    def cursor(till_id: Annotated[str, Depends(till)]) -> dict[str, int]:
        """The highest sequence number the hub has applied for this till."""
        return {"acked": hub.cursor_of(till_id)}

    @app.post("/v1/holds", responses={**_TILL, **_responses(409)})
    def take_hold(body: HoldBody, till_id: Annotated[str, Depends(till)]) -> dict[str, Any]:
        """Reserve an online balance for a checkout."""
        acked = hub.take_hold(
            till_id,
            body.hold_id,
            body.account,
            body.unit,
            body.amount,
            body.ttl,
            records=[(r.seq, r.payload) for r in body.records],
        )
        return {"hold_id": body.hold_id, "status": "open", "acked": acked}

    @app.post("/v1/snapshot", responses=_TILL)
    def snapshot(body: SnapshotBody, till_id: Annotated[str, Depends(till)]) -> dict[str, Any]:
        """A member's chain-wide figures (and other accounts named), as of this till's records."""
        sun = (body.sun.uid, body.sun.counter) if body.sun else None
        return hub.snapshot(till_id, body.member, body.accounts, sun).to_json()

    @app.post("/v1/sync/events", responses=_TILL)
    def events(body: EventsBody, till_id: Annotated[str, Depends(till)]) -> dict[str, int]:
        """What the till learned (enrolments, cards, blocks, SUN taps); applied once each."""
        acked = hub.push_events(till_id, [(e.seq, e.kind, e.payload) for e in body.events])
        return {"acked": acked}

    @app.delete("/v1/holds/{hold_id}", responses=_responses(401, 403, 422))
    def release_hold(
        hold_id: Annotated[str, PathParam(max_length=200)],
        till_id: Annotated[str, Depends(till)],
    ) -> dict[str, str]:
        """Release an online hold (posted or voided at the till)."""
        hub.release_hold(till_id, hold_id)
        return {"hold_id": hold_id, "status": "released"}

    @app.post("/v1/admin/tills", responses=_ADMIN)
    def create_till(body: TillBody, who: Annotated[str, Depends(admin)]) -> dict[str, str]:
        """Allow a till to register; returns its one-time enrolment token."""
        return {"till_id": body.till_id, "enrolment_token": hub.create_till(body.till_id)}

    @app.get("/v1/admin/tills", responses=_responses(401, 403, 422))
    def list_tills(
        who: Annotated[str, Depends(admin)],
        offline_after: Annotated[int, Query(ge=1, le=30 * 86_400)] = 900,
    ) -> dict[str, list[TillRow]]:
        """Every till: registered, last sync, acknowledged sequence, outbox lag, offline
        since (no sync for `offline_after` seconds), exceptions its records caused."""
        return {
            "tills": [TillRow(**attrs.asdict(t)) for t in hub.tills(offline_after=offline_after)]
        }

    @app.post("/v1/admin/updates", responses=_ADMIN)
    def publish(body: UpdateBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Publish an update of any kind to every till, checked against its kind's schema."""
        return {"cursor": hub.publish(body.kind, body.payload)}

    @app.post("/v1/admin/members", responses=_ADMIN)
    def members(body: MemberBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Enrol a member (and cards) at every till."""
        return {"cursor": hub.publish("members", {"members": [body.model_dump()]})}

    @app.post("/v1/admin/cards/block", responses=_ADMIN)
    def block_cards(body: UidsBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Put cards on every till's hotlist."""
        return {"cursor": hub.publish("hotlist", {"block": [u.upper() for u in body.uids]})}

    @app.post("/v1/admin/vouchers", responses=_ADMIN)
    def vouchers(body: VouchersBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Send issued vouchers' signed terms to every till (funded once, at the hub)."""
        return {"cursor": hub.publish("vouchers", {"terms": body.terms})}

    @app.post("/v1/admin/vouchers/revoke", responses=_ADMIN)
    def revoke(body: CodesBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Revoke vouchers at every till."""
        return {"cursor": hub.publish("revocations", {"codes": body.codes})}

    @app.post("/v1/admin/rules", responses=_ADMIN)
    def rules(document: dict[str, Any], who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Publish a version of the earning rules (validated first)."""
        return {"cursor": hub.publish("rules", document)}

    @app.get("/v1/admin/balances/{account}", responses=_responses(401, 403, 404, 422))
    def balance(
        account: Annotated[str, PathParam(max_length=200)], who: Annotated[str, Depends(admin)]
    ) -> dict[str, Any]:
        """An account's balance across all tills."""
        found = hub.balance(account) if is_id(account) else None
        if found is None:
            raise HTTPException(404, "no such account")
        unit, debits, credits = found
        return {"account": account, "unit": unit, "debits": debits, "credits": credits}

    @app.get("/v1/admin/exceptions", responses=_responses(401, 403, 422))
    def exceptions(who: Annotated[str, Depends(admin)]) -> dict[str, Any]:
        """Conflicts offline tills could not see: overdrafts owed, double redemptions."""
        return {"exceptions": hub.exceptions()}

    @app.get("/v1/admin/totals", responses=_responses(401, 403, 422))
    def totals(who: Annotated[str, Depends(admin)]) -> dict[str, Any]:
        """Per unit, debits minus credits over all accounts (zero when consistent)."""
        return {"units": hub.unit_totals(), "entries": hub.entries()}

    @app.get(
        "/v1/admin/report",
        response_class=HTMLResponse,
        responses=_html_responses(
            "Every report, with charts, as one page; a form on it filters by days and store",
            401,
            403,
            422,
        ),
    )
    def report(
        who: Annotated[str, Depends(admin)],
        start: Annotated[str, Query(alias="from", pattern=_DAY)] = "",
        end: Annotated[str, Query(alias="to", pattern=_DAY)] = "",
        store: Annotated[str, Query(pattern=rf"^(?:{NAME_PATTERN[1:-1]})?$")] = "",
        currency: Annotated[str, Query(pattern=r"^(?:[A-Z]{3})?$")] = "",
    ) -> HTMLResponse:
        """Head office's reports over the hub's own database, as an HTML page with charts.

        `from` and `to` (YYYY-MM-DD, inclusive) bound the days, `store` keeps one
        store's receipts, `currency` picks the money shown (by default the one most
        receipts were taken in); empty means all. The page's GET form sends them.
        """
        first, last = _day("from", start), _day("to", end)
        if first and last and first > last:
            raise BadRecord(f"from ({first}) is after to ({last})")
        if currency:
            try:
                exponent(currency)
            except UnknownCurrency as error:
                raise BadRecord(f"currency: {error}") from None
        page = report_page(
            hub.store, start=first, end=last, shop=store or None, currency=currency or None
        )
        return HTMLResponse(page, headers=_REPORT_HEADERS)

    def sun_keys() -> Callable[[CounterStore], SunVerifier]:
        # Checked before the query: without SUN keys the hub serves no members' pages at all.
        if hub.sun is None:
            raise HTTPException(404, "this hub has no SUN keys: it serves no members' pages")
        return hub.sun

    @app.get(
        "/t",
        response_class=HTMLResponse,
        responses={
            200: {
                "description": "The member's own page, or the same neutral page for a tap"
                " that shows nothing (used before, copied, forged, or a blocked card)",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            # Problems by reference: a model here would be filed under text/html.
            **{
                code: {
                    "description": declared["description"],
                    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
                for code, declared in _responses(404, 422).items()
            },
        },
    )
    def member_tap(
        request: Request,
        sun: Annotated[Callable[[CounterStore], SunVerifier], Depends(sun_keys)],
        picc_data: Annotated[str, Query(pattern=r"^[0-9A-Fa-f]{32}$")],
        cmac: Annotated[str, Query(pattern=r"^[0-9A-Fa-f]{16}$")],
        enc: Annotated[str | None, Query(pattern=r"^(?:[0-9A-Fa-f]{32}){1,8}$")] = None,
    ) -> HTMLResponse:
        """A member's own page, opened by a tap of their card (the SUN URL is the credential).

        The tap is checked against the chain's counter for the tag: a URL shows
        the account once, anywhere. Verification reads the raw query, so the
        MAC covers exactly what the tag wrote.
        """
        figures = member_figures(hub, sun, request.url.query)
        page = used_page() if figures is None else member_page(figures)
        return HTMLResponse(page, headers=dict(PAGE_HEADERS))

    problems_as_problem_json(app)
    return app
