"""`agentjobs-server` (= `python -m agentjobs.server`): serve (default), migrate, sandbox."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from agentjobs.server.api.request_context import configure_logging
from agentjobs.server.config import Settings

log = logging.getLogger("agentjobs.server")


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


async def _serve(settings: Settings) -> None:
    from agentjobs.server.app import App

    app = App(settings)
    await app.start()
    print(_banner(app), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", settings.shutdown_grace_s)
    await app.stop()


async def _migrate(settings: Settings) -> None:
    from agentjobs.server.repository.factory import migrate

    await migrate(settings.database_url)
    print("database is up to date")


async def _sandbox(args: argparse.Namespace) -> None:
    from agentjobs.server.payments.sandbox import run_sandbox

    await run_sandbox(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        lock_after=args.lock_after,
        settle_after=args.settle_after,
        job_interval=args.job_interval,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agentjobs-server", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC + MIP-003 HTTP (default)")
    commands.add_parser("migrate", help="create or upgrade the database schema")
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
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "sandbox":
            asyncio.run(_sandbox(args))
        else:
            asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
