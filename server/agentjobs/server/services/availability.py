"""Whether the payment service is usable for us now, for /availability and
GetAvailability: an agent that cannot request payments must not say "available".

Fed by the outcome of every payment-service call the gateway makes (the payment monitor
polls every few seconds, so in a running server the answer is seldom older than that),
and, when nothing was observed for `stale_after_s`, by one cheap authenticated read of
our own (the gateway's probe). /availability never waits long for that probe: it gets
the last known state once `probe_wait_s` has passed, and the probe's outcome is there
for the next caller.

What it says is shown to anyone: it names the kind of problem, never the URL, the key
or the payment service's own words (those are logged for the operator by the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentjobs.server.domain import (
    DomainError,
    PaymentConfigurationError,
    PaymentServiceUnavailableError,
)
from agentjobs.server.payments.service_client import PaymentForbiddenError

log = logging.getLogger(__name__)

STALE_AFTER_S = 15.0
PROBE_WAIT_S = 1.0

REJECTED = (
    "the payment service rejects this agent's credentials: no job can be started until "
    "the operator fixes the configuration"
)
UNREACHABLE = (
    "the payment service cannot be reached or is failing: no job can be started until it "
    "answers again"
)


@dataclass(frozen=True)
class PaymentHealth:
    usable: bool
    # Why not, in words safe to show anyone; "" when usable.
    problem: str = ""


_USABLE = PaymentHealth(True)


def health_after(error: BaseException | None) -> PaymentHealth:
    """What one call's outcome says: only "your key is refused" and "no answer" make
    the service unusable; a 400, 404 or 409 is an answer about one payment, and so is a
    403 (upstream refuses credentials with 401; 403 means the payment was created with
    another API key)."""
    if isinstance(error, PaymentForbiddenError):
        return _USABLE
    if isinstance(error, PaymentConfigurationError):
        return PaymentHealth(False, REJECTED)
    if isinstance(error, PaymentServiceUnavailableError):
        return PaymentHealth(False, UNREACHABLE)
    return _USABLE


class PaymentServiceHealth:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]] | None = None,
        *,
        stale_after_s: float = STALE_AFTER_S,
        probe_wait_s: float = PROBE_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Settable after construction: the gateway that probes is built with observe().
        self.probe = probe
        self._stale_after_s = stale_after_s
        self._probe_wait_s = probe_wait_s
        self._clock = clock
        # Nothing known yet: assumed usable until the first observation says otherwise.
        self._state = _USABLE
        self._observed_at: float | None = None
        self._probing: asyncio.Task[None] | None = None

    @property
    def state(self) -> PaymentHealth:
        return self._state

    def observe(self, error: BaseException | None) -> None:
        """The outcome of one payment-service call: None when it answered."""
        self._state = health_after(error)
        self._observed_at = self._clock()

    async def current(self) -> PaymentHealth:
        observed = self._observed_at
        if self.probe is not None and (
            observed is None or self._clock() - observed > self._stale_after_s
        ):
            if self._probing is None or self._probing.done():
                self._probing = asyncio.create_task(self._run_probe(), name="payment-probe")
            # shield: a caller that stops waiting leaves the probe running for the next.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._probing), self._probe_wait_s)
        return self._state

    async def _run_probe(self) -> None:
        assert self.probe is not None
        try:
            await self.probe()
        except DomainError as error:
            # The answer itself: an unusable service is what this object reports.
            self.observe(error)
            return
        except Exception as error:
            log.exception("the payment-service probe failed unexpectedly")
            self.observe(PaymentServiceUnavailableError(f"probe failed: {type(error).__name__}"))
            return
        self.observe(None)

    async def close(self) -> None:
        probing, self._probing = self._probing, None
        if probing is not None and not probing.done():
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
