# Type declarations that make fastserve/protocols/http1_head.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.http1_head (an
# augmenting .pxd, like http1.pxd). The connection (http1.HTTP1Protocol) is a
# subclass: it reads these fields from the C struct.

cimport cython

from fastserve._speedups.state cimport ServerState

cdef dict KNOWN_METHODS
cdef Py_ssize_t MAX_BODY_LEFT
cdef dict HEADER_KEYS
cdef frozenset FORWARDING_HEADER_NAMES


cdef class RequestHead:
    cdef public ServerState state
    cdef public bint trusted_proxy
    cdef public bint in_head
    cdef public Py_ssize_t head_bytes
    cdef public Py_ssize_t field_bytes
    cdef public bytes url
    cdef public list headers
    cdef public int content_length_count
    cdef public int host_count
    cdef public object transfer_encoding
    cdef public bint connection_close
    cdef public bint connection_keep_alive
    cdef public bint expect_continue
    cdef public bint upgrade
    cdef public bint websocket_upgrade
    cdef public bint te_trailers
    cdef public list forwarding
    cdef public object head_error
    cdef public bytes content_length
    cdef public Py_ssize_t body_left
    cdef public Py_ssize_t framing_bytes

    cpdef reset_request_head(self)
    cpdef release_head(self)
    cpdef refuse_later(self, error)
    @cython.locals(size=Py_ssize_t)
    cpdef on_header(self, bytes name, bytes value)
    cpdef str check_head(self, bytes raw_method, str version)
