"""`serve --processes N`: N processes on one host, sharing the gRPC and HTTP ports
(SO_REUSEPORT: the kernel spreads connections over them). Each is a replica of its own
(its own replica id, worker and database connections): they can share the work because
it is claimed in the database. This process is the first; it starts N - 1 others with
fixed ports (port 0 is resolved first, so all bind the same one) and stops them when it
stops."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys

from agentjobs.server.config import Settings, split_host_port

log = logging.getLogger(__name__)

SIBLING_STOP_S = 30.0


def _concrete(address: str) -> str:
    """`address` with port 0 replaced by a port free now (for all the processes)."""
    host, port = split_host_port(address)
    if port != 0:
        return address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((host, 0))
        chosen = probe.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{chosen}"


def start_siblings(settings: Settings) -> tuple[Settings, list[subprocess.Popen[bytes]]]:
    """Start the other processes; returns this process's settings (fixed ports, port
    reuse on) and the processes started."""
    grpc_address = _concrete(settings.grpc_address)
    http_address = _concrete(settings.http_address)
    env = {
        **os.environ,
        "AGENTJOBS_GRPC_ADDRESS": grpc_address,
        "AGENTJOBS_HTTP_ADDRESS": http_address,
        "AGENTJOBS_REUSE_PORT": "true",
        "AGENTJOBS_PROCESSES": "1",
    }
    siblings = [
        subprocess.Popen([sys.executable, "-m", "agentjobs.server", "serve"], env=env)
        for _ in range(settings.processes - 1)
    ]
    log.info(
        "serving with %d processes on gRPC %s and HTTP %s",
        settings.processes,
        grpc_address,
        http_address,
    )
    mine = settings.model_copy(
        update={
            "grpc_address": grpc_address,
            "http_address": http_address,
            "reuse_port": True,
            "processes": 1,
        }
    )
    return mine, siblings


def stop_siblings(siblings: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (each drains as a lone process would), then wait."""
    for sibling in siblings:
        if sibling.poll() is None:
            sibling.send_signal(signal.SIGTERM)
    for sibling in siblings:
        try:
            sibling.wait(SIBLING_STOP_S)
        except subprocess.TimeoutExpired:
            log.warning("process %d did not stop in %.0fs; killing it", sibling.pid, SIBLING_STOP_S)
            sibling.kill()
            sibling.wait()
