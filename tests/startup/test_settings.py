"""Which environment variables configure the server: AGENTJOBS_<FIELD> for every field,
and the masumi SDK's own five names; no bare field name."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from agentjobs.server.config import MASUMI_NAMES, SettingProblem, Settings, env_name


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTJOBS_") or name in MASUMI_NAMES.values():
            monkeypatch.delenv(name)


def test_every_field_is_read_from_its_agentjobs_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTJOBS_DATABASE_URL", "memory://")
    monkeypatch.setenv("AGENTJOBS_AGENT", "my.module:agent")
    monkeypatch.setenv("AGENTJOBS_LOG_LEVEL", "warning")
    monkeypatch.setenv("AGENTJOBS_RUNNER_CONCURRENCY", "3")
    monkeypatch.setenv("agentjobs_grpc_address", "127.0.0.1:7")  # names are case-blind
    settings = Settings()
    assert settings.database_url == "memory://"
    assert settings.agent == "my.module:agent"
    assert settings.log_level == "warning"
    assert settings.runner_concurrency == 3
    assert settings.grpc_address == "127.0.0.1:7"


@pytest.mark.parametrize(
    "bare",
    ["DATABASE_URL", "AGENT", "LOG_LEVEL", "GRPC_ADDRESS", "OPERATOR_TOKEN", "TLS_CERT_FILE"],
)
def test_a_bare_field_name_configures_nothing(monkeypatch: pytest.MonkeyPatch, bare: str) -> None:
    defaults = Settings()
    monkeypatch.setenv(bare, "set-by-another-program")
    assert Settings() == defaults


@pytest.mark.parametrize(
    ("field", "masumi", "value"),
    [
        ("payment_service_url", "PAYMENT_SERVICE_URL", "https://payments.example/api/v1"),
        ("agent_identifier", "AGENT_IDENTIFIER", "a" * 60),
        ("seller_vkey", "SELLER_VKEY", "vkey123"),
        ("network", "NETWORK", "Mainnet"),
    ],
)
def test_the_masumi_names_and_their_agentjobs_names_both_work(
    monkeypatch: pytest.MonkeyPatch, field: str, masumi: str, value: str
) -> None:
    with monkeypatch.context() as env:
        env.setenv(masumi, value)
        env.setenv("PAYMENT_API_KEY", "key")
        env.setenv("AGENT_IDENTIFIER", "a" * 60)
        assert getattr(Settings(), field) == value
    with monkeypatch.context() as env:
        env.setenv(f"AGENTJOBS_{masumi}", value)
        env.setenv("AGENTJOBS_PAYMENT_API_KEY", "key")
        env.setenv("AGENTJOBS_AGENT_IDENTIFIER", "a" * 60)
        assert getattr(Settings(), field) == value


def test_the_api_key_is_read_from_its_masumi_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_SERVICE_URL", "https://payments.example/api/v1")
    monkeypatch.setenv("PAYMENT_API_KEY", "the-key")
    monkeypatch.setenv("AGENT_IDENTIFIER", "a" * 60)
    settings = Settings()
    assert settings.payment_api_key is not None
    assert settings.payment_api_key.get_secret_value() == "the-key"
    assert "the-key" not in repr(settings)


def test_field_names_still_work_as_constructor_arguments() -> None:
    # What settings_for_tests() and embedding code pass.
    settings = Settings(network="Mainnet", runner_concurrency=2, database_url="memory://")
    assert (settings.network, settings.runner_concurrency) == ("Mainnet", 2)


def test_the_variable_named_in_errors_is_the_one_the_operator_set() -> None:
    assert env_name("network", {"AGENTJOBS_NETWORK": "x"}) == "AGENTJOBS_NETWORK"
    assert env_name("network", {"NETWORK": "x"}) == "NETWORK"
    assert env_name("network", {}) == "NETWORK"
    assert env_name("grpc_address", {}) == "AGENTJOBS_GRPC_ADDRESS"


def test_inconsistent_settings_say_which_variable_to_change() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(pay_window_s=100, result_window_s=50)
    cause = raised.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, SettingProblem)
    assert str(cause) == (
        "AGENTJOBS_RESULT_WINDOW_S=50: must be longer than AGENTJOBS_PAY_WINDOW_S (100)"
    )
