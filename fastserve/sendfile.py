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


def path_to_send(message: dict[str, Any]) -> str:
    """The file of ``http.response.pathsend``: an absolute path."""
    path = message["path"] if "path" in message else None
    if type(path) is not str or not os.path.isabs(path):
        raise ASGIMessageError(f"'http.response.pathsend' needs an absolute 'path', got {path!r}")
    return path


def zero_copy_region(message: dict[str, Any]) -> tuple[int, int, int, bool]:
    """``http.response.zerocopysend``'s file descriptor, offset, count, and whether it reads from the position.

    Without an offset the file is read from its position, which the caller
    then moves on (as read() would); without a count, to the end.
    """
    file = message["file"] if "file" in message else None
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise ASGIMessageError("'http.response.zerocopysend' needs a 'file' with a fileno()")
    fd = fileno()
    offset = message["offset"] if "offset" in message else None
    from_position = offset is None
    if from_position:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    size = file_size(fd)
    count = message["count"] if "count" in message else None
    if count is None:
        count = max(size - offset, 0)
    if type(offset) is not int or type(count) is not int or offset < 0 or count < 0:
        raise ASGIMessageError(f"Invalid 'offset' {offset!r} or 'count' {count!r} in 'http.response.zerocopysend'")
    return fd, offset, count, from_position


def read_chunk(fd: int, offset: int, count: int) -> bytes:
    """The next bytes of a file region (at most READ_CHUNK), for a connection that cannot use sendfile."""
    chunk = os.pread(fd, min(READ_CHUNK, count), offset)
    if not chunk:
        raise ASGIMessageError(f"The file ended {count} bytes short of the response body")
    return chunk


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
        chunk = read_chunk(fd, offset, count)
        conn.write(chunk)
        offset += len(chunk)
        count -= len(chunk)
        if conn.write_paused:
            await conn.drain()
