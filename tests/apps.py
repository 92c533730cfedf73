"""Small ASGI applications the behaviour tests serve."""

from __future__ import annotations

import json
from typing import Any


async def read_body(receive: Any) -> tuple[bytes, int]:
    """The whole request body and the number of http.request messages it came in.

    A client gone (or a body the server refused) ends it early, as a well-behaved
    app stops reading: what it sends next then finds the client gone too.
    """
    body = b""
    messages = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body, messages
        assert message["type"] == "http.request", message
        messages += 1
        body += message["body"]
        if not message.get("more_body", False):
            return body, messages


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the request body, and the message count in a header."""
    body, messages = await read_body(receive)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-messages", str(messages).encode()), (b"x-path", scope["raw_path"])],
        }
    )
    await send({"type": "http.response.body", "body": body})


def jsonable_scope(scope: Any) -> dict[str, Any]:
    result = {}
    for key, value in scope.items():
        if key == "headers":
            value = [[name.decode("latin-1"), val.decode("latin-1")] for name, val in value]
        elif isinstance(value, bytes):
            value = value.decode("latin-1")
        elif isinstance(value, tuple):
            value = list(value)
        result[key] = value
    return result


async def scope_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the scope as JSON."""
    await read_body(receive)
    body = json.dumps(jsonable_scope(scope), default=repr).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def streaming(scope: Any, receive: Any, send: Any) -> None:
    """Three body chunks without a content-length: chunked on HTTP/1.1."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
