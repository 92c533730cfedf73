"""A small JSON endpoint in FastAPI (the json-fastapi scenario)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def endpoint() -> dict:
    return {"message": "Hello, world!"}
