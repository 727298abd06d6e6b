"""Every table and view of the CLI reads well at 80 columns and uses the room at 160:
the real `agentjobs` entry point in a real pseudo-terminal of that size, against a live
server. No word is split across lines, every id is whole on one line, no column is
squeezed to a sliver, no line is wider than the terminal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agentjobs.client import JobClient
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2
from tests.client.helpers import (
    assert_ok,
    assert_reads_well,
    collect_earnings,
    quick_chain,
    run_cli,
    run_in_terminal,
    sandbox_books,
    wait_for_status,
)

WIDTHS = (80, 160)
# Words the views print that are not in the JSON documents compared below.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Books:
    env: dict[str, str | None]
    completed: str  # a job paid, run and withdrawn
    waiting: str  # a job awaiting a person's input
    unpaid: str  # a job awaiting payment


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    from agentjobs.server.testing import server_in_thread

    tmp = tmp_path_factory.mktemp("widths")
    with server_in_thread(tmp, **sandbox_books()) as server:
        quick_chain(server)
        with JobClient(server.grpc_target, operator_token=server.operator_token) as client:
            yield _fill(server, client)


def _fill(server: ThreadedServer, client: JobClient) -> Books:
    completed = client.start_job({"text": "hello masumi"})
    waiting = client.start_job({"text": "whole words", "ask_for_review": True})
    unpaid = client.start_job({"text": "never paid"})
    for started in (completed, waiting):
        server.call(server.sandbox.lock_funds(started.blockchain_identifier))
    assert client.wait(completed.job_id, timeout=20).status == jobs_pb2.JOB_STATUS_COMPLETED
    wait_for_status(client, waiting.job_id, jobs_pb2.JOB_STATUS_AWAITING_INPUT)
    env: dict[str, str | None] = {
        "AGENTJOBS_TARGET": server.grpc_target,
        "AGENTJOBS_TOKEN": server.operator_token,
    }
    # Started before the sandbox's clock jumps (it then refuses new payment requests);
    # test_start_shows_the_payment_request replays them.
    for width in WIDTHS:
        assert_ok(run_cli(*_start_command(width), "--json", env=env))
    collect_earnings(server, completed.blockchain_identifier)
    return Books(env, completed.job_id, waiting.job_id, unpaid.job_id)


def _start_command(width: int) -> tuple[str, ...]:
    return ("start", "--input", "text=at width", "--request-id", f"widths-{width}")


def _words(document: object) -> set[str]:
    """Every word of every string value in a JSON document (what the views show)."""
    found: set[str] = set()
    if isinstance(document, dict):
        for value in document.values():
            found |= _words(value)
    elif isinstance(document, list):
        for value in document:
            found |= _words(value)
    elif isinstance(document, str):
        found |= set(document.split())
    return found


REFERENCE_WIDTH = 240
BOX_DRAWING = re.compile("[\u2500-\u257f]")


def reference_words(books: Books, *command: str) -> set[str]:
    """The words of the same view on a terminal so wide that nothing wraps."""
    wide = assert_ok(run_in_terminal(*command, columns=REFERENCE_WIDTH, env=books.env)).out
    return set(BOX_DRAWING.sub(" ", wide).split())


@pytest.mark.parametrize("width", WIDTHS)
def test_earnings(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("earnings", columns=width, env=books.env)).out
    report = assert_ok(run_cli("earnings", "--json", env=books.env)).json()
    ids = {r["job_id"] for r in report["recent"]}
    assert {books.completed, books.waiting, books.unpaid} <= ids
    assert len(ids) == 3 + len(WIDTHS)  # and the jobs test_start_shows_the_payment_request replays
    words = reference_words(books, "earnings")
    assert {"withdrawn", "paid", "pending", "Withdrawn", "FundsLocked", "escrow"} <= words
    assert_reads_well(shown, width, ids, words)
    assert f"Recent earnings ({len(ids)})" in shown


@pytest.mark.parametrize("width", WIDTHS)
def test_invoices(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("invoices", columns=width, env=books.env)).out
    page = assert_ok(run_cli("invoices", "--json", env=books.env)).json()
    ids = {i["job_id"] for i in page["invoices"]}
    assert_reads_well(shown, width, ids, reference_words(books, "invoices"))
    if width >= 160:  # the room is used: one line per invoice
        for job_id in ids:
            (line,) = [line for line in shown.splitlines() if job_id in line]
            assert "ADA" in line and re.search(r"\d\d:\d\d:\d\d", line), line


@pytest.mark.parametrize("width", WIDTHS)
def test_list(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("list", columns=width, env=books.env)).out
    ids = {books.completed, books.waiting, books.unpaid}
    assert_reads_well(shown, width, ids, {"awaiting_input", "awaiting_payment", "completed"})
    if width >= 160:
        assert '"text": "whole words"' in shown  # the input has room
        assert "not shown" not in shown
    else:
        assert "--json has everything" in shown  # says what it left out


@pytest.mark.parametrize("width", WIDTHS)
def test_schema(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("schema", columns=width, env=books.env)).out
    words = reference_words(books, "schema")
    assert {"ask_for_review", "answering", "characters"} <= words
    assert_reads_well(shown, width, {"ask_for_review"}, words)


@pytest.mark.parametrize("width", WIDTHS)
def test_status_of_a_job_awaiting_input(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("status", books.waiting, columns=width, env=books.env)).out
    status = assert_ok(run_cli("status", books.waiting, "--json", env=books.env)).json()
    ids = {books.waiting, status["status_id"]}
    words = reference_words(books, "status", books.waiting)
    assert_reads_well(shown, width, ids, words)


@pytest.mark.parametrize("width", WIDTHS)
def test_start_shows_the_payment_request(books: Books, width: int) -> None:
    # A replay of the job _fill started: the same job, so the view's values are known.
    start = _start_command(width)
    started = assert_ok(run_cli(*start, "--json", env=books.env)).json()
    shown = assert_ok(run_in_terminal(*start, columns=width, env=books.env)).out
    ids = {
        started[name]
        for name in (
            "job_id",
            "blockchain_identifier",
            "input_hash",
            "seller_vkey",
            "agent_identifier",
            "identifier_from_purchaser",
        )
    }
    assert_reads_well(shown, width, ids, reference_words(books, *start))


@pytest.mark.parametrize("width", WIDTHS)
def test_availability_and_demo(books: Books, width: int) -> None:
    for command in ("availability", "demo"):
        shown = assert_ok(run_in_terminal(command, columns=width, env=books.env)).out
        document = assert_ok(run_cli(command, "--json", env=books.env)).json()
        long_ids = {w for w in _words(document) if len(w) >= 40}
        assert_reads_well(shown, width, long_ids, reference_words(books, command))


def test_json_is_the_same_whatever_the_width(books: Books) -> None:
    for command in (("list",), ("invoices",), ("earnings",), ("schema",)):
        narrow = run_in_terminal(*command, "--json", columns=80, env=books.env)
        wide = run_in_terminal(*command, "--json", columns=160, env=books.env)
        assert json.loads(assert_ok(narrow).out) == json.loads(assert_ok(wide).out)
