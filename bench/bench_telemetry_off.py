"""What tracing costs when it is off (no OTEL_* variables) and what it costs when on.

    .venv/bin/python -m bench.bench_telemetry_off [--calls 2000] [--hooks 1000000]

1. The hooks themselves, off: `telemetry.span(...)` (the database transaction and the
   agent run, `with` and `async with`) and `telemetry.tag_request_id(...)` (every call),
   against what the code would do without them (nothing / a nullcontext).
2. A real server in this process, sequential GetJobStatus and StartJob calls over a real
   channel: tracing off, then on (in-memory exporter), median of 3 rounds.
3. Whether the SDK or an instrumentation was imported while off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from agentjobs.server import telemetry
from agentjobs.server.testing import running_server
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc


def _nothing(request_id: str) -> None:
    return None


async def _async_blocks(count: int, manager: object) -> float:
    started = time.perf_counter()
    for _ in range(count):
        async with manager() as _:  # type: ignore[operator]
            pass
    return time.perf_counter() - started


def hooks(count: int) -> list[str]:
    assert not telemetry.enabled()

    def span_off() -> contextlib.AbstractContextManager[object]:
        return telemetry.span("db.transaction", backend="sqlite")

    ns = 1e9 / count
    sync_span = timeit.timeit(lambda: span_off().__enter__(), number=count) * ns
    sync_null = timeit.timeit(lambda: contextlib.nullcontext().__enter__(), number=count) * ns
    tag = timeit.timeit(lambda: telemetry.tag_request_id("req-1"), number=count) * ns
    bare = timeit.timeit(lambda: _nothing("req-1"), number=count) * ns
    async_span = asyncio.run(_async_blocks(count, span_off)) * ns
    async_null = asyncio.run(_async_blocks(count, contextlib.nullcontext)) * ns
    return [
        "| hook (tracing off) | ns per call | without the hook |",
        "|---|---:|---:|",
        f"| `with telemetry.span(...)` | {sync_span:.0f} | {sync_null:.0f} (nullcontext) |",
        f"| `async with telemetry.span(...)` | {async_span:.0f} | {async_null:.0f} (nullcontext) |",
        f"| `telemetry.tag_request_id(...)` | {tag:.0f} | {bare:.0f} (empty function) |",
    ]


async def _calls(target: str, count: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        data = struct_pb2.Struct()
        data.update({"text": "bench"})
        started = await stub.StartJob(
            jobs_pb2.StartJobRequest(identifier_from_purchaser="aabbccddeeff0011", input_data=data)
        )
        request = jobs_pb2.GetJobStatusRequest(job_id=started.job_id)
        begin = time.perf_counter()
        for _ in range(count):
            await stub.GetJobStatus(request)
        status_us = (time.perf_counter() - begin) / count * 1e6
        starts = max(1, count // 10)
        begin = time.perf_counter()
        for _ in range(starts):
            await stub.StartJob(
                jobs_pb2.StartJobRequest(
                    identifier_from_purchaser="aabbccddeeff0011", input_data=data
                )
            )
        start_us = (time.perf_counter() - begin) / starts * 1e6
        return status_us, start_us


async def _round(count: int, traced: bool) -> tuple[float, float]:
    if traced:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        telemetry.start({}, exporter=InMemorySpanExporter(), make_global=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with running_server(Path(tmp), sandbox_lock_after_s=3600) as server:
                return await _calls(server.grpc_target, count)
    finally:
        telemetry.stop()


def calls(count: int, traced: bool) -> str:
    rounds = [asyncio.run(_round(count, traced)) for _ in range(3)]
    status = statistics.median(r[0] for r in rounds)
    start = statistics.median(r[1] for r in rounds)
    label = "on (in-memory exporter)" if traced else "off"
    return f"| {label} | {status:.0f} | {start:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--hooks", type=int, default=1_000_000)
    args = parser.parse_args()
    print("\n".join(hooks(args.hooks)))
    off = calls(args.calls, traced=False)
    loaded = sorted(m for m in sys.modules if m.startswith(SDK_MODULES))
    on = calls(args.calls, traced=True)
    print()
    print("| tracing | GetJobStatus µs/call | StartJob µs/call |")
    print("|---|---:|---:|")
    print(off)
    print(on)
    print()
    print(f"SDK / instrumentation modules imported while off: {loaded or 'none'}")


SDK_MODULES = ("opentelemetry.sdk", "opentelemetry.instrumentation")

if __name__ == "__main__":
    main()
