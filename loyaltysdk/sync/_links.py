# SPDX-License-Identifier: Apache-2.0
"""How a till reaches the hub: over HTTP (httpx), or directly (tests, the store simulator)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any, Protocol

from .. import _enrolment
from .._errors import HubError, HubUnreachable, SyncError
from .._extras import require
from ._wire import (
    AuthError,
    BadRecord,
    Forbidden,
    InsufficientOnline,
    PushResult,
    Registration,
    Snapshot,
    TooLarge,
    Update,
)


class HubLink(Protocol):
    """The till's view of the hub."""

    def push(
        self, records: Sequence[tuple[int, str]], *, head: int | None = None
    ) -> PushResult: ...

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

    def update_key(self) -> bytes | None:
        """The key that signs the hub's updates, where the link itself can vouch for it.

        In process (`DirectLink`) nothing travels, so the hub's own key is
        given; over a network, None: the key comes from registration only.
        """
        ...


class HubService(Protocol):
    """What `DirectLink` calls: the hub's methods, as a given till."""

    def authenticate(self, token: str | None) -> Any: ...

    def push(
        self, till_id: str, records: Sequence[tuple[int, str]], *, head: int | None = None
    ) -> PushResult: ...

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

    @property
    def update_key(self) -> bytes: ...


class DirectLink:
    """A link that calls a hub in the same process, as the till its credential names."""

    def __init__(self, hub: HubService, credential: str) -> None:
        self.hub = hub
        who = hub.authenticate(credential)
        if who.kind != "till":
            raise Forbidden("a till link needs a till credential")
        self.till_id: str = who.id

    def push(self, records: Sequence[tuple[int, str]], *, head: int | None = None) -> PushResult:
        return self.hub.push(self.till_id, records, head=head)

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

    def update_key(self) -> bytes | None:
        return self.hub.update_key


def _httpx() -> Any:
    return require("httpx", extra="hub", feature="talking to the hub over HTTP")


#: HTTP refusals as the errors a till acts on; 5xx and no answer are `SyncError` (retry).
_REFUSALS: dict[int, type[HubError]] = {
    400: BadRecord,
    401: AuthError,
    403: Forbidden,
    409: InsufficientOnline,
    413: TooLarge,
    422: BadRecord,
}


class HttpLink:
    """The hub over HTTP with a short timeout (online-first, offline-capable).

    Args:
        base_url: e.g. ``http://hub.example:8080``.
        credential: the till's credential from registration.
        timeout: seconds before the till treats the hub as unreachable.
        update_key: the hub's update key from registration, if the till
            does not keep it itself (`Till.trust_hub`).
    """

    def __init__(
        self,
        base_url: str,
        credential: str,
        *,
        timeout: float = 2.0,
        client: Any = None,
        update_key: bytes | None = None,
    ) -> None:
        httpx = _httpx()
        self._httpx = httpx
        self._update_key = update_key
        # `client` lets tests pass an in-process ASGI client (an httpx.Client).
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._client.headers["Authorization"] = f"Bearer {credential}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except self._httpx.HTTPError as error:
            raise HubUnreachable(f"hub unreachable: {type(error).__name__}") from error
        if response.status_code >= 500:
            raise HubUnreachable(f"hub error {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except (ValueError, AttributeError):
                detail = response.text[:200]
            refusal = _REFUSALS.get(response.status_code, HubError)
            raise refusal(f"hub refused ({response.status_code}): {detail[:300]}")
        return response.json()

    def push(self, records: Sequence[tuple[int, str]], *, head: int | None = None) -> PushResult:
        body: dict[str, Any] = {
            "records": [{"seq": seq, "payload": payload} for seq, payload in records]
        }
        if head is not None:
            body["head"] = head
        data = self._call("POST", "/v1/sync/push", json=body)
        return PushResult(data["acked"], data["applied"], data["duplicates"], data["held"])

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        data = self._call("GET", "/v1/sync/pull", params={"after": after, "limit": limit})
        try:
            return [
                Update(
                    int(u["cursor"]),
                    str(u["kind"]),
                    u["payload"],
                    bytes.fromhex(u["signature"]) if u.get("signature") else None,
                )
                for u in data["updates"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SyncError(f"the hub's updates are malformed: {error}") from None

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

    def update_key(self) -> bytes | None:
        return self._update_key

    def close(self) -> None:
        self._client.close()


def register(
    base_url: str,
    till_id: str,
    enrolment_token: str,
    *,
    timeout: float = 5.0,
    client: Any = None,
) -> Registration:
    """Register a till with the hub over HTTP: its credential and the hub's update key.

    The token itself never travels (`loyaltysdk._enrolment`); the update key
    comes with a proof made with it, checked here, so the key is head office's.

    Raises:
        AuthError: the hub refused the token, or could not prove its key.
        SyncError: the hub is unreachable.
    """
    httpx = _httpx()
    secret = _enrolment.digest(enrolment_token)
    post = client.post if client is not None else httpx.post  # `client`: as for HttpLink
    try:
        response = post(
            f"{base_url.rstrip('/')}/v1/tills/{till_id}/register",
            json={"proof": _enrolment.enrolment_proof(secret, till_id).hex()},
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise HubUnreachable(f"hub unreachable: {type(error).__name__}") from error
    if response.status_code == 401:
        raise AuthError("the hub refused the enrolment token")
    if response.status_code != 200:
        raise HubError(f"registration failed ({response.status_code})")
    try:
        data = response.json()
        credential = str(data["credential"])
        key = bytes.fromhex(data["update_key"])
        proof = bytes.fromhex(data["key_proof"])
    except (ValueError, KeyError, TypeError) as error:
        raise HubError(f"registration answer malformed: {error}") from None
    if not hmac.compare_digest(proof, _enrolment.key_proof(secret, till_id, key)):
        raise AuthError("the hub's update key does not come with a proof from the enrolment token")
    return Registration(credential, key)


__all__ = ["DirectLink", "HttpLink", "HubLink", "HubService", "register"]
