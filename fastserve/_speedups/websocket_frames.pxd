# Type declarations that make fastserve/protocols/websocket_frames.py a typed
# Cython module when setup.py compiles it as fastserve._speedups.websocket_frames
# (an augmenting .pxd, like http1.pxd).

cimport cython

cdef frozenset DATA_OPCODES
cdef frozenset CONTROL_OPCODES
cdef frozenset SENDABLE_CLOSE_CODES
cdef int OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
cdef int CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA, CLOSE_TOO_BIG
cdef Py_ssize_t MAX_CONTROL_PAYLOAD
cdef Py_ssize_t LARGE_PAYLOAD
cdef Py_ssize_t MAX_SPARE_PAYLOAD
cdef Py_ssize_t FRAGMENT_COST
cdef bint COMPILED

cpdef bytes unmask(bytes payload, bytes mask)
cpdef bytes unmask_at(data, Py_ssize_t start, Py_ssize_t size, bytes mask)
@cython.locals(
    source="unsigned char *",
    target="unsigned char *",
    key_bytes="unsigned char *",
    key="unsigned long long",
    words=Py_ssize_t,
    index=Py_ssize_t,
)
cdef unmask_words(data, Py_ssize_t start, Py_ssize_t size, bytes mask8, out)
cpdef unmask_in_place(bytearray payload, bytes mask)
cpdef bint sendable_close_code(int code)
cpdef bytes build_frame(int opcode, bytes payload, bint fin=*, bint rsv1=*)
@cython.locals(first=int)
cpdef bytes frame_header(int opcode, Py_ssize_t size, bint fin=*, bint rsv1=*)
@cython.locals(opcode=int)
cpdef check_start(int first, int second)


cdef class FrameReader:
    cdef public Py_ssize_t max_size
    cdef public object deflate
    cdef public bytearray buffer
    cdef public int message_opcode
    cdef public bint message_compressed
    cdef public bytearray assembled
    cdef public Py_ssize_t message_size
    cdef public object decoder
    cdef public object partial_decoder
    cdef public Py_ssize_t partial_checked
    cdef public bint closed
    cdef public bytearray large
    cdef public Py_ssize_t large_filled
    cdef public int large_first
    cdef public int large_opcode
    cdef public bytes large_mask
    cdef public list spare

    cpdef list feed(self, data)
    cpdef payload_view(self)
    cpdef list payload_received(self, Py_ssize_t size)
    @cython.locals(large=bytearray, wanted=Py_ssize_t, taken=Py_ssize_t)
    cpdef fill_large(self, data, list events)
    cpdef bytearray payload_buffer(self, Py_ssize_t length)
    @cython.locals(large=bytearray, kept=bint)
    cpdef finish_large(self, list events)
    @cython.locals(
        buffer=bytearray,
        position=Py_ssize_t,
        available=Py_ssize_t,
        first=int,
        second=int,
        length="unsigned long long",
        mask_start=Py_ssize_t,
        end=Py_ssize_t,
        opcode=int,
        mask=bytes,
    )
    cpdef parse(self, data, list events)
    @cython.locals(opcode=int, room=Py_ssize_t)
    cpdef int check_header(self, int first, unsigned long long length) except -1
    @cython.locals(checked=Py_ssize_t, turn=Py_ssize_t)
    cpdef check_partial(self, source, Py_ssize_t start, Py_ssize_t count, int first, int opcode, bytes mask)
    @cython.locals(fin=bint)
    cpdef take_frame(self, int first, int opcode, payload, list events)
    cdef end_message(self)
    cpdef bytes inflate(self, payload, bint fin)
