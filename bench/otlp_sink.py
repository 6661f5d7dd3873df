#!/usr/bin/env python3
"""A minimal OTLP/HTTP sink for benchmarks: accepts POSTs on keep-alive HTTP/1.1 connections, reads
exactly Content-Length bytes, answers 200 with an empty body, and counts requests and bytes.

One thread, one asyncio loop, no per-request thread or connection: it is meant to cost as little
CPU as possible on the machine it shares with the server under test, and to run in its own
process so that its CPU time can be read from /proc/<pid>/stat apart from the load generator's.

    python3 bench/otlp_sink.py PORT     # prints "ready" once listening; on SIGTERM prints
                                        # {"requests": N, "bytes": B} as one JSON line and exits
"""
import asyncio, json, signal, sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
stats = {"requests": 0, "bytes": 0}


class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = bytearray()
        self.need = None  # body bytes still expected for the current request, once headers are read

    def data_received(self, data):
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                del self.buf[:end + 4]
                self.need = length
            if len(self.buf) < self.need:
                return
            del self.buf[:self.need]
            stats["requests"] += 1
            stats["bytes"] += self.need
            self.need = None
            self.transport.write(RESPONSE)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    print("ready", flush=True)
    await stop
    server.close()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
