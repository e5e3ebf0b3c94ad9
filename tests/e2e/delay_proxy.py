#!/usr/bin/env python3
"""A userspace TCP delay proxy: a slow link where the kernel has no netem.

Listens on --listen, connects each accepted connection to --target, and
forwards the bytes of each direction half the round trip (--rtt-ms / 2)
after they arrived, in order. Prints "delay proxy listening on HOST:PORT"
on stderr once it accepts. Bandwidth is not limited; only latency is added.

  python3 tests/e2e/delay_proxy.py --target 127.0.0.1:7070 --rtt-ms 20

The benchmark harness (tests/bench/e2e_bench.py) and the end-to-end test
e2e_slow_link put it between workers and the coordinator.
"""
import argparse
import asyncio
import collections
import signal
import sys

CHUNK = 256 * 1024


class Direction:
    """One direction of a connection: reads into a queue of (due, bytes),
    writes each chunk when it is due. One writer per direction keeps the
    order."""

    def __init__(self, reader, writer, delay):
        self.reader = reader
        self.writer = writer
        self.delay = delay
        self.queue = collections.deque()
        self.ready = asyncio.Event()
        self.eof = False

    async def read(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self.reader.read(CHUNK)
                if not data:
                    break
                self.queue.append((loop.time() + self.delay, data))
                self.ready.set()
        except (ConnectionError, OSError):
            pass
        self.eof = True
        self.ready.set()

    async def write(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.queue:
                    if self.eof:
                        break
                    self.ready.clear()
                    await self.ready.wait()
                    continue
                due, data = self.queue[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.queue.popleft()
                self.writer.write(data)
                await self.writer.drain()
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except (ConnectionError, OSError):
            pass


async def relay(client_reader, client_writer, target, delay):
    host, port = target
    try:
        server_reader, server_writer = await asyncio.open_connection(host, port)
    except OSError as e:
        print(f"delay proxy: cannot connect to {host}:{port}: {e}", file=sys.stderr, flush=True)
        client_writer.close()
        return
    up = Direction(client_reader, server_writer, delay)
    down = Direction(server_reader, client_writer, delay)
    await asyncio.gather(up.read(), up.write(), down.read(), down.write())
    for w in (client_writer, server_writer):
        w.close()


def split_address(text, flag):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"delay_proxy: {flag} must be HOST:PORT, got {text!r}")
    return host, int(port)


async def serve(args):
    target = split_address(args.target, "--target")
    host, port = split_address(args.listen, "--listen")
    delay = args.rtt_ms / 2000.0
    server = await asyncio.start_server(lambda r, w: relay(r, w, target, delay), host, port)
    bound = server.sockets[0].getsockname()
    print(f"delay proxy listening on {bound[0]}:{bound[1]} -> {args.target}, round trip {args.rtt_ms} ms",
          file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to (the coordinator)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to accept on (default: a free port)")
    parser.add_argument("--rtt-ms", type=float, required=True, help="added round trip, ms (half each way)")
    args = parser.parse_args()
    if not 0 <= args.rtt_ms <= 10_000:
        parser.error(f"--rtt-ms must be within 0..10000, got {args.rtt_ms}")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
