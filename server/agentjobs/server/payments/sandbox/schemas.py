"""The input schemas of upstream's payment endpoints (tag 0.28.0), field for field and in
their order, since the order decides how a message with several issues reads:
src/routes/api/payments/schemas.ts (list, count, create), diff/index.ts,
submit-result/index.ts, authorize-refund/index.ts, error-state-recovery/index.ts,
resolve-blockchain-identifier/index.ts."""

from __future__ import annotations

from agentjobs.server.payments.gateway import OnChainState
from agentjobs.server.payments.sandbox.ledger import SOURCE_TYPES
from agentjobs.server.payments.sandbox.zod import (
    Array,
    Boolean,
    CoercedNumber,
    DateIn,
    Enum,
    Field,
    FlagString,
    Integer,
    Object,
    String,
)

NETWORKS = ("Preprod", "Mainnet")
ON_CHAIN_STATES = tuple(
    value for name, value in vars(OnChainState).items() if not name.startswith("_")
)
# The schema default of payByTime and submitResultTime: 12:00 on 1 January 1970.
DEFAULT_PAYMENT_TIME_MS = 12 * 3_600_000

Schema = list[tuple[str, Field]]


def _network() -> Enum:
    return Enum(values=NETWORKS)


def _limit() -> CoercedNumber:
    return CoercedNumber(min=1, max=100, default=lambda: 10)


def _source_filters() -> Schema:
    return [
        ("filterSmartContractAddress", String(optional=True, nullable=True)),
        ("filterPaymentSourceType", Enum(values=SOURCE_TYPES, optional=True)),
    ]


LIST: Schema = [
    ("limit", _limit()),
    ("cursorId", String(optional=True)),
    ("network", _network()),
    ("filterSmartContractAddress", String(optional=True, nullable=True)),
    ("filterOnChainState", Enum(values=ON_CHAIN_STATES, optional=True)),
    ("filterPaymentSourceType", Enum(values=SOURCE_TYPES, optional=True)),
    ("filterNeedsManualAction", FlagString()),
    ("searchQuery", String(optional=True)),
    ("includeHistory", FlagString()),
]

COUNT: Schema = [
    ("network", _network()),
    ("filterNeedsManualAction", FlagString()),
    *_source_filters(),
]

DIFF: Schema = [
    ("limit", _limit()),
    ("cursorId", String(optional=True)),
    ("lastUpdate", DateIn(default=lambda: 0)),
    ("network", _network()),
    *_source_filters(),
    ("includeHistory", FlagString()),
]

CREATE: Schema = [
    ("inputHash", String(max=250)),
    ("network", _network()),
    ("agentIdentifier", String(min=57, max=250)),
    ("paymentSourceType", Enum(values=SOURCE_TYPES, optional=True)),
    ("supportedPaymentSourceIndex", Integer(min=0, max=24, optional=True)),
    (
        "RequestedFunds",
        Array(
            item=Object(fields=[("amount", String(max=25)), ("unit", String(max=150))]),
            max=7,
            optional=True,
        ),
    ),
    ("payByTime", DateIn(default=lambda: DEFAULT_PAYMENT_TIME_MS)),
    ("submitResultTime", DateIn(default=lambda: DEFAULT_PAYMENT_TIME_MS)),
    ("unlockTime", DateIn(optional=True)),
    ("externalDisputeUnlockTime", DateIn(optional=True)),
    ("metadata", String(optional=True)),
    ("sellerReturnAddress", String(max=250, optional=True)),
    ("identifierFromPurchaser", String(min=14, max=26)),
]

RESOLVE: Schema = [
    ("blockchainIdentifier", String(min=1, max=8000)),
    ("network", _network()),
    ("filterSmartContractAddress", String(optional=True, nullable=True)),
    ("includeHistory", FlagString()),
]

SUBMIT_RESULT: Schema = [
    ("network", _network()),
    (
        "submitResultHash",
        String(
            length=64,
            regex=(r"^[0-9a-fA-F]{64}$", "submitResultHash must be a 64-char hex sha256 digest"),
        ),
    ),
    ("blockchainIdentifier", String(min=1, max=8000)),
]

AUTHORIZE_REFUND: Schema = [
    ("blockchainIdentifier", String(max=8000)),
    ("network", _network()),
]

ERROR_STATE_RECOVERY: Schema = [
    ("blockchainIdentifier", String(min=1, max=8000)),
    ("network", _network()),
    ("updatedAt", DateIn()),
    ("retryPreviousAction", Boolean(optional=True)),
]
