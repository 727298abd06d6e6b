"""Run the benchmarks (`make bench`) and print their tables as Markdown.

    .venv/bin/python -m bench.run_all [--quick] [--only status,monitor,...]
                                      [--skip ...] [--out results.md]

Benchmarks, in order: status (read path: gRPC vs the grpc.aio ceiling, HTTP vs the
masumi SDK), monitor (pending payments: diff vs per-payment polling), e2e (jobs per
second, ours vs the SDK), follow (WatchJob vs 1 Hz polling, server CPU), rss (server
process with 100k stored jobs), repository (store throughput and RSS per backend),
processes (`serve --processes 1` and 2: GetJobStatus against the single-process ceiling,
end to end), open_loop (jobs arriving at a fixed rate, stepped up until p99 start ->
completed passes 2 s: SQLite, PostgreSQL with 1 and 3 replicas, the SDK).
--quick runs each with small counts and one round (~5 minutes instead of ~30; for a smoke
test, not for figures). Needs h2load and wrk (apt-get install -y nghttp2-client wrk).
docs/PERFORMANCE.md has the commands, the tables and what bounds each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    bench_e2e,
    bench_follow,
    bench_monitor,
    bench_open_loop,
    bench_processes,
    bench_repository,
    bench_server_rss,
    bench_status,
    common,
)
from bench.common import say


def repository(quick: bool) -> list[str]:
    backends = list(bench_repository.BACKENDS)
    jobs, repeat, rss_jobs = (500, 1, 10_000) if quick else (2000, 3, 100_000)
    return [
        *asyncio.run(bench_repository.throughput(backends, jobs, repeat)),
        "",
        *bench_repository.memory_rows(backends, rss_jobs),
    ]


BENCHMARKS: dict[str, tuple[str, Callable[[bool], list[str]]]] = {
    "status": (
        "bench.bench_status",
        lambda quick: bench_status.run(rounds=1, seconds=4) if quick else bench_status.run(),
    ),
    "monitor": (
        "bench.bench_monitor",
        lambda quick: (
            bench_monitor.run(pendings=(1000,), sample=30, window_s=10)
            if quick
            else bench_monitor.run()
        ),
    ),
    "e2e": (
        "bench.bench_e2e",
        lambda quick: bench_e2e.run(count=60, rounds=1) if quick else bench_e2e.run(),
    ),
    "follow": (
        "bench.bench_follow",
        lambda quick: (
            bench_follow.run(count=200, rounds=1, lock_over_s=10) if quick else bench_follow.run()
        ),
    ),
    "rss": (
        "bench.bench_server_rss",
        lambda quick: bench_server_rss.run(10_000, rounds=1) if quick else bench_server_rss.run(),
    ),
    "repository": ("bench.bench_repository", repository),
    "processes": (
        "bench.bench_processes",
        lambda quick: (
            bench_processes.run(seconds=4, rounds=1, jobs=60) if quick else bench_processes.run()
        ),
    ),
    "open_loop": (
        "bench.bench_open_loop",
        lambda quick: (
            bench_open_loop.run(rates=(5, 10), step_s=3, rounds=1)
            if quick
            else bench_open_loop.run()
        ),
    ),
}


def names(value: str) -> list[str]:
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {unknown}; see --help")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.run_all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--only", type=names, default=list(BENCHMARKS), help="comma-separated")
    parser.add_argument("--skip", type=names, default=[], help="comma-separated")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    chosen = [name for name in args.only if name not in args.skip]
    lines = [f"Measured {common.machine_line()}" + (" -- QUICK run" if args.quick else "")]
    say(lines[0])
    failed: list[str] = []
    for name in chosen:
        module, bench = BENCHMARKS[name]
        say(f"\n== {name} (python -m {module}) ==")
        began = time.monotonic()
        try:
            section = bench(args.quick)
        except Exception as exc:  # one broken benchmark must not cost the others' figures
            traceback.print_exc()
            section = [f"FAILED: {type(exc).__name__}: {exc}"]
            failed.append(name)
        lines += ["", f"## {name}", "", *section, "", f"({time.monotonic() - began:.0f} s)"]
        say("\n".join(section))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
        say(f"\nwritten to {args.out}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
