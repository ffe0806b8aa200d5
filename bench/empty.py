"""The transport's ceiling: a server that does nothing, on the stack ours runs on.

REST: a bare ASGI app on uvicorn (uvloop, httptools) that reads the body and answers every
request with a fixed v2 JSON body. gRPC: grpcio's asyncio server answering ``ModelInfer`` with a
fixed response. No decoding, no model: what is left is the cost of the transport itself.

    python bench/empty.py --model_name lr --http_port 8080 --grpc_port 8081
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc
import uvicorn
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

BODY = (
    b'{"model_name":"m","model_version":"1","id":"1","outputs":'
    b'[{"name":"predict","shape":[1],"datatype":"INT64","data":[1]}]}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the request, answer the fixed body (200 to everything, readiness included)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


class Empty(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """Ready, and a fixed answer to every ModelInfer (one label per row asked about)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.replies: dict[int, pb.ModelInferResponse] = {}

    def reply(self, rows: int) -> pb.ModelInferResponse:
        if rows not in self.replies:
            reply = pb.ModelInferResponse(model_name=self.model, model_version="1", id="1")
            tensor = reply.outputs.add(name="predict", datatype="INT64", shape=[rows])
            tensor.contents.int64_contents.extend([1] * rows)
            self.replies[rows] = reply
        return self.replies[rows]

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:  # noqa: N802
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:  # noqa: N802
        return pb.ModelReadyResponse(ready=True)

    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:  # noqa: N802
        return self.reply(request.inputs[0].shape[0] if request.inputs else 1)


async def serve(model: str, http_port: int, grpc_port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Empty(model), server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=http_port,
        loop="none",  # the running uvloop loop
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    await uvicorn.Server(config).serve()
    await server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--grpc_port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.model_name, args.http_port, args.grpc_port))


if __name__ == "__main__":
    main()
