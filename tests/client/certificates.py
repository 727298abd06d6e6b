"""Throwaway certificates for the TLS tests, made with the `openssl` command (the
`cryptography` package is not among the project's dependencies)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signs the server and the client
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # trusted by nobody here


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *EC_KEY, "-keyout", key, "-out", cert, "-days", "2",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(extensions)
    _openssl(
        "req", "-new", *EC_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={name}", cwd=directory
    )
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext_file,
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    ca = _ca(directory, "agentjobs-test-ca")
    server = _leaf(
        directory,
        "server",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    other_ca, _ = _ca(directory, "someone-else-ca")
    return Certificates(ca[0], server[0], server[1], client[0], client[1], other_ca)
