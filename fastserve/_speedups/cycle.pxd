# Type declarations that make fastserve/protocols/cycle.py a typed Cython
# module when setup.py compiles it as fastserve._speedups.cycle (an augmenting
# .pxd, like http1.pxd). The compiled protocols cimport AppCycle as their base
# (``from fastserve._speedups cimport cycle``; their .py imports the Python
# module under the same name, numpy's idiom), so its methods are vtable calls.

from fastserve._speedups.state cimport ServerState

cdef str TASK_NAME
cdef bint EAGER_TASKS


cdef class AppCycle:
    cdef public ServerState state
    cdef public dict scope
    cdef public object task
    cdef public bint running
    cdef public bint started
    cdef public bint complete
    cdef public double started_at

    cpdef bint start_app(self, bint eager, bint plain_tasks, str name=*)
    cpdef app_raised(self, exc)
    cpdef app_returned(self)
    cpdef app_done(self)
    cpdef bint client_gone(self)
    cpdef abort(self, int status)
