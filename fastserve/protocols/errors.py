"""Errors shared by the parsers and the protocol (kept outside the compiled module,
so the compiled and the pure-Python protocol see one class)."""


class RequestError(Exception):
    """A request the server refuses, with the status that says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
