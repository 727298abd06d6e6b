"""Keyset pagination (AIP-158) of jobs, invoices and the attention view, and the tokens."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentjobs.server.domain import InvalidPageTokenError, InvoiceStatus, JobStatus
from agentjobs.server.domain.lifecycle.attention import needs_attention
from agentjobs.server.repository.base import JobRepository, Page
from agentjobs.server.repository.pagination import (
    Cursor,
    decode_page_token,
    encode_page_token,
    page_size_or_default,
)
from tests.repository.builders import T0, at, funds_locked, insert, with_payment


async def _all_job_ids(
    repo: JobRepository, page_size: int, status: JobStatus | None = None
) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = await repo.list(page_size=page_size, page_token=token, status=status)
        assert len(page.items) <= page_size
        ids += [j.job_id for j in page.items]
        token = page.next_page_token
        if token is None:
            return ids


async def test_jobs_are_listed_newest_first_and_pages_end(repo: JobRepository) -> None:
    created = [await insert(repo, created_at=at(n)) for n in range(5)]
    first = await repo.list(page_size=2)
    assert first.items == [created[4], created[3]]
    assert first.next_page_token is not None
    assert await _all_job_ids(repo, 2) == [j.job_id for j in reversed(created)]
    exact = await repo.list(page_size=5)
    assert len(exact.items) == 5
    assert exact.next_page_token is None
    assert len((await repo.list(page_size=0)).items) == 5  # 0: the default size


async def test_empty_lists(repo: JobRepository) -> None:
    assert await repo.list() == Page(items=[], next_page_token=None)
    assert await repo.list_invoices() == Page(items=[], next_page_token=None)
    assert await repo.list_attention() == Page(items=[], next_page_token=None)


async def test_pages_hold_every_job_once_while_jobs_are_inserted(repo: JobRepository) -> None:
    existing = {(await insert(repo, created_at=at(n))).job_id for n in range(20)}
    seen: list[str] = []
    token: str | None = None
    later = 100
    while True:
        page = await repo.list(page_size=7, page_token=token)
        seen += [j.job_id for j in page.items]
        for _ in range(3):
            later += 1
            await insert(repo, created_at=at(later))
        token = page.next_page_token
        if token is None:
            break
    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert existing <= set(seen), "a job was skipped"


async def test_jobs_created_in_the_same_microsecond_are_all_listed(repo: JobRepository) -> None:
    created = {(await insert(repo, created_at=T0)).job_id for _ in range(11)}
    seen = await _all_job_ids(repo, 3)
    assert set(seen) == created
    assert len(seen) == 11
    assert seen == sorted(seen, reverse=True), "equal times are ordered by job_id"


async def test_the_status_filter(repo: JobRepository) -> None:
    jobs = [await with_payment(repo, now=at(n)) for n in range(7)]
    running = {(await funds_locked(repo, j, now=at(10))).job_id for j in jobs[:4]}
    assert set(await _all_job_ids(repo, 3, JobStatus.RUNNING)) == running
    assert len(await _all_job_ids(repo, 2, JobStatus.AWAITING_PAYMENT)) == 3
    assert (await repo.list(status=JobStatus.COMPLETED)).items == []
    assert await repo.count() == 7
    assert await repo.count(JobStatus.RUNNING) == 4
    assert await repo.count(JobStatus.FAILED) == 0


async def test_a_token_is_bound_to_its_listing_and_filter(repo: JobRepository) -> None:
    for n in range(3):
        job = await with_payment(repo, now=at(n))
        job = await funds_locked(repo, job, now=at(n))
        await repo.apply(job, needs_attention(job, "DISPUTED", "look", "", at(n)), at(n))
    jobs_token = (await repo.list(page_size=1, status=JobStatus.RUNNING)).next_page_token
    invoices_token = (await repo.list_invoices(page_size=1)).next_page_token
    attention_token = (await repo.list_attention(page_size=1)).next_page_token
    assert jobs_token and invoices_token and attention_token
    with pytest.raises(InvalidPageTokenError):
        await repo.list(page_size=1, page_token=jobs_token)
    with pytest.raises(InvalidPageTokenError):
        await repo.list(page_size=1, page_token=jobs_token, status=JobStatus.FAILED)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_invoices(page_size=1, page_token=jobs_token)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_attention(page_size=1, page_token=jobs_token)
    with pytest.raises(InvalidPageTokenError):
        await repo.list(page_size=1, page_token=invoices_token)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_invoices(page_size=1, page_token=invoices_token, status=InvoiceStatus.PAID)
    with pytest.raises(InvalidPageTokenError):
        await repo.list(page_size=1, page_token=attention_token)
    with pytest.raises(InvalidPageTokenError):
        await repo.list_invoices(page_size=1, page_token=attention_token)
    assert (await repo.list(page_size=1, page_token=jobs_token, status=JobStatus.RUNNING)).items
    assert (await repo.list_invoices(page_size=1, page_token=invoices_token)).items
    assert (await repo.list_attention(page_size=1, page_token=attention_token)).items


FORGED = [
    "not-a-token",
    "",
    "....",
    "eyJ2IjoxfQ",  # base64 JSON without a checksum
    "%%%.%%%",
    "x" * 10_000,
]


async def test_forged_tokens_are_rejected(repo: JobRepository) -> None:
    await insert(repo)
    for forged in FORGED:
        with pytest.raises(InvalidPageTokenError):
            await repo.list(page_token=forged)
        with pytest.raises(InvalidPageTokenError):
            await repo.list_invoices(page_token=forged)
        with pytest.raises(InvalidPageTokenError):
            await repo.list_attention(page_token=forged)


async def test_an_edited_token_is_rejected(repo: JobRepository) -> None:
    for n in range(3):
        await insert(repo, created_at=at(n))
    token = (await repo.list(page_size=1)).next_page_token
    assert token is not None
    body, checksum = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["f"] = "running"  # try to reuse the position under another filter
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    with pytest.raises(InvalidPageTokenError):
        await repo.list(page_token=f"{edited}.{checksum}", status=JobStatus.RUNNING)


async def test_invoices_page_newest_first(repo: JobRepository) -> None:
    jobs = [await with_payment(repo, now=at(n)) for n in range(5)]
    await funds_locked(repo, jobs[1], now=at(10))
    seen: list[str] = []
    token: str | None = None
    while True:
        page = await repo.list_invoices(page_size=2, page_token=token)
        assert len(page.items) <= 2
        seen += [i.blockchain_identifier for i in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [j.blockchain_identifier for j in reversed(jobs)]
    paid = await repo.list_invoices(status=InvoiceStatus.PAID)
    assert [i.job_id for i in paid.items] == [jobs[1].job_id]
    assert paid.items == [(await repo.get_with_invoice(jobs[1].job_id))[1]]


def test_page_size_zero_means_default_and_large_is_capped() -> None:
    assert page_size_or_default(0) == 50
    assert page_size_or_default(5000) == 1000
    with pytest.raises(ValueError, match="negative"):
        page_size_or_default(-1)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_string_is_a_token_or_an_invalid_page_token_error(text: str) -> None:
    try:
        cursor = decode_page_token(text, "jobs", None)
    except InvalidPageTokenError:
        return
    assert isinstance(cursor, Cursor)  # (any other exception fails the test)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.text(min_size=1, max_size=100),
    st.sampled_from([None, "running"]),
)
def test_tokens_round_trip(created_at: datetime, key: str, filter_value: str | None) -> None:
    cursor = Cursor(created_at=created_at, key=key)
    token = encode_page_token("jobs", filter_value, cursor)
    assert decode_page_token(token, "jobs", filter_value) == cursor
    with pytest.raises(InvalidPageTokenError):
        decode_page_token(token, "invoices", filter_value)
