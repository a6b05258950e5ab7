# SPDX-License-Identifier: Apache-2.0
"""How a till reaches the hub: over HTTP (httpx), or directly (tests, the store simulator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .._errors import DriverMissing, HubError, SyncError
from ._wire import (
    AuthError,
    BadRecord,
    Forbidden,
    InsufficientOnline,
    PushResult,
    Snapshot,
    Update,
)


class HubLink(Protocol):
    """The till's view of the hub."""

    def push(self, records: Sequence[tuple[int, str]]) -> PushResult: ...

    def pull(self, after: int, limit: int = 500) -> list[Update]: ...

    def take_hold(
        self,
        hold_id: str,
        account: str,
        unit: str,
        amount: int,
        records: Sequence[tuple[int, str]] = (),
    ) -> int:
        """Hold at the hub (after applying `records`, the till's unsynced outbox); its cursor."""
        ...

    def release_hold(self, hold_id: str) -> None: ...

    def snapshot(
        self,
        member: str | None = None,
        accounts: Sequence[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot: ...

    def push_events(self, events: Sequence[tuple[int, str, Any]]) -> int:
        """Send the till's events (enrolments, cards, blocks, SUN taps); the hub's cursor."""
        ...


class HubService(Protocol):
    """What `DirectLink` calls: the hub's methods, as a given till."""

    def authenticate(self, token: str | None) -> Any: ...

    def push(self, till_id: str, records: Sequence[tuple[int, str]]) -> PushResult: ...

    def pull(self, after: int, limit: int = 500) -> list[Update]: ...

    def take_hold(
        self,
        till_id: str,
        hold_id: str,
        account: str,
        unit: str,
        amount: int,
        ttl: float = ...,
        records: Sequence[tuple[int, str]] = (),
    ) -> int: ...

    def release_hold(self, till_id: str, hold_id: str) -> None: ...

    def snapshot(
        self,
        till_id: str,
        member: str | None = None,
        accounts: Sequence[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot: ...

    def push_events(self, till_id: str, events: Sequence[tuple[int, str, Any]]) -> int: ...


class DirectLink:
    """A link that calls a hub in the same process, as the till its credential names."""

    def __init__(self, hub: HubService, credential: str) -> None:
        self.hub = hub
        who = hub.authenticate(credential)
        if who.kind != "till":
            raise Forbidden("a till link needs a till credential")
        self.till_id: str = who.id

    def push(self, records: Sequence[tuple[int, str]]) -> PushResult:
        return self.hub.push(self.till_id, records)

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        return self.hub.pull(after, limit)

    def take_hold(
        self,
        hold_id: str,
        account: str,
        unit: str,
        amount: int,
        records: Sequence[tuple[int, str]] = (),
    ) -> int:
        return self.hub.take_hold(self.till_id, hold_id, account, unit, amount, records=records)

    def release_hold(self, hold_id: str) -> None:
        self.hub.release_hold(self.till_id, hold_id)

    def snapshot(
        self,
        member: str | None = None,
        accounts: Sequence[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot:
        return self.hub.snapshot(self.till_id, member, accounts, sun)

    def push_events(self, events: Sequence[tuple[int, str, Any]]) -> int:
        return self.hub.push_events(self.till_id, events)


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as error:  # pragma: no cover - the extra is missing
        raise DriverMissing(
            "talking to the hub over HTTP needs: pip install 'loyaltysdk[hub]'"
        ) from error
    return httpx


#: HTTP refusals as the errors a till acts on; 5xx and no answer are `SyncError` (retry).
_REFUSALS: dict[int, type[HubError]] = {
    401: AuthError,
    403: Forbidden,
    409: InsufficientOnline,
    422: BadRecord,
}


class HttpLink:
    """The hub over HTTP with a short timeout (online-first, offline-capable).

    Args:
        base_url: e.g. ``http://hub.example:8080``.
        credential: the till's credential from registration.
        timeout: seconds before the till treats the hub as unreachable.
    """

    def __init__(
        self,
        base_url: str,
        credential: str,
        *,
        timeout: float = 2.0,
        client: Any = None,
    ) -> None:
        httpx = _httpx()
        self._httpx = httpx
        # `client` lets tests pass an in-process ASGI client (an httpx.Client).
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._client.headers["Authorization"] = f"Bearer {credential}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except self._httpx.HTTPError as error:
            raise SyncError(f"hub unreachable: {type(error).__name__}") from error
        if response.status_code >= 500:
            raise SyncError(f"hub error {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text[:200]
            refusal = _REFUSALS.get(response.status_code, HubError)
            raise refusal(f"hub refused ({response.status_code}): {detail[:300]}")
        return response.json()

    def push(self, records: Sequence[tuple[int, str]]) -> PushResult:
        body = {"records": [{"seq": seq, "payload": payload} for seq, payload in records]}
        data = self._call("POST", "/v1/sync/push", json=body)
        return PushResult(data["acked"], data["applied"], data["duplicates"], data["held"])

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        data = self._call("GET", "/v1/sync/pull", params={"after": after, "limit": limit})
        return [Update(u["cursor"], u["kind"], u["payload"]) for u in data["updates"]]

    def take_hold(
        self,
        hold_id: str,
        account: str,
        unit: str,
        amount: int,
        records: Sequence[tuple[int, str]] = (),
    ) -> int:
        body = {
            "hold_id": hold_id,
            "account": account,
            "unit": unit,
            "amount": amount,
            "records": [{"seq": seq, "payload": payload} for seq, payload in records],
        }
        return int(self._call("POST", "/v1/holds", json=body)["acked"])

    def release_hold(self, hold_id: str) -> None:
        self._call("DELETE", f"/v1/holds/{hold_id}")

    def snapshot(
        self,
        member: str | None = None,
        accounts: Sequence[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot:
        body: dict[str, Any] = {"member": member, "accounts": list(accounts)}
        if sun is not None:
            body["sun"] = {"uid": sun[0], "counter": sun[1]}
        return Snapshot.from_json(self._call("POST", "/v1/snapshot", json=body))

    def push_events(self, events: Sequence[tuple[int, str, Any]]) -> int:
        body = {"events": [{"seq": s, "kind": k, "payload": p} for s, k, p in events]}
        return int(self._call("POST", "/v1/sync/events", json=body)["acked"])

    def close(self) -> None:
        self._client.close()


def register(base_url: str, till_id: str, enrolment_token: str, *, timeout: float = 5.0) -> str:
    """Register a till with the hub over HTTP; returns its credential."""
    httpx = _httpx()
    try:
        response = httpx.post(
            f"{base_url.rstrip('/')}/v1/tills/{till_id}/register",
            json={"enrolment_token": enrolment_token},
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise SyncError(f"hub unreachable: {type(error).__name__}") from error
    if response.status_code == 401:
        raise AuthError("the hub refused the enrolment token")
    if response.status_code != 200:
        raise HubError(f"registration failed ({response.status_code})")
    return str(response.json()["credential"])


__all__ = ["DirectLink", "HttpLink", "HubLink", "HubService", "register"]
