"""JobClient (blocking): every method against a live server, errors decoded from the rich
status, idempotent starts."""

from __future__ import annotations

import re

import grpc
import pytest

from agentjobs.client import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    JobClient,
    JobNotFound,
    PermissionDenied,
    Unauthenticated,
)
from agentjobs.client import requests as build
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2, operator_pb2
from tests.client.helpers import wait_for_status


def test_the_agent_describes_itself(client: JobClient) -> None:
    availability = client.get_availability()
    assert availability.availability == jobs_pb2.AVAILABILITY_AVAILABLE
    assert availability.type == "masumi-agent" and availability.sandbox
    schema = client.get_input_schema().input_schema
    assert [f.id for f in schema.input_data] == ["text", "ask_for_review"]
    demo = client.get_demo()
    assert dict(demo.input) == {"text": "hello masumi"}
    assert dict(demo.output) == {"result": "HELLO MASUMI!"}


def test_start_fills_the_identifier_and_the_request_id() -> None:
    request = build.start_job({"text": "x"}, None, None)
    assert re.fullmatch(r"([0-9a-f]{2}){7,13}", request.identifier_from_purchaser)
    assert request.request_id
    assert build.start_job(None, None, None).request_id != request.request_id


def test_a_job_from_start_to_completed(threaded: ThreadedServer, client: JobClient) -> None:
    started = client.start_job({"text": "sync"})
    assert started.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    assert started.blockchain_identifier and started.input_hash and started.pay_by_time
    status = client.get_job_status(started.job_id)
    assert status.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT and status.status_id

    updates = client.watch(started.job_id, timeout=20)
    snapshot = next(updates)
    assert not snapshot.HasField("event")  # the first message is the snapshot
    assert snapshot.job.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    threaded.call(threaded.sandbox.lock_funds(started.blockchain_identifier))
    events = list(updates)
    assert all(u.HasField("event") for u in events)
    sequences = [u.event.sequence for u in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    types = [u.event.type for u in events]
    assert types[0] == jobs_pb2.JOB_EVENT_TYPE_FUNDS_LOCKED
    assert types[-1] == jobs_pb2.JOB_EVENT_TYPE_COMPLETED
    assert events[-1].job.status == jobs_pb2.JOB_STATUS_COMPLETED
    assert events[-1].job.result == "SYNC!"

    final = client.wait(started.job_id, timeout=10)  # already terminal: returns at once
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED and final.result == "SYNC!"
    assert client.get_job_status(started.job_id).result == "SYNC!"


def test_list_and_iterate_jobs(client: JobClient) -> None:
    ids = [client.start_job({"text": str(n)}).job_id for n in range(3)]
    client.cancel_job(ids[0])
    assert [j.job_id for j in client.list_jobs().jobs] == ids[::-1]
    assert [j.job_id for j in client.list_jobs(status="failed").jobs] == [ids[0]]
    page = client.list_jobs(page_size=2, status=jobs_pb2.JOB_STATUS_AWAITING_PAYMENT)
    assert [j.job_id for j in page.jobs] == [ids[2], ids[1]] and not page.next_page_token
    assert [j.job_id for j in client.iter_jobs(page_size=1)] == ids[::-1]
    with pytest.raises(ValueError, match="unknown value 'asleep'"):
        client.list_jobs(status="asleep")


def test_provide_input_answers_the_agent(threaded: ThreadedServer, client: JobClient) -> None:
    started = client.start_job({"text": "check me", "ask_for_review": True})
    threaded.call(threaded.sandbox.lock_funds(started.blockchain_identifier))
    wait_for_status(client, started.job_id, jobs_pb2.JOB_STATUS_AWAITING_INPUT)
    asked = client.get_job_status(started.job_id)
    assert [f.id for f in asked.input_schema.input_data] == ["approve"]
    assert "Approve" in asked.input_request_message

    receipt = client.provide_input(
        started.job_id, asked.status_id, {"approve": True}, request_id="answer-1"
    )
    again = client.provide_input(
        started.job_id, asked.status_id, {"approve": True}, request_id="answer-1"
    )
    assert re.fullmatch(r"[0-9a-f]{64}", receipt.input_hash)
    assert again.input_hash == receipt.input_hash
    assert client.wait(started.job_id, timeout=20).result == "CHECK ME!"


def test_start_job_is_idempotent_on_request_id(client: JobClient) -> None:
    # No identifier given: the retry must still be the same request.
    first = client.start_job({"text": "once"}, request_id="sync-retry")
    again = client.start_job({"text": "once"}, request_id="sync-retry")
    assert again.job_id == first.job_id
    assert again.blockchain_identifier == first.blockchain_identifier
    assert again.identifier_from_purchaser == first.identifier_from_purchaser
    other = client.start_job({"text": "once"})
    assert other.job_id != first.job_id
    assert len(client.list_invoices().invoices) == 2  # one payment request per job

    with pytest.raises(AlreadyExists) as reused:
        client.start_job({"text": "something else"}, request_id="sync-retry")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_operator_methods(client: JobClient) -> None:
    empty = client.get_earnings_report()
    assert empty.pending.count == 0 and list(empty.recent) == []
    kept = client.start_job({"text": "kept"})
    dropped = client.start_job({"text": "dropped"})
    cancelled = client.cancel_job(dropped.job_id, "no longer needed")
    assert cancelled.job.status == jobs_pb2.JOB_STATUS_FAILED
    assert cancelled.job.error.reason == "CANCELLED"

    report = client.get_earnings_report(recent_limit=1)
    assert report.pending.count == 1 and report.expired.count == 1
    assert [(a.amount, a.unit) for a in report.pending.amounts] == [(10_000_000, "")]
    assert [r.job_id for r in report.recent] == [dropped.job_id]
    statuses = {c.status: c.count for c in report.jobs_by_status}
    assert statuses[jobs_pb2.JOB_STATUS_AWAITING_PAYMENT] == 1
    assert statuses[jobs_pb2.JOB_STATUS_FAILED] == 1

    pending = client.list_invoices(status="pending").invoices
    assert [i.job_id for i in pending] == [kept.job_id]
    expired = client.list_invoices(status=operator_pb2.INVOICE_STATUS_EXPIRED).invoices
    assert [i.job_id for i in expired] == [dropped.job_id]
    assert [i.job_id for i in client.iter_invoices(page_size=1)] == [
        dropped.job_id,
        kept.job_id,
    ]


def test_errors_are_decoded_from_the_rich_status(
    threaded: ThreadedServer, client: JobClient
) -> None:
    with pytest.raises(JobNotFound) as missing:
        client.get_job_status("no-such-job")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert missing.value.reason == "JOB_NOT_FOUND"
    assert "no-such-job" in missing.value.message
    with pytest.raises(JobNotFound):
        list(client.watch("no-such-job", timeout=10))
    with pytest.raises(JobNotFound):
        client.cancel_job("no-such-job")

    with pytest.raises(InvalidArgument) as bad:
        client.start_job({"text": ""}, identifier_from_purchaser="xyz")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.reason
    assert "identifier_from_purchaser" in dict(bad.value.field_violations)
    with pytest.raises(InvalidArgument) as schema:
        client.start_job({"text": 5})
    assert dict(schema.value.field_violations)["input_data.text"].endswith("must be a string")

    started = client.start_job({"text": "unpaid"})
    status_id = client.get_job_status(started.job_id).status_id
    with pytest.raises(FailedPrecondition) as not_asked:
        client.provide_input(started.job_id, status_id, {"approve": True})
    assert not_asked.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not_asked.value.reason == "JOB_NOT_AWAITING_INPUT"

    with JobClient(threaded.grpc_target) as anonymous, pytest.raises(Unauthenticated) as no:
        anonymous.get_earnings_report()
    assert no.value.reason == "UNAUTHENTICATED"
    with (
        JobClient(threaded.grpc_target, operator_token="wrong") as impostor,
        pytest.raises(PermissionDenied) as wrong,
    ):
        impostor.list_invoices()
    assert wrong.value.reason == "PERMISSION_DENIED"
    assert "wrong" not in str(wrong.value)
