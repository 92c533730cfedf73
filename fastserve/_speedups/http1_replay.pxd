# Type declarations that make fastserve/protocols/http1_replay.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.http1_replay (an
# augmenting .pxd, like http1.pxd): the connection's calls here are C calls,
# and these functions read the connection's fields from its C struct.

from fastserve._speedups cimport http1
from fastserve._speedups.http1_cycle cimport RequestCycle

cdef Py_ssize_t REPLAY_LIMIT

cpdef Py_ssize_t head_bytes_begun(
    http1.HTTP1Protocol conn, data, RequestCycle continuing, Py_ssize_t body_left, bint in_head, Py_ssize_t begun
)
cpdef replay_base(
    http1.HTTP1Protocol conn, data, RequestCycle continuing, Py_ssize_t body_left, bint in_head, Py_ssize_t begun
)
cpdef keep_for_replay(http1.HTTP1Protocol conn, base)
cpdef parse_extension_method(http1.HTTP1Protocol conn, base)
cpdef resume_fast_parsing(http1.HTTP1Protocol conn, rest)
cpdef parse_fast(http1.HTTP1Protocol conn, data)
cpdef park(http1.HTTP1Protocol conn, stop, base)
