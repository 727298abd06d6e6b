"""An embedded sandbox keeps its payments in a file and survives a restart."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest

from agentjobs.server.app import sandbox_state_file
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import running_server
from tests.payments.helpers import API_KEY, RESULT_HASH, WAIT_S, RawApi


def quick(state_file: Path, api_key: str = API_KEY) -> SandboxPaymentService:
    return SandboxPaymentService(
        api_key=api_key,
        lock_after=None,
        settle_after=0.01,
        job_interval=0.01,
        state_file=state_file,
    )


async def test_payments_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "agentjobs.db.sandbox.json"
    first = quick(state)
    async with aiohttp.ClientSession() as session:
        api = RawApi(session, await first.start("127.0.0.1", 0))
        bid = (await api.create(metadata="kept"))["blockchainIdentifier"]
        await first.lock_funds(bid)
        before = await api.resolve(bid)
        await first.stop()  # a clean stop writes the last change
        assert json.loads(state.read_text())["version"] == 1

        # A new process with a new random key (as `make run` makes one): the payment is
        # still there and still the first key's (same key id).
        second = quick(state, api_key="another-random-key-9f8e")
        again = RawApi(session, await second.start("127.0.0.1", 0))
        try:
            after = await again.call(
                "POST",
                "/payment/resolve-blockchain-identifier",
                body={"network": "Preprod", "blockchainIdentifier": bid},
                token="another-random-key-9f8e",
            )
            assert after.data == before
            submitted = await again.call(
                "POST",
                "/payment/submit-result",
                body={
                    "network": "Preprod",
                    "blockchainIdentifier": bid,
                    "submitResultHash": RESULT_HASH,
                },
                token="another-random-key-9f8e",
            )
            assert submitted.status == 200
            async with asyncio.timeout(WAIT_S):
                landed = await second.wait_for(bid, on_chain_state="ResultSubmitted")
            assert landed["metadata"] == "kept"
        finally:
            await second.stop()


async def test_a_transaction_in_flight_at_the_stop_lands_after_the_restart(
    tmp_path: Path,
) -> None:
    state = tmp_path / "sandbox.json"
    first = quick(state)
    first.settle_after = 3600
    async with aiohttp.ClientSession() as session:
        api = RawApi(session, await first.start("127.0.0.1", 0))
        bid = (await api.create())["blockchainIdentifier"]
        await first.lock_funds(bid)
        await api.submit(bid)
        async with asyncio.timeout(WAIT_S):
            await first.wait_for(bid, requested_action="SubmitResultInitiated")
        await first.stop()
    second = quick(state)
    await second.start("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT_S):
            landed = await second.wait_for(bid, on_chain_state="ResultSubmitted")
        assert landed["resultHash"] == RESULT_HASH
    finally:
        await second.stop()


async def test_the_file_is_written_whole_after_changes(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    sandbox = quick(state)
    await sandbox.start("127.0.0.1", 0)
    try:
        sandbox.create_payments(3)
        async with asyncio.timeout(WAIT_S):
            await sandbox.state_written()
        saved = json.loads(state.read_text())
        assert len(saved["payments"]) == 3
        # Written through a temporary file and a rename: nothing else is left behind.
        assert os.listdir(tmp_path) == ["sandbox.json"]
        # No API key is ever written.
        assert API_KEY not in state.read_text()
    finally:
        await sandbox.stop()


def test_an_unreadable_state_file_is_an_error(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    state.write_text("{not json")
    with pytest.raises(ValueError):
        quick(state)


def test_the_embedded_sandbox_keeps_its_state_beside_the_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "agentjobs.db"
    assert sandbox_state_file(f"sqlite+aiosqlite:///{db}") == Path(f"{db}.sandbox.json")
    assert sandbox_state_file(f"sqlite:///{db}") == Path(f"{db}.sandbox.json")
    assert sandbox_state_file("memory://") is None
    assert sandbox_state_file("postgresql://u@127.0.0.1:5432/agentjobs") is None


async def test_a_server_restart_keeps_the_embedded_sandboxs_payments(tmp_path: Path) -> None:
    async with running_server(tmp_path) as first:
        sandbox = first.sandbox
        assert sandbox is not None
        [bid] = sandbox.create_payments(1)
        await sandbox.lock_funds(bid)
        before = sandbox.payment(bid)
    async with running_server(tmp_path) as second:
        assert second.sandbox.payment(bid) == before
