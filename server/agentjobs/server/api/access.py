"""Who may call what: the one table of every gRPC method and HTTP path and the credential
it needs. The gRPC interceptor enforces it on every call; the HTTP front serves only the
paths listed here; README's access table is this table in prose.

- PUBLIC: anyone. Answers hold nothing about any job or caller.
- JOB_HOLDER: whoever holds the job id. As MIP-003 intends, a job id is a bearer
  capability: it is an unguessable UUID given only to the caller that started the job,
  and it opens that job (its status, its stream, its questions), never another one.
- OPERATOR: the operator token (`authorization: Bearer <AGENTJOBS_OPERATOR_TOKEN>`).
  Everything that enumerates jobs, shows money, or reveals other callers (channelz
  lists their addresses). With no token configured, these calls are refused.

A method missing from the table is OPERATOR: a service registered later (or one a
library adds) is closed until someone decides otherwise here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Access(Enum):
    PUBLIC = "anyone"
    JOB_HOLDER = "whoever holds the job id"
    OPERATOR = "the operator token"


@dataclass(frozen=True)
class Rule:
    access: Access
    # False only for health: an orchestrator's probe must get an answer however busy
    # the server is, or a loaded server gets restarted for being loaded.
    limited: bool = True
    # Long-lived streams count against the per-peer stream cap.
    watch: bool = False


_JOBS = "/agentjobs.v1.JobService/"
_OPERATOR = "/agentjobs.v1.OperatorService/"
_HEALTH = "/grpc.health.v1.Health/"

GRPC_METHODS: dict[str, Rule] = {
    _JOBS + "StartJob": Rule(Access.PUBLIC),
    _JOBS + "GetAvailability": Rule(Access.PUBLIC),
    _JOBS + "GetInputSchema": Rule(Access.PUBLIC),
    _JOBS + "GetDemo": Rule(Access.PUBLIC),
    _JOBS + "GetJobStatus": Rule(Access.JOB_HOLDER),
    _JOBS + "WatchJob": Rule(Access.JOB_HOLDER, watch=True),
    _JOBS + "ProvideInput": Rule(Access.JOB_HOLDER),
    # Every job's input, result, purchaser and status id: operator data.
    _JOBS + "ListJobs": Rule(Access.OPERATOR),
    _OPERATOR + "GetEarningsReport": Rule(Access.OPERATOR),
    _OPERATOR + "ListInvoices": Rule(Access.OPERATOR),
    _OPERATOR + "CancelJob": Rule(Access.OPERATOR),
    _OPERATOR + "ListAttention": Rule(Access.OPERATOR),
    _OPERATOR + "RecoverPayment": Rule(Access.OPERATOR),
    _OPERATOR + "AuthorizeRefund": Rule(Access.OPERATOR),
    _OPERATOR + "ListReplicas": Rule(Access.OPERATOR),
    _HEALTH + "Check": Rule(Access.PUBLIC, limited=False),
    _HEALTH + "Watch": Rule(Access.PUBLIC, limited=False),
    _HEALTH + "List": Rule(Access.PUBLIC, limited=False),
    # The contract (service and message descriptors): public like the .proto files.
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(Access.PUBLIC),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Rule(Access.PUBLIC),
    # grpc.channelz.v1.Channelz/* is not listed: OPERATOR (it shows every peer).
}

_DEFAULT = Rule(Access.OPERATOR)

# (method, path) -> access. Only these are served; anything else is 404 / 405.
HTTP_PATHS: dict[tuple[str, str], Access] = {
    ("POST", "/start_job"): Access.PUBLIC,
    ("GET", "/availability"): Access.PUBLIC,
    ("GET", "/input_schema"): Access.PUBLIC,
    ("GET", "/demo"): Access.PUBLIC,
    ("GET", "/status"): Access.JOB_HOLDER,
    ("POST", "/provide_input"): Access.JOB_HOLDER,
    # Aggregate counters and latencies by method, path and status code: no job id, no
    # input, no peer address, no money.
    ("GET", "/metrics"): Access.PUBLIC,
    ("GET", "/healthz"): Access.PUBLIC,
}


def grpc_rule(method: str) -> Rule:
    return GRPC_METHODS.get(method, _DEFAULT)
