"""Settings from the environment: AGENTJOBS_* plus the masumi names operators already use."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str, *masumi_names: str) -> AliasChoices:
    return AliasChoices(f"AGENTJOBS_{name.upper()}", name, *masumi_names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    grpc_address: str = Field("127.0.0.1:50051", validation_alias=_env("grpc_address"))
    http_address: str = Field("127.0.0.1:8000", validation_alias=_env("http_address"))
    # None: a SQLite file agentjobs.db in the working directory.
    database_url: str | None = Field(None, validation_alias=_env("database_url"))
    agent: str = Field("agentjobs.server.demo_agent:agent", validation_alias=_env("agent"))
    operator_token: SecretStr | None = Field(None, validation_alias=_env("operator_token"))

    # The payment service; None starts the built-in sandbox on loopback.
    payment_service_url: str | None = Field(
        None, validation_alias=_env("payment_service_url", "PAYMENT_SERVICE_URL")
    )
    payment_api_key: SecretStr | None = Field(
        None, validation_alias=_env("payment_api_key", "PAYMENT_API_KEY")
    )
    agent_identifier: str | None = Field(
        None, validation_alias=_env("agent_identifier", "AGENT_IDENTIFIER")
    )
    seller_vkey: str | None = Field(None, validation_alias=_env("seller_vkey", "SELLER_VKEY"))
    network: Literal["Preprod", "Mainnet"] = Field(
        "Preprod", validation_alias=_env("network", "NETWORK")
    )
    payment_timeout_s: float = Field(10.0, gt=0, validation_alias=_env("payment_timeout_s"))
    # How long the buyer has to lock funds, and until when the result must be submitted,
    # counted from StartJob (the masumi SDK's defaults: 12 h and 24 h).
    pay_window_s: float = Field(12 * 3600, gt=0, validation_alias=_env("pay_window_s"))
    result_window_s: float = Field(24 * 3600, gt=0, validation_alias=_env("result_window_s"))

    monitor_interval_s: float = Field(5.0, gt=0, validation_alias=_env("monitor_interval_s"))
    # The diff is re-read this far behind its watermark: the payment service stamps a
    # change when its transaction starts (up to 30 s before it commits).
    diff_overlap_s: float = Field(60.0, ge=0, validation_alias=_env("diff_overlap_s"))
    runner_concurrency: int = Field(8, ge=1, validation_alias=_env("runner_concurrency"))
    # The payment service's submit-result chain job runs this often (15 s by default
    # upstream, 300 s in its shipped .env.example); a submission must reach it while
    # submitResultTime is still more than 5 min + this away.
    chain_pickup_s: float = Field(300.0, ge=0, validation_alias=_env("chain_pickup_s"))
    # Extra time the agent leaves before that last moment, for the submit call itself.
    submit_margin_s: float = Field(60.0, ge=0, validation_alias=_env("submit_margin_s"))
    # An unpaid job is expired this long after payByTime (a lock made in time can reach
    # the payment service late).
    expiry_grace_s: float = Field(300.0, ge=0, validation_alias=_env("expiry_grace_s"))

    # Steps that may work later (the payment service down, a 409) are tried again
    # after retry_base_s, doubling up to retry_max_s.
    retry_base_s: float = Field(1.0, gt=0, validation_alias=_env("retry_base_s"))
    retry_max_s: float = Field(60.0, gt=0, validation_alias=_env("retry_max_s"))

    # Replicas: what this process does, how long its claims last, who it is.
    role: Literal["all", "api", "worker"] = Field("all", validation_alias=_env("role"))
    lease_s: float = Field(30.0, gt=0, validation_alias=_env("lease_s"))
    # None: hostname:pid.
    replica_id: str | None = Field(None, validation_alias=_env("replica_id"))
    # How often an idle worker looks for steps whose lease expired elsewhere.
    worker_poll_s: float = Field(1.0, gt=0, validation_alias=_env("worker_poll_s"))

    # "fixed": the agent's registered price; "dynamic": the agent prices each job
    # (Agent.price); "free": no payment request at all.
    pricing: Literal["fixed", "dynamic", "free"] = Field("fixed", validation_alias=_env("pricing"))
    # Set: V2 payments (Web3CardanoV2) from this supported_payment_sources index.
    payment_source_index: int | None = Field(
        None, ge=0, le=24, validation_alias=_env("payment_source_index")
    )
    # Sandbox only: how long the simulated buyer waits before locking funds.
    sandbox_lock_after_s: float = Field(2.0, ge=0, validation_alias=_env("sandbox_lock_after_s"))

    max_message_bytes: int = Field(4 * 1024 * 1024, validation_alias=_env("max_message_bytes"))
    max_input_bytes: int = Field(1024 * 1024, validation_alias=_env("max_input_bytes"))
    max_concurrent_rpcs: int = Field(1000, ge=1, validation_alias=_env("max_concurrent_rpcs"))
    # Fair limits (docs/SECURITY.md): HTTP/2 streams one gRPC connection may have open
    # at once, WatchJob streams one client IP may hold (health is never limited).
    grpc_max_streams_per_connection: int = Field(
        100, ge=1, validation_alias=_env("grpc_max_streams_per_connection")
    )
    max_watches_per_peer: int = Field(50, ge=1, validation_alias=_env("max_watches_per_peer"))
    # The HTTP front: open connections (more are answered 503 and closed at once), how
    # long a client may take to send a request's headers and then its body, how long an
    # idle keep-alive connection stays open, requests served per connection.
    http_max_connections: int = Field(1000, ge=1, validation_alias=_env("http_max_connections"))
    http_header_timeout_s: float = Field(10.0, gt=0, validation_alias=_env("http_header_timeout_s"))
    http_body_timeout_s: float = Field(30.0, gt=0, validation_alias=_env("http_body_timeout_s"))
    http_keepalive_timeout_s: float = Field(
        5.0, gt=0, validation_alias=_env("http_keepalive_timeout_s")
    )
    http_max_requests_per_connection: int = Field(
        1000, ge=1, validation_alias=_env("http_max_requests_per_connection")
    )
    shutdown_grace_s: float = Field(10.0, ge=0, validation_alias=_env("shutdown_grace_s"))
    tls_cert_file: Path | None = Field(None, validation_alias=_env("tls_cert_file"))
    tls_key_file: Path | None = Field(None, validation_alias=_env("tls_key_file"))
    # When set, clients must present a certificate signed by this CA (mTLS).
    tls_client_ca_file: Path | None = Field(None, validation_alias=_env("tls_client_ca_file"))
    log_level: str = Field("INFO", validation_alias=_env("log_level"))

    @model_validator(mode="after")
    def _windows_in_order(self) -> Settings:
        if self.result_window_s <= self.pay_window_s:
            raise ValueError("result_window_s must be longer than pay_window_s")
        return self

    @property
    def runs_workers(self) -> bool:
        return self.role in ("all", "worker")

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def uses_sandbox(self) -> bool:
        return not self.payment_service_url
