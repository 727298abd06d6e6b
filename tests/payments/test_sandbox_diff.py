"""GET /payment/diff and GET /payment: ordering, the repeated cursor row, many payments."""

from __future__ import annotations

from agentjobs.server.payments.sandbox import SandboxPaymentService, StampMode
from tests.payments.conftest import Manual
from tests.payments.helpers import API_KEY, RawApi, at, iso


def keys(payments: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(p["nextActionOrOnChainStateOrResultLastChangedAt"], p["id"]) for p in payments]


async def test_diff_is_ascending_and_a_change_moves_a_payment_to_the_end(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bids = [(await raw.create())["blockchainIdentifier"] for _ in range(4)]
    await sandbox.lock_funds(bids[0])
    page = await raw.diff(limit="10")
    assert keys(page) == sorted(keys(page))
    assert {p["blockchainIdentifier"] for p in page} == set(bids)
    # Stamps are milliseconds and may tie (upstream's too): the locked payment sorts at
    # or after every other, never before.
    stamp = "nextActionOrOnChainStateOrResultLastChangedAt"
    locked = next(p for p in page if p["blockchainIdentifier"] == bids[0])
    assert locked["onChainState"] == "FundsLocked"
    assert all(p[stamp] <= locked[stamp] for p in page)


async def test_the_cursor_row_comes_again_and_ties_are_ordered_by_id(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.create_payments(5, same_instant=True)
    first = await raw.diff(limit="3")
    assert len({p["nextActionOrOnChainStateOrResultLastChangedAt"] for p in first}) == 1
    assert [p["id"] for p in first] == sorted(p["id"] for p in first)
    last = first[-1]
    second = await raw.diff(
        limit="3",
        lastUpdate=str(last["nextActionOrOnChainStateOrResultLastChangedAt"]),
        cursorId=str(last["id"]),
    )
    assert second[0]["id"] == last["id"]
    assert len({p["id"] for p in first + second}) == 5
    # Without a cursor, everything at lastUpdate or later comes back.
    everything = await raw.diff(
        lastUpdate=str(last["nextActionOrOnChainStateOrResultLastChangedAt"])
    )
    assert len(everything) == 5


async def test_diff_modes_sort_on_their_own_timestamp(manual: Manual) -> None:
    sandbox, api = manual.sandbox, manual.api
    older, newer = sandbox.create_payments(2, same_instant=False)
    await sandbox.lock_funds(older)
    manual.advance(1)
    await sandbox.lock_funds(newer)
    manual.advance(1)
    await api.submit(older)  # a NextAction change only
    params = {"network": "Preprod"}
    on_chain = await api.call("GET", "/payment/diff/onchain-state-or-result", params=params)
    next_action = await api.call("GET", "/payment/diff/next-action", params=params)
    combined = await api.diff()
    assert [p["blockchainIdentifier"] for p in on_chain.data["Payments"]] == [older, newer]
    assert [p["blockchainIdentifier"] for p in next_action.data["Payments"]] == [newer, older]
    assert [p["blockchainIdentifier"] for p in combined] == [newer, older]


async def test_changes_in_one_millisecond_share_their_stamp(manual: Manual) -> None:
    # Upstream stamps with CURRENT_TIMESTAMP at millisecond precision: ties happen.
    first, second = manual.sandbox.create_payments(2, same_instant=False)
    await manual.sandbox.lock_funds(first)
    await manual.sandbox.lock_funds(second)
    page = await manual.api.diff()
    stamps = {p["nextActionOrOnChainStateOrResultLastChangedAt"] for p in page}
    assert len(page) == 2 and len(stamps) == 1
    assert [p["id"] for p in page] == sorted(p["id"] for p in page)


async def test_a_late_commit_carries_a_stamp_older_than_rows_already_seen(
    manual: Manual,
) -> None:
    """A chain transaction that starts before another change and commits after it: the
    consumer that resumes exactly at the last row seen never sees it; one that re-reads a
    window behind its watermark does."""
    sandbox, api = manual.sandbox, manual.api
    slow, fast = sandbox.create_payments(2, same_instant=False)
    sandbox.timing.commit_lag_s = 10
    await sandbox.lock_funds(slow)  # begins now, commits in 10 s
    sandbox.timing.commit_lag_s = 0
    manual.advance(2)
    await sandbox.lock_funds(fast)
    seen = await api.diff()
    assert [p["blockchainIdentifier"] for p in seen] == [slow, fast]
    assert seen[0]["onChainState"] is None  # not committed yet
    watermark = seen[-1]
    manual.advance(10)
    committed = await api.resolve(slow)
    assert committed["onChainState"] == "FundsLocked"
    assert committed["nextActionOrOnChainStateOrResultLastChangedAt"] < str(
        watermark["nextActionOrOnChainStateOrResultLastChangedAt"]
    )
    resumed = await api.diff(
        lastUpdate=str(watermark["nextActionOrOnChainStateOrResultLastChangedAt"]),
        cursorId=str(watermark["id"]),
    )
    assert slow not in [p["blockchainIdentifier"] for p in resumed]
    overlap = at(manual.now_ms() - 60_000)
    window = await api.diff(lastUpdate=iso(overlap))
    assert [p["onChainState"] for p in window if p["blockchainIdentifier"] == slow] == [
        "FundsLocked"
    ]


async def test_a_write_that_began_before_a_change_commits_with_a_new_stamp(
    manual: Manual,
) -> None:
    # Serializable isolation: the late transaction retries after the other write, so it
    # stamps when its retry begins and applies only if it still can.
    sandbox = manual.sandbox
    [bid] = sandbox.create_payments(1)
    sandbox.timing.commit_lag_s = 5
    await sandbox.lock_funds(bid)
    sandbox.timing.commit_lag_s = 0
    manual.advance(1)
    await sandbox.mark_funds_invalid(bid)
    manual.advance(5)
    assert (await manual.api.resolve(bid))["onChainState"] == "FundsOrDatumInvalid"


async def test_strict_stamps_never_tie(raw: RawApi) -> None:
    sandbox = SandboxPaymentService(api_key=API_KEY, lock_after=None, stamp_mode=StampMode.STRICT)
    url = await sandbox.start("127.0.0.1", 0)
    try:
        api = RawApi(raw.session, url)
        bids = sandbox.create_payments(3, same_instant=False)
        for bid in bids:
            await sandbox.lock_funds(bid)
        stamps = [p["nextActionOrOnChainStateOrResultLastChangedAt"] for p in await api.diff()]
        assert stamps == sorted(set(stamps)) and len(stamps) == 3
    finally:
        await sandbox.stop()


async def test_diff_is_per_network(raw: RawApi, sandbox: SandboxPaymentService) -> None:
    sandbox.create_payments(2, network="Mainnet")
    assert await raw.diff() == []
    mainnet = await raw.call("GET", "/payment/diff", params={"network": "Mainnet"})
    assert len(mainnet.data["Payments"]) == 2


async def test_older_services_have_no_diff(raw: RawApi, sandbox: SandboxPaymentService) -> None:
    sandbox.diff_supported = False
    answer = await raw.call("GET", "/payment/diff", params={"network": "Preprod"})
    assert answer.status == 404


async def test_list_is_newest_first_with_an_inclusive_cursor(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bids = sandbox.create_payments(5, same_instant=False)
    await sandbox.lock_funds(bids[1])
    params = {"network": "Preprod", "limit": "2"}
    first = (await raw.call("GET", "/payment", params=params)).data["Payments"]
    assert [p["blockchainIdentifier"] for p in first] == [bids[4], bids[3]]
    second = (
        await raw.call("GET", "/payment", params={**params, "cursorId": first[-1]["id"]})
    ).data["Payments"]
    assert [p["blockchainIdentifier"] for p in second] == [bids[3], bids[2]]
    locked = (
        await raw.call(
            "GET", "/payment", params={"network": "Preprod", "filterOnChainState": "FundsLocked"}
        )
    ).data["Payments"]
    assert [p["blockchainIdentifier"] for p in locked] == [bids[1]]
    unknown = await raw.call("GET", "/payment", params={**params, "cursorId": "nope"})
    assert unknown.data == {"Payments": []}
    count = await raw.call("GET", "/payment/count", params={"network": "Preprod"})
    assert count.data == {"total": 5}


async def test_ten_thousand_pending_payments_page_through_the_diff(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    created = set(sandbox.create_payments(10_000, same_instant=True))
    seen: list[str] = []
    params: dict[str, str] = {"limit": "100"}
    requests = 0
    while True:
        page = await raw.diff(**params)
        requests += 1
        fresh = [p for p in page if p["id"] != params.get("cursorId")]
        seen.extend(p["blockchainIdentifier"] for p in fresh)
        if len(page) < 100:
            break
        params = {
            "limit": "100",
            "lastUpdate": page[-1]["nextActionOrOnChainStateOrResultLastChangedAt"],
            "cursorId": page[-1]["id"],
        }
    assert len(seen) == len(set(seen)) == 10_000
    assert set(seen) == created
    # The cursor row comes again, so pages after the first bring 99 new payments each:
    # 1 + ceil(9900 / 99) = 101 full pages, then one holding only the cursor row.
    assert requests == 102
    assert sandbox.request_counts[("GET", "/api/v1/payment/diff")] == 102
