"""Prometheus metrics of one server instance (own registry: tests run many per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.grpc_requests = Counter(
            "agentjobs_grpc_requests",
            "gRPC requests by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.grpc_latency = Histogram(
            "agentjobs_grpc_request_duration_seconds",
            "gRPC request latency by method",
            ["method"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.http_requests = Counter(
            "agentjobs_http_requests",
            "HTTP requests by path and status",
            ["path", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "agentjobs_http_request_duration_seconds",
            "HTTP request latency by path",
            ["path"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.jobs_running = Gauge(
            "agentjobs_runner_active_jobs",
            "Agent handlers computing in this process",
            registry=self.registry,
        )
        self.steps_held = Gauge(
            "agentjobs_worker_steps_held",
            "Steps this replica holds a lease on",
            registry=self.registry,
        )
        self.monitor_leader = Gauge(
            "agentjobs_payment_monitor_leader",
            "1 while this replica leads the payment monitor",
            registry=self.registry,
        )
        self.attention = Gauge(
            "agentjobs_payments_needing_attention",
            "Jobs whose money needs a person, by reason (see `agentjobs attention`)",
            ["reason"],
            registry=self.registry,
        )
        self._attention_reasons: set[str] = set()

    def set_attention(self, counts: dict[str, int]) -> None:
        for reason in self._attention_reasons - set(counts):
            self.attention.labels(reason).set(0)
        for reason, count in counts.items():
            self.attention.labels(reason).set(count)
        self._attention_reasons |= set(counts)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
