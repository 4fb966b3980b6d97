"""The floor of any Python ext_authz design: a grpcio server that answers OK at once.

Run: python -m tests.bench.trivial_authz HOST:PORT
"""

from __future__ import annotations

import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2, status_pb2

OK = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=code_pb2.OK),
                                     ok_response=external_auth_pb2.OkHttpResponse())


class Trivial(external_auth_pb2_grpc.AuthorizationServicer):
    def Check(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return OK


def main(listen: str) -> None:
    server = grpc.server(ThreadPoolExecutor(16), options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                                          ("grpc.so_reuseport", 0)])
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(Trivial(), server)
    server.add_insecure_port(listen)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1])
