"""The reference: the masumi SDK's own MIP-003 server (`masumi.create_masumi_app`),
serving agentjobs' demo agent, as a Masumi agent developer would run it instead of
agentjobs. Configured like the SDK's quick start, from PAYMENT_SERVICE_URL,
PAYMENT_API_KEY, AGENT_IDENTIFIER (and SELLER_VKEY, default the sandbox's).

    .venv/bin/python -m bench.reference_server [--port N]

uvicorn runs on the same stack as agentjobs' HTTP front (the asyncio event loop, the
same HTTP parser uvicorn picks, no access log), so a difference in /status is the
application's. Prints "HTTP  http://127.0.0.1:PORT" once it is accepting connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

import uvicorn
from masumi import Config, create_masumi_app

from agentjobs.server.demo_agent import INPUT_SCHEMA, shout
from agentjobs.server.payments.sandbox.views import SELLER_VKEY


async def serve(port: int) -> None:
    app = create_masumi_app(
        Config(
            payment_service_url=os.environ["PAYMENT_SERVICE_URL"],
            payment_api_key=os.environ["PAYMENT_API_KEY"],
        ),
        agent_identifier=os.environ["AGENT_IDENTIFIER"],
        network="Preprod",
        start_job_handler=shout,
        input_schema_handler=INPUT_SCHEMA,
        seller_vkey=os.environ.get("SELLER_VKEY", SELLER_VKEY),
    )
    # As uvicorn.run(app, host, port) binds: proto TCP, so asyncio sets TCP_NODELAY.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app, loop="asyncio", log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.01)
    print(f"HTTP  http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.reference_server", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
