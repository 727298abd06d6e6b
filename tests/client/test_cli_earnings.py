"""`agentjobs earnings` and `agentjobs invoices` agree exactly with the durable books."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentjobs.client import JobClient
from agentjobs.server.domain import Invoice, InvoiceStatus, JobStatus
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2
from tests.client.conftest import Cli
from tests.client.helpers import assert_ok, collect_earnings, wait_for_status

# Report field -> the invoice status it sums, and the label of its row in the table.
REPORT_ROWS = {
    "earned": (InvoiceStatus.WITHDRAWN, "Earned (withdrawn)"),
    "locked": (InvoiceStatus.PAID, "Locked in escrow"),
    "pending": (InvoiceStatus.PENDING, "Pending"),
    "expired": (InvoiceStatus.EXPIRED, "Expired / cancelled"),
    "refunded": (InvoiceStatus.REFUNDED, "Refunded"),
    "invalid": (InvoiceStatus.INVALID, "Invalid"),
}


@dataclass
class Total:
    count: int = 0
    amounts: dict[str, int] = field(default_factory=dict)


def books_totals(invoices: Iterable[Invoice]) -> dict[InvoiceStatus, Total]:
    totals = {status: Total() for status in InvoiceStatus}
    for invoice in invoices:
        total = totals[invoice.status]
        total.count += 1
        for amount in invoice.amounts:
            total.amounts[amount.unit] = total.amounts.get(amount.unit, 0) + amount.amount
    return totals


def reported_total(document: dict[str, Any]) -> Total:
    # Canonical proto JSON: int64 values are strings.
    amounts = {a["unit"]: int(a["amount"]) for a in document["amounts"]}
    return Total(count=int(document["count"]), amounts=amounts)


def ada(lovelace: int) -> str:
    return f"{Decimal(lovelace) / 1_000_000:,f} ADA"


def table_row(text: str, label: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if f"│ {label} " in line]
    return [cell.strip() for cell in line.split("│")[1:-1]]


class Books:
    """The server's repository and sandbox, driven from the test thread."""

    def __init__(self, server: ThreadedServer, cli: Cli, client: JobClient) -> None:
        self.server = server
        self.app = server.running.app
        self.sandbox = server.sandbox
        self.cli = cli
        self.client = client
        assert self.app.monitor is not None
        self.monitor = self.app.monitor

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.server.call(asyncio.wait_for(coroutine, 20))

    def invoices(self) -> list[Invoice]:
        page = self.run(self.app.repository.list_invoices(page_size=1000))
        assert page.next_page_token is None
        return list(page.items)

    def start(self, text: str, *, review: bool = False) -> tuple[str, str]:
        review_args = ("--input", "ask_for_review=true") if review else ()
        started = assert_ok(self.cli("start", "--input", f"text={text}", *review_args, "--json"))
        return started.json()["job_id"], started.json()["blockchain_identifier"]

    def settle(self, bid: str, on_chain_state: str) -> None:
        """Waits for the chain, then has the monitor apply it before returning."""
        self.run(self.sandbox.wait_for(bid, on_chain_state=on_chain_state))
        self.run(self.monitor.poll_once())

    def submitted(self) -> tuple[str, str]:
        """A job completed whose payment is earned once collect() has run."""
        job_id, bid = self.start("earned")
        self.run(self.sandbox.lock_funds(bid))
        assert self.client.wait(job_id, timeout=20).status == jobs_pb2.JOB_STATUS_COMPLETED
        return job_id, bid

    def collect(self, bid: str) -> None:
        collect_earnings(self.server, bid)

    def locked(self) -> tuple[str, str]:
        job_id, bid = self.start("waits for a reviewer", review=True)
        self.run(self.sandbox.lock_funds(bid))
        wait_for_status(self.client, job_id, jobs_pb2.JOB_STATUS_AWAITING_INPUT)
        return job_id, bid

    def refund_requested(self) -> tuple[str, str]:
        """On V1 the seller cannot give money back from RefundRequested: the buyer
        withdraws it after submitResultTime (see refunded())."""
        job_id, bid = self.locked()
        self.run(self.sandbox.request_refund(bid))
        self.settle(bid, "RefundRequested")
        return job_id, bid

    def refunded(self, bid: str) -> None:
        """Once collect() has moved the chain past submitResultTime."""
        self.run(self.sandbox.withdraw_refund(bid))
        self.settle(bid, "RefundWithdrawn")

    def invalid(self) -> str:
        job_id, bid = self.start("bad funds")
        self.run(self.sandbox.mark_funds_invalid(bid))
        self.run(self.monitor.poll_once())
        return job_id

    def cancelled(self) -> str:
        job_id, _ = self.start("cancelled")
        assert_ok(self.cli("cancel", job_id))
        return job_id


def test_empty_books_give_a_friendly_empty_report(cli: Cli) -> None:
    shown = assert_ok(cli("earnings")).out
    assert "No invoices yet" in shown
    report = assert_ok(cli("earnings", "--json")).json()
    for name in REPORT_ROWS:
        assert report[name] == {"count": "0", "amounts": []}
    assert [c["count"] for c in report["jobs_by_status"]] == ["0"] * 5
    assert report["recent"] == []
    assert "Invoices (0)" in assert_ok(cli("invoices")).out


def test_earnings_match_the_books_exactly(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    books = Books(threaded, cli, client)
    earned, earned_payment = books.submitted()
    locked, _ = books.locked()
    refunded, refund_payment = books.refund_requested()
    middle = datetime.now().astimezone()  # local time with its offset, as a person types it
    invalid = books.invalid()
    pending, _ = books.start("never paid")
    cancelled = books.cancelled()
    books.collect(earned_payment)
    books.refunded(refund_payment)

    invoices = books.invoices()
    by_job = {i.job_id: i.status for i in invoices}
    assert by_job == {
        earned: InvoiceStatus.WITHDRAWN,
        locked: InvoiceStatus.PAID,
        refunded: InvoiceStatus.REFUNDED,
        invalid: InvoiceStatus.INVALID,
        pending: InvoiceStatus.PENDING,
        cancelled: InvoiceStatus.EXPIRED,
    }
    expected = books_totals(invoices)

    report = assert_ok(cli("earnings", "--recent", "100", "--json")).json()
    for name, (status, _) in REPORT_ROWS.items():
        assert reported_total(report[name]) == expected[status], name
    jobs_by_status = {c["status"]: int(c["count"]) for c in report["jobs_by_status"]}
    assert jobs_by_status == {
        f"JOB_STATUS_{status.name}": books.run(books.app.repository.count(status))
        for status in JobStatus
    }
    assert jobs_by_status["JOB_STATUS_FAILED"] == 3
    newest_first = sorted(invoices, key=lambda i: (i.updated_at, i.blockchain_identifier))[::-1]
    assert [r["job_id"] for r in report["recent"]] == [i.job_id for i in newest_first]
    limited = assert_ok(cli("earnings", "--recent", "2", "--json")).json()
    assert [r["job_id"] for r in limited["recent"]] == [i.job_id for i in newest_first[:2]]

    shown = assert_ok(cli("earnings", "--recent", "100")).out
    for status, label in REPORT_ROWS.values():
        total = expected[status]
        assert table_row(shown, label)[1:] == [str(total.count), ada(total.amounts[""])]
    assert "10 ADA" in shown  # the sandbox's price, one invoice: human figures, no 10.000000
    assert f"Recent earnings ({len(invoices)})" in shown
    assert table_row(shown, earned)[1:3] == ["10 ADA", "withdrawn"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", table_row(shown, earned)[-1])

    # The time range filters invoices by creation time.
    later = [i for i in invoices if i.created_at >= middle]
    earlier = [i for i in invoices if i.created_at < middle]
    assert {i.job_id for i in later} == {invalid, pending, cancelled}
    for option, chosen in (("--since", later), ("--until", earlier)):
        part = assert_ok(cli("earnings", option, middle.isoformat(), "--json")).json()
        part_expected = books_totals(chosen)
        for name, (status, _) in REPORT_ROWS.items():
            assert reported_total(part[name]) == part_expected[status], (option, name)
    future = assert_ok(cli("earnings", "--since", "2999-01-01")).out
    assert "No invoices yet" in future


def test_invoices_are_filtered_by_status(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    books = Books(threaded, cli, client)
    earned, earned_payment = books.submitted()
    pending, _ = books.start("unpaid")
    cancelled = books.cancelled()
    books.collect(earned_payment)
    invoices = books.invoices()

    everything = assert_ok(cli("invoices", "--json")).json()["invoices"]
    assert [i["job_id"] for i in everything] == [cancelled, pending, earned]
    for status in InvoiceStatus:
        listed = assert_ok(cli("invoices", "--status", status.value, "--json")).json()
        assert [i["job_id"] for i in listed["invoices"]] == [
            i.job_id
            for i in sorted(invoices, key=lambda i: i.created_at, reverse=True)
            if i.status is status
        ], status
    withdrawn = assert_ok(cli("invoices", "--status", "withdrawn", "--json")).json()["invoices"]
    (only,) = withdrawn
    assert only["amounts"] == [{"amount": "10000000", "unit": ""}]
    assert only["on_chain_state"] == "Withdrawn"

    shown = assert_ok(cli("invoices", "--status", "WITHDRAWN")).out
    assert table_row(shown, earned)[1:4] == ["10 ADA", "withdrawn", "Withdrawn"]
    assert pending not in shown and cancelled not in shown
