"""The gRPC messages of the repository extension as Triton defines them, which KServe's lack.

KServe's ``GRPCInferenceService`` has no ``RepositoryIndex``, and its load and unload requests
carry the model's name in field 1, where Triton's (the protocol's reference, and what its
clients send) carry ``repository_name``, with the name in field 2. The messages are built here
from their description (fields and numbers as in Triton's ``grpc_service.proto``), so no
generated code is kept:

    message RepositoryIndexRequest { string repository_name = 1; bool ready = 2; }
    message RepositoryIndexResponse {
      message ModelIndex { string name = 1; string version = 2; string state = 3;
                           string reason = 4; }
      repeated ModelIndex models = 1;
    }
    message RepositoryModelRequest { string repository_name = 1; string model_name = 2; }

``RepositoryModelRequest`` reads both load and unload requests of either client: the name is
field 2 when set (Triton's), else field 1 (KServe's). Triton's ``parameters`` (field 3) are
ignored. The methods are ``/inference.GRPCInferenceService/RepositoryIndex`` (and ``...Load``,
``...Unload``); a client calls the index with ``channel.unary_unary(INDEX_METHOD, ...)``.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "inference.GRPCInferenceService"
INDEX_METHOD = f"/{SERVICE}/RepositoryIndex"

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_BOOL = descriptor_pb2.FieldDescriptorProto.TYPE_BOOL
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED


def _field(message: Any, name: str, number: int, kind: int, **more: Any) -> None:
    message.field.add(
        name=name, number=number, type=kind, label=more.pop("label", _OPTIONAL), **more
    )


def _build() -> tuple[Any, Any, Any]:
    described = descriptor_pb2.FileDescriptorProto(
        name="predictor/repository_index.proto", package="inference", syntax="proto3"
    )
    request = described.message_type.add(name="RepositoryIndexRequest")
    _field(request, "repository_name", 1, _STRING)
    _field(request, "ready", 2, _BOOL)
    response = described.message_type.add(name="RepositoryIndexResponse")
    model = response.nested_type.add(name="ModelIndex")
    for number, name in enumerate(("name", "version", "state", "reason"), start=1):
        _field(model, name, number, _STRING)
    _field(
        response,
        "models",
        1,
        _MESSAGE,
        label=_REPEATED,
        type_name=".inference.RepositoryIndexResponse.ModelIndex",
    )
    model = described.message_type.add(name="RepositoryModelRequest")
    _field(model, "repository_name", 1, _STRING)
    _field(model, "model_name", 2, _STRING)
    pool = descriptor_pool.DescriptorPool()  # its own pool: nothing clashes with KServe's
    built = pool.Add(described)
    return (
        message_factory.GetMessageClass(built.message_types_by_name["RepositoryIndexRequest"]),
        message_factory.GetMessageClass(built.message_types_by_name["RepositoryIndexResponse"]),
        message_factory.GetMessageClass(built.message_types_by_name["RepositoryModelRequest"]),
    )


RepositoryIndexRequest, RepositoryIndexResponse, RepositoryModelRequest = _build()


def requested_model(request: Any) -> str:
    """The model a load or unload request names, from either client (see the module text)."""
    return str(request.model_name or request.repository_name)
