"""The money views read well at 80 columns and use the room at 160: the real `agentjobs`
entry point in a pseudo-terminal of that size, against a live server whose sandbox
holds a disputed payment and invalid funds. Ids and the commands to type are whole on
one line; no word is split."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentjobs.client import JobClient
from agentjobs.server.testing import server_in_thread
from tests.client.helpers import (
    assert_ok,
    assert_reads_well,
    quick_chain,
    run_cli,
    run_in_terminal,
    sandbox_books,
)
from tests.client.money import Chain

WIDTHS = (80, 160)
REFERENCE_WIDTH = 240
BOX_DRAWING = re.compile("[\u2500-\u257f]")


@dataclass(frozen=True)
class Books:
    env: dict[str, str | None]
    disputed: dict[int, str]  # one disputed job to refund at each width
    invalid: str  # funds invalid: attention, nothing to type
    replica_id: str


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    tmp: Path = tmp_path_factory.mktemp("money-widths")
    with server_in_thread(tmp, **sandbox_books()) as server:
        quick_chain(server)
        env: dict[str, str | None] = {
            "AGENTJOBS_TARGET": server.grpc_target,
            "AGENTJOBS_TOKEN": server.operator_token,
        }
        with JobClient(server.grpc_target, operator_token=server.operator_token) as client:
            chain = Chain(server, lambda *args: run_cli(*args, env=env), client)
            disputed = {width: chain.disputed(f"contested at {width}")[0] for width in WIDTHS}
            invalid, bid = chain.start("spoofed")
            chain.run(server.sandbox.mark_funds_invalid(bid))
            chain.run(chain.monitor.poll_once())
            chain.run(chain.monitor.poll_round())  # the monitor's lease is held
            yield Books(env, disputed, invalid, server.running.app.replica_id)


def reference_words(books: Books, *command: str) -> set[str]:
    """The words of the same view on a terminal so wide that nothing wraps."""
    wide = assert_ok(run_in_terminal(*command, columns=REFERENCE_WIDTH, env=books.env)).out
    return set(BOX_DRAWING.sub(" ", wide).split())


@pytest.mark.parametrize("width", WIDTHS)
def test_attention(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("attention", columns=width, env=books.env)).out
    jobs = assert_ok(run_cli("attention", "--json", env=books.env)).json()["jobs"]
    ids = {job["job_id"] for job in jobs}
    assert ids == {*books.disputed.values(), books.invalid}
    actions = {job["attention"]["action"] for job in jobs} - {""}
    assert actions == {f"agentjobs refund {job_id}" for job_id in books.disputed.values()}
    words = reference_words(books, "attention")
    assert {"DISPUTED", "FUNDS_OR_DATUM_INVALID", "disputes", "spoofing"} <= words
    # The commands to type are ids too: whole, on one line, ready to copy.
    assert_reads_well(shown, width, ids | actions, words)
    assert "not shown" not in shown  # nothing left out: the account wraps, it is not cut
    if width >= 160:  # a table, the command in a column of its own
        assert "┏" in shown
        for action in actions:
            (line,) = [line for line in shown.splitlines() if action in line]
            assert re.search(r"\d\d:\d\d:\d\d", line), line


@pytest.mark.parametrize("width", WIDTHS)
def test_refund(books: Books, width: int) -> None:
    job_id = books.disputed[width]
    shown = assert_ok(run_in_terminal("refund", job_id, columns=width, env=books.env)).out
    assert "Refund scheduled" in shown
    assert_reads_well(shown, width, {job_id}, {"refund,", "DISPUTED:", "disputes"})


@pytest.mark.parametrize("width", WIDTHS)
def test_replicas(books: Books, width: int) -> None:
    shown = assert_ok(run_in_terminal("replicas", columns=width, env=books.env)).out
    # Not the words of a second call: the heartbeat's age moves on in between.
    words = {"replica", "id", "role", "heartbeat", "steps", "held", "monitor", "leader"}
    assert_reads_well(shown, width, {books.replica_id}, {*words, "all", "yes", "ago", "started"})
    (row,) = [line for line in shown.splitlines() if books.replica_id in line]
    assert "yes" in row and "ago" in row


def test_json_is_the_same_whatever_the_width(books: Books) -> None:
    for command in (("attention",), ("replicas",)):
        narrow = run_in_terminal(*command, "--json", columns=80, env=books.env)
        wide = run_in_terminal(*command, "--json", columns=160, env=books.env)
        narrow_doc, wide_doc = json.loads(assert_ok(narrow).out), json.loads(assert_ok(wide).out)
        if command == ("replicas",):  # a live replica's heartbeat and leases move on
            for document in (narrow_doc, wide_doc):
                for replica in document["replicas"]:
                    del replica["heartbeat_time"], replica["steps_held"]
        assert narrow_doc == wide_doc
