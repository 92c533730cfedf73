"""fastserve: a fast ASGI server."""

from fastserve.config import Config
from fastserve.main import run
from fastserve.server import Server

__version__ = "0.1.0"
__all__ = ["Config", "Server", "run", "__version__"]
