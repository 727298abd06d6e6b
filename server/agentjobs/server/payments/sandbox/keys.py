"""The API keys the sandbox accepts in the `token` header, with upstream's permission
model (packages/payment-core/src/auth-middleware.ts): every key reads; a pay key may
create payments and act on them; an admin key may also act on payments another key
created (submit-result, authorize-refund and error-state-recovery answer 403 to any other
key)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from agentjobs.server.payments.sandbox.errors import ApiError
from agentjobs.server.payments.sandbox.ledger import new_id

NETWORKS = frozenset({"Preprod", "Mainnet"})


@dataclass
class ApiKey:
    id: str
    token: str
    can_pay: bool = True
    can_admin: bool = False
    revoked: bool = False
    networks: frozenset[str] = NETWORKS

    def may_act_on(self, requested_by_id: str) -> bool:
        return self.can_admin or requested_by_id == self.id


class ApiKeys:
    def __init__(self) -> None:
        self._keys: list[ApiKey] = []

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(list(self._keys))

    def add(
        self,
        token: str,
        *,
        key_id: str | None = None,
        can_pay: bool = True,
        can_admin: bool = False,
        networks: frozenset[str] = NETWORKS,
    ) -> ApiKey:
        if not token:
            raise ValueError("an API key needs a token")
        if any(key.token == token for key in self._keys):
            raise ValueError("that API key exists already")
        key = ApiKey(
            key_id or new_id(), token, can_pay=can_pay, can_admin=can_admin, networks=networks
        )
        self._keys.append(key)
        return key

    def revoke(self, token: str) -> ApiKey:
        key = self._find(token)
        if key is None:
            raise KeyError("no such API key")
        key.revoked = True
        return key

    def _find(self, presented: str) -> ApiKey | None:
        found = None
        for key in self._keys:
            # Compare every key in constant time: which key matched must not leak.
            if hmac.compare_digest(presented.encode(), key.token.encode()):
                found = key
        return found

    def authenticate(self, presented: str | None, *, needs_pay: bool) -> ApiKey:
        """The key behind `presented`, or upstream's 401 (never echoing what was sent)."""
        if not presented:
            raise ApiError(401, "Unauthorized, no authentication token provided")
        key = self._find(presented)
        if key is None:
            raise ApiError(401, "Unauthorized, invalid authentication token provided")
        if key.revoked:
            raise ApiError(401, "Unauthorized, API key is revoked")
        if needs_pay and not (key.can_pay or key.can_admin):
            raise ApiError(401, "Unauthorized, payment access required")
        return key


def check_network(key: ApiKey, network: str) -> None:
    """checkIsAllowedNetworkOrThrowUnauthorized: after validation, inside the handler."""
    if not key.can_admin and network not in key.networks:
        raise ApiError(401, "Unauthorized, network not allowed")
