# cython: annotation_typing=False
"""Methods llhttp does not know, on the httptools path: the request found again and parsed by h11.

Any token is a method (RFC 9110 9.1); llhttp knows a fixed list and stops at
any other. h11 then parses that request from its first byte, and a new llhttp
parser takes the bytes after it. httptools does not say where in a read the
refused request began, so it is found by replaying the read with h11 from the
last request boundary whose place is known: the start of the read, the end of
a Content-Length body that was going on, or bytes kept from earlier reads
(while a head or a chunked body goes on across reads, at most REPLAY_LIMIT).

The same search finds where a full pipeline stopped the parser (``park``) and
how much of a head that goes on in the next read this read held
(``head_bytes_begun``). Functions of the connection (``http1.HTTP1Protocol``),
called by its ``parse``; compiled into ``fastserve._speedups.http1_replay``
(``http1_replay.pxd``) so that those calls are C calls.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastserve.errors import RequestError
from fastserve.protocols.h11_parser import ExtensionMethodParser, request_start
from fastserve.protocols.refusals import pipeline_full, refused_method

if TYPE_CHECKING:
    from fastserve.errors import PipelineFull
    from fastserve.protocols import http1_cycle
    from fastserve.protocols.http1 import HTTP1Protocol

    Buffer = bytes | bytearray | memoryview
    # (bytes from a known request boundary on, requests begun before them)
    ReplayBase = tuple[bytes, int]

error_logger = logging.getLogger("fastserve.error")

# While a head or a chunked body goes on across reads, the bytes since the last
# request boundary are kept (at most this many) in case llhttp then stops at a
# method it does not know and h11 must find where that request began.
REPLAY_LIMIT = 64 * 1024


def head_bytes_begun(
    conn: HTTP1Protocol,
    data: Buffer,
    continuing: http1_cycle.RequestCycle | None,
    body_left: int,
    in_head: bool,
    begun: int,
) -> int:
    """The size of a head that began in this read and goes on in the next (see HTTP1Protocol.parse).

    Known at once when it is the only request begun in a read that began at
    a request boundary or inside a Content-Length body; else found as an
    extension method's start is (see h11_parser.request_start). Failing that, what the
    parser handed over of it (the target and field_bytes), which leaves out
    at most the field it holds (and the next read counts in full).
    """
    if conn.begun == begun + 1 and not in_head and (continuing is None or body_left >= 0):
        return len(data) - (body_left if continuing is not None else 0)
    base = replay_base(conn, data, continuing, body_left, in_head, begun)
    if base is not None:
        start = request_start(base[0], conn.begun - base[1] - 1, conn.state)
        if start is not None:
            return len(base[0]) - start
    return len(conn.url) + conn.field_bytes


# Extension methods on the httptools path ----------------------------
# llhttp stops at a method it does not know. h11 then parses that request
# from its first byte, and a new llhttp parser takes the bytes after it.
# httptools does not say where in a read the refused request began, so it
# is found by replaying the read with h11 from the last request boundary
# whose place is known: the start of the read, the end of a Content-Length
# body that was going on, or bytes kept from earlier reads.


def replay_base(
    conn: HTTP1Protocol,
    data: Buffer,
    continuing: http1_cycle.RequestCycle | None,
    body_left: int,
    in_head: bool,
    begun: int,
) -> ReplayBase | None:
    """(bytes from a known request boundary to the end of ``data``, requests begun before it), or None.

    The other arguments say where the read of ``data`` began: inside the
    body of ``continuing`` (``body_left`` bytes short of its end; below zero,
    chunked), inside a head, or (neither) at a request boundary; ``begun``
    counted the requests begun before it.
    """
    if in_head or (continuing is not None and body_left < 0):
        if conn.replay is None:
            return None  # more than REPLAY_LIMIT went by since the boundary
        return conn.replay + bytes(data), conn.replay_begun
    if continuing is not None:
        return bytes(data[body_left:]), begun
    return bytes(data), begun


def keep_for_replay(conn: HTTP1Protocol, base: ReplayBase | None) -> None:
    """A head or a chunked body goes on in the next read: keep what a replay would need."""
    if base is None or len(base[0]) > REPLAY_LIMIT:
        conn.replay = None
    else:
        conn.replay = base[0]
        conn.replay_begun = base[1]


def parse_extension_method(conn: HTTP1Protocol, base: ReplayBase | None) -> None:
    """llhttp refused the last request begun in ``base`` (see replay_base): h11 parses it."""
    conn.replay = None
    while True:
        start = None if base is None else request_start(base[0], conn.begun - base[1] - 1, conn.state)
        if start is None:
            conn.on_parse_error(RequestError(400, "Invalid method"))
            return
        slow = ExtensionMethodParser(conn)
        conn.parser = slow
        try:
            rest = slow.receive(base[0][start:])
        except Exception as exc:
            conn.on_parse_error(exc)
            return
        if rest is None or conn.parser is not slow:
            return  # the request goes on in later reads (or the connection is done)
        base = parse_fast(conn, rest)
        if base is None:
            return


def resume_fast_parsing(conn: HTTP1Protocol, rest: bytes) -> None:
    """The extension-method request ended in this read: llhttp parses what follows it."""
    base = parse_fast(conn, rest)
    if base is not None:
        parse_extension_method(conn, base)


def parse_fast(conn: HTTP1Protocol, data: bytes) -> ReplayBase | None:
    """A new llhttp parser takes ``data``, which begins at a request boundary.

    Returns the replay base when llhttp refuses a method in it, else None.
    """
    parser = conn.parser = conn.state.parser_factory(conn)
    begun = conn.begun
    try:
        parser.feed_data(data)
    except Exception as exc:
        if refused_method(exc):
            return data, begun
        full = pipeline_full(exc)
        if full is None:
            conn.on_parse_error(exc, data)
        else:
            park(conn, full, (data, begun))
        return None
    if conn.in_head or (conn.parsing is not None and conn.body_left < 0):
        keep_for_replay(conn, replay_base(conn, data, None, 0, False, begun))
    return None


# A full pipeline ------------------------------------------------------
# on_message_begin refuses a request while MAX_PIPELINED wait to be
# answered; the parser stops there, and the bytes from that request on are
# parked until one of them is answered (see maybe_resume_reading). Reading
# is paused by then, so nothing else is parsed or read meanwhile.


def park(conn: HTTP1Protocol, stop: PipelineFull, base: ReplayBase | None) -> None:
    """Keep the bytes from the refused request on, for a fresh parser to take later.

    ``stop`` is the PipelineFull raised; ``base`` the replay base of the
    read (see replay_base), where httptools' stop is found.
    """
    conn.replay = None
    rest = stop.rest
    if rest is None and base is not None:
        start = request_start(base[0], conn.begun - base[1], conn.state)
        if start is not None:
            rest = base[0][start:]
    if rest is None:
        # The place is lost (more than REPLAY_LIMIT since a known boundary):
        # the requests already parsed are answered, and then the connection
        # closes, which tells a pipelining client to retry the rest.
        error_logger.debug("Pipeline overflow from %s: closing after the queued requests", conn.client_label)
        conn.parser = None
        return
    conn.parser = conn.state.parser_factory(conn)
    conn.parked = rest
