"""The MLLP load generator: ``python -m hub.bench.mllp_client --port P --connections C FILE``.

A separate process plays the hospital: it opens ``C`` connections, prints a ``ready`` JSON
line, waits for ``go`` on stdin, then sends the messages of ``FILE`` (one per line) the way
an HL7 sender does — one message in flight per connection, the next only after the ACK —
and prints one JSON line: messages sent, seconds from ``go`` to the last ACK, and how many
answers were not ``AA``. Running it apart keeps its CPU off the measured hub's account.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
READ_TIMEOUT = 120.0


def frame(message: bytes) -> bytes:
    """One MLLP frame: ``<VT>`` message ``<FS><CR>``."""
    return START_BLOCK + message + END_BLOCK


async def _sender(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: list[bytes]
) -> int:
    rejected = 0
    for data in frames:
        writer.write(data)
        await writer.drain()
        ack = await asyncio.wait_for(reader.readuntil(END_BLOCK), READ_TIMEOUT)
        if b"MSA|AA" not in ack and b"MSA|CA" not in ack:
            rejected += 1
    return rejected


async def run(host: str, port: int, connections: int, messages: list[bytes]) -> dict[str, object]:
    """Connect, report ready, wait for ``go``, send everything; the figures."""
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    frames = [frame(m) for m in messages]
    shares = [frames[i::connections] for i in range(connections)]
    sys.stdout.write(orjson.dumps({"ready": True}).decode() + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        return {"error": "no go"}
    started = time.perf_counter()
    rejected = await asyncio.gather(
        *(_sender(r, w, s) for (r, w), s in zip(streams, shares, strict=True))
    )
    elapsed = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    return {"items": len(frames), "seconds": elapsed, "rejected": sum(rejected)}


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("messages", type=Path, help="file of messages, one per line")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args()
    messages = [line for line in args.messages.read_bytes().split(b"\n") if line]
    result = asyncio.run(run(args.host, args.port, args.connections, messages))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
