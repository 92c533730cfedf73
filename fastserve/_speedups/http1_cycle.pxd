# Type declarations that make fastserve/protocols/http1_cycle.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.http1_cycle (an
# augmenting .pxd, like http1.pxd). The connection and the cycle cimport each
# other (a cycle Cython resolves): their calls both ways are C calls.

cimport cython

from fastserve._speedups.state cimport ServerState
from fastserve._speedups cimport cycle as app_cycle
from fastserve._speedups cimport http1

cdef dict _STATUS_LINES
cdef dict HEADER_KEYS
cdef bytes HEADER_VALUE_FORBIDDEN
cdef dict HEADER_LINES
cdef Py_ssize_t HEADER_LINES_MAX
cdef Py_ssize_t HEADER_LINE_CACHED_VALUE
cdef bytes LAST_CHUNK
cdef tuple NO_FRAMING
cdef Py_ssize_t MAX_HELD_OUTPUT
cdef Py_ssize_t MAX_HELD_STREAM
cdef Py_ssize_t ZERO_COPY_BODY
cdef Py_ssize_t MAX_CONTENT_LENGTH
cdef bytes CONTINUE_RESPONSE
cdef bytes EARLY_HINTS_LINE
cdef frozenset NO_BODY_STATUSES

cpdef bytes status_line(int status)


cdef class RequestCycle(app_cycle.AppCycle):
    cdef public http1.HTTP1Protocol conn
    cdef public bint http11
    cdef public bint keep_alive
    cdef public bint expect_continue
    cdef public bint is_head
    cdef public list body
    cdef public Py_ssize_t body_size
    cdef public bint body_complete
    cdef public bint body_delivered
    cdef public int body_error
    cdef public object waiter
    cdef public bint head_sent
    cdef public int status
    cdef public list head
    cdef public bint app_chunked
    cdef public bint app_close
    cdef public bint custom_server
    cdef public bint custom_date
    cdef public bint chunked
    cdef public bint no_body
    cdef public Py_ssize_t content_length
    cdef public Py_ssize_t bytes_sent
    cdef public object response_headers
    cdef public bint trailers
    cdef public bint accepts_trailers
    cdef public bint send_trailers
    cdef public bint awaiting_trailers
    cdef public list trailer_lines

    cpdef setup(self, http1.HTTP1Protocol conn, dict scope, bint http11, bint keep_alive, bint expect_continue,
                bint accepts_trailers)
    cpdef wake(self)
    cpdef bint client_gone(self)
    cpdef abort(self, int status)
    cpdef dict take_body(self)
    cpdef write_body(self, bytes body, bint more_body)
    cpdef frame(self, list parts, Py_ssize_t length, bint more_body)
    cpdef end_body(self)
    cpdef early_hint(self, message)
    cpdef write_trailers(self, message)
    cpdef start_response(self, message)
    @cython.locals(state=ServerState)
    cpdef list finish_head(self, Py_ssize_t length, bint more_body)
    cpdef finish(self)
    cpdef log_access(self)
