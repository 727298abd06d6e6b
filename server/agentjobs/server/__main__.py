"""`agentjobs-server` (= `python -m agentjobs.server`): serve (default), migrate, sandbox.

A failure to start is one line on stderr naming the setting, its value and what to do,
and exit code 2 (1 for the unforeseen); AGENTJOBS_LOG_LEVEL=DEBUG adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agentjobs.server import telemetry
from agentjobs.server.api.request_context import configure_logging
from agentjobs.server.config import Settings
from agentjobs.server.processes import start_siblings, stop_siblings
from agentjobs.server.startup_checks import listen_problem_of, tls_problem_of
from agentjobs.server.startup_errors import (
    EXIT_CONFIGURATION,
    Problem,
    blame,
    describe,
    format_traceback,
    redact,
    secrets_of,
)

log = logging.getLogger("agentjobs.server")

# A slow start (a database far away) shows its log lines after this long anyway.
HOLD_START_UP_LOGS_S = 5.0


class StartupFailed(Exception):
    def __init__(self, problem: Problem, cause: BaseException, settings: Settings | None) -> None:
        super().__init__(problem.line())
        self.problem = problem
        self.cause = cause
        self.settings = settings

    def report(self) -> int:
        """One line on stderr (after the traceback at DEBUG); the exit code."""
        secrets = secrets_of(self.settings, os.environ)
        if _debug():
            sys.stderr.write(redact(format_traceback(self.cause), secrets))
        print(redact(self.problem.line(), secrets), file=sys.stderr, flush=True)
        return self.problem.exit_code


def _debug() -> bool:
    # Read from the environment itself: the settings may be what failed.
    return os.environ.get("AGENTJOBS_LOG_LEVEL", "").strip().upper() == "DEBUG"


@contextmanager
def starting(settings: Settings | None) -> Iterator[None]:
    """Every exception of the block becomes a StartupFailed that says what to change."""
    try:
        yield
    except StartupFailed:
        raise
    except Exception as exc:
        raise StartupFailed(describe(exc, settings, os.environ), exc, settings) from exc


def load_settings() -> Settings:
    with starting(None):
        return Settings()


class _Holder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class HeldLogs:
    """Start-up log lines wait until start-up is over: shown once it succeeded, dropped
    when it failed, so that a failed start prints its one line and nothing else. At
    DEBUG nothing is held."""

    def __init__(self) -> None:
        self._root = logging.getLogger()
        self._handlers = list(self._root.handlers)
        self._holder: _Holder | None = None
        if not _debug():
            self._holder = _Holder()
            self._root.handlers[:] = [self._holder]

    def release(self) -> None:
        for record in self._stop_holding():
            for handler in self._handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)

    def discard(self) -> None:
        self._stop_holding()

    def _stop_holding(self) -> list[logging.LogRecord]:
        holder, self._holder = self._holder, None
        if holder is None:
            return []
        self._root.handlers[:] = self._handlers
        return holder.records


def _banner(app: object) -> str:
    from agentjobs.server.app import App

    assert isinstance(app, App)
    target, http = app.grpc_target, app.http_url
    sandbox = (
        "\n  !! SANDBOX payment service: payments are simulated, no real funds move !!\n"
        f"  (the simulated buyer locks funds {app.settings.sandbox_lock_after_s:g}s"
        " after a job starts)\n"
        if app.sandbox is not None
        else ""
    )
    return f"""
agentjobs is serving{sandbox}
  gRPC  {target}   (reflection on: buf curl / grpcurl need no proto files)
  HTTP  {http}   (MIP-003: /start_job /status /provide_input /availability
        /input_schema /demo; operator: /metrics /healthz)

Drive a job to completion with the CLI:
  .venv/bin/agentjobs start --target {target} --input text="hello masumi" --watch

... or with buf curl:
  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge \\
    -d '{{"identifier_from_purchaser":"aabbccddeeff0011",
          "input_data":{{"text":"hello masumi"}}}}' \\
    http://{target}/agentjobs.v1.JobService/StartJob
  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -d '{{"job_id":"<job_id>"}}' \\
    http://{target}/agentjobs.v1.JobService/WatchJob
"""


def _check_before_start(settings: Settings) -> None:
    problems = (
        listen_problem_of(
            "AGENTJOBS_GRPC_ADDRESS", settings.grpc_address, reuse_port=settings.reuse_port
        ),
        listen_problem_of(
            "AGENTJOBS_HTTP_ADDRESS", settings.http_address, reuse_port=settings.reuse_port
        ),
        tls_problem_of(settings),
    )
    for problem in problems:
        if problem is not None:
            raise StartupFailed(problem, OSError(problem.line()), settings)


def _load_agent(settings: Settings) -> object:
    from agentjobs.server.agent import load_agent

    try:
        return load_agent(settings.agent)
    except Exception as exc:
        raise StartupFailed(blame("AGENTJOBS_AGENT", settings.agent, exc), exc, settings) from exc


async def _serve(settings: Settings, held: HeldLogs) -> None:
    from agentjobs.server.agent import Agent
    from agentjobs.server.app import App

    loop = asyncio.get_running_loop()
    loop.call_later(HOLD_START_UP_LOGS_S, held.release)
    try:
        with starting(settings):
            if telemetry.wanted():
                telemetry.start()
            _check_before_start(settings)
            agent = _load_agent(settings)
            assert isinstance(agent, Agent)
            app = App(settings, agent=agent)
            try:
                await app.start()
            except BaseException:
                await _close_half_started(app)
                raise
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        held.release()
        print(_banner(app), flush=True)
        await stop.wait()
        log.info("shutting down (grace %.1fs)", settings.shutdown_grace_s)
        await app.stop()
    finally:
        telemetry.stop()


async def _close_half_started(app: object) -> None:
    """After a start that failed half-way: close what it had opened. A database pool or a
    bound port left to the interpreter's exit makes its threads print errors of their
    own after our one line. These are the parts App.start() opens, in reverse order."""
    steps = (
        ("worker", lambda part: part.stop(0)),
        ("http", lambda part: part.stop()),
        ("grpc", lambda part: part.stop(0)),
        ("payments", lambda part: part.gateway.close()),
        ("sandbox", lambda part: part.stop()),
        ("repository", lambda part: part.close()),
    )
    for name, close in steps:
        part = getattr(app, name, None)
        if part is None:
            continue
        try:
            await close(part)
        except Exception:
            # The start's own error is what gets reported; this one is secondary.
            log.debug("closing %s after the failed start failed too", name, exc_info=True)
    # Drop the parts while their event loop still runs: the traceback being reported
    # keeps the App alive, and a grpc.aio server freed at the interpreter's exit prints
    # "Error in sys.excepthook" from its core's callbacks.
    vars(app).clear()


def run_serve(args: argparse.Namespace) -> int:
    # The options win over the environment; the processes `--processes` starts read
    # them from it.
    if getattr(args, "role", None):
        os.environ["AGENTJOBS_ROLE"] = args.role
    if getattr(args, "processes", None):
        os.environ["AGENTJOBS_PROCESSES"] = str(args.processes)
    held: HeldLogs | None = None
    siblings: list[subprocess.Popen[bytes]] = []
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        if settings.processes > 1:
            settings, siblings = start_siblings(settings)
        held = HeldLogs()
        asyncio.run(_serve(settings, held))
    except StartupFailed as failed:
        if held is not None:
            held.discard()
        return failed.report()
    finally:
        stop_siblings(siblings)
    return 0


async def _migrate(settings: Settings) -> None:
    from agentjobs.server.repository.factory import migrate

    with starting(settings):
        await migrate(settings.database_url)
    print("database is up to date")


def run_migrate(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        asyncio.run(_migrate(settings))
    except StartupFailed as failed:
        return failed.report()
    return 0


def run_sandbox(args: argparse.Namespace) -> int:
    from agentjobs.server.payments.sandbox import run_sandbox as serve_sandbox

    address = f"{args.host}:{args.port}"
    problem = listen_problem_of("sandbox --host/--port", address)
    if problem is not None:
        print(problem.line(), file=sys.stderr)
        return EXIT_CONFIGURATION
    asyncio.run(
        serve_sandbox(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            lock_after=args.lock_after,
            settle_after=args.settle_after,
            job_interval=args.job_interval,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per mode; each sets `run`, the function that carries it out."""
    parser = argparse.ArgumentParser(prog="agentjobs-server", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve gRPC + MIP-003 HTTP (default)")
    serve.add_argument(
        "--role",
        choices=("all", "api", "worker"),
        help="all (default): everything; api: gRPC + HTTP only, no steps; worker: steps "
        "and the payment monitor, only health and metrics served [env AGENTJOBS_ROLE]",
    )
    serve.add_argument(
        "--processes",
        type=int,
        help="processes sharing the gRPC and HTTP ports (SO_REUSEPORT), each a replica "
        "[env AGENTJOBS_PROCESSES; default 1]",
    )
    serve.set_defaults(run=run_serve)
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=run_migrate)
    sandbox = commands.add_parser("sandbox", help="run the sandbox payment service alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=3001)
    sandbox.add_argument("--api-key", default="sandbox-api-key")
    sandbox.add_argument(
        "--lock-after",
        type=float,
        default=None,
        help="seconds until the buyer locks funds (omitted: only when told)",
    )
    sandbox.add_argument(
        "--settle-after", type=float, default=1.0, help="seconds a chain transaction takes"
    )
    sandbox.add_argument(
        "--job-interval",
        type=float,
        default=15.0,
        help="seconds between the payment service's chain jobs (upstream: 15)",
    )
    sandbox.set_defaults(run=run_sandbox)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve"])
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        code = run(args)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
