# cython: language_level=3
"""The compiled HTTP/2 engine: a thin binding to libnghttp2 (framing, HPACK, flow control).

It offers what fastserve.protocols.http2_h2.H2Engine offers (the same methods,
the same events), so that the stream layer (fastserve.protocols.http2) and the
tests serve both alike; docs/architecture.md has the table. libnghttp2 calls
back while it reads; the callbacks only collect events, which ``feed`` returns.
"""

from libc.stdint cimport int32_t, uint8_t, uint32_t
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc

from fastserve.protocols import http2_h2
from fastserve.protocols.http2_h2 import (
    CONTINUATION_FRAME,
    DATA,
    END,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    HEADERS,
    HEADERS_FRAME,
    NO_ERROR,
    PING_ACK,
    PROTOCOL_ERROR,
    RESET,
    WINDOW,
    ConnectionError_,
    HeaderBlockMeter,
)


cdef extern from "nghttp2/nghttp2.h":
    ctypedef struct nghttp2_session:
        pass
    ctypedef struct nghttp2_session_callbacks:
        pass
    ctypedef struct nghttp2_option:
        pass
    ctypedef struct nghttp2_stream:
        pass

    ctypedef struct nghttp2_frame_hd:
        size_t length
        int32_t stream_id
        uint8_t type
        uint8_t flags

    ctypedef enum nghttp2_headers_category:
        NGHTTP2_HCAT_REQUEST
        NGHTTP2_HCAT_HEADERS

    ctypedef struct nghttp2_headers:
        nghttp2_frame_hd hd
        nghttp2_headers_category cat

    ctypedef struct nghttp2_rst_stream:
        nghttp2_frame_hd hd
        uint32_t error_code

    ctypedef struct nghttp2_goaway:
        nghttp2_frame_hd hd
        int32_t last_stream_id
        uint32_t error_code

    ctypedef union nghttp2_frame:
        nghttp2_frame_hd hd
        nghttp2_headers headers
        nghttp2_rst_stream rst_stream
        nghttp2_goaway goaway

    ctypedef struct nghttp2_nv:
        uint8_t *name
        uint8_t *value
        size_t namelen
        size_t valuelen
        uint8_t flags

    ctypedef struct nghttp2_settings_entry:
        int32_t settings_id
        uint32_t value

    ctypedef union nghttp2_data_source:
        int fd
        void *ptr

    ctypedef ssize_t (*nghttp2_data_source_read_callback)(
        nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
        nghttp2_data_source *source, void *user_data) noexcept

    ctypedef struct nghttp2_data_provider:
        nghttp2_data_source source
        nghttp2_data_source_read_callback read_callback

    ctypedef int (*nghttp2_on_begin_headers_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept
    ctypedef int (*nghttp2_on_header_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
        const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) noexcept
    ctypedef int (*nghttp2_on_frame_recv_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept
    ctypedef int (*nghttp2_on_data_chunk_recv_callback)(
        nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
        void *user_data) noexcept
    ctypedef int (*nghttp2_on_begin_frame_callback)(
        nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data) noexcept
    ctypedef int (*nghttp2_on_stream_close_callback)(
        nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) noexcept
    ctypedef int (*nghttp2_on_frame_send_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept

    enum:
        NGHTTP2_FLAG_NONE
        NGHTTP2_FLAG_END_STREAM
        NGHTTP2_FLAG_END_HEADERS
        NGHTTP2_NV_FLAG_NONE
        NGHTTP2_DATA_FLAG_EOF
        NGHTTP2_DATA_FLAG_NO_END_STREAM
        NGHTTP2_ERR_DEFERRED
        NGHTTP2_ERR_CALLBACK_FAILURE
        NGHTTP2_DATA
        NGHTTP2_HEADERS
        NGHTTP2_RST_STREAM
        NGHTTP2_SETTINGS
        NGHTTP2_GOAWAY
        NGHTTP2_WINDOW_UPDATE
        NGHTTP2_PING
        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        NGHTTP2_SETTINGS_MAX_FRAME_SIZE
        NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        NGHTTP2_SETTINGS_ENABLE_PUSH
        NGHTTP2_FLAG_ACK

    int nghttp2_session_callbacks_new(nghttp2_session_callbacks **callbacks_ptr)
    void nghttp2_session_callbacks_del(nghttp2_session_callbacks *callbacks)
    void nghttp2_session_callbacks_set_on_begin_headers_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_begin_headers_callback cb)
    void nghttp2_session_callbacks_set_on_header_callback(nghttp2_session_callbacks *cbs, nghttp2_on_header_callback cb)
    void nghttp2_session_callbacks_set_on_frame_recv_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_frame_recv_callback cb)
    void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_data_chunk_recv_callback cb)
    void nghttp2_session_callbacks_set_on_begin_frame_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_begin_frame_callback cb)
    void nghttp2_session_callbacks_set_on_stream_close_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_stream_close_callback cb)
    void nghttp2_session_callbacks_set_on_frame_send_callback(
        nghttp2_session_callbacks *cbs, nghttp2_on_frame_send_callback cb)

    int nghttp2_option_new(nghttp2_option **option_ptr)
    void nghttp2_option_del(nghttp2_option *option)
    void nghttp2_option_set_no_auto_window_update(nghttp2_option *option, int val)

    int nghttp2_session_server_new2(
        nghttp2_session **session_ptr, const nghttp2_session_callbacks *callbacks, void *user_data,
        const nghttp2_option *option)
    void nghttp2_session_del(nghttp2_session *session)
    ssize_t nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *data, size_t length)
    ssize_t nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr)
    int nghttp2_session_want_read(nghttp2_session *session)
    int nghttp2_session_want_write(nghttp2_session *session)
    int nghttp2_submit_settings(
        nghttp2_session *session, uint8_t flags, const nghttp2_settings_entry *iv, size_t niv)
    int nghttp2_session_set_local_window_size(
        nghttp2_session *session, uint8_t flags, int32_t stream_id, int32_t window_size)
    int nghttp2_session_upgrade2(
        nghttp2_session *session, const uint8_t *settings_payload, size_t settings_payloadlen, int head_request,
        void *stream_user_data)
    int nghttp2_submit_response(
        nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen,
        const nghttp2_data_provider *data_prd)
    int32_t nghttp2_submit_headers(
        nghttp2_session *session, uint8_t flags, int32_t stream_id, const void *pri_spec, const nghttp2_nv *nva,
        size_t nvlen, void *stream_user_data)
    int nghttp2_submit_trailer(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen)
    int nghttp2_submit_ping(nghttp2_session *session, uint8_t flags, const uint8_t *opaque_data)
    int nghttp2_submit_rst_stream(nghttp2_session *session, uint8_t flags, int32_t stream_id, uint32_t error_code)
    int nghttp2_submit_goaway(
        nghttp2_session *session, uint8_t flags, int32_t last_stream_id, uint32_t error_code,
        const uint8_t *opaque_data, size_t opaque_data_len)
    int nghttp2_session_terminate_session(nghttp2_session *session, uint32_t error_code)
    int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *session)
    int nghttp2_session_consume(nghttp2_session *session, int32_t stream_id, size_t size)
    int32_t nghttp2_session_get_stream_remote_window_size(nghttp2_session *session, int32_t stream_id)
    int32_t nghttp2_session_get_remote_window_size(nghttp2_session *session)
    uint32_t nghttp2_session_get_remote_settings(nghttp2_session *session, int id)
    int nghttp2_session_resume_data(nghttp2_session *session, int32_t stream_id)
    int nghttp2_session_get_stream_remote_close(nghttp2_session *session, int32_t stream_id)
    nghttp2_stream *nghttp2_session_find_stream(nghttp2_session *session, int32_t stream_id)
    const char *nghttp2_strerror(int lib_error_code)


cdef class Outbound:
    """A response body on its way: what the app sent and nghttp2 has not framed yet."""

    cdef bytearray buffer
    cdef bint ended
    cdef list trailers  # (fields, to go after the body) or None

    def __cinit__(self):
        self.buffer = bytearray()
        self.ended = False
        self.trailers = None


cdef class NGHTTP2Engine:
    """One server-side HTTP/2 connection's framing, on libnghttp2."""

    name = "nghttp2"

    cdef nghttp2_session *session
    cdef list events
    cdef dict headers_in  # stream id -> the fields of a header block being received
    cdef dict outbound  # stream id -> Outbound
    cdef Py_ssize_t header_list  # decoded bytes of the header block being received
    cdef Py_ssize_t max_header_list
    cdef object meter  # HeaderBlockMeter: header blocks' size on the wire
    cdef object settings
    cdef public bint goaway_sent
    cdef object failure  # what a callback raised, re-raised by feed
    cdef set reset_when_sent  # streams to reset (NO_ERROR) once their response has left: see reset
    cdef int32_t highest_stream  # the highest stream id a client's HEADERS has named
    cdef dict recently_closed  # the last RECENTLY_CLOSED streams closed (ids, oldest first): see on_begin_frame

    def __cinit__(self, settings):
        cdef nghttp2_session_callbacks *callbacks
        cdef nghttp2_option *option
        self.session = NULL
        if nghttp2_session_callbacks_new(&callbacks) != 0:
            raise MemoryError()
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close)
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send)
        if nghttp2_option_new(&option) != 0:
            nghttp2_session_callbacks_del(callbacks)
            raise MemoryError()
        # The window reopens only for what the app has read (see consumed).
        nghttp2_option_set_no_auto_window_update(option, 1)
        result = nghttp2_session_server_new2(&self.session, callbacks, <void *>self, option)
        nghttp2_option_del(option)
        nghttp2_session_callbacks_del(callbacks)
        if result != 0:
            raise MemoryError()

    def __init__(self, settings):
        self.settings = settings
        self.events = []
        self.headers_in = {}
        self.outbound = {}
        self.header_list = 0
        self.max_header_list = settings.max_header_list_size
        self.meter = HeaderBlockMeter(settings)
        self.goaway_sent = False
        self.failure = None
        self.reset_when_sent = set()
        self.highest_stream = 0
        self.recently_closed = {}

    def __dealloc__(self):
        if self.session is not NULL:
            nghttp2_session_del(self.session)

    def start(self):
        """The server's preface (its SETTINGS), and the connection's receive window opened."""
        cdef nghttp2_settings_entry entries[5]
        settings = self.settings
        entries[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        entries[0].value = settings.max_concurrent_streams
        entries[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        entries[1].value = settings.initial_window_size
        entries[2].settings_id = NGHTTP2_SETTINGS_MAX_FRAME_SIZE
        entries[2].value = settings.max_frame_size
        entries[3].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        entries[3].value = settings.max_header_list_size
        entries[4].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH
        entries[4].value = 0
        check(nghttp2_submit_settings(self.session, NGHTTP2_FLAG_NONE, entries, 5))
        check(nghttp2_session_set_local_window_size(
            self.session, NGHTTP2_FLAG_NONE, 0, settings.connection_window_size))

    def start_upgraded(self, settings):
        """As start, after an h2c upgrade: the client's HTTP2-Settings taken, its request on stream 1."""
        import base64

        payload = base64.urlsafe_b64decode(settings + b"=" * (-len(settings) % 4))
        check(nghttp2_session_upgrade2(self.session, payload, len(payload), 0, NULL))
        self.start()

    def feed(self, data):
        """The events ``data`` completes; ConnectionError_ if it breaks the protocol."""
        cdef const uint8_t[:] view = data
        cdef ssize_t result
        self.events = []
        if len(view):
            result = nghttp2_session_mem_recv(self.session, &view[0], len(view))
        else:
            result = 0
        if self.failure is not None:
            failure, self.failure = self.failure, None
            if isinstance(failure, ConnectionError_):
                self.goaway(failure.error_code)
            raise failure
        if result < 0:
            nghttp2_session_terminate_session(self.session, PROTOCOL_ERROR)
            self.goaway_sent = True
            raise ConnectionError_(nghttp2_strerror(<int>result).decode())
        events, self.events = self.events, []
        return events

    def finished(self):
        """Whether the connection is over for the engine (nothing more to read or to send)."""
        return not nghttp2_session_want_read(self.session) and not nghttp2_session_want_write(self.session)

    def output(self):
        """Frames queued since the last call."""
        cdef const uint8_t *data
        cdef ssize_t length
        parts = []
        while True:
            length = nghttp2_session_mem_send(self.session, &data)
            if length <= 0:
                break
            parts.append(PyBytes_FromStringAndSize(<const char *>data, length))
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        return b"".join(parts)

    def send_headers(self, int32_t stream_id, list headers, bint end_stream):
        """A response head, a 1xx (its :status says so), or, after the body, trailers."""
        cdef Outbound out = self.outbound.get(stream_id)
        cdef nghttp2_data_provider provider
        fields = FieldList(headers)
        if headers[0][0] == b":status" and headers[0][1][:1] == b"1":
            check(nghttp2_submit_headers(self.session, NGHTTP2_FLAG_NONE, stream_id, NULL, fields.nva, fields.count, NULL))
        elif out is not None:
            out.trailers = headers
            out.ended = True
            nghttp2_session_resume_data(self.session, stream_id)
        elif end_stream:
            check(nghttp2_submit_response(self.session, stream_id, fields.nva, fields.count, NULL))
        else:
            out = Outbound()
            self.outbound[stream_id] = out
            provider.source.ptr = <void *>out
            provider.read_callback = read_body
            check(nghttp2_submit_response(self.session, stream_id, fields.nva, fields.count, &provider))

    def send_data(self, int32_t stream_id, data, bint end_stream):
        cdef Outbound out = self.outbound.get(stream_id)
        if out is None:
            return
        out.buffer += data
        if end_stream:
            out.ended = True
        nghttp2_session_resume_data(self.session, stream_id)

    def window(self, int32_t stream_id):
        """How many body bytes the stream may send now: its window and the connection's, less what waits."""
        cdef Outbound out = self.outbound.get(stream_id)
        stream_window = nghttp2_session_get_stream_remote_window_size(self.session, stream_id)
        if stream_window < 0:
            return 0
        window = min(stream_window, nghttp2_session_get_remote_window_size(self.session))
        if out is not None:
            window -= len(out.buffer)
        return max(0, min(window, <int>nghttp2_session_get_remote_settings(self.session, NGHTTP2_SETTINGS_MAX_FRAME_SIZE)))

    def consumed(self, int32_t stream_id, Py_ssize_t length):
        """The app took ``length`` bytes: the client may send more (WINDOW_UPDATE as nghttp2 sees fit)."""
        if length:
            nghttp2_session_consume(self.session, stream_id, length)

    def ping(self, bytes payload not None):
        """A PING (8 bytes of ``payload``) the client is to answer."""
        if len(payload) != 8:
            raise ValueError("a PING carries 8 bytes")
        check(nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, <const uint8_t *><const char *>payload))

    def reset(self, int32_t stream_id, uint32_t error_code):
        """RST_STREAM. With an error, at once: what waits to be sent goes (see on_stream_close).

        NO_ERROR follows a complete response the client is still sending a
        request body for (RFC 9113 8.1): libnghttp2 sends a RST_STREAM before
        the frames of a response queued with it, and drops them with the
        stream, so it is submitted once the response's last frame has left.
        """
        if error_code == NO_ERROR:
            self.reset_when_sent.add(stream_id)
        else:
            nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, stream_id, error_code)

    def goaway(self, uint32_t error_code=NO_ERROR):
        """GOAWAY naming the last stream the server has seen: later ones are not served."""
        self.goaway_sent = True
        if error_code != NO_ERROR:
            nghttp2_session_terminate_session(self.session, error_code)
        else:
            nghttp2_submit_goaway(
                self.session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(self.session), error_code,
                NULL, 0)


cdef class FieldList:
    """Header fields as the nghttp2_nv array nghttp2 copies from (the bytes are kept alive meanwhile)."""

    cdef nghttp2_nv *nva
    cdef Py_ssize_t count
    cdef list keep

    def __cinit__(self, list headers):
        self.nva = <nghttp2_nv *>PyMem_Malloc(max(1, len(headers)) * sizeof(nghttp2_nv))
        if self.nva is NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.nva)

    def __init__(self, list headers):
        self.keep = headers
        self.count = 0
        for name, value in headers:
            self.nva[self.count].name = <uint8_t *><char *>name
            self.nva[self.count].namelen = len(name)
            self.nva[self.count].value = <uint8_t *><char *>value
            self.nva[self.count].valuelen = len(value)
            self.nva[self.count].flags = NGHTTP2_NV_FLAG_NONE
            self.count += 1


cdef inline void check(int result) except *:
    if result < 0:
        raise RuntimeError(nghttp2_strerror(result).decode())


# Callbacks: they only collect events (see feed). Nothing may raise through
# libnghttp2's C frames: what a callback raises is kept, the callback fails,
# and feed or output raise it.

# How many closed streams the engine remembers as closed, not unknown (h2 remembers more; any bound will do).
cdef Py_ssize_t RECENTLY_CLOSED = 1024


cdef int failed(NGHTTP2Engine engine, exc) noexcept:
    engine.failure = exc
    return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    if hd.type == HEADERS_FRAME or hd.type == CONTINUATION_FRAME:
        try:
            engine.meter.frame(hd.type, hd.flags, hd.length)
            if hd.type == HEADERS_FRAME and hd.stream_id & 1:
                if hd.stream_id > engine.highest_stream:
                    engine.highest_stream = hd.stream_id
                elif (
                    nghttp2_session_find_stream(session, hd.stream_id) == NULL
                    and hd.stream_id not in engine.recently_closed
                ):
                    # A stream id lower than one already used, on no stream there was
                    # (or one closed long ago): RFC 9113 5.1.1 wants a connection error,
                    # which libnghttp2 leaves out (it ignores the frame). h2 does the same
                    # with the streams it remembers closing.
                    return failed(engine, ConnectionError_(
                        f"HEADERS on stream {hd.stream_id}, lower than stream {engine.highest_stream}",
                        PROTOCOL_ERROR))
        except BaseException as exc:
            return failed(engine, exc)
    return 0


cdef int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    try:
        engine.headers_in[frame.hd.stream_id] = []
        engine.header_list = 0
    except BaseException as exc:
        return failed(engine, exc)
    return 0


cdef int on_header(
    nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
    const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data
) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    try:
        # The decoded list is what --h2-max-header-list-size bounds (an HPACK bomb is small on the wire).
        engine.header_list += namelen + valuelen + 32
        if engine.header_list > engine.max_header_list:
            return failed(engine, ConnectionError_("header list too large"))
        fields = engine.headers_in.get(frame.hd.stream_id)
        if fields is not None:
            fields.append((PyBytes_FromStringAndSize(<const char *>name, namelen),
                           PyBytes_FromStringAndSize(<const char *>value, valuelen)))
    except BaseException as exc:
        return failed(engine, exc)
    return 0


cdef int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    cdef int32_t stream_id = frame.hd.stream_id
    cdef uint8_t kind = frame.hd.type
    cdef bint ended = frame.hd.flags & NGHTTP2_FLAG_END_STREAM
    try:
        if kind == NGHTTP2_HEADERS:
            fields = engine.headers_in.pop(stream_id, None)
            if frame.headers.cat == NGHTTP2_HCAT_REQUEST and fields is not None:
                engine.events.append((HEADERS, stream_id, fields, ended))
            elif ended:
                engine.events.append((END, stream_id))
        elif kind == NGHTTP2_DATA:
            if frame.hd.length == 0 and not ended:
                engine.events.append((DATA, stream_id, b"", 0, False))  # (empty: the stream layer counts them)
            elif ended:
                engine.events.append((END, stream_id))
        elif kind == NGHTTP2_RST_STREAM:
            engine.events.append((RESET, stream_id, frame.rst_stream.error_code))
        elif kind == NGHTTP2_WINDOW_UPDATE:
            engine.events.append((WINDOW, stream_id))
        elif kind == NGHTTP2_SETTINGS and not (frame.hd.flags & NGHTTP2_FLAG_ACK):
            engine.events.append((WINDOW, 0))
        elif kind == NGHTTP2_GOAWAY:
            engine.events.append((GOAWAY, frame.goaway.last_stream_id))
        elif kind == NGHTTP2_PING and frame.hd.flags & NGHTTP2_FLAG_ACK:
            engine.events.append((PING_ACK, 0))
    except BaseException as exc:
        return failed(engine, exc)
    return 0


cdef int on_data_chunk_recv(
    nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t length, void *user_data
) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    try:
        engine.events.append((DATA, stream_id, PyBytes_FromStringAndSize(<const char *>data, length), length, False))
    except BaseException as exc:
        return failed(engine, exc)
    return 0


cdef int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    try:
        engine.outbound.pop(stream_id, None)
        engine.reset_when_sent.discard(stream_id)
        # A late frame on a stream just closed (trailers crossing our RST_STREAM) is no error.
        engine.recently_closed[stream_id] = None
        if len(engine.recently_closed) > RECENTLY_CLOSED:
            del engine.recently_closed[next(iter(engine.recently_closed))]
    except BaseException as exc:
        return failed(engine, exc)
    return 0


cdef int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    cdef int32_t stream_id = frame.hd.stream_id
    if frame.hd.flags & NGHTTP2_FLAG_END_STREAM and engine.reset_when_sent and stream_id in engine.reset_when_sent:
        engine.reset_when_sent.discard(stream_id)
        if not nghttp2_session_get_stream_remote_close(session, stream_id):  # (still sending its body)
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NO_ERROR)
    return 0


cdef ssize_t read_body(
    nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
    nghttp2_data_source *source, void *user_data
) noexcept:
    cdef NGHTTP2Engine engine = <NGHTTP2Engine>user_data
    cdef Outbound out = <Outbound>source.ptr
    cdef Py_ssize_t size
    cdef FieldList fields
    try:
        size = min(<Py_ssize_t>length, len(out.buffer))
        if size:
            memcpy(buf, <char *>out.buffer, size)
            del out.buffer[:size]
        if not out.buffer:
            if not out.ended:
                return size if size else NGHTTP2_ERR_DEFERRED
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF
            if out.trailers is not None:
                data_flags[0] |= NGHTTP2_DATA_FLAG_NO_END_STREAM
                fields = FieldList(out.trailers)
                nghttp2_submit_trailer(session, stream_id, fields.nva, fields.count)
        return size
    except BaseException as exc:
        return failed(engine, exc)
