"""A minimal Python ``websockets`` (asyncio) broadcast server: a peer of bench/fanout.py.

    .venv/bin/python bench/peers/websockets_server.py [--port 0] [--bytes 100] [--hz 10]

Every 1/hz seconds it builds one binary message of ``--bytes`` bytes (the
first 8 are the tick's start time, ms since the epoch, float64
little-endian; the rest random, so nothing compresses) and hands it to
``websockets.broadcast`` for every open connection.  No game, no per-client
state, no compression (``compression=None``, as in the daemon's
cosmic.msgpack-lz4.v1), the default asyncio event loop: the cost of the
fan-out alone.  Prints ``listening PORT`` once ready; stops on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import struct
import sys
import time

from websockets.asyncio.server import ServerConnection, broadcast, serve


async def hold(connection: ServerConnection) -> None:
    """Keep the connection open until the client goes (it sends nothing)."""
    async for _ in connection:
        pass


async def main(port: int, size: int, hz: float) -> None:
    size = max(8, size)
    filler = os.urandom(size - 8)
    period = 1.0 / hz
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        hold,
        "127.0.0.1",
        port,
        compression=None,
        max_size=65536,
        backlog=4096,
        ping_interval=20,
        ping_timeout=10,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"listening {bound}\n")
        sys.stdout.flush()

        async def ticks() -> None:
            # A fixed schedule (start + k * period), late ticks skipped, like the
            # daemon's LoopingCall.
            loop = asyncio.get_running_loop()
            next_at = loop.time() + period
            while True:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                message = struct.pack("<d", time.time() * 1000.0) + filler
                broadcast(server.connections, message)
                next_at += period  # (the loop may wake a hair early: never the same slot twice)
                now = loop.time()
                while next_at <= now:
                    next_at += period

        ticker = asyncio.ensure_future(ticks())
        await stop
        ticker.cancel()
        server.close(close_connections=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bytes", type=int, default=100)
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.bytes, args.hz))
