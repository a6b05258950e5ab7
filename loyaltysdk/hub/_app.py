# SPDX-License-Identifier: Apache-2.0
"""The hub's HTTP API (FastAPI: request validation and the OpenAPI schema come with it).

Tills authenticate with their own bearer credential and the till id comes
from the credential, never from the request, so a till can only push, pull
and hold as itself. Head-office calls need an admin credential. Refusals
are 401 (no or bad credentials) or 403 (valid, but not allowed) with
nothing changed. Credentials are never logged.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .._version import __version__
from ..sync import AuthError, BadRecord, Forbidden, InsufficientOnline
from ._service import Hub, Principal


class RegisterBody(BaseModel):
    enrolment_token: str = Field(min_length=1, max_length=200)


class Record(BaseModel):
    seq: int = Field(ge=1, le=2**62)
    payload: str = Field(min_length=2, max_length=65_536)


class PushBody(BaseModel):
    records: list[Record] = Field(max_length=5_000)


class HoldBody(BaseModel):
    hold_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=3, max_length=3)
    amount: int = Field(ge=1, le=2**62)
    ttl: int = Field(default=1800, ge=1, le=86_400)
    records: list["Record"] = Field(default_factory=list, max_length=500)


class SunBody(BaseModel):
    uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    counter: int = Field(ge=0, le=2**24)


class SnapshotBody(BaseModel):
    member: str | None = Field(default=None, min_length=1, max_length=64)
    accounts: list[str] = Field(default_factory=list, max_length=50)
    sun: SunBody | None = None


class Event(BaseModel):
    seq: int = Field(ge=1, le=2**62)
    kind: str = Field(min_length=1, max_length=20)
    payload: dict[str, Any]


class EventsBody(BaseModel):
    events: list[Event] = Field(max_length=5_000)


class TillBody(BaseModel):
    till_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class UpdateBody(BaseModel):
    kind: str = Field(pattern=r"^(rules|hotlist|revocations|keys|vouchers|members|allowance)$")
    payload: Any


class CardBody(BaseModel):
    uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    kind: str = Field(default="identity", pattern=r"^(identity|purse)$")


class MemberBody(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    tier: str = Field(default="", max_length=32)
    segments: list[str] = Field(default_factory=list, max_length=50)
    birthday: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    cards: list[CardBody] = Field(default_factory=list, max_length=20)


class UidsBody(BaseModel):
    uids: list[str] = Field(min_length=1, max_length=10_000)


class CodesBody(BaseModel):
    codes: list[str] = Field(min_length=1, max_length=100_000)


class VouchersBody(BaseModel):
    terms: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)


def create_app(hub: Hub) -> FastAPI:
    """The ASGI app serving `hub`."""
    app = FastAPI(title="loyaltysdk hub", version=__version__)

    @app.exception_handler(AuthError)
    async def _auth(_: Request, error: AuthError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, error: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    @app.exception_handler(BadRecord)
    async def _bad(_: Request, error: BadRecord) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(InsufficientOnline)
    async def _insufficient(_: Request, error: InsufficientOnline) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

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

    @app.post("/v1/tills/{till_id}/register")
    def register(till_id: str, body: RegisterBody) -> dict[str, str]:
        """Exchange the one-time enrolment token for the till's credential."""
        return {"credential": hub.register(till_id, body.enrolment_token)}

    @app.post("/v1/sync/push")
    def push(body: PushBody, till_id: Annotated[str, Depends(till)]) -> dict[str, int]:
        """Upload outbox records; applied exactly once per (till, seq)."""
        result = hub.push(till_id, [(r.seq, r.payload) for r in body.records])
        return {
            "acked": result.acked,
            "applied": result.applied,
            "duplicates": result.duplicates,
            "held": result.held,
        }

    @app.get("/v1/sync/pull")
    def pull(
        till_id: Annotated[str, Depends(till)],
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=5_000)] = 500,
    ) -> dict[str, Any]:
        """Updates (rules, hotlist, revocations, keys) after a cursor."""
        updates = hub.pull(after, limit)
        return {
            "updates": [
                {"cursor": u.cursor, "kind": u.kind, "payload": u.payload} for u in updates
            ],
            "cursor": updates[-1].cursor if updates else after,
        }

    @app.get("/v1/sync/cursor")
    def cursor(till_id: Annotated[str, Depends(till)]) -> dict[str, int]:
        """The highest sequence number the hub has applied for this till."""
        return {"acked": hub.cursor_of(till_id)}

    @app.post("/v1/holds")
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

    @app.post("/v1/snapshot")
    def snapshot(body: SnapshotBody, till_id: Annotated[str, Depends(till)]) -> dict[str, Any]:
        """A member's chain-wide figures (and other accounts named), as of this till's records."""
        sun = (body.sun.uid, body.sun.counter) if body.sun else None
        return hub.snapshot(till_id, body.member, body.accounts, sun).to_json()

    @app.post("/v1/sync/events")
    def events(body: EventsBody, till_id: Annotated[str, Depends(till)]) -> dict[str, int]:
        """What the till learned (enrolments, cards, blocks, SUN taps); applied once each."""
        acked = hub.push_events(till_id, [(e.seq, e.kind, e.payload) for e in body.events])
        return {"acked": acked}

    @app.delete("/v1/holds/{hold_id}")
    def release_hold(hold_id: str, till_id: Annotated[str, Depends(till)]) -> dict[str, str]:
        """Release an online hold (posted or voided at the till)."""
        hub.release_hold(till_id, hold_id)
        return {"hold_id": hold_id, "status": "released"}

    @app.post("/v1/admin/tills")
    def create_till(body: TillBody, who: Annotated[str, Depends(admin)]) -> dict[str, str]:
        """Allow a till to register; returns its one-time enrolment token."""
        return {"till_id": body.till_id, "enrolment_token": hub.create_till(body.till_id)}

    @app.post("/v1/admin/updates")
    def publish(body: UpdateBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Publish rules, a hotlist, voucher revocations or keys to every till."""
        if body.kind == "rules":
            from ..rules import load_rules

            try:
                load_rules(body.payload)
            except ValueError as error:
                raise BadRecord(str(error)) from error
        return {"cursor": hub.publish(body.kind, body.payload)}

    @app.post("/v1/admin/members")
    def members(body: MemberBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Enrol a member (and cards) at every till."""
        return {"cursor": hub.publish("members", {"members": [body.model_dump()]})}

    @app.post("/v1/admin/cards/block")
    def block_cards(body: UidsBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Put cards on every till's hotlist."""
        return {"cursor": hub.publish("hotlist", {"block": [u.upper() for u in body.uids]})}

    @app.post("/v1/admin/vouchers")
    def vouchers(body: VouchersBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Send issued vouchers' signed terms to every till (they fund them on arrival)."""
        from ..vouchers import VoucherError, VoucherTerms

        try:
            for terms in body.terms:
                VoucherTerms.from_json(terms)
        except VoucherError as error:
            raise BadRecord(str(error)) from error
        return {"cursor": hub.publish("vouchers", {"terms": body.terms})}

    @app.post("/v1/admin/vouchers/revoke")
    def revoke(body: CodesBody, who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Revoke vouchers at every till."""
        return {"cursor": hub.publish("revocations", {"codes": body.codes})}

    @app.post("/v1/admin/rules")
    def rules(document: dict[str, Any], who: Annotated[str, Depends(admin)]) -> dict[str, int]:
        """Publish a version of the earning rules (validated first)."""
        from ..rules import load_rules

        try:
            load_rules(document)
        except ValueError as error:
            raise BadRecord(str(error)) from error
        return {"cursor": hub.publish("rules", document)}

    @app.get("/v1/admin/balances/{account}")
    def balance(account: str, who: Annotated[str, Depends(admin)]) -> dict[str, Any]:
        """An account's balance across all tills."""
        found = hub.balance(account)
        if found is None:
            raise HTTPException(404, "no such account")
        unit, debits, credits = found
        return {"account": account, "unit": unit, "debits": debits, "credits": credits}

    @app.get("/v1/admin/exceptions")
    def exceptions(who: Annotated[str, Depends(admin)]) -> dict[str, Any]:
        """Conflicts offline tills could not see: overdrafts owed, double redemptions."""
        return {"exceptions": hub.exceptions()}

    @app.get("/v1/admin/totals")
    def totals(who: Annotated[str, Depends(admin)]) -> dict[str, Any]:
        """Per unit, debits minus credits over all accounts (zero when consistent)."""
        return {"units": hub.unit_totals(), "entries": hub.entries()}

    return app
