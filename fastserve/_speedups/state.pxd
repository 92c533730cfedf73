# Type declarations that make fastserve/state.py a typed Cython module when
# setup.py compiles it as fastserve._speedups.state (an augmenting .pxd, like
# http1.pxd). The compiled protocol cimports ServerState, so the settings and
# counters it reads for every request are C fields, not dictionary lookups.

cdef class ServerState:
    cdef public object app
    cdef public object loop
    cdef public object parser_factory
    cdef public str root_path
    cdef public str scheme
    cdef public object tls
    cdef public object proxy
    cdef public object websocket
    cdef public object http2
    cdef public bint access_log
    cdef public object access_format
    cdef public double timeout_keep_alive
    cdef public double timeout_request_header
    cdef public double timeout_request_body
    cdef public Py_ssize_t limit_request_line
    cdef public Py_ssize_t limit_request_fields
    cdef public Py_ssize_t limit_request_field_size
    cdef public Py_ssize_t max_head_size
    cdef public Py_ssize_t limit_concurrency
    cdef public dict scope_template
    cdef public dict lifespan_state
    cdef public set connections
    cdef public set tasks
    cdef public Py_ssize_t in_flight
    cdef public Py_ssize_t requests_started
    cdef public Py_ssize_t max_requests
    cdef public object on_max_requests
    cdef public bint shutting_down
    cdef public object context
    cdef public double now
    cdef public object receive_buffer
    cdef public bytes default_headers
    cdef public bytes _server_line
    cdef public bint _date_enabled
    cdef public bytes _extra
    cdef public bytes _date_line

    cpdef tick(self, double now)
    cpdef bytes default_headers_without(self, bint server, bint date)
