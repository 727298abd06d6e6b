"""HTTP to a Masumi payment service: one pooled session, every call bounded by the
timeout, every failure mapped to a domain error, the API key kept out of every log line
and every message.

The masumi SDK opens a new connection per call and waits up to 5 minutes by default,
which is why the gateway speaks HTTP itself (with the bodies the SDK sends).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from yarl import URL

from agentjobs.server import telemetry
from agentjobs.server.domain import (
    DomainError,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceFailedError,
    PaymentServiceRejectedError,
    PaymentServiceTimeoutError,
    PaymentServiceUnavailableError,
    PaymentServiceUnreachableError,
)

log = logging.getLogger(__name__)

_REDACTED = "[redacted]"


class PaymentForbiddenError(PaymentConfigurationError):
    """HTTP 403: this key may not do this (on a payment's seller actions: the payment
    belongs to another key)."""


_MAX_MESSAGE = 300
# Statuses that say "later" rather than "never".
_RETRY_LATER = frozenset({408, 425, 429})
# Bad gateway / gateway timeout: said by a proxy, not by the service's own handler.
_PROXY_UNSURE = frozenset({502, 504})


class PaymentServiceClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout_s: float,
        observer: Callable[[DomainError | None], None] | None = None,
    ) -> None:
        url = URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise PaymentConfigurationError(
                "PAYMENT_SERVICE_URL must be an http(s) URL such as http://localhost:3001/api/v1"
            )
        if not api_key:
            raise PaymentConfigurationError("PAYMENT_API_KEY is empty")
        self._base = str(url)
        # What logs and messages may show: no credentials, no query.
        self.shown_url = str(url.with_user(None).with_query(None))
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._refusal_logged = False
        # Told the outcome of every call (None: the service answered with success), for
        # honest availability (services/availability.py).
        self.observer = observer

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def redact(self, text: str) -> str:
        return text.replace(self._api_key, _REDACTED)

    def _pooled_session(self) -> aiohttp.ClientSession:
        # Created on first use, so inside the running loop that will use it.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"token": self._api_key},
                trace_configs=telemetry.aiohttp_trace_configs(),
            )
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        status_errors: Mapping[int, Callable[[str], DomainError]] | None = None,
    ) -> Any:
        """The `data` of a success answer; a domain error for anything else.
        `status_errors` makes the error of these statuses from the service's message, for
        requests where such a status means something of its own (a 403 about one payment
        rather than about our key: neither logged nor observed as a refused key then)."""
        try:
            data = await self._call(
                method, path, body=body, params=params, status_errors=status_errors
            )
        except DomainError as error:
            if self.observer is not None:
                self.observer(error)
            raise
        # A key that works again (rotated back, or fixed upstream) is logged again the
        # next time it is refused.
        self._refusal_logged = False
        if self.observer is not None:
            self.observer(None)
        return data

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        status_errors: Mapping[int, Callable[[str], DomainError]] | None = None,
    ) -> Any:
        what = f"{method} {path}"
        try:
            async with self._pooled_session().request(
                method, self._base + path, json=body, params=params
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            raise PaymentServiceTimeoutError(
                f"the payment service did not answer {what} within {self._timeout_s:g}s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = self.redact(str(exc)) or type(exc).__name__
            raise PaymentServiceUnreachableError(
                f"the payment service at {self.shown_url} could not be reached for {what}: {reason}"
            ) from None
        except aiohttp.ClientError as exc:
            reason = self.redact(str(exc)) or type(exc).__name__
            raise PaymentServiceUnavailableError(
                f"the payment service at {self.shown_url} could not be reached for {what}: {reason}"
            ) from None
        text = raw.decode("utf-8", errors="replace")
        log.debug("payment service %s -> HTTP %d", what, status)
        if 200 <= status < 300:
            return self._data(what, text)
        raise self._error(what, status, text, status_errors)

    def _data(self, what: str, text: str) -> Any:
        try:
            answer = json.loads(text)
        except ValueError:
            raise PaymentServiceUnavailableError(
                f"the payment service answered {what} with a body that is not JSON"
            ) from None
        if not isinstance(answer, dict) or "data" not in answer:
            raise PaymentServiceUnavailableError(
                f"the payment service answered {what} without the data of a success answer"
            )
        return answer["data"]

    def _error(
        self,
        what: str,
        status: int,
        text: str,
        status_errors: Mapping[int, Callable[[str], DomainError]] | None = None,
    ) -> DomainError:
        message = self._message(text) or f"HTTP {status}"
        if status_errors is not None and status in status_errors:
            return status_errors[status](message)
        if status in (401, 403):
            if not self._refusal_logged:
                self._refusal_logged = True
                log.error(
                    "the payment service at %s refused our API key (HTTP %d on %s): "
                    "check PAYMENT_API_KEY",
                    self.shown_url,
                    status,
                    what,
                )
            refused = PaymentForbiddenError if status == 403 else PaymentConfigurationError
            return refused(
                f"the payment service refused the configured API key (HTTP {status}): {message}"
            )
        if status == 400:
            return PaymentServiceRejectedError(message)
        if status == 404:
            return PaymentNotFoundError(message)
        if status == 409:
            return PaymentServiceConflictError(message)
        if status in _PROXY_UNSURE:
            # A proxy's answer: the service behind it may have done the work.
            return PaymentServiceUnavailableError(
                f"the payment service answered {what} with HTTP {status}: {message}"
            )
        if status >= 500 or status in _RETRY_LATER:
            return PaymentServiceFailedError(
                f"the payment service answered {what} with HTTP {status}: {message}"
            )
        return PaymentServiceRejectedError(f"HTTP {status} on {what}: {message}")

    def _message(self, text: str) -> str:
        """The service's error.message, else the start of the body; never the key."""
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        message: object = text
        if isinstance(answer, dict):
            error = answer.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                message = error["message"]
            elif isinstance(answer.get("message"), str):
                message = answer["message"]
        return self.redact(str(message).strip())[:_MAX_MESSAGE]
