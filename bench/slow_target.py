"""A target that answers after a delay, in a process of its own: python -m bench.slow_target.

``GET /slow?delay=SECONDS`` answers 200 after SECONDS and closes the connection. It is
asyncio, not a thread per connection (tests/support/servers.py), so that hundreds of
checks waiting on it at once cost it sleeping coroutines, not threads fighting for the
GIL: the benchmark measures the checker, and the target must not be what bounds it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BODY = b"ok, slowly"
RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n"
)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        delay = float(parse_qs(urlsplit(target).query).get("delay", ["0.2"])[0])
        await asyncio.sleep(delay)
        writer.write(RESPONSE_HEAD + BODY)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError):
        pass  # a client that went away, or no request: nothing to answer
    finally:
        writer.close()


async def serve() -> None:
    # A deep backlog: a pool of checkers connects all at once.
    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    asyncio.run(serve())


@contextmanager
def running() -> Iterator[str]:
    """This target in a process of its own; its ``/slow`` URL (add ``?delay=SECONDS``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.slow_target"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}/slow"
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
