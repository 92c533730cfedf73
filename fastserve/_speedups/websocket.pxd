# Type declarations that make fastserve/protocols/websocket.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.websocket (an
# augmenting .pxd, like http1.pxd).

cimport cython

from fastserve._speedups cimport cycle as app_cycle

cdef int CONNECTING, RESPONDING, OPEN, CLOSING, CLOSED
cdef int OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
cdef int CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, CLOSE_NO_STATUS, CLOSE_NORMAL, CLOSE_SERVICE_RESTART
cdef double CLOSE_TIMEOUT
cdef Py_ssize_t ZERO_COPY_MESSAGE


cdef class WebSocketProtocol(app_cycle.AppCycle):
    cdef public object settings
    cdef public object handshake
    cdef public str client_label
    cdef public object transport
    cdef public int phase
    cdef public object reader
    cdef public object deflate
    cdef public bytes deflate_response
    cdef public object messages
    cdef public int close_code
    cdef public str close_reason
    cdef public object receive_waiter
    cdef public object drain_waiter
    cdef public bint read_paused
    cdef public bint write_paused
    cdef public bint closed
    cdef public double deadline
    cdef public bytes ping_payload
    cdef public int status
    cdef public Py_ssize_t bytes_sent
    cdef public list denial_head
    cdef public bint denial_chunked
    cdef public Py_ssize_t denial_length
    cdef public bint reading_payload

    cpdef start(self, transport, bint read_paused, bytes early_bytes)
    cpdef data_received(self, data)
    cpdef reader_failed(self)
    cpdef get_buffer(self, Py_ssize_t sizehint)
    cpdef buffer_updated(self, Py_ssize_t nbytes)
    @cython.locals(event=tuple, kind=str)
    cpdef take_events(self, list events)
    cpdef queue(self, message)
    cpdef pause_reading(self)
    cpdef maybe_resume_reading(self)
    cpdef wake_receive(self)
    cpdef peer_closed(self, int code, str reason)
    cpdef fail(self, int code, str reason)
    cpdef finish(self, int code, str reason)
    cpdef start_closing(self, int code, str reason)
    cpdef check_deadline(self, double now)
    cpdef shutdown(self)
    cpdef close(self)
    cpdef write(self, bytes data)
    cpdef write_frame(self, int opcode, bytes payload)
    cpdef app_raised(self, exc)
    cpdef app_returned(self)
    cpdef app_failed(self, str reason)
    @cython.locals(payload=bytes, header=bytes)
    cpdef send_message(self, message)
    cpdef accept(self, message)
    cpdef list header_lines(self, message)
    cpdef refuse_handshake(self, int status)
    cpdef start_denial(self, message)
    cpdef denial_body(self, message)
    cpdef log_access(self)
