"""A failed start prints its one line only: the log lines of the start are held until
it is over, shown when it succeeded, dropped when it failed."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from agentjobs.server.__main__ import HeldLogs
from agentjobs.server.api.request_context import configure_logging

log = logging.getLogger("agentjobs.test")


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The server's logging set up as at start-up, writing into a buffer."""
    monkeypatch.delenv("AGENTJOBS_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("INFO")
    written = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(written)
    try:
        yield written
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def messages(written: io.StringIO) -> list[str]:
    return [line.rsplit("] ", 1)[-1] for line in written.getvalue().splitlines()]


def test_released_lines_come_out_in_order(logged: io.StringIO) -> None:
    held = HeldLogs()
    log.info("first")
    log.warning("second")
    assert messages(logged) == []
    held.release()
    assert messages(logged) == ["first", "second"]
    log.info("after")
    assert messages(logged)[-1] == "after"


def test_discarded_lines_never_come_out(logged: io.StringIO) -> None:
    held = HeldLogs()
    log.warning("SANDBOX PAYMENT SERVICE at ...")
    held.discard()
    held.release()  # the timer that releases a slow start may still fire
    assert messages(logged) == []
    log.info("later lines are shown")
    assert messages(logged) == ["later lines are shown"]


def test_nothing_is_held_at_debug(logged: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTJOBS_LOG_LEVEL", "debug")
    HeldLogs()
    log.info("at once")
    assert messages(logged) == ["at once"]
