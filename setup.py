"""Builds the Cython hot path; without Cython or a C compiler, installs pure Python.

``fastserve/protocols/http1.py`` is compiled into ``fastserve._speedups.http1``,
``fastserve/protocols/websocket_frames.py`` and ``websocket.py`` into
``fastserve._speedups.websocket_frames`` and ``.websocket``, ``fastserve/state.py`` into
``fastserve._speedups.state``, with the C types declared in
``fastserve/_speedups/*.pxd``. Set
``FASTSERVE_NO_EXTENSIONS=1`` to skip the build.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    ("fastserve._speedups.state", "fastserve/state.py"),
    ("fastserve._speedups.http1", "fastserve/protocols/http1.py"),
    ("fastserve._speedups.websocket_frames", "fastserve/protocols/websocket_frames.py"),
    ("fastserve._speedups.websocket", "fastserve/protocols/websocket.py"),
]


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python path instead of failing the install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers
            print(f"fastserve: C extensions not built ({exc}); using the pure-Python path", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"fastserve: {ext.name} not built ({exc}); using the pure-Python path", file=sys.stderr)


def extensions():
    if os.environ.get("FASTSERVE_NO_EXTENSIONS"):
        return []
    from setuptools import Extension

    try:
        from Cython.Build import cythonize
    except ImportError:
        # An sdist carries the C that Cython generated: it builds with a C compiler alone.
        generated = [(name, source[: -len(".py")] + ".c") for name, source in COMPILED]
        if all(os.path.exists(c_source) for _, c_source in generated):
            return [Extension(name, [c_source]) for name, c_source in generated]
        print("fastserve: Cython not available; using the pure-Python path", file=sys.stderr)
        return []
    modules = [Extension(name, [source]) for name, source in COMPILED]
    return cythonize(
        modules,
        language_level=3,
        compiler_directives={"annotation_typing": False, "boundscheck": False, "wraparound": False},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
