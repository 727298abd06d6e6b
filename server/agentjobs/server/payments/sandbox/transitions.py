"""What a payment's NextAction becomes when the chain shows it a new onChainState: upstream's
paymentTransitions table (src/utils/logic/state-transitions/transition-tables.ts and
error-messages.ts at tag 0.28.0), applied by its tx-sync handlers
(packages/payment-source-v1|v2/src/services/tx-sync/handlers.ts).

An outcome with an error note becomes WaitingForManualAction-style data: errorType
"Unknown", and the note is appended to a note the previous action already had as
"<old note>(<old action>) -> <new note>".
"""

from __future__ import annotations

from dataclasses import dataclass

from agentjobs.server.payments.gateway import NextAction as A
from agentjobs.server.payments.gateway import OnChainState as S

UNEXPECTED_STATE_CHANGE = (
    "Unexpected state change detected. This indicates a database error or a bug"
)
UNEXPECTED_STATE_CHANGE_TIMEOUT = (
    "Unexpected state change detected. Possible a action could not be executed in time"
)
UNEXPECTED_STATE_CHANGE_EXTERNAL = (
    "Unexpected state change detected. Possible a action was executed externally"
)
INVALID_STATE_END = (
    "Invalid state detected. Purchase request was in end state before. "
    "This indicates a database error or a bug"
)
AMOUNT_MISMATCH_END = (
    "Amount mismatch detected. Invalid state detected. Purchase request was in end state "
    "before. This indicates a database error or a bug"
)
MANUAL_ACTION_STATE_CHANGE = "State change detected after manual action was required"
AMOUNT_MISMATCH_MANUAL = (
    "Amount mismatch detected. State change detected after manual action was required"
)


@dataclass(frozen=True)
class Outcome:
    action: str
    error_note: str | None = None

    @property
    def error_type(self) -> str | None:
        return None if self.error_note is None else "Unknown"


_MANUAL = A.WAITING_FOR_MANUAL_ACTION
_EXTERNAL = A.WAITING_FOR_EXTERNAL_ACTION


def _manual(note: str) -> Outcome:
    return Outcome(_MANUAL, note)


# (default outcome, {onChainState: outcome}) per current requestedAction.
_TABLE: dict[str, tuple[Outcome, dict[str, Outcome]]] = {
    A.AUTHORIZE_REFUND_INITIATED: (
        _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
        {
            S.DISPUTED: Outcome(A.AUTHORIZE_REFUND_REQUESTED),
            S.FUNDS_LOCKED: _manual(UNEXPECTED_STATE_CHANGE),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_AUTHORIZED: Outcome(_EXTERNAL),
            S.REFUND_REQUESTED: Outcome(_EXTERNAL),
            S.RESULT_SUBMITTED: Outcome(
                A.AUTHORIZE_REFUND_REQUESTED, UNEXPECTED_STATE_CHANGE_TIMEOUT
            ),
            S.WITHDRAW_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
        },
    ),
    A.AUTHORIZE_REFUND_REQUESTED: (
        _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
        {
            S.DISPUTED: Outcome(A.AUTHORIZE_REFUND_REQUESTED),
            S.FUNDS_LOCKED: _manual(UNEXPECTED_STATE_CHANGE),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_AUTHORIZED: Outcome(_EXTERNAL),
            S.RESULT_SUBMITTED: Outcome(A.AUTHORIZE_REFUND_REQUESTED),
            S.WITHDRAW_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
        },
    ),
    A.IGNORE: (
        Outcome(A.IGNORE),
        {
            S.REFUND_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.WITHDRAW_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
        },
    ),
    A.NONE: (
        _manual(INVALID_STATE_END),
        {
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_END),
            S.REFUND_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.WITHDRAW_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
        },
    ),
    A.SUBMIT_RESULT_INITIATED: (
        _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
        {
            S.DISPUTED: Outcome(_EXTERNAL),
            S.FUNDS_LOCKED: Outcome(A.SUBMIT_RESULT_REQUESTED),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.REFUND_REQUESTED: Outcome(A.SUBMIT_RESULT_REQUESTED),
            S.RESULT_SUBMITTED: Outcome(_EXTERNAL),
            S.WITHDRAW_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
        },
    ),
    A.SUBMIT_RESULT_REQUESTED: (
        Outcome(A.SUBMIT_RESULT_REQUESTED),
        {
            S.DISPUTED_WITHDRAWN: _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.REFUND_WITHDRAWN: _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
            S.WITHDRAW_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.WITHDRAWN: _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
        },
    ),
    A.WAITING_FOR_EXTERNAL_ACTION: (
        Outcome(_EXTERNAL),
        {
            S.DISPUTED_WITHDRAWN: Outcome(A.NONE),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_WITHDRAWN: Outcome(A.NONE),
            S.WITHDRAWN: Outcome(A.NONE),
        },
    ),
    A.WAITING_FOR_MANUAL_ACTION: (
        _manual(MANUAL_ACTION_STATE_CHANGE),
        {S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL)},
    ),
    A.WITHDRAW_INITIATED: (
        _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
        {
            S.DISPUTED: Outcome(A.WITHDRAW_REQUESTED),
            S.FUNDS_LOCKED: _manual(UNEXPECTED_STATE_CHANGE),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.WITHDRAW_AUTHORIZED: Outcome(A.WITHDRAW_REQUESTED),
            S.WITHDRAWN: Outcome(A.NONE),
        },
    ),
    A.WITHDRAW_REQUESTED: (
        _manual(UNEXPECTED_STATE_CHANGE_TIMEOUT),
        {
            S.DISPUTED: Outcome(A.WITHDRAW_REQUESTED),
            S.FUNDS_LOCKED: _manual(UNEXPECTED_STATE_CHANGE),
            S.FUNDS_OR_DATUM_INVALID: _manual(AMOUNT_MISMATCH_MANUAL),
            S.REFUND_AUTHORIZED: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
            S.WITHDRAW_AUTHORIZED: Outcome(A.WITHDRAW_REQUESTED),
            S.WITHDRAWN: _manual(UNEXPECTED_STATE_CHANGE_EXTERNAL),
        },
    ),
}


def after_chain_change(current_action: str, new_state: str) -> Outcome:
    default, by_state = _TABLE[current_action]
    return by_state.get(new_state, default)


def joined_note(previous_note: str | None, previous_action: str, note: str | None) -> str | None:
    """The note tx-sync writes: a previous note is kept, followed by the new one."""
    if previous_note is None:
        return note
    # JavaScript string concatenation: a missing new note reads "null".
    return f"{previous_note}({previous_action}) -> {'null' if note is None else note}"
