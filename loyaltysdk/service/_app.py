# SPDX-License-Identifier: Apache-2.0
"""FastAPI routes of the till service: one route per call of the checkout API.

Sessions live in this process (a restarted service lets go of their holds,
as a reopened till does); what a POST answered is kept by its idempotency
key in the till's file, in the same process, so a retry after a lost answer
gets the same answer and changes nothing.
"""

import hashlib
import hmac
import json
import secrets
import threading
from typing import Annotated, Any

import attrs
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._errors import (
    CardError,
    CurrencyMismatch,
    HubUnreachable,
    InvalidAmount,
    LoyaltyError,
    NoReader,
    ReaderError,
    ReaderTimeout,
    StorageClosed,
    StorageFull,
    UnknownCurrency,
    WrongType,
)
from .._money import Money
from .._openapi import PROBLEM, problems_as_problem_json
from ..cards import Reader, Transport
from ..cards.ntag424 import read_sun_url
from ..rules import Basket, BasketError, Line
from ..till import (
    Checkout,
    CheckoutError,
    InvalidName,
    InvalidReference,
    NotEnoughPoints,
    OverPayment,
    PaymentInterrupted,
    PresenceRequired,
    ReceiptConflict,
    ReceiptNotFound,
    RefundRefused,
    Till,
    UnknownCard,
    UnknownMember,
    VoidRefused,
    WalletShort,
    WrongCurrency,
)
from ..vouchers import VoucherError

_TABLE = (
    "CREATE TABLE IF NOT EXISTS service_idempotency (key TEXT PRIMARY KEY,"
    " fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL)"
)
# HTTP status per refusal, most specific first.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UnknownMember, 404),
    (UnknownCard, 404),
    (ReceiptNotFound, 404),
    (WrongType, 422),
    (InvalidAmount, 422),
    (UnknownCurrency, 422),
    (CurrencyMismatch, 422),
    (BasketError, 422),
    (InvalidReference, 422),
    (InvalidName, 422),
    (WrongCurrency, 422),
    (PresenceRequired, 403),
    (NotEnoughPoints, 409),
    (WalletShort, 409),
    (OverPayment, 409),
    (ReceiptConflict, 409),
    (RefundRefused, 409),
    (VoidRefused, 409),
    (PaymentInterrupted, 409),
    (VoucherError, 409),
    (CheckoutError, 409),
    (NoReader, 409),
    (ReaderTimeout, 409),
    (CardError, 409),
    (ReaderError, 503),
    (HubUnreachable, 503),
    (StorageFull, 507),
    (StorageClosed, 503),
)


_Key = Annotated[str | None, Header(alias="Idempotency-Key")]


class Problem(BaseModel):
    """An RFC 9457 problem document: every refusal; `title` is the SDK's error class."""

    type: str
    title: str
    status: int
    detail: str
    retry: bool  # the same request, later, may succeed
    available: dict[str, Any] | None = None  # WalletShort: what the wallet holds


_TITLES = {
    400: "The body is not JSON",
    401: "No or a wrong bearer token",
    403: "The member must be present (a tap, a PIN or an OTP)",
    404: "No such member, card, receipt or checkout",
    409: "Refused: not enough, too much, already done, a voucher or card refusal, no card",
    422: "Malformed: a wrong type, an invalid amount or a missing Idempotency-Key",
    500: "The till could not store it",
    503: "The hub or the reader did not answer, or the till is closed: retry",
    507: "The till's disk is full: retry once space is freed",
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": title} for code, title in _TITLES.items()
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MoneyIn(_Body):
    """An amount of money, as the SDK's `Money`: minor units and an ISO 4217 code."""

    minor: int = Field(ge=0, le=2**53 - 1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    def money(self) -> Money:
        return Money(self.minor, self.currency)


class LineIn(_Body):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price: MoneyIn
    discount: MoneyIn | None = None  # on the whole line
    category: str = Field(default="", max_length=64)
    brand: str = Field(default="", max_length=64)


class Evidence(_Body):
    """Who is buying: a card UID in hex, text (a SUN URL, QR, number), or a tap on the
    service's reader (`tap`, waiting up to `wait_seconds` for the card)."""

    card_uid: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{8,20}$")
    text: str | None = Field(default=None, min_length=1, max_length=2048)
    tap: bool = False
    wait_seconds: float = Field(default=10, ge=0, le=60)


class CheckoutIn(_Body):
    lines: list[LineIn] = Field(min_length=1, max_length=1000)
    member: Evidence | None = None
    receipt_ref: str | None = Field(default=None, min_length=1, max_length=100)


class PointsIn(_Body):
    points: int = Field(ge=0, le=2**53 - 1)
    pin: str | None = Field(default=None, max_length=32)
    otp: str | None = Field(default=None, max_length=32)


class VoucherIn(_Body):
    scanned: str = Field(min_length=1, max_length=4096)


class AmountIn(_Body):
    amount: MoneyIn


class CardIn(_Body):
    amount: MoneyIn
    wait_seconds: float = Field(default=10, ge=0, le=60)  # for the card to be presented


class CompleteIn(_Body):
    receipt_ref: str = Field(min_length=1, max_length=100)
    wait_seconds: float = Field(default=10, ge=0, le=60)  # for a card paying the sale


class ToCard(_Body):
    """Give card value back onto the card on the service's reader (else to the wallet)."""

    to_card: bool = False
    wait_seconds: float = Field(default=10, ge=0, le=60)


class RefundIn(ToCard):
    refund_ref: str = Field(min_length=1, max_length=100)
    lines: dict[str, int]  # line index (as JSON keys are text) -> quantity


def _status_of(error: Exception) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 500)


def _jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {k: _jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, Money):
        return {"minor": value.minor, "currency": value.currency}
    if isinstance(value, int | str | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _problem(error: Exception, status: int) -> JSONResponse:
    kind = type(error).__name__
    body: dict[str, Any] = {
        "type": f"urn:loyaltysdk:error:{kind}",
        "title": kind,
        "status": status,
        "detail": str(error)[:500],
        "retry": bool(getattr(error, "should_retry", False)),
    }
    if isinstance(error, WalletShort):
        body["available"] = _jsonable(error.available)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def create_app(till: Till, token: str, reader: Reader | None = None) -> FastAPI:
    app = FastAPI(
        title="loyaltysdk till service",
        version="1",
        description="The checkout API of one till over HTTP on loopback. Every POST needs"
        " an Idempotency-Key header; refusals are RFC 9457 problem documents.",
    )
    sessions: dict[str, Checkout] = {}
    lock = threading.RLock()  # one till, one file: requests take turns
    conn = till.ledger.store.connection  # type: ignore[attr-defined]
    with till.ledger.atomic():
        conn.execute(_TABLE)
    expected = hashlib.sha256(token.encode()).digest()

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        given = (authorization or "").removeprefix("Bearer ")
        if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected):
            raise _Unauthorised

    @app.exception_handler(LoyaltyError)
    async def refused(request: Request, error: LoyaltyError) -> JSONResponse:
        return _problem(error, _status_of(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in error.errors()
        )
        return _problem(WrongType(detail[:500]), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": "Bad Request" if error.status_code == 400 else "HTTP error",
            "status": error.status_code,
            "detail": str(error.detail)[:500],
            "retry": False,
        }
        return JSONResponse(body, status_code=error.status_code, media_type=PROBLEM)

    @app.exception_handler(_Unauthorised)
    async def unauthorised(request: Request, error: Exception) -> JSONResponse:
        response = _problem(_Unauthorised("missing or wrong bearer token"), 401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def once(key: str | None, request_id: str, work: Any) -> JSONResponse:
        """Run `work` once per idempotency key; a retry gets the stored answer."""
        if not key or len(key) > 200:
            return _problem(WrongType("every POST needs an Idempotency-Key header"), 422)
        fingerprint = hashlib.sha256(request_id.encode()).hexdigest()
        with lock:
            found = conn.execute(
                "SELECT fingerprint, status, body FROM service_idempotency WHERE key = ?", (key,)
            ).fetchone()
            if found is not None:
                if found[0] != fingerprint:
                    return _problem(
                        WrongType(f"Idempotency-Key {key!r} was used for another request"), 422
                    )
                status = int(found[1])
                return JSONResponse(
                    json.loads(found[2]),
                    status_code=status,
                    media_type=PROBLEM if status >= 400 else None,
                )
            try:
                status, body = 200, _jsonable(work())
            except LoyaltyError as error:
                status = _status_of(error)
                if getattr(error, "should_retry", False) or status >= 500:
                    return _problem(error, status)  # not remembered: a retry may succeed
                problem = _problem(error, status)
                with till.ledger.atomic():
                    conn.execute(
                        "INSERT INTO service_idempotency VALUES (?, ?, ?, ?)",
                        (key, fingerprint, status, bytes(problem.body).decode()),
                    )
                return problem
            with till.ledger.atomic():
                conn.execute(
                    "INSERT INTO service_idempotency VALUES (?, ?, ?, ?)",
                    (key, fingerprint, status, json.dumps(body)),
                )
            return JSONResponse(body, status_code=status)

    def session(checkout_id: str) -> Checkout:
        found = sessions.get(checkout_id)
        if found is None:
            raise ReceiptNotFound(f"no open checkout {checkout_id!r}")
        return found

    def card_in_field(wait_seconds: float) -> tuple[bytes, Transport]:
        """The UID of the card on the service's reader (waiting for it) and a transport to it."""
        if reader is None:
            raise NoReader("this till service has no reader attached (the config's `reader`)")
        info = reader.wait_for_card(timeout=wait_seconds)
        transport = reader.connect()
        uid = info.uid
        if uid is None:
            transport.close()
            raise CardError("the reader could not read the card's UID; tap it again")
        return uid, transport

    def tapped(wait_seconds: float) -> Any:
        uid, transport = card_in_field(wait_seconds)
        with transport:
            if till.sun is not None:
                try:  # a tag with a SUN URL proves the tap; any other card is its UID
                    return till.identify(read_sun_url(transport))
                except CardError:
                    pass
            return till.identify(uid)

    def identity(evidence: Evidence | None) -> Any:
        if evidence is None:
            return None
        if evidence.tap:
            return tapped(evidence.wait_seconds)
        if evidence.card_uid is not None:
            return till.identify(bytes.fromhex(evidence.card_uid))
        if evidence.text is not None:
            return till.identify(evidence.text)
        raise WrongType("member: give card_uid, text, or tap")

    auth = [Depends(authorised)]
    routes: dict[str, Any] = {"dependencies": auth, "responses": _REFUSALS}

    @app.post("/v1/identify", **routes)
    def identify(body: Evidence, idempotency_key: _Key = None) -> JSONResponse:
        """Who is buying (a card UID, a SUN URL, a member QR or a typed number)."""
        return once(idempotency_key, f"identify {body.model_dump_json()}", lambda: identity(body))

    @app.post("/v1/checkouts", **routes)
    def open_checkout(body: CheckoutIn, idempotency_key: _Key = None) -> JSONResponse:
        """Start a checkout session; answers its id and first quote."""

        def work() -> dict[str, Any]:
            basket = Basket(
                till.currency,
                [
                    Line(
                        x.sku,
                        x.quantity,
                        x.unit_price.money(),
                        category=x.category,
                        brand=x.brand,
                        discount=x.discount.money() if x.discount else 0,
                    )
                    for x in body.lines
                ],
            )
            sale = till.checkout(basket, identity(body.member), receipt_ref=body.receipt_ref)
            checkout_id = secrets.token_urlsafe(12)
            sessions[checkout_id] = sale
            return {"checkout_id": checkout_id, "quote": _jsonable(sale.quote())}

        return once(idempotency_key, f"open {body.model_dump_json()}", work)

    @app.get("/v1/checkouts/{checkout_id}", **routes)
    def quote(checkout_id: str) -> Any:
        """The session's quote: points to earn and why, balances, what is due."""
        with lock:
            return _jsonable(session(checkout_id).quote())

    @app.post("/v1/checkouts/{checkout_id}/points", **routes)
    def points(checkout_id: str, body: PointsIn, idempotency_key: _Key = None) -> JSONResponse:
        """Pay with points (replacing any earlier amount), held until complete."""
        return once(
            idempotency_key,
            f"points {checkout_id} {body.model_dump_json()}",
            lambda: session(checkout_id).redeem_points(body.points, pin=body.pin, otp=body.otp),
        )

    @app.post("/v1/checkouts/{checkout_id}/vouchers", **routes)
    def voucher(checkout_id: str, body: VoucherIn, idempotency_key: _Key = None) -> JSONResponse:
        """Apply a scanned e-voucher (QR payload or typed code)."""

        def work() -> dict[str, Any]:
            sale = session(checkout_id)
            use = sale.apply_voucher(body.scanned)
            return {"voucher": _jsonable(use), "quote": _jsonable(sale.quote())}

        return once(idempotency_key, f"voucher {checkout_id} {body.scanned}", work)

    @app.post("/v1/checkouts/{checkout_id}/wallet", **routes)
    def wallet(checkout_id: str, body: AmountIn, idempotency_key: _Key = None) -> JSONResponse:
        """Pay from the member's wallet (held until complete)."""
        return once(
            idempotency_key,
            f"wallet {checkout_id} {body.model_dump_json()}",
            lambda: session(checkout_id).pay_wallet(body.amount.money()),
        )

    @app.post("/v1/checkouts/{checkout_id}/card", **routes)
    def card(checkout_id: str, body: CardIn, idempotency_key: _Key = None) -> JSONResponse:
        """Pay from the stored-value card on the service's reader (waiting for its tap).

        The card is debited at complete, with the card still on the reader.
        """

        def work() -> Any:
            sale = session(checkout_id)
            uid, transport = card_in_field(body.wait_seconds)
            transport.close()
            return sale.pay_card(uid, body.amount.money())

        return once(idempotency_key, f"card {checkout_id} {body.model_dump_json()}", work)

    @app.post("/v1/checkouts/{checkout_id}/complete", **routes)
    def complete(checkout_id: str, body: CompleteIn, idempotency_key: _Key = None) -> JSONResponse:
        """Post everything in one durable commit; idempotent by receipt number too.

        With a card payment the card is debited here, on the service's reader;
        a `PaymentInterrupted` (the card left) asks for the card again and
        the same request again: the card's log decides, never paid twice.
        """

        def work() -> Any:
            sale = session(checkout_id)
            if sale.quote().card_paid and reader is not None:
                reader.wait_for_card(timeout=body.wait_seconds)
                with reader.connect() as transport:
                    receipt = sale.complete(body.receipt_ref, card=transport)
            else:
                receipt = sale.complete(body.receipt_ref)
            sessions.pop(checkout_id, None)
            return receipt

        return once(idempotency_key, f"complete {checkout_id} {body.receipt_ref}", work)

    @app.post("/v1/checkouts/{checkout_id}/cancel", **routes)
    def cancel(checkout_id: str, idempotency_key: _Key = None) -> JSONResponse:
        """Leave the session; its holds are let go."""

        def work() -> dict[str, str]:
            sale = sessions.pop(checkout_id, None)
            if sale is not None:
                sale.cancel()
            return {"checkout_id": checkout_id, "status": "cancelled"}

        return once(idempotency_key, f"cancel {checkout_id}", work)

    def on_card(body: ToCard | None, give_back: Any) -> Any:
        """Run a refund or void, with the card on the reader when the POS asks for it."""
        if body is None or not body.to_card:
            return give_back(None)
        if reader is None:
            raise NoReader("this till service has no reader attached (the config's `reader`)")
        reader.wait_for_card(timeout=body.wait_seconds)
        with reader.connect() as transport:
            return give_back(transport)

    @app.post("/v1/receipts/{receipt_ref}/void", **routes)
    def void(
        receipt_ref: str, body: ToCard | None = None, idempotency_key: _Key = None
    ) -> JSONResponse:
        """Undo a whole receipt on its day."""
        shown = body.model_dump_json() if body else ""
        return once(
            idempotency_key,
            f"void {receipt_ref} {shown}",
            lambda: on_card(body, lambda card: till.void(receipt_ref, card=card)),
        )

    @app.post("/v1/receipts/{receipt_ref}/refunds", **routes)
    def refund(receipt_ref: str, body: RefundIn, idempotency_key: _Key = None) -> JSONResponse:
        """Refund some lines (index -> quantity); idempotent by refund_ref too."""

        def work() -> Any:
            try:
                lines = {int(k): v for k, v in body.lines.items()}
            except ValueError:
                raise WrongType("refund lines are keyed by line index") from None
            return on_card(
                body,
                lambda card: till.refund(receipt_ref, lines, refund_ref=body.refund_ref, card=card),
            )

        return once(idempotency_key, f"refund {receipt_ref} {body.model_dump_json()}", work)

    @app.get("/v1/members/{member_id}/balance", **routes)
    def balance(member_id: str) -> Any:
        """A member's points, pending points, next expiry and wallet."""
        with lock:
            return _jsonable(till.balance(member_id))

    problems_as_problem_json(app)
    return app


class _Unauthorised(Exception):
    pass
