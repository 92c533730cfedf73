"""Which HTTP/1.1 implementation runs, and the fallback switch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def implementation(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", "from fastserve.protocols import describe; print(describe('auto'), describe('h11'))"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


def test_no_extensions_switch_selects_pure_python():
    assert implementation({"FASTSERVE_NO_EXTENSIONS": "1"}) == "python/httptools python/h11"


TWINS = ["http1", "http1_head", "http1_cycle", "http1_replay", "cycle", "http2", "http2_stream"]


@pytest.mark.parametrize("name", TWINS)
def test_compiled_module_is_the_same_protocol(name):
    import importlib

    from fastserve.compiled import compiled
    from fastserve.protocols import compiled_http1

    if compiled_http1 is None:
        pytest.skip("no compiled module here; .ci/run checks that CI builds it")
    twin = compiled(name)
    python = importlib.import_module(f"fastserve.protocols.{name}")
    assert twin.__file__.endswith(".so")
    assert python.__file__.endswith(".py")
    # The same classes and functions; constants that the .pxd types as C
    # globals are not Python attributes of the compiled module.
    public = {
        attr
        for attr in dir(python)
        if not attr.startswith("_")
        and callable(getattr(python, attr))
        and getattr(getattr(python, attr), "__module__", None) == python.__name__
    }
    assert public and public <= set(dir(twin))
