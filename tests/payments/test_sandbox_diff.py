"""GET /payment/diff and GET /payment: ordering, the repeated cursor row, many payments."""

from __future__ import annotations

from agentjobs.server.payments.sandbox import SandboxPaymentService
from tests.payments.helpers import RawApi


def keys(payments: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(p["nextActionOrOnChainStateOrResultLastChangedAt"], p["id"]) for p in payments]


async def test_diff_is_ascending_and_a_change_moves_a_payment_to_the_end(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    bids = [(await raw.create())["blockchainIdentifier"] for _ in range(4)]
    await sandbox.lock_funds(bids[0])
    page = await raw.diff(limit="10")
    assert keys(page) == sorted(keys(page))
    assert [p["blockchainIdentifier"] for p in page] == [*bids[1:], bids[0]]
    assert page[-1]["onChainState"] == "FundsLocked"


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


async def test_diff_modes_sort_on_their_own_timestamp(
    raw: RawApi, sandbox: SandboxPaymentService
) -> None:
    sandbox.settle_after = 3600
    older, newer = sandbox.create_payments(2, same_instant=False)
    await sandbox.lock_funds(older)
    await sandbox.lock_funds(newer)
    await raw.submit(older)  # a NextAction change only
    params = {"network": "Preprod"}
    on_chain = await raw.call("GET", "/payment/diff/onchain-state-or-result", params=params)
    next_action = await raw.call("GET", "/payment/diff/next-action", params=params)
    combined = await raw.diff()
    assert [p["blockchainIdentifier"] for p in on_chain.data["Payments"]] == [older, newer]
    assert [p["blockchainIdentifier"] for p in next_action.data["Payments"]] == [newer, older]
    assert [p["blockchainIdentifier"] for p in combined] == [newer, older]


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
