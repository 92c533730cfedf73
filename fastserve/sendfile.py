"""A region of a file written to a connection, for ``pathsend`` and ``zerocopysend``.

On a plain socket the kernel copies it (``os.sendfile``): the bytes never pass
through Python, and only as many leave as the socket takes, so a slow reader
holds no memory. The transport owns the socket's descriptor, and the event
loop refuses a second watcher on it; a duplicate of the descriptor is watched
for writability instead, and ``sendfile`` runs only when the transport has
nothing of its own left to write, so the two never interleave. Under TLS the
kernel cannot encrypt, so the file is read in bounded chunks and written
through the transport with its flow control.
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

from fastserve.errors import ASGIMessageError, ClientDisconnected

# Chunk size when the file is read (TLS): big enough for few writes, small
# enough that the transport's buffer stays bounded.
READ_CHUNK = 256 * 1024


def file_size(fd: int) -> int:
    """The size of the regular file open as ``fd``: what sendfile can send."""
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise ASGIMessageError("A file sent by pathsend or zerocopysend must be a regular file")
    return status.st_size


async def send_file(conn: Any, fd: int, offset: int, count: int) -> None:
    """Write ``count`` bytes of ``fd`` from ``offset`` to ``conn`` after everything it wrote before."""
    transport = conn.transport
    sock = None if transport.get_extra_info("ssl_object") is not None else transport.get_extra_info("socket")
    if sock is None:
        await _send_by_reads(conn, fd, offset, count)
    else:
        await _send_by_sendfile(conn, sock.fileno(), fd, offset, count)


async def _send_by_sendfile(conn: Any, socket_fd: int, fd: int, offset: int, count: int) -> None:
    conn.flush()
    transport = conn.transport
    loop = conn.state.loop
    out = os.dup(socket_fd)
    try:
        while count:
            if conn.closed:
                raise ClientDisconnected("the client disconnected")
            if transport.get_write_buffer_size() == 0:
                try:
                    sent = os.sendfile(out, fd, offset, count)
                except BlockingIOError:
                    sent = None
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise ClientDisconnected("the client disconnected") from exc
                if sent == 0:
                    raise ASGIMessageError(f"The file ended {count} bytes short of the response body")
                if sent is not None:
                    offset += sent
                    count -= sent
                    continue
            await _writable(conn, loop, out)
    finally:
        os.close(out)


async def _writable(conn: Any, loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until ``fd`` takes more bytes (or the connection is lost)."""
    waiter = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    # The protocol wakes its drain waiter when the connection is lost.
    conn.drain_waiter = waiter
    loop.add_writer(fd, ready)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)
        if conn.drain_waiter is waiter:
            conn.drain_waiter = None


async def _send_by_reads(conn: Any, fd: int, offset: int, count: int) -> None:
    while count:
        if conn.closed:
            raise ClientDisconnected("the client disconnected")
        chunk = os.pread(fd, min(READ_CHUNK, count), offset)
        if not chunk:
            raise ASGIMessageError(f"The file ended {count} bytes short of the response body")
        conn.write(chunk)
        offset += len(chunk)
        count -= len(chunk)
        if conn.write_paused:
            await conn.drain()
