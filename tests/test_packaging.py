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


def test_compiled_module_is_the_same_protocol():
    from fastserve.protocols import compiled_http1, python_http1

    if compiled_http1 is None:
        pytest.skip("no compiled module here; .ci/run checks that CI builds it")
    assert compiled_http1.__file__.endswith(".so")
    assert python_http1.__file__.endswith(".py")
    # The same classes and functions; constants that http1.pxd types as C
    # globals are not Python attributes of the compiled module.
    public = {name for name in dir(python_http1) if not name.startswith("_") and callable(getattr(python_http1, name))}
    assert public <= set(dir(compiled_http1))
