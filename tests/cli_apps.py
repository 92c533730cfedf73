"""Applications for the tests that run fastserve as a separate process."""

import asyncio
import os
import time

from tests.apps import hello


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/stream":
        # The first chunk tells the client the request is in flight.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started\n", "more_body": True})
        await asyncio.sleep(float(scope["query_string"] or b"1"))
        await send({"type": "http.response.body", "body": b"finished\n"})
        return
    if scope["path"] == "/pid":
        # Which worker answered.
        body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["path"] == "/client":
        # The client address, as the proxy settings made it.
        body = scope["client"][0].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["path"] == "/block":
        # A handler that blocks its worker's event loop.
        time.sleep(float(scope["query_string"] or b"30"))
    await hello(scope, receive, send)


async def failing_startup(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "cannot reach the database"})


class WebSocketGone(Exception):
    """What a framework raises when send() finds the client gone (as Starlette's WebSocketDisconnect)."""


async def operator(scope, receive, send):
    """The app the operator's-view test serves: HTTP, and WebSocket sessions that end every way."""
    if scope["type"] == "lifespan":
        await app(scope, receive, send)
        return
    if scope["type"] == "http":
        await hello(scope, receive, send)
        return
    path = scope["path"]
    await receive()  # websocket.connect
    if path == "/ws-deny":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept"})
    if path == "/ws-close":
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/ws-stream":
        # Sends until the client goes away, and raises then, as a framework's endpoint does.
        try:
            while True:
                await send({"type": "websocket.send", "text": "tick" * 256})
                await asyncio.sleep(0.005)
        except OSError:
            raise WebSocketGone(1006)  # noqa: B904 (the disconnect stays in the chain, as in Starlette)
    else:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text")})


async def failing_startup_and_raising(scope, receive, send):
    """What Starlette does when a lifespan raises: reports the failure with its traceback, then raises it."""
    await receive()
    try:
        raise RuntimeError("cannot reach the database")
    except RuntimeError as exc:
        import traceback

        await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
        raise exc
