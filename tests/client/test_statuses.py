"""JobStatus / InvoiceStatus: one member per enum value of the contract, readable names."""

from __future__ import annotations

from agentjobs.client import InvoiceStatus, JobStatus
from agentjobs.v1 import jobs_pb2, operator_pb2


def test_every_contract_value_has_its_member() -> None:
    for enum, proto, prefix in (
        (JobStatus, jobs_pb2.JobStatus, "JOB_STATUS_"),
        (InvoiceStatus, operator_pb2.InvoiceStatus, "INVOICE_STATUS_"),
    ):
        assert {m.name: m.value for m in enum} == {
            name.removeprefix(prefix): value for name, value in proto.items()
        }


def test_statuses_print_their_mip003_names_and_equal_the_numbers() -> None:
    assert str(JobStatus(jobs_pb2.JOB_STATUS_AWAITING_PAYMENT)) == "awaiting_payment"
    assert f"{JobStatus.COMPLETED}" == "completed"
    assert JobStatus.RUNNING == jobs_pb2.JOB_STATUS_RUNNING
    assert JobStatus.FAILED.terminal and not JobStatus.AWAITING_INPUT.terminal
    assert str(InvoiceStatus(operator_pb2.INVOICE_STATUS_WITHDRAWN)) == "withdrawn"
