"""A small gRPC load generator for the v2 ``ModelInfer`` call: N concurrent callers for D seconds.

    python bench/grpc_load.py --target 127.0.0.1:8081 --model m --rows 1 --features 20 -c 32 -d 5
Prints one JSON line: requests, errors, seconds, rps, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub


async def caller(
    stub: GRPCInferenceServiceStub,
    request: pb.ModelInferRequest,
    until: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            await stub.ModelInfer(request)
            latencies.append(time.perf_counter() - started)
        except grpc.aio.AioRpcError:
            errors.append(1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    args = parser.parse_args()
    rows = np.random.default_rng(0).normal(size=(args.rows, args.features))
    request = pb.ModelInferRequest(
        model_name=args.model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="input-0",
                datatype="FP64",
                shape=[args.rows, args.features],
                contents=pb.InferTensorContents(fp64_contents=rows.ravel().tolist()),
            )
        ],
    )
    latencies: list[float] = []
    errors: list[int] = []
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request)  # warm up
        started = time.perf_counter()
        until = started + args.duration
        await asyncio.gather(
            *(caller(stub, request, until, latencies, errors) for _ in range(args.concurrency))
        )
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    pick = lambda q: (
        ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")
    )  # noqa: E731
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "errors": len(errors),
                "seconds": elapsed,
                "rps": len(latencies) / elapsed,
                "p50_ms": pick(0.50),
                "p99_ms": pick(0.99),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
