"""Faults the sandbox injects into its /api/v1 answers. Tests set the fields directly:

    sandbox.faults.latency_s = 3.0      # every answer this much later
    sandbox.faults.error_rate = 1.0     # this fraction of requests answered 500
    sandbox.faults.drop_next = 2        # close the next 2 connections without answering
    sandbox.faults.conflict_next = 5    # the next 5 submit-result / authorize-refund /
                                        # error-state-recovery calls lose a race: 409
    sandbox.faults.malformed_next = 1   # answer the next request 200 with malformed_body

Only requests whose method is in `drop_methods` (POST by default) are dropped: an HTTP
client transparently retries an idempotent GET whose connection was closed under it
(aiohttp does, once), and background polling would otherwise use up drops meant for the
request under test. Add "GET" to drop those too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Faults:
    latency_s: float = 0.0
    error_rate: float = 0.0
    drop_next: int = 0
    conflict_next: int = 0
    malformed_next: int = 0
    malformed_body: str = '{"status": "success", "data": {}}'
    drop_methods: frozenset[str] = frozenset({"POST"})
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def reset(self) -> None:
        self.latency_s = self.error_rate = 0.0
        self.drop_next = self.conflict_next = self.malformed_next = 0
        self.drop_methods = frozenset({"POST"})

    def take_drop(self, method: str) -> bool:
        if self.drop_next > 0 and method in self.drop_methods:
            self.drop_next -= 1
            return True
        return False

    def take_error(self) -> bool:
        return self.error_rate > 0 and self.rng.random() < self.error_rate

    def take_malformed(self) -> bool:
        if self.malformed_next > 0:
            self.malformed_next -= 1
            return True
        return False

    def take_conflict(self) -> bool:
        if self.conflict_next > 0:
            self.conflict_next -= 1
            return True
        return False
