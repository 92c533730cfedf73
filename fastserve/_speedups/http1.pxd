# Type declarations that make fastserve/protocols/http1.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.http1 (an
# "augmenting .pxd": the .py stays runnable Python, this file adds the C types).
# The connection, its request cycle (http1_cycle) and the replay (http1_replay)
# cimport each other: Cython resolves the cycle, and every call between them
# is a C call. Its base, RequestHead (http1_head), holds the head's fields.

cimport cython

from fastserve._speedups.state cimport ServerState
from fastserve._speedups cimport http1_cycle
from fastserve._speedups cimport http1_head
from fastserve._speedups cimport http1_replay
from fastserve._speedups.http1_cycle cimport RequestCycle

# Module globals the hot path reads, typed so that lookups are C calls.
cdef dict ASGI_VERSION
cdef dict RESPONSE_EXTENSIONS_10
cdef dict RESPONSE_EXTENSIONS_11
cdef str TASK_NAME
cdef int FRAGMENT_BYTE
cdef int ESCAPE_BYTE
cdef Py_ssize_t READ_HIGH_WATER
cdef Py_ssize_t READ_LOW_WATER
cdef Py_ssize_t MAX_PIPELINED
cdef Py_ssize_t ZERO_COPY_BODY
cdef double FIRST_REQUEST_GRACE
cdef int NO_DEADLINE
cdef int HEAD_DEADLINE
cdef int BODY_DEADLINE
cdef int IDLE_DEADLINE
cdef int FIRST_REQUEST_DEADLINE
cdef object REFUSED_METHOD
cdef dict UNPARSED_SCOPE


cdef class HTTP1Protocol(http1_head.RequestHead):
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
    cdef public int deadline_for
    cdef public int pending_error
    cdef public list held_output
    cdef public Py_ssize_t held_size
    cdef public object flush_handle
    cdef public bint plain_tasks
    cdef public bint answered
    cdef public dict tls
    cdef public dict extensions_11
    cdef public dict extensions_10
    cdef public tuple proxied
    cdef public Py_ssize_t begun
    cdef public bint replays
    cdef public bytes replay
    cdef public Py_ssize_t replay_begun
    cdef public bytes parked
    cdef public tuple upgrade_to
    cdef public bytes upgrade_bytes
    cdef public bytes preface_bytes
    cdef public bytes error_lines

    @cython.locals(cycle=RequestCycle)
    cpdef feed(self, data)
    @cython.locals(continuing=RequestCycle, body_left=Py_ssize_t, in_head=bint, begun=Py_ssize_t)
    cpdef parse(self, data)
    cpdef set_addresses(self, server, client, str scheme)
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
