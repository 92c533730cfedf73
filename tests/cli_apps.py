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
