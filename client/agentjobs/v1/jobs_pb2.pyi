import datetime

from agentjobs.v1 import input_schema_pb2 as _input_schema_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_AWAITING_PAYMENT: _ClassVar[JobStatus]
    JOB_STATUS_AWAITING_INPUT: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_COMPLETED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]

class JobEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_EVENT_TYPE_UNSPECIFIED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_CREATED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_PAYMENT_REQUESTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_FUNDS_LOCKED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_STARTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_INPUT_REQUESTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_INPUT_PROVIDED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_RESULT_STORED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_RESULT_SUBMITTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_COMPLETED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_FAILED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_PAYMENT_EXPIRED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_WITHDRAWN: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_REFUNDED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_PAYMENT_STATE_CHANGED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_RESULT_CONFIRMED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_REFUND_AUTHORIZED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_DISPUTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_DISPUTE_RESOLVED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_RECOVERY_REQUESTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_ATTENTION_NEEDED: _ClassVar[JobEventType]

class Availability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AVAILABILITY_UNSPECIFIED: _ClassVar[Availability]
    AVAILABILITY_AVAILABLE: _ClassVar[Availability]
    AVAILABILITY_UNAVAILABLE: _ClassVar[Availability]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_AWAITING_PAYMENT: JobStatus
JOB_STATUS_AWAITING_INPUT: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_COMPLETED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_EVENT_TYPE_UNSPECIFIED: JobEventType
JOB_EVENT_TYPE_CREATED: JobEventType
JOB_EVENT_TYPE_PAYMENT_REQUESTED: JobEventType
JOB_EVENT_TYPE_FUNDS_LOCKED: JobEventType
JOB_EVENT_TYPE_STARTED: JobEventType
JOB_EVENT_TYPE_INPUT_REQUESTED: JobEventType
JOB_EVENT_TYPE_INPUT_PROVIDED: JobEventType
JOB_EVENT_TYPE_RESULT_STORED: JobEventType
JOB_EVENT_TYPE_RESULT_SUBMITTED: JobEventType
JOB_EVENT_TYPE_COMPLETED: JobEventType
JOB_EVENT_TYPE_FAILED: JobEventType
JOB_EVENT_TYPE_PAYMENT_EXPIRED: JobEventType
JOB_EVENT_TYPE_WITHDRAWN: JobEventType
JOB_EVENT_TYPE_REFUNDED: JobEventType
JOB_EVENT_TYPE_PAYMENT_STATE_CHANGED: JobEventType
JOB_EVENT_TYPE_RESULT_CONFIRMED: JobEventType
JOB_EVENT_TYPE_REFUND_AUTHORIZED: JobEventType
JOB_EVENT_TYPE_DISPUTED: JobEventType
JOB_EVENT_TYPE_DISPUTE_RESOLVED: JobEventType
JOB_EVENT_TYPE_RECOVERY_REQUESTED: JobEventType
JOB_EVENT_TYPE_ATTENTION_NEEDED: JobEventType
AVAILABILITY_UNSPECIFIED: Availability
AVAILABILITY_AVAILABLE: Availability
AVAILABILITY_UNAVAILABLE: Availability

class Job(_message.Message):
    __slots__ = ("job_id", "status", "status_id", "identifier_from_purchaser", "input_hash", "blockchain_identifier", "agent_identifier", "seller_vkey", "pay_by_time", "submit_result_time", "unlock_time", "external_dispute_unlock_time", "input_data", "input_schema", "input_request_message", "result", "error", "create_time", "update_time", "attention", "pricing", "payment_source_type", "supported_payment_source_index", "next_step", "next_step_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_FROM_PURCHASER_FIELD_NUMBER: _ClassVar[int]
    INPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCKCHAIN_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    SELLER_VKEY_FIELD_NUMBER: _ClassVar[int]
    PAY_BY_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_RESULT_TIME_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_DISPUTE_UNLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    INPUT_REQUEST_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    PRICING_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_PAYMENT_SOURCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: JobStatus
    status_id: str
    identifier_from_purchaser: str
    input_hash: str
    blockchain_identifier: str
    agent_identifier: str
    seller_vkey: str
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    input_data: _struct_pb2.Struct
    input_schema: _input_schema_pb2.InputSchema
    input_request_message: str
    result: str
    error: JobError
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    attention: Attention
    pricing: str
    payment_source_type: str
    supported_payment_source_index: int
    next_step: str
    next_step_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., status_id: _Optional[str] = ..., identifier_from_purchaser: _Optional[str] = ..., input_hash: _Optional[str] = ..., blockchain_identifier: _Optional[str] = ..., agent_identifier: _Optional[str] = ..., seller_vkey: _Optional[str] = ..., pay_by_time: _Optional[int] = ..., submit_result_time: _Optional[int] = ..., unlock_time: _Optional[int] = ..., external_dispute_unlock_time: _Optional[int] = ..., input_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., input_schema: _Optional[_Union[_input_schema_pb2.InputSchema, _Mapping]] = ..., input_request_message: _Optional[str] = ..., result: _Optional[str] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attention: _Optional[_Union[Attention, _Mapping]] = ..., pricing: _Optional[str] = ..., payment_source_type: _Optional[str] = ..., supported_payment_source_index: _Optional[int] = ..., next_step: _Optional[str] = ..., next_step_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Attention(_message.Message):
    __slots__ = ("reason", "message", "action", "since")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    action: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., action: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("sequence", "type", "status", "detail", "event_time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: JobEventType
    status: JobStatus
    detail: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[JobEventType, str]] = ..., status: _Optional[_Union[JobStatus, str]] = ..., detail: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("identifier_from_purchaser", "input_data", "request_id")
    IDENTIFIER_FROM_PURCHASER_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    identifier_from_purchaser: str
    input_data: _struct_pb2.Struct
    request_id: str
    def __init__(self, identifier_from_purchaser: _Optional[str] = ..., input_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartJobResponse(_message.Message):
    __slots__ = ("job_id", "blockchain_identifier", "pay_by_time", "submit_result_time", "unlock_time", "external_dispute_unlock_time", "agent_identifier", "seller_vkey", "identifier_from_purchaser", "input_hash", "status", "payment_source_type", "supported_payment_source_index")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKCHAIN_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PAY_BY_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_RESULT_TIME_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_DISPUTE_UNLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    SELLER_VKEY_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_FROM_PURCHASER_FIELD_NUMBER: _ClassVar[int]
    INPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_PAYMENT_SOURCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    blockchain_identifier: str
    pay_by_time: int
    submit_result_time: int
    unlock_time: int
    external_dispute_unlock_time: int
    agent_identifier: str
    seller_vkey: str
    identifier_from_purchaser: str
    input_hash: str
    status: JobStatus
    payment_source_type: str
    supported_payment_source_index: int
    def __init__(self, job_id: _Optional[str] = ..., blockchain_identifier: _Optional[str] = ..., pay_by_time: _Optional[int] = ..., submit_result_time: _Optional[int] = ..., unlock_time: _Optional[int] = ..., external_dispute_unlock_time: _Optional[int] = ..., agent_identifier: _Optional[str] = ..., seller_vkey: _Optional[str] = ..., identifier_from_purchaser: _Optional[str] = ..., input_hash: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., payment_source_type: _Optional[str] = ..., supported_payment_source_index: _Optional[int] = ...) -> None: ...

class GetJobStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobStatusResponse(_message.Message):
    __slots__ = ("job_id", "status_id", "status", "input_schema", "input_request_message", "result", "error", "update_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    INPUT_REQUEST_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status_id: str
    status: JobStatus
    input_schema: _input_schema_pb2.InputSchema
    input_request_message: str
    result: str
    error: JobError
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., status_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., input_schema: _Optional[_Union[_input_schema_pb2.InputSchema, _Mapping]] = ..., input_request_message: _Optional[str] = ..., result: _Optional[str] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProvideInputRequest(_message.Message):
    __slots__ = ("job_id", "status_id", "input_data", "request_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status_id: str
    input_data: _struct_pb2.Struct
    request_id: str
    def __init__(self, job_id: _Optional[str] = ..., status_id: _Optional[str] = ..., input_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ProvideInputResponse(_message.Message):
    __slots__ = ("input_hash", "signature")
    INPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    input_hash: str
    signature: str
    def __init__(self, input_hash: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class GetAvailabilityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAvailabilityResponse(_message.Message):
    __slots__ = ("availability", "type", "agent_identifier", "message", "sandbox", "verification_key", "verification_key_hash")
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    availability: Availability
    type: str
    agent_identifier: str
    message: str
    sandbox: bool
    verification_key: str
    verification_key_hash: str
    def __init__(self, availability: _Optional[_Union[Availability, str]] = ..., type: _Optional[str] = ..., agent_identifier: _Optional[str] = ..., message: _Optional[str] = ..., sandbox: _Optional[bool] = ..., verification_key: _Optional[str] = ..., verification_key_hash: _Optional[str] = ...) -> None: ...

class GetInputSchemaRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInputSchemaResponse(_message.Message):
    __slots__ = ("input_schema",)
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    input_schema: _input_schema_pb2.InputSchema
    def __init__(self, input_schema: _Optional[_Union[_input_schema_pb2.InputSchema, _Mapping]] = ...) -> None: ...

class GetDemoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDemoResponse(_message.Message):
    __slots__ = ("input", "output")
    class OutputEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    input: _struct_pb2.Struct
    output: _containers.ScalarMap[str, str]
    def __init__(self, input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: JobStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: Job
    event: JobEvent
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., event: _Optional[_Union[JobEvent, _Mapping]] = ...) -> None: ...
