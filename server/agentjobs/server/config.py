"""Settings from the environment: AGENTJOBS_* plus the masumi names operators already use.

Every field is read from `AGENTJOBS_<FIELD>` (pydantic-settings' env_prefix); the five
fields the masumi SDK names also from that bare name (`NETWORK`, ...). Nothing else:
a bare `DATABASE_URL` or `LOG_LEVEL` meant for another program must not configure us.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AGENTJOBS_"

# Field -> the masumi SDK's name for it, honoured as it is.
MASUMI_NAMES: Mapping[str, str] = {
    "payment_service_url": "PAYMENT_SERVICE_URL",
    "payment_api_key": "PAYMENT_API_KEY",
    "agent_identifier": "AGENT_IDENTIFIER",
    "seller_vkey": "SELLER_VKEY",
    "network": "NETWORK",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingProblem(ValueError):
    """A setting whose value cannot work, said as the operator must fix it: the variable,
    the value as given (never a secret) and what to do."""

    def __init__(self, setting: str, value: str | None, advice: str) -> None:
        shown = f"{setting} is unset" if value is None else f"{setting}={value}"
        super().__init__(f"{shown}: {advice}")
        self.setting = setting
        self.value = value
        self.advice = advice


def env_name(field: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable that configures `field`: the masumi name when that is the one set
    (or the field has no other), else AGENTJOBS_<FIELD>."""
    prefixed = ENV_PREFIX + field.upper()
    masumi = MASUMI_NAMES.get(field)
    if masumi is None:
        return prefixed
    present = {name.upper() for name in (os.environ if environ is None else environ)}
    return prefixed if prefixed in present and masumi not in present else masumi


def _masumi(field: str) -> AliasChoices:
    # With an alias, env_prefix no longer applies; populate_by_name adds the prefixed
    # field name back, so AGENTJOBS_NETWORK works as well as NETWORK.
    return AliasChoices(MASUMI_NAMES[field])


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port, e.g. 127.0.0.1:50051 (port 0: pick a free one)")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    grpc_address: str = "127.0.0.1:50051"
    http_address: str = "127.0.0.1:8000"
    # None: a SQLite file agentjobs.db in the working directory.
    database_url: str | None = None
    agent: str = "agentjobs.server.demo_agent:agent"
    operator_token: SecretStr | None = None

    # The payment service; None starts the built-in sandbox on loopback.
    payment_service_url: str | None = Field(None, validation_alias=_masumi("payment_service_url"))
    payment_api_key: SecretStr | None = Field(None, validation_alias=_masumi("payment_api_key"))
    agent_identifier: str | None = Field(None, validation_alias=_masumi("agent_identifier"))
    seller_vkey: str | None = Field(None, validation_alias=_masumi("seller_vkey"))
    network: Literal["Preprod", "Mainnet"] = Field("Preprod", validation_alias=_masumi("network"))
    payment_timeout_s: float = Field(10.0, gt=0)
    # How long the buyer has to lock funds, and until when the result must be submitted,
    # counted from StartJob (the masumi SDK's defaults: 12 h and 24 h).
    pay_window_s: float = Field(12 * 3600, gt=0)
    result_window_s: float = Field(24 * 3600, gt=0)

    monitor_interval_s: float = Field(5.0, gt=0)
    # The diff is re-read this far behind its watermark: the payment service stamps a
    # change when its transaction starts (up to 30 s before it commits).
    diff_overlap_s: float = Field(60.0, ge=0)
    runner_concurrency: int = Field(8, ge=1)
    # The payment service's submit-result chain job runs this often (15 s by default
    # upstream, 300 s in its shipped .env.example); a submission must reach it while
    # submitResultTime is still more than 5 min + this away.
    chain_pickup_s: float = Field(300.0, ge=0)
    # Extra time the agent leaves before that last moment, for the submit call itself.
    submit_margin_s: float = Field(60.0, ge=0)
    # An unpaid job is expired this long after payByTime (a lock made in time can reach
    # the payment service late).
    expiry_grace_s: float = Field(300.0, ge=0)

    # Steps that may work later (the payment service down, a 409) are tried again
    # after retry_base_s, doubling up to retry_max_s.
    retry_base_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)

    # Replicas: what this process does, how long its claims last, who it is.
    role: Literal["all", "api", "worker"] = Field("all")
    lease_s: float = Field(30.0, gt=0)
    # None: hostname:pid.
    replica_id: str | None = Field(None)
    # How often an idle worker looks for steps whose lease expired elsewhere.
    worker_poll_s: float = Field(1.0, gt=0)
    # Processes on this host sharing the ports (serve --processes); each a replica.
    processes: int = Field(1, ge=1, le=64)
    # Bind the ports with SO_REUSEPORT (set for the processes of --processes).
    reuse_port: bool = False

    # "fixed": the agent's registered price; "dynamic": the agent prices each job
    # (Agent.price); "free": no payment request at all.
    pricing: Literal["fixed", "dynamic", "free"] = Field("fixed")
    # Set: V2 payments (Web3CardanoV2) from this supported_payment_sources index.
    payment_source_index: int | None = Field(None, ge=0, le=24)
    # Sandbox only: how long the simulated buyer waits before locking funds.
    sandbox_lock_after_s: float = Field(2.0, ge=0)

    max_message_bytes: int = Field(4 * 1024 * 1024)
    max_input_bytes: int = Field(1024 * 1024)
    max_concurrent_rpcs: int = Field(1000, ge=1)
    # Fair limits (docs/SECURITY.md): HTTP/2 streams one gRPC connection may have open
    # at once, WatchJob streams one client IP may hold (health is never limited).
    grpc_max_streams_per_connection: int = Field(100, ge=1)
    max_watches_per_peer: int = Field(50, ge=1)
    # The HTTP front: open connections (more are answered 503 and closed at once), how
    # long a client may take to send a request's headers and then its body, how long an
    # idle keep-alive connection stays open, requests served per connection.
    http_max_connections: int = Field(1000, ge=1)
    http_header_timeout_s: float = Field(10.0, gt=0)
    http_body_timeout_s: float = Field(30.0, gt=0)
    http_keepalive_timeout_s: float = Field(5.0, gt=0)
    http_max_requests_per_connection: int = Field(1000, ge=1)
    shutdown_grace_s: float = Field(10.0, ge=0)
    tls_cert_file: Path | None = Field(None)
    tls_key_file: Path | None = Field(None)
    # A Cardano Ed25519 signing key file (e.g. the selling wallet's payment.skey): signs
    # /provide_input answers (CIP-08 COSE_Sign1). None: the signature is "".
    signing_key_file: Path | None = None
    # When set, clients must present a certificate signed by this CA (mTLS).
    tls_client_ca_file: Path | None = None
    log_level: str = "INFO"

    @field_validator("grpc_address", "http_address")
    @classmethod
    def _host_port(cls, address: str) -> str:
        split_host_port(address)
        return address

    @field_validator("payment_service_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url:
            parsed = urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError("must be an http(s) URL such as http://localhost:3001/api/v1")
        return url

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file")
    @classmethod
    def _existing_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError("no such file: give the path of a PEM file")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.result_window_s <= self.pay_window_s:
            raise SettingProblem(
                env_name("result_window_s"),
                f"{self.result_window_s:g}",
                f"must be longer than {env_name('pay_window_s')} ({self.pay_window_s:g})",
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            given, missing = (
                ("tls_cert_file", "tls_key_file")
                if self.tls_key_file is None
                else ("tls_key_file", "tls_cert_file")
            )
            raise SettingProblem(
                env_name(given),
                str(getattr(self, given)),
                f"TLS needs {env_name(missing)} as well: set both or neither",
            )
        if self.payment_service_url:
            for needed in ("payment_api_key", "agent_identifier"):
                if not getattr(self, needed):
                    raise SettingProblem(
                        env_name(needed),
                        None,
                        f"{env_name('payment_service_url')} is set, so {env_name(needed)} "
                        "must be too (or unset it to use the built-in sandbox)",
                    )
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

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level.upper()]
