"""Exceptions shared by the protocols, the ASGI helpers and applications.

They live outside the modules that are compiled, so that the compiled and the
pure-Python twins raise and catch one class.
"""


class RequestError(Exception):
    """A request the server refuses, with the status that says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PipelineFull(Exception):
    """Raised by the protocol when a request begins while the pipeline is full: parsing stops there.

    A parser that knows where it stopped says so in ``rest`` (the bytes from
    that request's first byte); for httptools the protocol finds the place.
    """

    rest: bytes | None = None


class ProtocolSwitch(Exception):
    """Raised by the h11 parser adapter where a request asks to switch protocols: ``rest`` is what follows it.

    (llhttp stops there the same way, with its own HttpParserUpgrade.)
    """

    def __init__(self, rest: bytes) -> None:
        super().__init__("switching protocols")
        self.rest = rest


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone (ASGI HTTP spec 2.4)."""


class ASGIMessageError(RuntimeError):
    """The application sent a message that breaks the ASGI contract."""
