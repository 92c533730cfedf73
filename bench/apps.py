"""The applications every server is benchmarked with (identical for all peers)."""

BODY = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def plaintext(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def counting_upload(scope, receive, send):
    """Reads the whole body and answers with its length."""
    if scope["type"] != "http":
        return
    size = 0
    more_body = True
    while more_body:
        message = await receive()
        size += len(message.get("body", b""))
        more_body = message.get("more_body", False)
    body = b"%d" % size
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def read_then_plaintext(scope, receive, send):
    """Reads the whole body, then answers as plaintext does (the conformance runs: see bench/h2spec.py)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await plaintext(scope, receive, send)


DOWNLOAD_CHUNK = b"d" * 65536
DOWNLOAD_CHUNKS = 1024  # 64 MiB


async def download(scope, receive, send):
    """64 MiB streamed in 64 KiB chunks, without a content-length."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    )
    for _ in range(DOWNLOAD_CHUNKS - 1):
        await send({"type": "http.response.body", "body": DOWNLOAD_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": DOWNLOAD_CHUNK})


async def websocket_echo(scope, receive, send):
    """Sends every message back as it came (the WebSocket scenarios)."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
