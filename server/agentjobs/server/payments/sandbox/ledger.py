"""The sandbox's books: every payment request, its NextAction and transaction history,
and the sorted indexes the list and diff endpoints page through, so a poll over 10,000+
payments costs a bisect, not a scan.

Change stamps follow upstream's BEFORE UPDATE triggers (prisma migrations
20260106192814_add_diff_trigger and 20260106200408_add_combined_trigger):
- nextActionLastChangedAt moves when the payment gets a new NextAction row (every
  transition creates one, even with the same requestedAction);
- onChainStateOrResultLastChangedAt moves when onChainState or resultHash changes;
- nextActionOrOnChainStateOrResultLastChangedAt moves with either;
and all three take CURRENT_TIMESTAMP: the start of the writing transaction, in
milliseconds (TIMESTAMP(3)). So two changes can carry the same stamp, and a transaction
that commits late carries a stamp older than rows already committed (see
StampMode.TRANSACTION and Ledger.begin). updatedAt is Prisma's @updatedAt: the time of
the write itself.
"""

from __future__ import annotations

import bisect
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum

from agentjobs.server.payments.gateway import NextAction
from agentjobs.server.payments.sandbox.clock import Clock

V1 = "Web3CardanoV1"
V2 = "Web3CardanoV2"
SOURCE_TYPES = (V1, V2)


def new_id() -> str:
    """A cuid-like row id. Random, so ties on a stamp are broken in no particular order
    and readers cannot rely on ids growing."""
    return "c" + secrets.token_hex(12)


class DiffMode(Enum):
    """Which change stamp a diff endpoint sorts on (one sorted index each)."""

    COMBINED = "changed_at"
    NEXT_ACTION = "next_action_changed_at"
    ON_CHAIN = "on_chain_changed_at"


class StampMode(Enum):
    # Upstream: the stamp is the writing transaction's start (ms); equal stamps happen,
    # and with a commit lag a change appears with a stamp older than rows already seen.
    TRANSACTION = "transaction"
    # Kinder than upstream: stamps strictly increase in commit order, never tie.
    STRICT = "strict"


@dataclass(frozen=True)
class Funds:
    amount: int
    unit: str = ""


@dataclass(frozen=True)
class Action:
    """One NextAction row (PaymentActionData). A transition never edits one: it creates
    the next and moves this one to the history."""

    requested_action: str
    created_at: int
    result_hash: str | None = None
    error_type: str | None = None
    error_note: str | None = None
    submitted_tx_hash: str | None = None
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class ChainTransaction:
    """A transaction of this payment, as CurrentTransaction / TransactionHistory show it."""

    id: str
    created_at: int
    tx_hash: str
    status: str  # Pending, Confirmed, FailedViaManualReset, ...
    previous_state: str | None
    new_state: str | None
    block_height: int | None
    updated_at: int = 0
    fees_lovelace: int = 180_000

    def confirmed(
        self, at: int, previous: str | None, new: str | None, block_height: int
    ) -> ChainTransaction:
        return replace(
            self,
            status="Confirmed",
            updated_at=at,
            previous_state=previous,
            new_state=new,
            block_height=block_height,
        )


@dataclass
class LedgerPayment:
    id: str
    blockchain_identifier: str
    network: str
    source_type: str
    agent_identifier: str
    identifier_from_purchaser: str
    input_hash: str
    metadata: str | None
    pricing_type: str
    requested_funds: tuple[Funds, ...]
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    requested_by_id: str
    created_at: int
    seller_return_address: str | None = None
    updated_at: int = 0
    changed_at: int = 0
    next_action_changed_at: int = 0
    on_chain_changed_at: int = 0
    on_chain_state: str | None = None
    # "" until the buyer's lock: upstream creates the row with resultHash ''; tx-sync then
    # copies the datum's result hash, which is null until a result is on chain.
    result_hash: str | None = ""
    # The result hash in the contract's datum (None: empty); V1 AuthorizeRefund empties
    # it while resultHash keeps the old value, and a buyer's refund needs it empty.
    datum_result_hash: str | None = None
    action: Action = field(
        default_factory=lambda: Action(NextAction.WAITING_FOR_EXTERNAL_ACTION, created_at=0)
    )
    action_history: list[Action] = field(default_factory=list)
    transaction: ChainTransaction | None = None
    transaction_history: list[ChainTransaction] = field(default_factory=list)
    withdrawn_for_seller: tuple[Funds, ...] = ()
    withdrawn_for_buyer: tuple[Funds, ...] = ()
    seller_cooldown_ms: int = 0
    buyer_cooldown_ms: int = 0
    collateral_return_lovelace: int | None = None
    buyer_vkey: str | None = None
    buyer_fees_lovelace: int = 0
    seller_fees_lovelace: int = 0
    # Bumped by every committed change: a simulated transaction that began before a
    # change commits after it as a retry (Serializable isolation), with a new stamp.
    version: int = 0

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at
        self.changed_at = self.changed_at or self.created_at
        self.next_action_changed_at = self.next_action_changed_at or self.created_at
        self.on_chain_changed_at = self.on_chain_changed_at or self.created_at
        if self.action.created_at == 0:
            self.action = replace(self.action, created_at=self.created_at)

    @property
    def requested_action(self) -> str:
        return self.action.requested_action

    def set_action(
        self,
        requested_action: str,
        at: int,
        *,
        result_hash: str | None = None,
        error_type: str | None = None,
        error_note: str | None = None,
        submitted_tx_hash: str | None = None,
    ) -> None:
        """A new NextAction row; the current one goes to the history."""
        self.action_history.append(self.action)
        self.action = Action(
            requested_action,
            created_at=at,
            result_hash=result_hash,
            error_type=error_type,
            error_note=error_note,
            submitted_tx_hash=submitted_tx_hash,
        )

    def set_transaction(self, transaction: ChainTransaction | None) -> None:
        if self.transaction is not None and (
            transaction is None or self.transaction.id != transaction.id
        ):
            self.transaction_history.append(self.transaction)
        self.transaction = transaction

    def chain_view(self) -> tuple[str | None, str | None]:
        return (self.on_chain_state, self.result_hash)

    def stamp_of(self, mode: DiffMode) -> int:
        stamp: int = getattr(self, mode.value)
        return stamp


class SortedKeys:
    """(stamp ms, id) keys in ascending order."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: tuple[int, str]) -> None:
        bisect.insort(self._keys, key)

    def discard(self, key: tuple[int, str]) -> None:
        at = bisect.bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            del self._keys[at]

    def from_key(self, start: tuple[int, str], limit: int) -> list[tuple[int, str]]:
        """Up to `limit` keys >= start, ascending."""
        at = bisect.bisect_left(self._keys, start)
        return self._keys[at : at + limit]

    def down_from(self, start: tuple[int, str] | None) -> Iterator[tuple[int, str]]:
        """Keys <= start (all keys when None), descending."""
        end = len(self._keys) if start is None else bisect.bisect_right(self._keys, start)
        for at in range(end - 1, -1, -1):
            yield self._keys[at]


@dataclass
class _SourceIndexes:
    created: SortedKeys = field(default_factory=SortedKeys)
    by_mode: dict[DiffMode, SortedKeys] = field(
        default_factory=lambda: {mode: SortedKeys() for mode in DiffMode}
    )


class Ledger:
    """Payments by blockchainIdentifier and by id, with sorted indexes per (network,
    payment source type) and diff mode."""

    def __init__(self, clock: Clock, stamp_mode: StampMode = StampMode.TRANSACTION) -> None:
        self._clock = clock
        self.stamp_mode = stamp_mode
        self._by_bid: dict[str, LedgerPayment] = {}
        self._by_id: dict[str, LedgerPayment] = {}
        self._indexes: dict[tuple[str, str], _SourceIndexes] = {}
        self._last_stamp = 0
        self.listeners: list[Callable[[LedgerPayment], None]] = []

    def __len__(self) -> int:
        return len(self._by_bid)

    def __iter__(self) -> Iterator[LedgerPayment]:
        return iter(list(self._by_bid.values()))

    @property
    def last_stamp(self) -> int:
        return self._last_stamp

    def restore_last_stamp(self, stamp: int) -> None:
        self._last_stamp = max(self._last_stamp, stamp)

    def begin(self) -> int:
        """The stamp of a writing transaction that starts now (TRANSACTION mode), or a
        placeholder the commit replaces (STRICT mode)."""
        return self._clock.now_ms()

    def _commit_stamp(self, began: int) -> int:
        if self.stamp_mode is StampMode.STRICT:
            self._last_stamp = max(self._clock.now_ms(), self._last_stamp + 1)
            return self._last_stamp
        self._last_stamp = max(self._last_stamp, began)
        return began

    def get(self, blockchain_identifier: str) -> LedgerPayment | None:
        return self._by_bid.get(blockchain_identifier)

    def by_id(self, payment_id: str) -> LedgerPayment | None:
        return self._by_id.get(payment_id)

    def add(self, payment: LedgerPayment, *, began: int | None = None) -> None:
        if payment.blockchain_identifier in self._by_bid or payment.id in self._by_id:
            raise ValueError(f"duplicate payment {payment.blockchain_identifier}")
        stamp = self._commit_stamp(self.begin() if began is None else began)
        payment.created_at = payment.updated_at = stamp
        payment.changed_at = payment.next_action_changed_at = payment.on_chain_changed_at = stamp
        payment.action = replace(payment.action, created_at=stamp)
        self._insert(payment)
        self._notify(payment)

    def restore(self, payment: LedgerPayment) -> None:
        """Put back a payment read from the state file, stamps as they were."""
        self._insert(payment)

    def _insert(self, payment: LedgerPayment) -> None:
        self._by_bid[payment.blockchain_identifier] = payment
        self._by_id[payment.id] = payment
        indexes = self._indexes.setdefault((payment.network, payment.source_type), _SourceIndexes())
        indexes.created.add((payment.created_at, payment.id))
        for mode, keys in indexes.by_mode.items():
            keys.add((payment.stamp_of(mode), payment.id))

    @contextmanager
    def changing(self, payment: LedgerPayment, *, began: int | None = None) -> Iterator[int]:
        """Mutate `payment` inside the block (it gets the moment of the write); its stamps
        and index positions follow what actually changed. `began`: when the writing
        transaction started (Ledger.begin), now when None."""
        action_before, chain_before = payment.action.id, payment.chain_view()
        old_keys = {mode: (payment.stamp_of(mode), payment.id) for mode in DiffMode}
        yield self._clock.now_ms()
        action_changed = payment.action.id != action_before
        chain_changed = payment.chain_view() != chain_before
        stamp = self._commit_stamp(self.begin() if began is None else began)
        payment.updated_at = self._clock.now_ms()
        payment.version += 1
        if action_changed:
            payment.next_action_changed_at = stamp
        if chain_changed:
            payment.on_chain_changed_at = stamp
        if action_changed or chain_changed:
            payment.changed_at = stamp
        indexes = self._indexes[(payment.network, payment.source_type)]
        for mode, keys in indexes.by_mode.items():
            new_key = (payment.stamp_of(mode), payment.id)
            if new_key != old_keys[mode]:
                keys.discard(old_keys[mode])
                keys.add(new_key)
        self._notify(payment)

    def diff(
        self,
        network: str,
        source_type: str,
        mode: DiffMode,
        since_ms: int,
        cursor_id: str | None,
        limit: int,
    ) -> list[LedgerPayment]:
        """As upstream's diff: stamp > since, or stamp == since and id >= cursor (the
        cursor row comes again); without a cursor stamp >= since; ascending (stamp, id)."""
        indexes = self._indexes.get((network, source_type))
        if indexes is None:
            return []
        keys = indexes.by_mode[mode].from_key((since_ms, cursor_id or ""), limit)
        return [self._by_id[payment_id] for _, payment_id in keys]

    def newest_first(
        self,
        network: str,
        source_type: str,
        cursor_id: str | None,
        limit: int,
        keep: Callable[[LedgerPayment], bool] = lambda _payment: True,
    ) -> list[LedgerPayment]:
        """GET /payment: newest first; a cursor page starts at the cursor row itself
        (Prisma's cursor pagination), an unknown cursor gives an empty page."""
        indexes = self._indexes.get((network, source_type))
        if indexes is None:
            return []
        start: tuple[int, str] | None = None
        if cursor_id is not None:
            cursor = self._by_id.get(cursor_id)
            if cursor is None or (cursor.network, cursor.source_type) != (network, source_type):
                return []
            start = (cursor.created_at, cursor.id)
        found: list[LedgerPayment] = []
        for _, payment_id in indexes.created.down_from(start):
            payment = self._by_id[payment_id]
            if keep(payment):
                found.append(payment)
                if len(found) == limit:
                    break
        return found

    def count(
        self,
        network: str,
        source_type: str,
        keep: Callable[[LedgerPayment], bool] | None = None,
    ) -> int:
        indexes = self._indexes.get((network, source_type))
        if indexes is None:
            return 0
        if keep is None:
            return len(indexes.created)
        return sum(1 for _, pid in indexes.created.down_from(None) if keep(self._by_id[pid]))

    def _notify(self, payment: LedgerPayment) -> None:
        for listener in self.listeners:
            listener(payment)
