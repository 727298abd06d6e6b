import datetime

from agentjobs.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvoiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOICE_STATUS_UNSPECIFIED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_PENDING: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_PAID: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_EXPIRED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_WITHDRAWN: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_REFUNDED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_INVALID: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_SUBMITTED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_CONFIRMED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_DISPUTED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_DISPUTE_RESOLVED: _ClassVar[InvoiceStatus]
INVOICE_STATUS_UNSPECIFIED: InvoiceStatus
INVOICE_STATUS_PENDING: InvoiceStatus
INVOICE_STATUS_PAID: InvoiceStatus
INVOICE_STATUS_EXPIRED: InvoiceStatus
INVOICE_STATUS_WITHDRAWN: InvoiceStatus
INVOICE_STATUS_REFUNDED: InvoiceStatus
INVOICE_STATUS_INVALID: InvoiceStatus
INVOICE_STATUS_SUBMITTED: InvoiceStatus
INVOICE_STATUS_CONFIRMED: InvoiceStatus
INVOICE_STATUS_DISPUTED: InvoiceStatus
INVOICE_STATUS_DISPUTE_RESOLVED: InvoiceStatus

class Amount(_message.Message):
    __slots__ = ("amount", "unit")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    amount: int
    unit: str
    def __init__(self, amount: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class Invoice(_message.Message):
    __slots__ = ("blockchain_identifier", "job_id", "status", "amounts", "on_chain_state", "create_time", "paid_time", "update_time")
    BLOCKCHAIN_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    ON_CHAIN_STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PAID_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    blockchain_identifier: str
    job_id: str
    status: InvoiceStatus
    amounts: _containers.RepeatedCompositeFieldContainer[Amount]
    on_chain_state: str
    create_time: _timestamp_pb2.Timestamp
    paid_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, blockchain_identifier: _Optional[str] = ..., job_id: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., amounts: _Optional[_Iterable[_Union[Amount, _Mapping]]] = ..., on_chain_state: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MoneyTotal(_message.Message):
    __slots__ = ("count", "amounts")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    amounts: _containers.RepeatedCompositeFieldContainer[Amount]
    def __init__(self, count: _Optional[int] = ..., amounts: _Optional[_Iterable[_Union[Amount, _Mapping]]] = ...) -> None: ...

class JobStatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: _jobs_pb2.JobStatus
    count: int
    def __init__(self, status: _Optional[_Union[_jobs_pb2.JobStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class GetEarningsReportRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "recent_limit")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    RECENT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    recent_limit: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recent_limit: _Optional[int] = ...) -> None: ...

class GetEarningsReportResponse(_message.Message):
    __slots__ = ("earned", "locked", "pending", "expired", "refunded", "invalid", "jobs_by_status", "recent", "submitted", "confirmed", "disputed", "dispute_resolved", "free_jobs")
    EARNED_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    JOBS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    FREE_JOBS_FIELD_NUMBER: _ClassVar[int]
    earned: MoneyTotal
    locked: MoneyTotal
    pending: MoneyTotal
    expired: MoneyTotal
    refunded: MoneyTotal
    invalid: MoneyTotal
    jobs_by_status: _containers.RepeatedCompositeFieldContainer[JobStatusCount]
    recent: _containers.RepeatedCompositeFieldContainer[Invoice]
    submitted: MoneyTotal
    confirmed: MoneyTotal
    disputed: MoneyTotal
    dispute_resolved: MoneyTotal
    free_jobs: int
    def __init__(self, earned: _Optional[_Union[MoneyTotal, _Mapping]] = ..., locked: _Optional[_Union[MoneyTotal, _Mapping]] = ..., pending: _Optional[_Union[MoneyTotal, _Mapping]] = ..., expired: _Optional[_Union[MoneyTotal, _Mapping]] = ..., refunded: _Optional[_Union[MoneyTotal, _Mapping]] = ..., invalid: _Optional[_Union[MoneyTotal, _Mapping]] = ..., jobs_by_status: _Optional[_Iterable[_Union[JobStatusCount, _Mapping]]] = ..., recent: _Optional[_Iterable[_Union[Invoice, _Mapping]]] = ..., submitted: _Optional[_Union[MoneyTotal, _Mapping]] = ..., confirmed: _Optional[_Union[MoneyTotal, _Mapping]] = ..., disputed: _Optional[_Union[MoneyTotal, _Mapping]] = ..., dispute_resolved: _Optional[_Union[MoneyTotal, _Mapping]] = ..., free_jobs: _Optional[int] = ...) -> None: ...

class ListInvoicesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: InvoiceStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ...) -> None: ...

class ListInvoicesResponse(_message.Message):
    __slots__ = ("invoices", "next_page_token")
    INVOICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invoices: _containers.RepeatedCompositeFieldContainer[Invoice]
    next_page_token: str
    def __init__(self, invoices: _Optional[_Iterable[_Union[Invoice, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.Job
    def __init__(self, job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ...) -> None: ...

class ListAttentionRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAttentionResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_jobs_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecoverPaymentRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RecoverPaymentResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.Job
    def __init__(self, job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ...) -> None: ...

class AuthorizeRefundRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class AuthorizeRefundResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.Job
    def __init__(self, job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ...) -> None: ...

class ListReplicasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Replica(_message.Message):
    __slots__ = ("replica_id", "role", "start_time", "heartbeat_time", "steps_held", "leads_payment_monitor", "gone")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    STEPS_HELD_FIELD_NUMBER: _ClassVar[int]
    LEADS_PAYMENT_MONITOR_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    role: str
    start_time: _timestamp_pb2.Timestamp
    heartbeat_time: _timestamp_pb2.Timestamp
    steps_held: int
    leads_payment_monitor: bool
    gone: bool
    def __init__(self, replica_id: _Optional[str] = ..., role: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps_held: _Optional[int] = ..., leads_payment_monitor: _Optional[bool] = ..., gone: _Optional[bool] = ...) -> None: ...

class ListReplicasResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedCompositeFieldContainer[Replica]
    def __init__(self, replicas: _Optional[_Iterable[_Union[Replica, _Mapping]]] = ...) -> None: ...
