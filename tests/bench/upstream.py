"""A fast fake provider for the end-to-end benchmark: asyncio, one process, HTTP/1.1 keep-alive.

tests/e2e/fake_provider.py records every request (a thread per connection, a copy of every body):
right for tests, too slow to stand behind Envoy at saturation. This one reads and discards the
body (Content-Length or chunked) and answers 200 with a small OpenAI-shaped completion. The
benchmark measures it directly (wrk straight at it) to show it is not the bottleneck.

Run: python -m tests.bench.upstream HOST:PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

BODY = (b'{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-fake","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}')
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
MAX_HEAD = 64 * 1024


class _Http(asyncio.Protocol):
    """Parses pipelined requests from a byte buffer; the body is skipped, never copied out."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.skip = 0            # body bytes still to discard (Content-Length)
        self.chunked = False     # inside a chunked body
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.skip and not self.buf:  # fast path: the middle of a large body
            if len(data) <= self.skip:
                self.skip -= len(data)
                if not self.skip:
                    self._respond()
                return
            data = data[self.skip:]
            self.skip = 0
            self._respond()
        self.buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        buf = self.buf
        if self.skip:
            n = min(self.skip, len(buf))
            del buf[:n]
            self.skip -= n
            if self.skip:
                return False
            self._respond()
            return True
        if self.chunked:
            return self._chunk()
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD and self.transport:
                self.transport.close()
            return False
        head = bytes(buf[:end]).lower()
        del buf[:end + 4]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                self.chunked = True
                return True
        if length:
            self.skip = length
        else:
            self._respond()
        return True

    def _chunk(self) -> bool:
        buf = self.buf
        eol = buf.find(b"\r\n")
        if eol < 0:
            return False
        size = int(bytes(buf[:eol]).split(b";")[0], 16)
        if size == 0:  # last chunk; no trailers expected from Envoy
            if len(buf) < eol + 4:
                return False
            del buf[:eol + 4]
            self.chunked = False
            self._respond()
            return True
        if len(buf) < eol + 2 + size + 2:
            return False
        del buf[:eol + 2 + size + 2]
        return True

    def _respond(self) -> None:
        if self.transport is not None:
            self.transport.write(RESPONSE)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    asyncio.run(serve(host or "127.0.0.1", int(port)))


if __name__ == "__main__":
    main(sys.argv[1])
