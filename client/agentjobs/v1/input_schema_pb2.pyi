from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InputSchema(_message.Message):
    __slots__ = ("input_data", "input_groups")
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    INPUT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    input_data: _containers.RepeatedCompositeFieldContainer[InputField]
    input_groups: _containers.RepeatedCompositeFieldContainer[InputGroup]
    def __init__(self, input_data: _Optional[_Iterable[_Union[InputField, _Mapping]]] = ..., input_groups: _Optional[_Iterable[_Union[InputGroup, _Mapping]]] = ...) -> None: ...

class InputField(_message.Message):
    __slots__ = ("id", "type", "name", "data", "validations")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    VALIDATIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    name: str
    data: _struct_pb2.Struct
    validations: _containers.RepeatedCompositeFieldContainer[InputValidation]
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., validations: _Optional[_Iterable[_Union[InputValidation, _Mapping]]] = ...) -> None: ...

class InputValidation(_message.Message):
    __slots__ = ("validation", "value")
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    validation: str
    value: str
    def __init__(self, validation: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class InputGroup(_message.Message):
    __slots__ = ("id", "title", "input_data")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    input_data: _containers.RepeatedCompositeFieldContainer[InputField]
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., input_data: _Optional[_Iterable[_Union[InputField, _Mapping]]] = ...) -> None: ...
