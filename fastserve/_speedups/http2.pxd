# Type declarations that make fastserve/protocols/http2.py, the HTTP/2 stream
# layer, a typed Cython module when setup.py compiles it as
# fastserve._speedups.http2 (an augmenting .pxd, like http1.pxd). The engines
# below it are not typed here: they are either compiled already (nghttp2.pyx)
# or the readable h2 one. The connection and its streams (http2_stream.pxd)
# cimport each other: their calls both ways are C calls.

cimport cython

from fastserve._speedups.state cimport ServerState
from fastserve._speedups cimport http2_stream
from fastserve._speedups.http2_stream cimport Stream


cdef int DATA, END, GOAWAY, HEADERS, PING_ACK, RESET, WINDOW
cdef str TASK_NAME
cdef dict ASGI_VERSION
cdef dict RESPONSE_EXTENSIONS
cdef frozenset FORWARDING_HEADER_NAMES



cdef class Budget:
    cdef public Py_ssize_t left
    cdef public Py_ssize_t burst
    cdef public Py_ssize_t rate

    cpdef bint spend(self)
    cpdef refill(self)


cdef class HTTP2Protocol:
    cdef public ServerState state
    cdef public object upgrade
    cdef public object settings
    cdef public object engine
    cdef public object server
    cdef public object client
    cdef public str scheme
    cdef public object tls
    cdef public str client_label
    cdef public bint trusted_proxy
    cdef public object transport
    cdef public dict streams
    cdef public bint closed
    cdef public bint going_away
    cdef public bint write_paused
    cdef public double write_paused_at
    cdef public bint read_paused
    cdef public list drain_waiters
    cdef public bint plain_tasks
    cdef public dict extensions
    cdef public object flush_handle
    cdef public double deadline
    cdef public double heard_at
    cdef public double ping_sent_at
    cdef public Py_ssize_t running
    cdef public Budget resets
    cdef public Budget empty_frames
    cdef public Budget server_resets

    cpdef reset_stream(self, int stream_id, int error_code)
    @cython.locals(stream=Stream, kind=int)
    cpdef take_event(self, tuple event)
    cpdef calm_down(self, str why, int error_code=*)
    cpdef wake_drainers(self)
    @cython.locals(stream=Stream)
    cpdef open_stream(self, int stream_id, list headers, bint ended)
    @cython.locals(state=ServerState)
    cpdef start_stream(self, Stream stream, dict scope)
    cpdef stream_done(self, Stream stream)
    @cython.locals(fields=list, cookies=list, name=bytes, value=bytes)
    cpdef dict build_scope(self, list headers)
    cpdef dict connection_scope(self)
    cpdef dict error_scope(self)
    cpdef check_deadline(self, double now)
    cpdef bint keep_alive_ping(self, double now)
    cpdef shutdown(self)
    cpdef close(self, bint linger=*)
    cpdef flush_soon(self)
    cpdef flush(self)
