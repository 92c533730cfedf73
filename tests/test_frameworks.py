"""Real Starlette and FastAPI applications, served end to end."""

from __future__ import annotations

import contextlib
import threading

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


def make_starlette(background_done: threading.Event) -> Starlette:
    async def home(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path, "query": dict(request.query_params)})

    async def upload(request: Request) -> PlainTextResponse:
        body = await request.body()
        return PlainTextResponse(f"{len(body)} bytes", background=BackgroundTask(background_done.set))

    async def stream(request: Request) -> StreamingResponse:
        async def numbers():
            for number in range(5):
                yield f"{number}\n"

        return StreamingResponse(numbers(), media_type="text/plain")

    async def state(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield {"greeting": "hi from lifespan"}

    return Starlette(
        routes=[
            Route("/", home),
            Route("/upload", upload, methods=["POST"]),
            Route("/stream", stream),
            Route("/state", state),
        ],
        lifespan=lifespan,
    )


def test_starlette(serve):
    background_done = threading.Event()
    with serve(make_starlette(background_done), lifespan="on") as server, httpx.Client() as client:
        assert client.get(server.url("/?a=1")).json() == {"path": "/", "query": {"a": "1"}}
        response = client.post(server.url("/upload"), content=b"x" * 300_000)
        assert response.text == "300000 bytes"
        assert background_done.wait(5)
        response = client.get(server.url("/stream"))
        assert response.text == "0\n1\n2\n3\n4\n" and response.headers["transfer-encoding"] == "chunked"
        assert client.get(server.url("/state")).text == "hi from lifespan"
        assert client.get(server.url("/missing")).status_code == 404


class Item(BaseModel):
    name: str
    price: float


def make_fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict:
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/sync")
    def sync_endpoint() -> dict:
        return {"threaded": True}

    return app


def test_fastapi(serve):
    with serve(make_fastapi(), lifespan="on") as server, httpx.Client() as client:
        assert client.get(server.url("/items/5?q=x")).json() == {"item_id": 5, "q": "x"}
        assert client.post(server.url("/items"), json={"name": "pen", "price": 1.5}).json() == {
            "name": "pen",
            "price": 1.5,
        }
        assert client.post(server.url("/items"), json={"name": "pen"}).status_code == 422
        assert client.get(server.url("/items/abc")).status_code == 422
        assert client.get(server.url("/sync")).json() == {"threaded": True}
        assert client.get(server.url("/openapi.json")).status_code == 200
