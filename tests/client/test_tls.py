"""The clients' and the CLI's TLS options against a server with TLS and with mutual TLS."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentjobs.client import AsyncJobClient, JobClient, Unavailable
from agentjobs.server.testing import ThreadedServer, running_server, server_in_thread
from tests.client.certificates import Certificates, make_certificates
from tests.client.helpers import AGENTJOBS, CLEAN_ENV, assert_ok, assert_one_error_line, run_cli

EXIT_USAGE, EXIT_UNAVAILABLE = 2, 5
# A refused handshake is UNAVAILABLE and retried like any (about 1.5 s with the default
# policy): the clients that are meant to be refused give up after one quick retry.
GIVE_UP_FAST = {
    "maxAttempts": 2,
    "initialBackoff": "0.01s",
    "maxBackoff": "0.01s",
    "backoffMultiplier": 1,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_server(tmp_path: Path, certs: Certificates) -> Iterator[ThreadedServer]:
    with server_in_thread(
        tmp_path, tls_cert_file=certs.server_cert, tls_key_file=certs.server_key
    ) as server:
        yield server


@pytest.fixture
def mtls_server(tmp_path: Path, certs: Certificates) -> Iterator[ThreadedServer]:
    with server_in_thread(
        tmp_path,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca,
    ) as server:
        yield server


def test_tls_with_the_servers_ca(tls_server: ThreadedServer, certs: Certificates) -> None:
    with JobClient(tls_server.grpc_target, ca_file=certs.ca) as client:
        assert client.get_availability().type == "masumi-agent"
    cli = run_cli("availability", "--target", tls_server.grpc_target, "--ca-file", certs.ca)
    assert "available" in assert_ok(cli).out


def test_tls_refuses_plaintext_and_an_unknown_ca(
    tls_server: ThreadedServer, certs: Certificates
) -> None:
    with (
        JobClient(tls_server.grpc_target, retry_policy=GIVE_UP_FAST) as plaintext,
        pytest.raises(Unavailable),
    ):
        plaintext.get_availability()
    with (
        JobClient(
            tls_server.grpc_target, ca_file=certs.other_ca, retry_policy=GIVE_UP_FAST
        ) as wrong,
        pytest.raises(Unavailable),
    ):
        wrong.get_availability()


def test_tls_flag_checks_the_server_against_the_default_roots(
    tls_server: ThreadedServer, certs: Certificates
) -> None:
    # gRPC reads its default roots from this variable: the test CA stands in for the
    # system's (in a process of its own, since gRPC loads them once).
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(certs.ca)
    done = subprocess.run(
        [str(AGENTJOBS), "availability", "--json", "--tls", "--target", tls_server.grpc_target],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["type"] == "masumi-agent"


def test_mutual_tls_with_a_client_certificate(
    mtls_server: ThreadedServer, certs: Certificates
) -> None:
    with JobClient(
        mtls_server.grpc_target,
        ca_file=certs.ca,
        cert_file=certs.client_cert,
        key_file=certs.client_key,
    ) as client:
        started = client.start_job({"text": "over mTLS"})
        assert client.get_job_status(started.job_id).job_id == started.job_id
    env = {
        "AGENTJOBS_TARGET": mtls_server.grpc_target,
        "AGENTJOBS_CA_FILE": str(certs.ca),
        "AGENTJOBS_CERT_FILE": str(certs.client_cert),
        "AGENTJOBS_KEY_FILE": str(certs.client_key),
        # Listing jobs is an operator call: a client certificate alone does not do.
        "AGENTJOBS_TOKEN": mtls_server.operator_token,
    }
    listed = assert_ok(run_cli("list", "--json", env=env)).json()
    assert [j["job_id"] for j in listed["jobs"]] == [started.job_id]


async def test_mutual_tls_with_the_async_client(tmp_path: Path, certs: Certificates) -> None:
    async with running_server(
        tmp_path,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca,
    ) as server:
        async with AsyncJobClient(
            server.grpc_target,
            ca_file=certs.ca,
            cert_file=certs.client_cert,
            key_file=certs.client_key,
        ) as client:
            assert (await client.get_demo()).output["result"] == "HELLO MASUMI!"
        async with AsyncJobClient(
            server.grpc_target, ca_file=certs.ca, retry_policy=GIVE_UP_FAST
        ) as no_cert:
            with pytest.raises(Unavailable):
                await no_cert.get_demo()


def test_mutual_tls_refuses_a_client_without_a_certificate(
    mtls_server: ThreadedServer, certs: Certificates
) -> None:
    with (
        JobClient(mtls_server.grpc_target, ca_file=certs.ca, retry_policy=GIVE_UP_FAST) as no_cert,
        pytest.raises(Unavailable),
    ):
        no_cert.get_availability()
    refused = run_cli("schema", "--target", mtls_server.grpc_target, "--ca-file", certs.ca)
    assert_one_error_line(refused, EXIT_UNAVAILABLE, "UNAVAILABLE")


def test_a_certificate_needs_its_key(certs: Certificates) -> None:
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        JobClient("127.0.0.1:1", cert_file=certs.client_cert)
    half = run_cli("status", "x", "--target", "127.0.0.1:1", "--cert-file", certs.client_cert)
    assert_one_error_line(half, EXIT_USAGE, "USAGE", "both cert_file and key_file")
    unreadable = run_cli("status", "x", "--target", "127.0.0.1:1", "--ca-file", "/no/such/ca.pem")
    assert_one_error_line(unreadable, EXIT_USAGE, "USAGE", "/no/such/ca.pem")
