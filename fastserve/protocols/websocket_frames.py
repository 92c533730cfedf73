"""WebSocket frames (RFC 6455): fastserve's own codec.

``FrameReader`` takes the bytes a client sends and returns what they complete:
whole messages (text as ``str``, binary as ``bytes``) and control frames.
``build_frame`` and ``close_payload`` make what the server sends. Every rule
of the RFC that a server must check is checked here, as soon as the bytes that
break it arrive: a frame's size against the message limit from its header,
before its payload is buffered; UTF-8 as the bytes arrive, so that invalid
text fails at the first bad read, even inside a frame that has not all come.

This module is compiled by Cython the way ``http1.py`` is, into
``fastserve._speedups.websocket_frames`` with the C types of
``fastserve/_speedups/websocket_frames.pxd``; ``websocket_codec`` picks the
twin in use. The one place the two differ is unmasking: compiled, eight bytes
at a time with C integers (``unmask_words``); as Python, one big-integer XOR.
"""

import codecs
import struct

try:
    import cython

    COMPILED = cython.compiled
except ImportError:  # installed without Cython: its names are used only by the compiled twin
    COMPILED = False

from fastserve.protocols.websocket_deflate import MessageTooBig

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))

# Close codes (RFC 6455 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
# The codes a peer may send in a close frame: the registered ones that are
# not reserved for local use, and the ranges for libraries and applications.
SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
MAX_CONTROL_PAYLOAD = 125
# A close reason fits in a control frame after its two-byte code.
MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2
# What each continuation frame costs a message against the size limit, beside
# its payload: the smallest header a client frame has. A run of empty
# fragments, which would cost the server work and never count otherwise, ends
# with 1009 once it has cost the limit; a legal message in small fragments (a
# 4 MiB message in 64-byte ones: 6 %) is delivered, as by every peer.
FRAGMENT_COST = 6
# A frame whose payload is at least this big and has not all come is read
# straight into a buffer of its size (see FrameReader.payload_view), not
# gathered read by read.
LARGE_PAYLOAD = 64 * 1024
# The largest payload buffer kept for reuse (see FrameReader.finish_large).
MAX_SPARE_PAYLOAD = 16 * 1024 * 1024


class WebSocketError(Exception):
    """The peer broke the protocol: the connection closes with ``code``."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def unmask(payload, mask):
    """``payload`` XOR the four-byte ``mask`` repeated."""
    return unmask_at(payload, 0, len(payload), mask)


def unmask_at(data, start, size, mask):
    """``data[start:start + size]`` XOR the four-byte ``mask`` repeated."""
    if not size:
        return b""
    if COMPILED and size > 1:
        out = bytes(size)  # (a new object, written before anyone sees it)
        unmask_words(data, start, size, mask + mask, out)
        return out
    key = (mask * (size // 4 + 1))[:size]
    payload = data[start : start + size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


def unmask_in_place(payload, mask):
    """A bytearray's bytes XOR ``mask``: in place when compiled (returning it), else as new bytes."""
    if COMPILED:
        unmask_words(payload, 0, len(payload), mask + mask, payload)
        return payload
    return unmask(bytes(payload), mask)


def unmask_words(data, start, size, mask8, out):
    """(Compiled only: C pointers.) ``out`` = unmask_at's bytes, eight at a time (``mask8`` is the mask twice).

    x86-64 and arm64 load unaligned words; the mask is read once as a word.
    ``out`` may be ``data`` itself (with ``start`` 0).
    """
    source = data
    source += start
    target = out
    key_bytes = mask8
    key = cython.cast(cython.pointer(cython.ulonglong), key_bytes)[0]
    words = size // 8
    for index in range(words):
        cython.cast(cython.pointer(cython.ulonglong), target)[index] = (
            cython.cast(cython.pointer(cython.ulonglong), source)[index] ^ key
        )
    for index in range(words * 8, size):
        target[index] = source[index] ^ key_bytes[index % 4]


def parse_close(payload):
    """(code, reason) of a close frame's payload; a WebSocketError if it is not a valid one."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Close frame with a one-byte payload")
    # (The reason first, as the websockets library checks it: a payload wrong both ways gets 1007 from both.)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketError(CLOSE_INVALID_DATA, "Close reason is not UTF-8") from None
    code = (payload[0] << 8) | payload[1]
    if not sendable_close_code(code):
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"Invalid close code {code}")
    return code, reason


def sendable_close_code(code):
    """Whether a close frame may carry ``code`` (RFC 6455 7.4)."""
    return code in SENDABLE_CLOSE_CODES or 3000 <= code <= 4999


def close_payload(code, reason=""):
    """A close frame's payload: the code, and the reason cut to 123 bytes on a character boundary."""
    encoded = reason.encode("utf-8")
    if len(encoded) > MAX_CLOSE_REASON:
        encoded = encoded[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack("!H", code) + encoded


def build_frame(opcode, payload, fin=True, rsv1=False):
    """A server frame (never masked) carrying ``payload``."""
    return frame_header(opcode, len(payload), fin, rsv1) + payload


def frame_header(opcode, size, fin=True, rsv1=False):
    """The header of a server frame of ``size`` payload bytes."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if size < 126:
        return struct.pack("!BB", first, size)
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size)
    return struct.pack("!BBQ", first, 127, size)


def check_start(first, second):
    """The first two bytes of a frame: a known opcode, and the mask bit a client must set."""
    opcode = first & 0x0F
    if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"Unknown opcode {opcode}")
    if not second & 0x80:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Client frame not masked")


class FrameReader:
    """Client frames in, complete messages and control frames out.

    ``feed(data)`` returns a list of events, in order:
    ``("text", str)``, ``("bytes", bytes)``, ``("ping", bytes)``,
    ``("pong", bytes)``, ``("close", code, reason)``, and last, when the
    client broke the protocol, ``("error", code, reason)``: the close code to
    answer with. Nothing is read after a close or an error.
    ``max_size`` bounds a message (all its fragments together), checked from
    each frame header before the payload is kept.
    """

    def __init__(self, max_size, deflate=None, spare=None):
        self.max_size = max_size
        # A one-slot list the readers of one server share (one event loop: no locking): a
        # large payload's buffer, kept for the next large frame of the same size, so that
        # a stream of big messages does not allocate (and zero) a buffer for each.
        self.spare = [None] if spare is None else spare
        # The connection's websocket_deflate.PerMessageDeflate, if negotiated.
        self.deflate = deflate
        self.buffer = bytearray()
        # The message being assembled from fragments: its opcode (0: none), its
        # bytes so far (one buffer: what a message holds is what it costs), its
        # size against the limit, and for text the decoder that has checked it.
        self.message_opcode = 0
        self.message_compressed = False
        self.assembled = None
        self.message_size = 0
        self.decoder = None
        # The UTF-8 check of a text frame whose payload has partly come: its
        # decoder and how many payload bytes it has checked (see check_partial).
        self.partial_decoder = None
        self.partial_checked = 0
        self.closed = False
        # A large frame's payload being read into its own buffer (see LARGE_PAYLOAD):
        # the buffer, how much of it has come, the frame's first byte, opcode and mask.
        self.large = None
        self.large_filled = 0
        self.large_first = 0
        self.large_opcode = 0
        self.large_mask = b""

    def feed(self, data):
        events = []
        if self.closed:
            return events  # (after a close frame nothing more is read, RFC 6455 5.5.1)
        try:
            if self.large is not None:
                data = self.fill_large(data, events)
            if data:
                self.parse(data, events)
        except WebSocketError as exc:
            self.closed = True
            self.buffer = bytearray()
            self.large = None
            events.append(("error", exc.code, exc.reason))
        return events

    def payload_view(self):
        """Where the next read may go: the rest of a large payload's buffer (None when there is none)."""
        if self.large is None:
            return None
        return memoryview(self.large)[self.large_filled :]

    def payload_received(self, size):
        """``size`` bytes were read into ``payload_view()``: the events they complete."""
        events = []
        self.large_filled += size
        try:
            if self.large_filled == len(self.large):
                self.finish_large(events)
            else:
                large = self.large
                self.check_partial(large, 0, self.large_filled, self.large_first, self.large_opcode, self.large_mask)
        except WebSocketError as exc:
            self.closed = True
            self.large = None
            events.append(("error", exc.code, exc.reason))
        return events

    def fill_large(self, data, events):
        """Copy the large payload's next bytes from ``data``; returns what is left of ``data``."""
        large = self.large
        wanted = len(large) - self.large_filled
        taken = min(wanted, len(data))
        large[self.large_filled : self.large_filled + taken] = data[:taken]
        self.large_filled += taken
        if taken == wanted:
            self.finish_large(events)
        else:
            self.check_partial(large, 0, self.large_filled, self.large_first, self.large_opcode, self.large_mask)
        return data[taken:]

    def payload_buffer(self, length):
        spare = self.spare[0]
        if spare is not None and len(spare) == length:
            self.spare[0] = None
            return spare
        return bytearray(length)

    def finish_large(self, events):
        large = self.large
        payload = unmask_in_place(large, self.large_mask)
        self.large = None
        self.take_frame(self.large_first, self.large_opcode, payload, events)
        # The buffer is free once nothing holds it: text was decoded from it, a
        # compressed payload inflated, a whole binary message made into bytes.
        # Only an unfinished message keeps it, as the start of what it assembles.
        kept = self.assembled is large
        if not kept and len(large) <= MAX_SPARE_PAYLOAD:
            self.spare[0] = large

    def parse(self, data, events):
        """Add to ``events`` what ``data`` completes."""
        buffer = self.buffer
        buffer += data
        position = 0
        available = len(buffer)
        while available - position >= 2:
            first = buffer[position]
            second = buffer[position + 1]
            check_start(first, second)
            length = second & 0x7F
            mask_start = position + 2
            if length == 126:
                mask_start += 2
            elif length == 127:
                mask_start += 8
            if available < mask_start:
                break
            if length == 126:
                length = (buffer[position + 2] << 8) | buffer[position + 3]
            elif length == 127:
                length = int.from_bytes(buffer[position + 2 : mask_start], "big")
            # The length is known: the frame is checked before any of its payload is kept.
            opcode = self.check_header(first, length)
            end = mask_start + 4 + length
            if available < end:
                if available < mask_start + 4:
                    break
                mask = bytes(buffer[mask_start : mask_start + 4])
                if length >= LARGE_PAYLOAD:
                    # The rest of this payload goes straight into a buffer of its size.
                    self.large = self.payload_buffer(length)
                    self.large[: available - mask_start - 4] = buffer[mask_start + 4 : available]
                    self.large_filled = available - mask_start - 4
                    self.large_first = first
                    self.large_opcode = opcode
                    self.large_mask = mask
                    position = available
                    self.check_partial(self.large, 0, self.large_filled, first, opcode, mask)
                elif available > mask_start + 4:
                    self.check_partial(buffer, mask_start + 4, available - mask_start - 4, first, opcode, mask)
                break
            mask = bytes(buffer[mask_start : mask_start + 4])
            payload = unmask_at(buffer, mask_start + 4, end - mask_start - 4, mask)
            position = end
            self.take_frame(first, opcode, payload, events)
            if self.closed:
                break
        del buffer[:position]

    def check_header(self, first, length):
        """The frame's opcode, once its whole header holds together (see check_start); else a WebSocketError.

        The checks come in the order the websockets library makes them, so
        that a frame broken in two ways gets the same close code from both
        (the differential fuzzer holds them to it): the size (for any frame:
        what the message holds so far counts), then the rest.
        """
        opcode = first & 0x0F
        room = self.max_size - self.message_size
        if opcode == OP_CONTINUATION:
            room -= FRAGMENT_COST
        if room < 0 or length > room:  # (not a sum: a 64-bit length would wrap in C)
            raise WebSocketError(CLOSE_TOO_BIG, "Message over the size limit")
        if length >> 63:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Payload length with its top bit set")
        if first & 0x70 and not (
            # RSV1 marks a compressed message, on its first frame, once permessage-deflate is agreed.
            first & 0x70 == 0x40 and self.deflate is not None and (opcode == OP_TEXT or opcode == OP_BINARY)
        ):
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Reserved bits set")
        if opcode in CONTROL_OPCODES:
            if not first & 0x80:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Control frame payload over 125 bytes")
            return opcode
        if opcode == OP_CONTINUATION:
            if not self.message_opcode:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Continuation frame without a message")
        elif self.message_opcode:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "New message before the last one ended")
        return opcode

    def check_partial(self, source, start, count, first, opcode, mask):
        """A text frame's first ``count`` payload bytes (masked, at ``source[start:]``) have come: check their UTF-8.

        Invalid text then fails at the read that brought it, not when the
        frame completes (Autobahn 6.4.3/6.4.4). Only the bytes not yet checked
        are unmasked and decoded; the decoder continues from the message's.
        """
        if opcode == OP_CONTINUATION:
            if self.message_opcode != OP_TEXT or self.message_compressed:
                return
        elif opcode != OP_TEXT or first & 0x40:
            return
        checked = self.partial_checked
        if count <= checked:
            return
        if self.partial_decoder is None:
            self.partial_decoder = codecs.getincrementaldecoder("utf-8")()
            if opcode == OP_CONTINUATION:
                self.partial_decoder.setstate(self.decoder.getstate())
        turn = checked & 3  # (the mask continues where the checked bytes ended)
        piece = unmask_at(source, start + checked, count - checked, mask[turn:] + mask[:turn])
        self.partial_checked = count
        try:
            self.partial_decoder.decode(piece)
        except UnicodeDecodeError:
            raise WebSocketError(CLOSE_INVALID_DATA, "Text message is not UTF-8") from None

    def take_frame(self, first, opcode, payload, events):
        fin = first & 0x80
        self.partial_decoder = None
        self.partial_checked = 0
        if opcode >= OP_CLOSE:
            if opcode == OP_CLOSE:
                code, reason = parse_close(payload)
                # A close between a message's fragments (the RFC lets control
                # frames in there) ends the connection; the unfinished message
                # is dropped, as wsproto and Autobahn 7.1.5 have it.
                self.closed = True
                self.end_message()
                events.append(("close", code, reason))
            elif opcode == OP_PING:
                events.append(("ping", payload))
            else:
                events.append(("pong", payload))
            return
        if opcode != OP_CONTINUATION:
            self.message_opcode = opcode
            self.message_compressed = bool(first & 0x40)
            if self.message_compressed:
                payload = self.inflate(payload, fin)
            if fin:  # a whole message in one frame: the common case, no assembling
                self.message_opcode = 0
                self.message_compressed = False
                if opcode == OP_TEXT:
                    # (The incremental decoder is some twenty times slower on a
                    # bytearray, which a large payload is: see payload_view.)
                    try:
                        events.append(("text", payload.decode("utf-8")))
                    except UnicodeDecodeError:
                        raise WebSocketError(CLOSE_INVALID_DATA, "Text message is not UTF-8") from None
                else:
                    events.append(("bytes", bytes(payload)))
                return
            if opcode == OP_TEXT:
                self.decoder = codecs.getincrementaldecoder("utf-8")()
            # The first fragment starts the message's buffer (a large payload's
            # own buffer is taken as it is).
            self.assembled = payload if type(payload) is bytearray else bytearray(payload)
            self.message_size = len(payload)
        else:
            if self.message_compressed:
                payload = self.inflate(payload, fin)
            self.assembled += payload
            self.message_size += len(payload) + FRAGMENT_COST
        if self.message_opcode == OP_TEXT:
            try:
                # Fails at the first invalid byte; a character cut at the end of a fragment waits.
                self.decoder.decode(bytes(payload), final=bool(fin))
            except UnicodeDecodeError:
                raise WebSocketError(CLOSE_INVALID_DATA, "Text message is not UTF-8") from None
        if not fin:
            return
        if self.message_opcode == OP_TEXT:
            events.append(("text", self.assembled.decode("utf-8")))  # (checked above)
        else:
            events.append(("bytes", bytes(self.assembled)))
        self.end_message()

    def end_message(self):
        self.message_opcode = 0
        self.message_compressed = False
        self.assembled = None
        self.message_size = 0
        self.decoder = None

    def inflate(self, payload, fin):
        """A compressed message's fragment, inflated within what the message may still hold."""
        try:
            return self.deflate.inflate(payload, bool(fin), self.max_size - self.message_size)
        except MessageTooBig:
            raise WebSocketError(CLOSE_TOO_BIG, "Message over the size limit once inflated") from None
        except ValueError:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "Invalid compressed data") from None
