"""User-space TCP proxy that adds a fixed latency to every chunk, in each direction.

The controller's kernel has no ``sch_netem``, so WAN latency for the light SSH hosts is added here:
each chunk read from one side is written to the other side ``delay_ms`` milliseconds after it
arrived (a delay, not a rate limit: chunks in flight overlap, and their order is kept). The TCP
connect to the target is not delayed.

Run as one process for many targets::

    python -m fleetforge.testbed.delay_proxy --delay-ms 25 10.99.0.2:22 10.99.0.3:22

It listens on ``--listen`` (default 127.0.0.1) on one free port per target, in argument order,
then prints one JSON line ``{"ports": [PORT, ...]}`` on stdout and serves until SIGTERM/SIGINT,
or until stdin reaches end of file with ``--watch-stdin`` (so it dies with the process that
started it). A client whose target refuses the connection sees the proxy close its connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from asyncio import StreamReader, StreamWriter
from collections.abc import Awaitable, Callable, Sequence

#: Bytes read per chunk.
CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy ``reader`` to ``writer``, writing each chunk at its arrival time + ``delay_s``; EOF too."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def feed() -> None:
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((loop.time() + delay_s, data))
        except OSError:
            pass
        queue.put_nowait((loop.time() + delay_s, b""))  # b"": end of stream

    feeder = asyncio.create_task(feed())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    finally:
        feeder.cancel()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


def _handler(host: str, port: int, delay_s: float) -> Callable[[StreamReader, StreamWriter], Awaitable[None]]:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection(host, port)
        except OSError:
            await _close(c_writer)
            return
        pumps = [
            asyncio.create_task(_pump(c_reader, t_writer, delay_s)),
            asyncio.create_task(_pump(t_reader, c_writer, delay_s)),
        ]
        try:
            # Half-close is forwarded; a reset or error on either side ends both directions.
            done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            await _close(t_writer)
            await _close(c_writer)

    return handle


def parse_target(text: str) -> tuple[str, int]:
    """``"10.99.0.2:22"`` -> ``("10.99.0.2", 22)``; ValueError if there is no ``:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"target must be HOST:PORT, got {text!r}")
    return host, int(port)


async def serve(targets: Sequence[tuple[str, int]], delay_ms: float, listen: str = "127.0.0.1") -> None:
    """Listen for each target, print the ports as one JSON line, serve until cancelled or stdin EOF."""
    delay_s = max(0.0, delay_ms) / 1000
    servers = [await asyncio.start_server(_handler(h, p, delay_s), listen, 0) for h, p in targets]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    sys.stdout.write(json.dumps({"ports": ports}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


async def _watch_stdin(stop: asyncio.Task[None]) -> None:
    """Cancel ``stop`` when stdin (a pipe) reaches end of file: the parent died or closed it."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.cancel()


async def _main(args: argparse.Namespace) -> None:
    targets = [parse_target(t) for t in args.targets]
    task = asyncio.create_task(serve(targets, args.delay_ms, args.listen))
    if args.watch_stdin:
        asyncio.create_task(_watch_stdin(task))
    try:
        await task
    except asyncio.CancelledError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring); returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m fleetforge.testbed.delay_proxy", description=__doc__.split("\n")[0])
    ap.add_argument("--delay-ms", type=float, required=True, help="delay per chunk and direction, milliseconds")
    ap.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--tag", default="", help="free text to find this process again (e.g. a fleet prefix)")
    ap.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches end of file")
    ap.add_argument("targets", nargs="+", metavar="HOST:PORT")
    args = ap.parse_args(argv)
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
