"""Closing a connection after an error answer without losing the answer: one way for every protocol.

A client still sending when the server closes gets a reset from the server's
kernel, which may take the answer (an HTTP/1.1 4xx, an HTTP/2 GOAWAY) with it.
Lingering, the server ends its output (the client reads the answer, then the
end), reads and drops what still comes, and closes when the client does or
after LINGER seconds (the protocol's ``check_deadline``). Under TLS, which
cannot end its output alone, the connection closes at once.
"""

from __future__ import annotations

from typing import Any

# Seconds a connection closed for an error goes on draining what the client sends.
LINGER = 2.0


def end_output(conn: Any, linger: bool) -> bool:
    """Close ``conn``'s transport, or with ``linger`` end its output and keep reading; True when it lingers.

    (A rare path: ``conn`` is any protocol with ``transport``, ``state``,
    ``deadline`` and ``read_paused``, reached by attribute.)
    """
    transport = conn.transport
    if linger and transport.can_write_eof():
        transport.write_eof()
        conn.deadline = conn.state.now + LINGER
        if conn.read_paused:
            conn.read_paused = False
            transport.resume_reading()
        return True
    transport.close()
    return False
