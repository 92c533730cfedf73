# Type declarations that make fastserve/protocols/http2_stream.py a typed
# Cython module when setup.py compiles it as fastserve._speedups.http2_stream
# (an augmenting .pxd, like http1.pxd). The connection (http2.pxd) and its
# streams cimport each other: their calls both ways are C calls.

cimport cython

from fastserve._speedups.state cimport ServerState
from fastserve._speedups cimport cycle as app_cycle
from fastserve._speedups cimport http2

cdef frozenset CONNECTION_SPECIFIC
cdef frozenset NO_BODY_STATUSES
cdef dict STATUS_CODES
cdef dict _DEFAULT_PAIRS

cpdef list default_header_pairs(bytes lines)


cdef class Stream(app_cycle.AppCycle):
    cdef public http2.HTTP2Protocol conn
    cdef public int stream_id
    cdef public list body
    cdef public Py_ssize_t body_credit
    cdef public bint body_complete
    cdef public bint body_delivered
    cdef public object waiter
    cdef public bint gone
    cdef public double stalled_at
    cdef public bint head_sent
    cdef public int status
    cdef public list response_headers
    cdef public bint no_body
    cdef public bint trailers
    cdef public bint awaiting_trailers
    cdef public Py_ssize_t bytes_sent

    cpdef setup(self, http2.HTTP2Protocol conn, int stream_id, bint body_complete)
    cpdef wake(self)
    cpdef body_received(self, bytes data, Py_ssize_t credit, bint ended)
    cpdef body_ended(self)
    cpdef was_reset(self)
    cpdef reset(self, int error_code)
    cpdef connection_lost(self)
    cpdef dict take_body(self)
    @cython.locals(state=ServerState, status=int)
    cpdef start_response(self, message)
    cpdef early_hint(self, message)
    cpdef finish(self)
    cpdef bint client_gone(self)
    cpdef app_done(self)
    cpdef abort(self, int status)
    cpdef answer_error(self, int status)
