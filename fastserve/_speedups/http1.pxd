# Type declarations that make fastserve/protocols/http1.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.http1 (an
# "augmenting .pxd": the .py stays runnable Python, this file adds the C types).

cimport cython

from fastserve._speedups.state cimport ServerState
from fastserve._speedups cimport cycle as app_cycle


cdef class RequestCycle(app_cycle.AppCycle)

# Module globals the hot path reads, typed so that lookups are C calls.
cdef dict KNOWN_METHODS
cdef dict _STATUS_LINES
cdef dict HEADER_KEYS
cdef bytes HEADER_VALUE_FORBIDDEN
cdef dict HEADER_LINES
cdef Py_ssize_t HEADER_LINES_MAX
cdef Py_ssize_t HEADER_LINE_CACHED_VALUE
cdef dict ASGI_VERSION
cdef dict RESPONSE_EXTENSIONS_10
cdef dict RESPONSE_EXTENSIONS_11
cdef bytes LAST_CHUNK
cdef tuple NO_FRAMING
cdef str TASK_NAME
cdef int FRAGMENT_BYTE
cdef int ESCAPE_BYTE
cdef frozenset FORWARDING_HEADER_NAMES
cdef Py_ssize_t READ_HIGH_WATER
cdef Py_ssize_t READ_LOW_WATER
cdef Py_ssize_t MAX_PIPELINED
cdef Py_ssize_t MAX_HELD_OUTPUT
cdef Py_ssize_t MAX_HELD_STREAM
cdef Py_ssize_t ZERO_COPY_BODY
cdef Py_ssize_t REPLAY_LIMIT
cdef Py_ssize_t MAX_BODY_LEFT
cdef Py_ssize_t MAX_CONTENT_LENGTH
cdef double FIRST_REQUEST_GRACE
cdef bytes CONTINUE_RESPONSE
cdef bytes EARLY_HINTS_LINE
cdef frozenset NO_BODY_STATUSES
cdef object REFUSED_METHOD
cdef dict UNPARSED_SCOPE

cpdef bytes status_line(int status)


cdef class HTTP1Protocol:
    cdef public ServerState state
    cdef public object transport
    cdef public object parser
    cdef public bint parser_asleep
    cdef public tuple server
    cdef public tuple client
    cdef public str scheme
    cdef public str client_label
    cdef public RequestCycle cycle
    cdef public RequestCycle parsing
    cdef public list pipeline
    cdef public bint closed
    cdef public bint lingering
    cdef public bint read_paused
    cdef public bint write_paused
    cdef public object drain_waiter
    cdef public Py_ssize_t buffered
    cdef public double deadline
    cdef public int pending_error
    cdef public list held_output
    cdef public Py_ssize_t held_size
    cdef public object flush_handle
    cdef public bint plain_tasks
    cdef public bint answered
    cdef public dict tls
    cdef public dict extensions_11
    cdef public dict extensions_10
    cdef public bint trusted_proxy
    cdef public tuple proxied
    cdef public list forwarding
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
    cdef public bint te_trailers
    cdef public object head_error
    cdef public bytes content_length
    cdef public Py_ssize_t body_left
    cdef public Py_ssize_t framing_bytes
    cdef public Py_ssize_t begun
    cdef public bint replays
    cdef public bytes replay
    cdef public Py_ssize_t replay_begun
    cdef public bytes parked
    cdef public tuple upgrade_to
    cdef public bytes upgrade_bytes
    cdef public bytes preface_bytes
    cdef public bytes error_lines
    cdef public bint websocket_upgrade

    @cython.locals(cycle=RequestCycle)
    cpdef feed(self, data)
    @cython.locals(continuing=RequestCycle, body_left=Py_ssize_t, in_head=bint, begun=Py_ssize_t)
    cpdef parse(self, data)
    cpdef Py_ssize_t head_bytes_begun(
        self, data, RequestCycle continuing, Py_ssize_t body_left, bint in_head, Py_ssize_t begun
    )
    cpdef park(self, stop, base)
    @cython.locals(size=Py_ssize_t)
    cpdef on_header(self, bytes name, bytes value)
    cpdef str check_head(self, bytes raw_method, str version)
    cpdef set_addresses(self, server, client, str scheme)
    cpdef reset_request_head(self)
    cpdef release_head(self)
    cpdef dict connection_scope(self)
    @cython.locals(url=bytes, raw_path=bytes)
    cpdef dict build_scope(self, str method, str version, bint http11)
    cpdef pause_reading(self)
    cpdef maybe_resume_reading(self)
    @cython.locals(state=ServerState)
    @cython.locals(cycle=RequestCycle)
    cpdef RequestCycle new_cycle(self, dict scope, bint http11, bint keep_alive)
    cpdef start_cycle(self, RequestCycle cycle, bint eager)
    cpdef cycle_done(self, RequestCycle cycle)
    cpdef on_parse_error(self, exc, data=*)
    cpdef protocol_switch(self, bytes rest)
    cpdef switch_protocols(self)
    cpdef take_http2_preface(self, data)
    cpdef switch_to_http2(self, bytes early_bytes)
    cpdef hand_over(self, protocol, bytes early_bytes)
    cpdef refuse(self, int status)
    cpdef drop_parsing(self)
    cpdef check_deadline(self, double now)
    cpdef shutdown(self)
    cpdef close(self, bint linger=*)
    cpdef send_error(self, int status, RequestCycle cycle=*)
    cpdef log_unparsed(self, int status, Py_ssize_t size)
    cpdef write(self, data)
    cpdef writelines(self, list parts)
    cpdef hold(self, list parts, Py_ssize_t limit)
    cpdef flush(self)


cdef class RequestCycle(app_cycle.AppCycle):
    cdef public HTTP1Protocol conn
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

    cpdef setup(self, HTTP1Protocol conn, dict scope, bint http11, bint keep_alive, bint expect_continue,
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
