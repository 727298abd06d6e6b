"""Capacity shared fairly: RPCs in flight (the health service exempt) and WatchJob
streams per peer. One event loop owns the counters, so they need no lock.

grpc.aio's own `maximum_concurrent_rpcs` counts every RPC alike: idle WatchJob streams
held open by one client took all of it, and the health check was refused with the rest.
Here a stream that is merely waiting still takes one slot, but one peer can hold at
most `max_watches_per_peer` of them, and health never needs a slot at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from agentjobs.server.api.access import Rule


def peer_key(peer: str) -> str:
    """The client a gRPC peer string belongs to: its IP address (the port is per
    connection), an IPv6 address by its /64 (one host routinely holds a whole /64),
    an IPv4-mapped IPv6 address as the IPv4 address."""
    scheme, _, rest = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return scheme or peer
    # grpc writes IPv6 peers as URIs: ipv6:%5B::1%5D:50051
    rest = urllib.parse.unquote(rest)
    host = rest.rpartition(":")[0].strip("[]") or rest
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and not address.is_loopback:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True)
class Refusal:
    message: str
    reason: str


class RpcLimits:
    def __init__(self, max_in_flight: int, max_watches_per_peer: int) -> None:
        self.max_in_flight = max_in_flight
        self.max_watches_per_peer = max_watches_per_peer
        self.in_flight = 0
        self._watches: dict[str, int] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def watches(self, peer: str) -> int:
        return self._watches.get(peer, 0)

    def admit(self, rule: Rule, peer: str) -> Refusal | None:
        """Take the slots `rule` needs, or say why not (nothing is taken then)."""
        if not rule.limited:
            return None
        if self.in_flight >= self.max_in_flight:
            return Refusal(
                f"the server is at its limit of {self.max_in_flight} concurrent calls; retry later",
                "TOO_MANY_REQUESTS",
            )
        if rule.watch:
            held = self._watches.get(peer, 0)
            if held >= self.max_watches_per_peer:
                return Refusal(
                    f"this client already holds {held} WatchJob streams, the limit per "
                    "client; close one or poll GetJobStatus",
                    "TOO_MANY_STREAMS",
                )
            self._watches[peer] = held + 1
        self.in_flight += 1
        return None

    def release(self, rule: Rule, peer: str) -> None:
        """Give back what admit() took for `rule` and `peer`."""
        if not rule.limited:
            return
        self.in_flight -= 1
        if rule.watch:
            left = self._watches[peer] - 1
            if left:
                self._watches[peer] = left
            else:
                del self._watches[peer]
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until `predicate()` holds, checked again each time slots are given back (a
        drain waits for `lambda: limits.in_flight == 0`, a test for a cancellation)."""
        while not predicate():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
