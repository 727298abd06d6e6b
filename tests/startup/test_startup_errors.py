"""Every way `agentjobs-server` can fail to start says so in one line on stderr, naming
the setting, its value and what to do, and exits with 2 (the real entry point, run as
a subprocess)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.helpers import LineReader
from tests.startup.helpers import (
    REPO_ROOT,
    SERVER,
    Exited,
    assert_one_line,
    listening,
    run_server,
    server_env,
)
from tests.support import free_port


def test_grpc_port_in_use(tmp_path: Path) -> None:
    with listening() as taken:
        exited = run_server(tmp_path, {"AGENTJOBS_GRPC_ADDRESS": taken})
    line = assert_one_line(exited)
    assert line == f"AGENTJOBS_GRPC_ADDRESS={taken}: address in use; set another port or 0"
    # Found before anything was touched: no database file was made.
    assert not (tmp_path / "agentjobs.db").exists()


def test_http_port_in_use(tmp_path: Path) -> None:
    with listening() as taken:
        exited = run_server(tmp_path, {"AGENTJOBS_HTTP_ADDRESS": taken})
    line = assert_one_line(exited)
    assert line == f"AGENTJOBS_HTTP_ADDRESS={taken}: address in use; set another port or 0"


def test_an_address_of_another_machine(tmp_path: Path) -> None:
    # TEST-NET-1 (RFC 5737): never an address of this machine.
    exited = run_server(tmp_path, {"AGENTJOBS_GRPC_ADDRESS": "192.0.2.1:50051"})
    assert_one_line(exited, "AGENTJOBS_GRPC_ADDRESS=192.0.2.1:50051", "not an address of")


def test_an_address_without_a_port(tmp_path: Path) -> None:
    exited = run_server(tmp_path, {"AGENTJOBS_HTTP_ADDRESS": "8000"})
    assert_one_line(exited, "AGENTJOBS_HTTP_ADDRESS=8000: must be host:port")


def test_make_run_with_the_port_taken_prints_the_one_line(tmp_path: Path) -> None:
    """The README's `make run`: the server's line, then make's own report of the exit."""
    with listening() as taken:
        done = subprocess.run(
            ["make", "--no-print-directory", "run"],
            cwd=REPO_ROOT,
            env=server_env({"AGENTJOBS_GRPC_ADDRESS": taken}),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # the recipe is not echoed (it names the operator token)
    ours, *make_says = done.stderr.splitlines()
    assert ours == f"AGENTJOBS_GRPC_ADDRESS={taken}: address in use; set another port or 0"
    assert [line for line in make_says if "Error 2" not in line] == []


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("mysql://app:s3cret-pw@db/agentjobs", ("unsupported database URL scheme 'mysql'",)),
        ("agentjobs.db", ("not a database URL",)),
        ("sqlite:///:memory:", ("in-memory SQLite database",)),
    ],
)
def test_a_database_url_that_is_not_one(
    tmp_path: Path, url: str, fragments: tuple[str, ...]
) -> None:
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": url})
    line = assert_one_line(exited, "AGENTJOBS_DATABASE_URL=", *fragments)
    assert "s3cret-pw" not in line


def test_a_postgresql_server_that_is_not_there(tmp_path: Path) -> None:
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{free_port()}/agentjobs"
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": url})
    line = assert_one_line(exited, "AGENTJOBS_DATABASE_URL=postgresql", "start PostgreSQL")
    assert "s3cret-pw" not in line
    assert "***" in line


def test_a_corrupt_sqlite_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "books.db"
    corrupt.write_bytes(b"these are not the pages of a SQLite database\n" * 100)
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": f"sqlite:///{corrupt}"})
    assert_one_line(exited, "AGENTJOBS_DATABASE_URL=", str(corrupt), "not a usable SQLite")


def test_a_database_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    path = tmp_path / "not-a-dir" / "books.db"
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": f"sqlite:///{path}"})
    assert_one_line(exited, "AGENTJOBS_DATABASE_URL=", str(path.parent), "writable path")


def test_a_database_path_that_is_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": f"sqlite:///{directory}"})
    assert_one_line(exited, "AGENTJOBS_DATABASE_URL=", f"cannot open {directory}")


@pytest.fixture
def locked_database(tmp_path: Path) -> Iterator[Path]:
    """A SQLite file another connection holds an exclusive lock on (rollback journal:
    readers wait too)."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        yield path
    finally:
        holder.rollback()
        holder.close()


@pytest.mark.slow
def test_a_locked_sqlite_file(tmp_path: Path, locked_database: Path) -> None:
    # The server waits for the lock (START_LOCK_WAIT_S, 10 s) before it gives up.
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": f"sqlite:///{locked_database}"})
    assert_one_line(exited, "AGENTJOBS_DATABASE_URL=", str(locked_database), "locked by another")


def test_migrate_says_it_in_one_line_too(tmp_path: Path) -> None:
    corrupt = tmp_path / "books.db"
    corrupt.write_bytes(b"\x00garbage" * 1000)
    exited = run_server(tmp_path, {"AGENTJOBS_DATABASE_URL": f"sqlite:///{corrupt}"}, "migrate")
    assert_one_line(exited, "AGENTJOBS_DATABASE_URL=", "not a usable SQLite")


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("no_such_module_anywhere:agent", ("no module named 'no_such_module_anywhere'",)),
        ("agentjobs.server.demo_agent:no_such_name", ("has no attribute 'no_such_name'",)),
        ("agentjobs.server.demo_agent:INPUT_SCHEMA", ("neither an Agent nor", "point it at")),
        ("agentjobs.server.demo_agent", ("must be 'module:attribute'",)),
        ("tests.startup.broken_agent:agent", ("importing it failed: RuntimeError",)),
    ],
)
def test_an_agent_that_cannot_be_loaded(
    tmp_path: Path, value: str, fragments: tuple[str, ...]
) -> None:
    exited = run_server(tmp_path, {"AGENTJOBS_AGENT": value})
    assert_one_line(exited, f"AGENTJOBS_AGENT={value}: ", *fragments)


def test_a_payment_service_without_its_api_key(tmp_path: Path) -> None:
    exited = run_server(tmp_path, {"PAYMENT_SERVICE_URL": "https://payments.example/api/v1"})
    assert_one_line(exited, "PAYMENT_API_KEY is unset: PAYMENT_SERVICE_URL is set")


def test_a_payment_service_url_that_is_not_http(tmp_path: Path) -> None:
    exited = run_server(
        tmp_path,
        {
            "PAYMENT_SERVICE_URL": "ftp://user:pw@payments.example/api",
            "PAYMENT_API_KEY": "key-1",
            "AGENT_IDENTIFIER": "a" * 60,
        },
    )
    line = assert_one_line(exited, "PAYMENT_SERVICE_URL=ftp://***@payments.example/api")
    assert "must be an http(s) URL" in line


def test_a_payment_service_without_the_agent_identifier(tmp_path: Path) -> None:
    exited = run_server(
        tmp_path,
        {"PAYMENT_SERVICE_URL": "https://payments.example/api/v1", "PAYMENT_API_KEY": "key-1"},
    )
    line = assert_one_line(exited, "AGENT_IDENTIFIER is unset")
    assert "key-1" not in line


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("NETWORK", "Testnet", "NETWORK=Testnet: should be 'Preprod' or 'Mainnet'"),
        ("AGENTJOBS_NETWORK", "Testnet", "AGENTJOBS_NETWORK=Testnet: should be"),
        ("AGENTJOBS_MONITOR_INTERVAL_S", "-1", "AGENTJOBS_MONITOR_INTERVAL_S=-1: should be"),
        ("AGENTJOBS_RUNNER_CONCURRENCY", "many", "AGENTJOBS_RUNNER_CONCURRENCY=many: should be"),
        ("AGENTJOBS_LOG_LEVEL", "LOUD", "AGENTJOBS_LOG_LEVEL=LOUD: must be one of DEBUG"),
        ("AGENTJOBS_RESULT_WINDOW_S", "60", "AGENTJOBS_RESULT_WINDOW_S=60: must be longer than"),
    ],
)
def test_an_invalid_setting(tmp_path: Path, variable: str, value: str, fragment: str) -> None:
    exited = run_server(tmp_path, {variable: value})
    assert_one_line(exited, fragment)


def test_the_operator_token_is_not_shown(tmp_path: Path) -> None:
    exited = run_server(
        tmp_path,
        {"AGENTJOBS_OPERATOR_TOKEN": "tok-123", "AGENTJOBS_MONITOR_INTERVAL_S": "x"},
    )
    line = assert_one_line(exited, "AGENTJOBS_MONITOR_INTERVAL_S=x")
    assert "tok-123" not in line


def test_tls_files_that_are_missing(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    exited = run_server(
        tmp_path, {"AGENTJOBS_TLS_CERT_FILE": str(cert), "AGENTJOBS_TLS_KEY_FILE": str(key)}
    )
    assert_one_line(exited, f"AGENTJOBS_TLS_CERT_FILE={cert}: no such file")


def test_a_tls_certificate_without_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "server.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    exited = run_server(tmp_path, {"AGENTJOBS_TLS_CERT_FILE": str(cert)})
    assert_one_line(exited, f"AGENTJOBS_TLS_CERT_FILE={cert}: TLS needs AGENTJOBS_TLS_KEY_FILE")


def test_tls_files_that_are_not_pem(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    exited = run_server(
        tmp_path, {"AGENTJOBS_TLS_CERT_FILE": str(cert), "AGENTJOBS_TLS_KEY_FILE": str(key)}
    )
    # Checked before the gRPC core could print its own three lines about it.
    assert_one_line(exited, f"AGENTJOBS_TLS_CERT_FILE={cert}: not a PEM certificate")


def test_an_unknown_span_exporter(tmp_path: Path) -> None:
    exited = run_server(tmp_path, {"OTEL_TRACES_EXPORTER": "carrier-pigeon"})
    assert_one_line(exited, "OTEL_TRACES_EXPORTER=carrier-pigeon: no span exporter")


def test_debug_adds_the_traceback_before_the_line(tmp_path: Path) -> None:
    exited = run_server(
        tmp_path, {"AGENTJOBS_LOG_LEVEL": "DEBUG", "AGENTJOBS_AGENT": "no_such_module:agent"}
    )
    assert exited.code == 2
    assert "Traceback (most recent call last)" in exited.err
    assert exited.err_lines[-1].startswith("AGENTJOBS_AGENT=no_such_module:agent: no module")


def test_the_bare_field_names_configure_nothing(tmp_path: Path) -> None:
    """DATABASE_URL, AGENT, LOG_LEVEL, HTTP_ADDRESS belong to other programs: were any of
    them read, the server would refuse to start. It starts and serves."""
    env = {
        "DATABASE_URL": "mysql://elsewhere/db",
        "AGENT": "no_such_module:agent",
        "LOG_LEVEL": "LOUD",
        "HTTP_ADDRESS": "not-an-address",
    }
    process = subprocess.Popen(
        [str(SERVER), "serve"],
        cwd=tmp_path,
        env=server_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        LineReader(process).wait_for("agentjobs is serving", timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0


HALF_STARTED = """
import agentjobs.server.__main__ as entry_point

# Without the check made before the start, the HTTP port in use is found by the bind
# itself: after the database, the sandbox and the gRPC server are up.
entry_point.listen_problem_of = lambda setting, address, **options: None
entry_point.main(["serve"])
"""


def test_a_start_that_fails_half_way_still_prints_one_line(tmp_path: Path) -> None:
    with listening() as taken:
        done = subprocess.run(
            [sys.executable, "-c", HALF_STARTED],
            cwd=tmp_path,
            env=server_env({"AGENTJOBS_HTTP_ADDRESS": taken}),
            capture_output=True,
            text=True,
            timeout=90,
        )
    exited = Exited(done.returncode, done.stdout, done.stderr)
    # The address named, and nothing after it (no stray "Error in sys.excepthook").
    assert_one_line(exited, f"AGENTJOBS_HTTP_ADDRESS={taken}: address in use")
    assert (tmp_path / "agentjobs.db").exists()  # it did get that far
