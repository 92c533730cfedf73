"""A small JSON endpoint in Starlette (the json-starlette scenario)."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def endpoint(request):
    return JSONResponse({"message": "Hello, world!"})


app = Starlette(routes=[Route("/", endpoint)])
