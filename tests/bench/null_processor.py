"""An ext_proc server that reads every message and does nothing else: what Envoy's ext_proc filter costs a stream
by itself, apart from the filter's parsing (`python -m tests.bench.null_processor PORT`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc


class NullProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    async def Process(self, request_iterator: AsyncIterator[ep.ProcessingRequest],  # noqa: N802 (grpc name)
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[ep.ProcessingResponse]:
        async for _ in request_iterator:
            pass  # observability mode: Envoy expects no answer
        return
        yield  # an async generator that yields nothing


async def serve(port: int) -> None:
    server = grpc.aio.server()
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(NullProcessor(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
