# cython: annotation_typing=False
"""What an HTTP/1.1 request head says, and whether it holds together: the parser's field callbacks.

``RequestHead`` is the base of the connection (``http1.HTTP1Protocol``). The
parser hands it the target (``on_url``) and each field (``on_header``); it
notes what the server acts on (framing, Connection, Expect, TE, Upgrade, the
forwarding headers of a trusted proxy) and enforces the limits, and when the
head is in, ``check_head`` rules on it as a whole and sets the body's framing
(``body_left``). Both parsers are held to these rules; the h11 adapter asks
``check_head`` too, so that a head h11 refused gets llhttp's status.

Compiled by Cython in pure-Python mode into ``fastserve._speedups.http1_head``
(``http1_head.pxd``).
"""

from __future__ import annotations

from fastserve.asgi import HEADER_KEYS, is_token, request_header_key
from fastserve.errors import RequestError
from fastserve.protocols.websocket_handshake import names_websocket
from fastserve.proxy import FORWARDING_HEADER_NAMES

# The methods llhttp knows, as the parser gives them and as the scope carries
# them: one lookup decodes them. Any other token is a method too (RFC 9110 9.1);
# llhttp refuses those, and h11 parses that request (see parse_extension_method).
KNOWN_METHODS = {
    method.encode("ascii"): method
    for method in (
        "DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE PATCH QUERY COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
        "SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
        "UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE"
    ).split()
}
MAX_BODY_LEFT = 2**62


def extension_method(method: bytes) -> str:
    """A method that is not one of llhttp's: the scope's string if it is a token, else a 400."""
    if not is_token(method) or method == b"PRI":  # (PRI is the HTTP/2 preface's, RFC 9113 3.4)
        raise RequestError(400, "Invalid method")
    return method.decode("ascii")


class RequestHead:
    """The head of the request being parsed (its fields are reset per request, see reset_request_head)."""

    def reset_request_head(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self.field_bytes = 0
        self.url = b""
        self.headers = []
        self.content_length_count = 0
        self.content_length = b""
        self.host_count = 0
        self.transfer_encoding = None
        self.connection_close = False
        self.connection_keep_alive = False
        self.expect_continue = False
        self.upgrade = False
        self.websocket_upgrade = False
        self.te_trailers = False
        self.forwarding = None
        self.head_error = None

    def release_head(self) -> None:
        """The scope has the head's target and fields: an idle connection does not keep them."""
        self.url = b""
        self.headers = None
        self.forwarding = None

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.state.limit_request_line:
            self.refuse_later(RequestError(414, "Request target too long"))
            return
        self.url += url

    def refuse_later(self, error: RequestError) -> None:
        """Refuse the request once its head is complete (see check_head), unless a syntax error comes first.

        Refusing at once would make the status depend on where reads end: llhttp
        hands a field over only when the next one begins, and a bad byte there
        would win or lose by that. Nothing refused this way is kept meanwhile.
        """
        if self.head_error is None:
            self.head_error = error

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_head:
            return  # a trailer field of a chunked body: ASGI has no place for them
        if len(self.headers) >= self.state.limit_request_fields:
            self.refuse_later(RequestError(431, "Too many request header fields"))
            return
        size = len(name) + len(value)
        if size > self.state.limit_request_field_size:
            self.refuse_later(RequestError(431, "Request header field too large"))
            return
        # The head's size as the fields make it up, for a head that came in one
        # read (feed counts the bytes of one that spans reads).
        self.field_bytes += size + 4
        if self.field_bytes + len(self.url) > self.state.max_head_size:
            self.refuse_later(RequestError(431, "Request header section too large"))
            return
        key = HEADER_KEYS.get(name)
        name = request_header_key(name) if key is None else key
        size = len(value)
        if size and (value[size - 1] == 32 or value[size - 1] == 9):
            # Whitespace around a field value is not part of it (RFC 9112 5);
            # llhttp drops the leading whitespace, not the trailing.
            stripped = value.rstrip(b" \t")
            if name == b"transfer-encoding" and b"\t" in value[len(stripped) :]:
                raise RequestError(400, "Tab after the transfer coding")  # as llhttp refuses it
            value = stripped
        self.headers.append((name, value))
        if name == b"content-length":
            self.content_length_count += 1
            self.content_length = value
            if not value.isdigit():
                raise RequestError(400, "Invalid Content-Length")
        elif name == b"transfer-encoding":
            if self.transfer_encoding is not None:
                raise RequestError(400, "Repeated Transfer-Encoding")
            self.transfer_encoding = value
        elif name == b"host":
            self.host_count += 1
        elif name == b"connection":
            for token in value.lower().split(b","):
                token = token.strip()
                if token == b"close":
                    self.connection_close = True
                elif token == b"keep-alive":
                    self.connection_keep_alive = True
                elif token == b"upgrade":
                    self.upgrade = True
        elif name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_continue = True
            else:
                self.refuse_later(RequestError(417, "Unsupported expectation"))
        elif name == b"te":
            for token in value.lower().split(b","):
                if token.strip() == b"trailers":
                    self.te_trailers = True
        elif name == b"upgrade":
            if names_websocket(value):
                self.websocket_upgrade = True
        elif self.trusted_proxy and name in FORWARDING_HEADER_NAMES:
            if self.forwarding is None:
                self.forwarding = []
            self.forwarding.append((name, value))

    def check_head(self, raw_method: bytes, version: str) -> str:
        """The scope's method once the head as a whole holds together; else a RequestError.

        (The h11 parser also asks this of a head that h11 refused, so that the
        status is the one this protocol would have given on llhttp.)
        """
        method = KNOWN_METHODS.get(raw_method)
        if method is None:
            method = extension_method(raw_method)
        # First what llhttp refuses while it reads the fields, then the version,
        # then what the field checks put off (refuse_later), then the rest.
        if self.content_length_count > 1:
            raise RequestError(400, "Repeated Content-Length")
        if self.transfer_encoding is not None:
            if self.content_length_count:
                raise RequestError(400, "Transfer-Encoding with Content-Length")
            if self.transfer_encoding.strip().lower() != b"chunked":
                raise RequestError(400, "Unsupported Transfer-Encoding")
        if version != "1.1" and version != "1.0":
            # llhttp reads a request line without a version as HTTP/0.9.
            if version == "0.9":
                raise RequestError(400, "Missing or obsolete HTTP version")
            raise RequestError(505, "HTTP version not supported")
        if self.head_error is not None:
            raise self.head_error
        http11 = version == "1.1"
        if self.host_count > 1 or (http11 and self.host_count == 0):
            raise RequestError(400, "A request needs exactly one Host header")
        if self.transfer_encoding is not None:
            if not http11:
                raise RequestError(400, "Transfer-Encoding on HTTP/1.0")
            self.body_left = -1
            self.framing_bytes = 0
        elif self.content_length_count:
            # (Digits only; a length no body reaches is as good as any longer one.)
            self.body_left = int(self.content_length) if len(self.content_length) < 19 else MAX_BODY_LEFT
        else:
            self.body_left = 0
        return method
