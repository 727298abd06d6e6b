"""The sandbox's payments in a file, so an embedded sandbox survives a restart of the
server. Written whole, atomically (a temporary file in the same folder, fsync, rename),
at most every `debounce_s`, and once more on a clean stop. API keys are configuration,
not state: they are never written."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentjobs.server.payments.sandbox.ledger import Action, ChainTransaction, Funds, LedgerPayment
from agentjobs.server.tasks import cancel_and_wait

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def payment_to_json(payment: LedgerPayment) -> dict[str, Any]:
    return asdict(payment)


def _funds(items: list[dict[str, Any]]) -> tuple[Funds, ...]:
    return tuple(Funds(int(item["amount"]), item["unit"]) for item in items)


def _tx(item: dict[str, Any] | None) -> ChainTransaction | None:
    return None if item is None else ChainTransaction(**item)


def payment_from_json(item: dict[str, Any]) -> LedgerPayment:
    values = dict(item)
    values["requested_funds"] = _funds(values["requested_funds"])
    values["withdrawn_for_seller"] = _funds(values["withdrawn_for_seller"])
    values["withdrawn_for_buyer"] = _funds(values["withdrawn_for_buyer"])
    values["action"] = Action(**values["action"])
    values["action_history"] = [Action(**a) for a in values["action_history"]]
    values["transaction"] = _tx(values["transaction"])
    values["transaction_history"] = [ChainTransaction(**t) for t in values["transaction_history"]]
    return LedgerPayment(**values)


def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state, None when there is none yet. A file that cannot be read is an
    error: starting empty would silently forget every payment."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    state: dict[str, Any] = json.loads(text)
    if state.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unknown sandbox state format {state.get('version')!r}")
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as handle:
        json.dump(state, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class StateWriter:
    """Writes `snapshot()` to `path` after changes, at most every `debounce_s`."""

    def __init__(
        self, path: Path, snapshot: Callable[[], dict[str, Any]], debounce_s: float = 0.2
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._debounce_s = debounce_s
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        # Set by every write (tests wait on it).
        self.written = asyncio.Event()

    def changed(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sandbox-state-writer")

    async def stop(self) -> None:
        """Stop writing in the background; the last state is written before this returns."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.flush()

    def flush(self) -> None:
        self._dirty.clear()
        write_state(self.path, self._snapshot())
        self.writes += 1
        self.written.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce_s)
            try:
                self.flush()
            except OSError:
                # The next change tries again, and stop() writes once more; a full
                # disk must not stop the sandbox from answering.
                log.exception("could not write the sandbox state to %s", self.path)
